"""ISO 15118 smart charging through OCPP 2.0.1 (K15–K18), on the database: the EV's needs, the TxProfile the
station accepted, the EV's schedule checked against it (:mod:`csms.domain.ev_schedule`).

The needs themselves go on to load management with the committed report: it sends the TxProfile that meets
them (:mod:`csms.loadmgmt.iso15118`). One row per EVSE (:class:`EvChargingNegotiation`), read by the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, bindparam, case, insert, null, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.domain.ev_schedule import exceeds
from csms.services import stations, transactions
from csms.services.uow import UnitOfWork
from csms.store.bulk import Bulk
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


_NEGOTIATIONS: Table = EvChargingNegotiation.__table__  # type: ignore[assignment]  # declarative: a Table
_SAME_TRANSACTION = _NEGOTIATIONS.c.transaction_id.is_not_distinct_from(bindparam("tx", type_=String()))
#: :func:`_start` and the profile in one statement: what belonged to another transaction is cleared.
_ACCEPT_PROFILE = Bulk(
    sql_update(_NEGOTIATIONS)
    .where(_NEGOTIATIONS.c.station_id == bindparam("of_station"), _NEGOTIATIONS.c.evse_id == bindparam("of_evse"))
    .values(
        profile=bindparam("new_profile", type_=_NEGOTIATIONS.c.profile.type),
        profile_at=bindparam("new_profile_at", type_=_NEGOTIATIONS.c.profile_at.type),
        transaction_id=bindparam("tx", type_=String()),
        **{
            name: case((_SAME_TRANSACTION, _NEGOTIATIONS.c[name]), else_=null())
            for name in ("ev_schedule", "ev_schedule_at", "ev_schedule_status", "ev_schedule_reason")
        },
    )
)
_INSERT_NEGOTIATION = Bulk(insert(_NEGOTIATIONS))


def profile_accepted(uow: UnitOfWork, station_id: str, evse_id: int, profile: dict[str, Any], now: datetime) -> None:
    """The station accepted a TxProfile (whoever sent it: load management or an operator). Load management
    sends one at every re-plan: written with a prepared statement on the batch's connection, no ORM row."""
    if uow.has_session:  # rows the ORM holds go first, and it must not keep an old copy of this one
        uow.session.flush()
        for row in list(uow.session.identity_map.values()):
            if isinstance(row, EvChargingNegotiation) and (row.station_id, row.evse_id) == (station_id, evse_id):
                uow.session.expire(row)
    tx = profile.get("transactionId")
    params = {"of_station": station_id, "of_evse": evse_id, "tx": tx, "new_profile": profile, "new_profile_at": now}
    if not _ACCEPT_PROFILE.execute_one(uow.connection, params):
        _INSERT_NEGOTIATION.execute_one(
            uow.connection,
            {"station_id": station_id, "evse_id": evse_id, "transaction_id": tx, "profile": profile, "profile_at": now},
        )


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
