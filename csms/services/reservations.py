"""Reservations: the CSMS makes them (its own reservationId), sends ReserveNow and keeps what the station
answered; they end cancelled (CancelReservation), expired (at their expiry, by the CSMS's clock, or the
station's 2.0.1 ReservationStatusUpdate), removed (2.0.1: the station dropped it, e.g. faulted) or used (a
transaction started with their id).

The life of one reservation, as a table (status → what may come next):

- ``pending``: ReserveNow sent → ``active`` (Accepted), a refusal (``rejected``, ``faulted``, ``occupied``,
  ``unavailable``) or ``failed`` (a CALLERROR, no answer).
- ``active`` → ``used``, ``cancelled``, ``expired``, ``removed``.
- every other status is final. A transaction that names a reservation which already ended is served as any
  other (OCPP lets the CSMS refuse a transaction only for its token); the reservation keeps its status and
  says so in ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.ocpp.outgoing import Reservation as ReservationCall
from csms.ocpp.versions import OCPP16
from csms.services import organisations, stations
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import Connector, Reservation, StationEvent

PENDING, ACTIVE, FAILED = "pending", "active", "failed"
USED, CANCELLED, EXPIRED, REMOVED = "used", "cancelled", "expired", "removed"
#: ReserveNow answers → the reservation's status.
ANSWERS = {
    "Accepted": ACTIVE,
    "Faulted": "faulted",
    "Occupied": "occupied",
    "Rejected": "rejected",
    "Unavailable": "unavailable",
}
#: 2.0.1 ReservationStatusUpdate statuses → the reservation's status.
STATION_ENDINGS = {"Expired": EXPIRED, "Removed": REMOVED}
STATUSES = (PENDING, ACTIVE, FAILED, USED, CANCELLED, EXPIRED, REMOVED, *sorted(set(ANSWERS.values()) - {ACTIVE}))


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the operator asks for: ``evse_id`` None is any port (1.6 connector 0)."""

    id_token: str
    expires_at: datetime
    id_token_type: str = "ISO14443"
    evse_id: int | None = None
    connector_type: str | None = None
    group_id: str | None = None


def create(db: Session, station_id: str, wanted: Wanted, now: datetime) -> Reservation:
    """A new ``pending`` reservation, its id chosen here (the row's own, unique among all reservations).

    Raises:
        NotFound: no such station.  Invalid: an expiry not in the future, a port the station never reported, a
            connector type asked of a 1.6 station.
    """
    station = stations.get(db, station_id)
    if wanted.expires_at <= now:
        raise Invalid(f"the expiry {wanted.expires_at.isoformat()} is not in the future")
    if station.ocpp_version == OCPP16 and wanted.connector_type is not None:
        raise Invalid("OCPP 1.6 reserves a connector, not a connector type")
    if wanted.evse_id is not None:
        _check_port(db, station_id, station.ocpp_version, wanted.evse_id)
    row = Reservation(
        station_id=station_id,
        evse_id=wanted.evse_id,
        connector_type=wanted.connector_type,
        id_token=wanted.id_token,
        id_token_type=wanted.id_token_type,
        group_id=wanted.group_id,
        expires_at=wanted.expires_at,
        status=PENDING,
        created_at=now,
    )
    db.add(row)
    db.flush()
    return row


def replace(db: Session, reservation_id: int, station_id: str, wanted: Wanted, now: datetime) -> Reservation:
    """A ReserveNow that replaces an active reservation of the station (OCPP: a ReserveNow naming a reservation
    the station holds replaces it; OCPI 2.2.1 RESERVE_NOW with a known ``reservation_id``): the same id, the new
    token, port and expiry; ``pending`` again until the station answers (:func:`answered`).

    Raises:
        NotFound: no such reservation of this station.  Conflict: it is not active.  Invalid: as :func:`create`.
    """
    row = get(db, reservation_id, station_id)
    if row.status != ACTIVE:
        raise Conflict(f"reservation {reservation_id} is {row.status}, not active: nothing to replace")
    station = stations.get(db, station_id)
    if wanted.expires_at <= now:
        raise Invalid(f"the expiry {wanted.expires_at.isoformat()} is not in the future")
    if wanted.evse_id is not None:
        _check_port(db, station_id, station.ocpp_version, wanted.evse_id)
    row.evse_id, row.connector_type, row.id_token = wanted.evse_id, wanted.connector_type, wanted.id_token
    row.id_token_type, row.group_id, row.expires_at = wanted.id_token_type, wanted.group_id, wanted.expires_at
    row.status, row.detail = PENDING, "replaced"
    db.flush()
    return row


def _check_port(db: Session, station_id: str, version: str, evse_id: int) -> None:
    known = set(db.scalars(select(Connector.evse_id).where(Connector.station_id == station_id, Connector.evse_id > 0)))
    if evse_id not in known:
        port = "connector" if version == OCPP16 else "EVSE"
        reported = ", ".join(str(n) for n in sorted(known)) or "none yet"
        raise Invalid(f"station {station_id!r} has no {port} {evse_id} (it reported: {reported})")


def call_of(row: Reservation) -> ReservationCall:
    """What ReserveNow says of the reservation."""
    return ReservationCall(
        reservation_id=row.id,
        expires_at=row.expires_at,
        id_token=row.id_token,
        id_token_type=row.id_token_type,
        evse_id=row.evse_id,
        connector_type=row.connector_type,
        group_id=row.group_id,
    )


