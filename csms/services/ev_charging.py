"""ISO 15118 smart charging through OCPP 2.0.1 (K15–K18), on the database: the EV's needs, the TxProfile the
station accepted, the EV's schedule checked against it (:mod:`csms.domain.ev_schedule`).

The needs themselves go on to load management with the committed report: it sends the TxProfile that meets
them (:mod:`csms.loadmgmt.iso15118`). One row per EVSE (:class:`EvChargingNegotiation`), read by the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.domain.ev_schedule import exceeds
from csms.services import stations, transactions
from csms.store.models import EvChargingNegotiation


def _row(db: Session, station_id: str, evse_id: int) -> EvChargingNegotiation:
    row = db.scalars(
        select(EvChargingNegotiation).where(
            EvChargingNegotiation.station_id == station_id, EvChargingNegotiation.evse_id == evse_id
        )
    ).first()
    if row is None:
        row = EvChargingNegotiation(station_id=station_id, evse_id=evse_id)
        db.add(row)
    return row


def _start(row: EvChargingNegotiation, transaction_id: str | None) -> None:
    """A negotiation for another transaction: what belonged to the one before is no longer in force."""
    if row.transaction_id != transaction_id:
        row.transaction_id = transaction_id
        row.profile = row.profile_at = None
        row.ev_schedule = row.ev_schedule_at = row.ev_schedule_status = row.ev_schedule_reason = None


def needs(db: Session, station_id: str, report: ev.ChargingNeedsReported, now: datetime) -> ev.EvChargingAnswer:
    """The EV's needs, kept; Accepted when a transaction runs on the EVSE (its TxProfile follows at once, K15.FR.03),
    Processing when none runs yet (the profile follows its start)."""
    stations.charging_needs(db, station_id, report, now)
    running = transactions.active_on(db, station_id, report.evse_id) if report.evse_id > 0 else None
    row = _row(db, station_id, report.evse_id)
    _start(row, running.charger_tx_id if running is not None else None)
    row.needs, row.needs_at = report.data.get("chargingNeeds", {}), now
    return ev.EvChargingAnswer("Accepted" if running is not None else "Processing")


def profile_accepted(db: Session, station_id: str, evse_id: int, profile: dict[str, Any], now: datetime) -> None:
    """The station accepted a TxProfile (whoever sent it: load management or an operator)."""
    row = _row(db, station_id, evse_id)
    _start(row, profile.get("transactionId"))
    row.profile, row.profile_at = profile, now


def schedule(db: Session, station_id: str, report: ev.EvScheduleReported, now: datetime) -> ev.EvChargingAnswer:
    """The EV's schedule: Rejected when it exceeds the TxProfile the station accepted (K15.FR.12), else Accepted
    (also when no profile of the CSMS binds this EVSE: there is nothing it could exceed)."""
    stations.get(db, station_id)
    row = _row(db, station_id, report.evse_id)
    reason = None
    if row.profile is not None and row.profile_at is not None:
        reason = exceeds(report.schedule, report.time_base, row.profile, row.profile_at.timestamp())
    status = "Rejected" if reason else "Accepted"
    row.ev_schedule, row.ev_schedule_at = {"timeBase": report.time_base.isoformat(), **report.schedule}, now
    row.ev_schedule_status, row.ev_schedule_reason = status, reason
    return ev.EvChargingAnswer(status, reason)


def of_station(db: Session, station_id: str) -> list[EvChargingNegotiation]:
    """The station's negotiations, by EVSE."""
    stations.get(db, station_id)
    return list(
        db.scalars(
            select(EvChargingNegotiation)
            .where(EvChargingNegotiation.station_id == station_id)
            .order_by(EvChargingNegotiation.evse_id)
        )
    )
