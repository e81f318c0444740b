"""Uptime from the store: build each port's history, apply the exclusion windows, compute µ and outages.

The arithmetic is in :mod:`csms.uptime` (pure); this module only reads rows and shapes results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from csms import uptime as up
from csms.domain import events as ev
from csms.domain import meter
from csms.domain.transaction import TransactionStatus
from csms.services import organisations
from csms.services.errors import Invalid, NotFound
from csms.store.models import (
    ConnectionEvent,
    Connector,
    ExclusionWindowRow,
    StationEvent,
    StatusChange,
    Transaction,
)
from csms.store.models import Station as StationRow

#: ConnectionEvent kinds: the gateway writes connected/disconnected, the alert monitor hb_timeout/hb_resumed.
ONLINE_KINDS = {"connected": True, "hb_resumed": True, "disconnected": False, "hb_timeout": False}
AVAILABILITY_ORDERED = "availability_ordered"


# ---- exclusion windows --------------------------------------------------------------------------------------
def create_exclusion(  # noqa: PLR0913 - one keyword-only argument per field of the window
    db: Session,
    station_id: str,
    *,
    evse_id: int | None,
    start: datetime,
    end: datetime,
    cause: str,
    now: datetime,
    note: str | None = None,
    declared_by: str | None = None,
) -> ExclusionWindowRow:
    """Declare a window (``declared_at`` = now: a maintenance window must be declared before it starts to count)."""
    if db.get(StationRow, station_id) is None:
        raise NotFound(f"station {station_id!r} not found")
    if cause not in up.ALL_EXCLUSION_CAUSES:
        raise Invalid(f"cause must be one of {', '.join(sorted(up.ALL_EXCLUSION_CAUSES))}")
    if end <= start:
        raise Invalid("an exclusion window must end after it starts")
    row = ExclusionWindowRow(
        station_id=station_id,
        evse_id=evse_id,
        start=start,
        end=end,
        cause=cause,
        note=note,
        declared_at=now,
        declared_by=declared_by,
    )
    db.add(row)
    db.flush()
    return row


def list_exclusions(
    db: Session, station_id: str | None = None, organisation_id: int | None = None
) -> list[ExclusionWindowRow]:
    """Every declared window (of one station's, of one organisation's stations, when given)."""
    query = select(ExclusionWindowRow).order_by(ExclusionWindowRow.start, ExclusionWindowRow.id)
    if station_id is not None:
        query = query.where(ExclusionWindowRow.station_id == station_id)
    if organisation_id is not None:
        query = query.where(ExclusionWindowRow.station_id.in_(organisations.station_ids(organisation_id)))
    return list(db.scalars(query))


def delete_exclusion(db: Session, exclusion_id: int) -> None:
    row = db.get(ExclusionWindowRow, exclusion_id)
    if row is None:
        raise NotFound(f"exclusion window {exclusion_id} not found")
    db.delete(row)
    db.flush()


def end_exclusion(db: Session, exclusion_id: int, end: datetime) -> ExclusionWindowRow:
    """End a declared window early (a planned outage that took less than declared counts only as long as it
    took); a window is never lengthened after the fact."""
    row = db.get(ExclusionWindowRow, exclusion_id)
    if row is None:
        raise NotFound(f"exclusion window {exclusion_id} not found")
    row.end = max(row.start, min(row.end, end))
    db.flush()
    return row


def record_availability_order(db: Session, station_id: str, evse_id: int, operative: bool, now: datetime) -> None:
    """An accepted ChangeAvailability: an Unavailable the operator ordered is not an outage."""
    data = {"evse_id": evse_id, "operative": operative}
    db.add(StationEvent(station_id=station_id, kind=AVAILABILITY_ORDERED, timestamp=now, data=data))


# ---- histories ----------------------------------------------------------------------------------------------
def ports(db: Session, station_id: str | None = None, organisation_id: int | None = None) -> list[tuple[str, int]]:
    """Every (station, EVSE) that reported a status (of one organisation's stations, when given); EVSE 0 (the
    station itself) is not a port."""
    query = select(Connector.station_id, Connector.evse_id).where(Connector.evse_id > 0).distinct()
    if station_id is not None:
        query = query.where(Connector.station_id == station_id)
    if organisation_id is not None:
        query = query.where(Connector.station_id.in_(organisations.station_ids(organisation_id)))
    return sorted((s, e) for s, e in db.execute(query))


def port_history(db: Session, station_id: str, evse_id: int, until: datetime) -> up.PortHistory:
    station = db.get(StationRow, station_id)
    if station is None:
        raise NotFound(f"station {station_id!r} not found")
    # the columns each point needs, without loading ORM objects: a report reads every port's whole history
    statuses = [
        up.StatusPoint(at, ev.port_state(status), error_code, station_wide=evse == 0)
        for at, status, error_code, evse in db.execute(
            select(StatusChange.timestamp, StatusChange.status, StatusChange.error_code, StatusChange.evse_id)
            .where(
                StatusChange.station_id == station_id,
                StatusChange.evse_id.in_((0, evse_id)),
                StatusChange.timestamp < until,
            )
            .order_by(StatusChange.timestamp, StatusChange.id)
        )
    ]
    links = [
        up.Connectivity(at, ONLINE_KINDS[kind])
        for at, kind in db.execute(
            select(ConnectionEvent.at, ConnectionEvent.kind)
            .where(ConnectionEvent.station_id == station_id, ConnectionEvent.at < until)
            .order_by(ConnectionEvent.at, ConnectionEvent.id)
        )
        if kind in ONLINE_KINDS
    ]
    orders = []
    for at, data in db.execute(
        select(StationEvent.timestamp, StationEvent.data)
        .where(
            StationEvent.station_id == station_id,
            StationEvent.kind == AVAILABILITY_ORDERED,
            StationEvent.timestamp < until,
        )
        .order_by(StationEvent.timestamp, StationEvent.id)
    ):
        target = data.get("evse_id", 0)
        if target in (0, evse_id):
            orders.append(up.Availability(at, bool(data.get("operative")), station_wide=target == 0))
    attempts = [
        up.Attempt(started, stopped, meter.session_energy_wh(start_wh, stop_wh, last_wh))
        for started, stopped, start_wh, stop_wh, last_wh in db.execute(
            select(
                Transaction.started_at,
                Transaction.stopped_at,
                Transaction.meter_start_wh,
                Transaction.meter_stop_wh,
                Transaction.last_meter_wh,
            ).where(
                Transaction.station_id == station_id,
                Transaction.evse_id == evse_id,
                Transaction.status == TransactionStatus.COMPLETED,
                Transaction.started_at < until,
            )
        )
        if started is not None
    ]
    return up.PortHistory(station.created_at, statuses, links, orders, attempts)


def exclusion_windows(db: Session, station_id: str, evse_id: int, period: up.Period) -> list[up.ExclusionWindow]:
    rows = db.scalars(
        select(ExclusionWindowRow).where(
            ExclusionWindowRow.station_id == station_id,
            or_(ExclusionWindowRow.evse_id.is_(None), ExclusionWindowRow.evse_id == evse_id),
            ExclusionWindowRow.start < period.end,
            ExclusionWindowRow.end > period.start,
        )
    )
    return [up.ExclusionWindow(r.start, r.end, r.cause, r.declared_at, r.id) for r in rows]


# ---- results ------------------------------------------------------------------------------------------------
def port_uptime(
    db: Session,
    period: up.Period,
    policy: up.ExclusionPolicy = up.DEFAULT_POLICY,
    station_id: str | None = None,
    organisation_id: int | None = None,
) -> list[dict[str, Any]]:
    """µ per port over ``period`` (NEVI formula; M scaled to the period unless it is twelve months), of one
    organisation's stations when ``organisation_id`` is given (another's station is not found)."""
    if station_id is not None:
        station = db.get(StationRow, station_id)
        if station is None or not organisations.visible(organisation_id, station.organisation_id):
            raise NotFound(f"station {station_id!r} not found")
    rows = []
    for sid, evse_id in ports(db, station_id, organisation_id):
        history = port_history(db, sid, evse_id, period.end)
        result = up.uptime(history, period, exclusion_windows(db, sid, evse_id, period), policy)
        rows.append(
            {
                "station_id": sid,
                "evse_id": evse_id,
                "period_start": period.start,
                "period_end": period.end,
                "basis_minutes": round(result.basis_minutes, 3),
                "outage_minutes": round(result.outage_minutes, 3),
                "excluded_minutes": round(result.excluded_minutes, 3),
                "uptime_pct": None if result.uptime_pct is None else round(result.uptime_pct, 3),
            }
        )
    return rows


def station_outages(
    db: Session, station_id: str, period: up.Period, policy: up.ExclusionPolicy = up.DEFAULT_POLICY
) -> list[dict[str, Any]]:
    """Outage records of every port of a station (23 CFR 680.112(a)(7)-(8) fields)."""
    if db.get(StationRow, station_id) is None:
        raise NotFound(f"station {station_id!r} not found")
    records = []
    for sid, evse_id in ports(db, station_id):
        history = port_history(db, sid, evse_id, period.end)
        for outage in up.outages(history, period, exclusion_windows(db, sid, evse_id, period), policy):
            records.append(
                {
                    "station_id": sid,
                    "evse_id": evse_id,
                    "start": outage.start,
                    "end": outage.end,
                    "duration_minutes": round(outage.minutes, 3),
                    "cause": outage.cause,
                    "excluded": outage.excluded,
                    "exclusion_cause": outage.exclusion_cause,
                    "exclusion_id": outage.exclusion_id,
                }
            )
    return records