def get(db: Session, reservation_id: int, station_id: str | None = None) -> Reservation:
    """Raises NotFound (also for a reservation of another station than ``station_id``)."""
    row = db.get(Reservation, reservation_id)
    if row is None or (station_id is not None and row.station_id != station_id):
        where = f" of station {station_id!r}" if station_id is not None else ""
        raise NotFound(f"no reservation {reservation_id}{where}")
    return row


def answered(db: Session, reservation_id: int, outcome: dict[str, Any], now: datetime) -> Reservation:
    """Store what became of ReserveNow (the API's call outcome: result, error, timeout, cancelled)."""
    row = get(db, reservation_id)
    if outcome["outcome"] == "result":
        answer = str((outcome.get("payload") or {}).get("status"))
        row.status = ANSWERS.get(answer, FAILED)
        row.detail = f"ReserveNow {answer}"
    else:
        error = outcome.get("error") or {}
        row.status = FAILED
        row.detail = f"ReserveNow {outcome['outcome']} {error.get('code') or ''}".strip()[:200]
    if row.status != ACTIVE:
        row.ended_at = now
    return row


def forget(db: Session, reservation_id: int) -> None:
    """Drop a reservation that never left the CSMS (the station was not connected)."""
    row = db.get(Reservation, reservation_id)
    if row is not None:
        db.delete(row)


def to_cancel(db: Session, station_id: str, reservation_id: int) -> Reservation:
    """The active reservation CancelReservation will name.

    Raises:
        NotFound: no such reservation of this station.  Conflict: it is not active (ended or never accepted).
    """
    row = get(db, reservation_id, station_id)
    if row.status != ACTIVE:
        raise Conflict(f"reservation {reservation_id} is {row.status}, not active: nothing to cancel")
    return row


def cancel_answered(db: Session, reservation_id: int, outcome: dict[str, Any], now: datetime) -> Reservation:
    """Accepted: cancelled. Rejected (the station holds no such reservation) or no answer: unchanged."""
    row = get(db, reservation_id)
    answer = (outcome.get("payload") or {}).get("status") if outcome["outcome"] == "result" else None
    if answer == "Accepted" and row.status == ACTIVE:
        row.status, row.ended_at, row.detail = CANCELLED, now, "CancelReservation Accepted"
    return row


def expire_due(db: Session, now: datetime) -> int:
    """Active reservations whose expiry has come are ``expired`` (ended at their expiry). Returns how many."""
    result = db.execute(
        update(Reservation)
        .where(Reservation.status == ACTIVE, Reservation.expires_at <= now)
        .values(status=EXPIRED, ended_at=Reservation.expires_at, detail="expired")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def next_expiry(db: Session) -> datetime | None:
    """When the next active reservation expires (None: none is active)."""
    return db.scalars(select(Reservation.expires_at).where(Reservation.status == ACTIVE).order_by(
        Reservation.expires_at).limit(1)).first()  # fmt: skip


def used(db: Session, station_id: str, reservation_id: int, transaction_id: int, at: datetime) -> None:
    """A transaction started with the reservation's id: it is used (when it was still active; otherwise the
    reservation stays as it ended and ``detail`` names the late transaction). An unknown id is ignored: the
    transaction is the station's fact, the id may be another CSMS's."""
    row = db.get(Reservation, reservation_id)
    if row is None or row.station_id != station_id:
        return
    if row.status == ACTIVE:
        row.status, row.ended_at, row.transaction_id, row.detail = USED, at, transaction_id, "used"
    elif row.transaction_id is None:
        row.transaction_id = transaction_id
        row.detail = f"transaction {transaction_id} named it after it ended ({row.status})"


def status_reported(db: Session, station_id: str, report: ev.ReservationStatusReported, now: datetime) -> None:
    """2.0.1 ReservationStatusUpdate: the station ended the reservation (Expired, Removed); kept as a station
    event too."""
    row = db.get(Reservation, report.reservation_id)
    ending = STATION_ENDINGS.get(report.status)
    if row is not None and row.station_id == station_id and row.status == ACTIVE and ending is not None:
        row.status, row.ended_at, row.detail = ending, now, f"ReservationStatusUpdate {report.status}"
    db.add(StationEvent(station_id=station_id, kind="reservation_status", timestamp=now, data=report.data))


def listing(
    db: Session,
    *,
    station_id: str | None = None,
    status: str | None = None,
    id_token: str | None = None,
    limit: int = 100,
    offset: int = 0,
    organisation_id: int | None = None,
) -> list[Reservation]:
    """Newest first (of one organisation's stations, when ``organisation_id`` is given)."""
    query = select(Reservation)
    if organisation_id is not None:
        query = query.where(Reservation.station_id.in_(organisations.station_ids(organisation_id)))
    if station_id is not None:
        query = query.where(Reservation.station_id == station_id)
    if status is not None:
        query = query.where(Reservation.status == status)
    if id_token is not None:
        query = query.where(Reservation.id_token == id_token)
    return list(db.scalars(query.order_by(Reservation.id.desc()).limit(limit).offset(offset)))


def as_dict(row: Reservation) -> dict[str, Any]:
    return {
        "id": row.id,
        "station_id": row.station_id,
        "evse_id": row.evse_id,
        "connector_type": row.connector_type,
        "id_token": row.id_token,
        "id_token_type": row.id_token_type,
        "group_id": row.group_id,
        "expires_at": row.expires_at,
        "status": row.status,
        "created_at": row.created_at,
        "ended_at": row.ended_at,
        "transaction_id": row.transaction_id,
        "detail": row.detail,
    }
