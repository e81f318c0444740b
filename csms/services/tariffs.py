"""Tariffs in the store: OCPI 2.2.1 tariffs with their price history, where each applies, and what a session
would cost (the engine is :mod:`csms.tariffs`).

Precedence (the most specific wins): an EVSE's tariff for the driver's group, the station's for the group, the
site's for the group; then the EVSE's, the station's and the site's for everyone. A token in no group, or a
group with no tariff anywhere, falls to the tariffs for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, or_, select
from sqlalchemy.orm import Session

from csms.services import rows
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.bulk import Bulk
from csms.store.models import SiteEvse, Station, TariffAssignment, TariffRow, TariffVersion
from csms.tariffs.aligned import aligned_interval_s
from csms.tariffs.parse import TariffError, parse_tariff
from csms.tariffs.pricing import CdrResult, price_session
from csms.tariffs.timeline import MeterSample, SessionTimeline, State, StateChange


def check(body: Mapping[str, Any]) -> None:
    """Invalid, naming the field and the reason, when ``body`` is not a valid OCPI 2.2.1 tariff."""
    try:
        parse_tariff(dict(body))
    except TariffError as exc:
        raise Invalid(f"{exc.field}: {exc.reason}") from None


def put(db: Session, tariff_id: str, body: Mapping[str, Any], now: datetime) -> tuple[TariffRow, bool]:
    """Create the tariff or, when it changed, make this its next version (the old one stays in the history);
    returns the row and whether it is new."""
    body = {**body, "id": tariff_id}
    check(body)
    row = db.get(TariffRow, tariff_id)
    if row is not None and row.body == body:
        return row, False
    created = row is None
    if row is None:
        row = TariffRow(id=tariff_id, version=1, currency=body["currency"], body=body, created_at=now, updated_at=now)
        db.add(row)
    else:
        row.version, row.currency, row.body, row.updated_at = row.version + 1, body["currency"], body, now
    db.flush()
    db.add(TariffVersion(tariff_id=tariff_id, version=row.version, body=body, valid_from=now))
    db.flush()
    return row, created


def get(db: Session, tariff_id: str) -> TariffRow:
    return rows.found(db, TariffRow, tariff_id, "tariff")


def list_tariffs(db: Session, organisation_id: int | None = None) -> list[TariffRow]:
    """Every tariff (of one organisation, when given)."""
    query = select(TariffRow).order_by(TariffRow.id)
    if organisation_id is not None:
        query = query.where(TariffRow.organisation_id == organisation_id)
    return list(db.scalars(query))


def versions(db: Session, tariff_id: str) -> list[TariffVersion]:
    get(db, tariff_id)
    stmt = select(TariffVersion).where(TariffVersion.tariff_id == tariff_id).order_by(TariffVersion.version)
    return list(db.scalars(stmt))


def delete(db: Session, tariff_id: str) -> None:
    row = get(db, tariff_id)
    if db.scalar(select(TariffAssignment.id).where(TariffAssignment.tariff_id == tariff_id).limit(1)) is not None:
        raise Conflict(f"tariff {tariff_id!r} is assigned: remove its assignments first")
    db.delete(row)
    db.flush()


# ---- where a tariff applies -----------------------------------------------------------------------------------
def assign(
    db: Session,
    tariff_id: str,
    *,
    now: datetime,
    site_id: str | None = None,
    station_id: str | None = None,
    evse_id: int | None = None,
    group_id: str | None = None,
) -> TariffAssignment:
    get(db, tariff_id)
    if (site_id is None) == (station_id is None):
        raise Invalid("give a site_id or a station_id (with evse_id for one EVSE)")
    if evse_id is not None and station_id is None:
        raise Invalid("evse_id: only with a station_id")
    if station_id is not None and db.get(Station, station_id) is None:
        raise NotFound(f"station {station_id!r} not found")
    place = (site_id, station_id, evse_id, group_id)
    existing = db.scalar(select(TariffAssignment).where(*_same_place(*place)))
    if existing is not None:
        existing.tariff_id = tariff_id  # the place gets the new tariff
        db.flush()
        return existing
    row = TariffAssignment(tariff_id=tariff_id, site_id=site_id, station_id=station_id, evse_id=evse_id,
                           group_id=group_id, created_at=now)  # fmt: skip
    db.add(row)
    db.flush()
    return row


def set_station_default(db: Session, station_id: str, tariff_id: str | None, now: datetime) -> None:
    """The simplest assignment: the station's tariff for everyone (``None`` removes it)."""
    if tariff_id is not None:
        assign(db, tariff_id, now=now, station_id=station_id)
        return
    existing = db.scalar(select(TariffAssignment).where(*_same_place(None, station_id, None, None)))
    if existing is not None:
        db.delete(existing)
        db.flush()


def station_defaults(db: Session, station_ids: Sequence[str] | None = None) -> dict[str, str]:
    """Each station's tariff for everyone (``set_station_default``), by station id."""
    stmt = select(TariffAssignment.station_id, TariffAssignment.tariff_id).where(
        TariffAssignment.station_id.is_not(None), TariffAssignment.evse_id.is_(None),
        TariffAssignment.group_id.is_(None),
    )  # fmt: skip
    if station_ids is not None:
        stmt = stmt.where(TariffAssignment.station_id.in_(station_ids))
    return {station: tariff for station, tariff in db.execute(stmt).all() if station is not None}


def _same_place(site_id: str | None, station_id: str | None, evse_id: int | None, group_id: str | None) -> list[Any]:
    columns = (
        TariffAssignment.site_id,
        TariffAssignment.station_id,
        TariffAssignment.evse_id,
        TariffAssignment.group_id,
    )
    return [
        c.is_(None) if v is None else c == v
        for c, v in zip(columns, (site_id, station_id, evse_id, group_id), strict=True)
    ]


def assignments(db: Session, organisation_id: int | None = None) -> list[TariffAssignment]:
    """Every assignment (of one organisation's tariffs, when given)."""
    query = select(TariffAssignment).order_by(TariffAssignment.id)
    if organisation_id is not None:
        query = query.where(
            TariffAssignment.tariff_id.in_(select(TariffRow.id).where(TariffRow.organisation_id == organisation_id))
        )
    return list(db.scalars(query))


def unassign(db: Session, assignment_id: int) -> None:
    db.delete(rows.found(db, TariffAssignment, assignment_id, "tariff assignment"))
    db.flush()


def resolve(db: Session, station_id: str, evse_id: int, group_id: str | None) -> TariffRow | None:
    """The tariff that applies to a driver of ``group_id`` at the EVSE (the precedence above)."""
    chosen = resolve_id(db, station_id, evse_id, group_id)
    return None if chosen is None else get(db, chosen)


def _assignments_query(*, of_group: bool) -> Select[str | None, str | None, int | None, str | None, str]:
    """Every assignment that could apply at an EVSE (``:station``, ``:evse``) to anyone, and (``of_group``) to the
    drivers of ``:group``. Built once: building it per call cost more than running it."""
    site = select(SiteEvse.site_id).where(
        SiteEvse.station_id == bindparam("station"), SiteEvse.evse_id == bindparam("evse")
    )
    group_match = TariffAssignment.group_id.is_(None)
    if of_group:
        group_match = or_(group_match, TariffAssignment.group_id == bindparam("group"))  # type: ignore[assignment]
    return select(
        TariffAssignment.site_id, TariffAssignment.station_id, TariffAssignment.evse_id,
        TariffAssignment.group_id, TariffAssignment.tariff_id,
    ).where(
        (TariffAssignment.station_id == bindparam("station")) | TariffAssignment.site_id.in_(site),
        group_match,
    )  # fmt: skip


_ASSIGNMENTS_FOR_ANYONE = _assignments_query(of_group=False)
_ASSIGNMENTS_FOR_GROUP = _assignments_query(of_group=True)
#: The same on a Connection, straight to the driver (SQLAlchemy's execution cost several times running it).
_ON_CONNECTION = {False: Bulk(_ASSIGNMENTS_FOR_ANYONE), True: Bulk(_ASSIGNMENTS_FOR_GROUP)}


def resolve_id(db: Session | Connection, station_id: str, evse_id: int, group_id: str | None) -> str | None:
    """The id of :func:`resolve`'s tariff. One query reads every assignment that could apply (it runs on every
    priced TransactionEvent); the precedence picks. On a Connection it costs no ORM session."""
    groups = [group_id, None] if group_id is not None else [None]
    at: dict[str, Any] = {"station": station_id, "evse": evse_id}
    if group_id is not None:
        at["group"] = group_id
    rows: Sequence[Sequence[Any]]
    if isinstance(db, Connection):
        rows = _ON_CONNECTION[group_id is not None].fetch_all(db, at)
    else:
        rows = db.execute(_ASSIGNMENTS_FOR_GROUP if group_id is not None else _ASSIGNMENTS_FOR_ANYONE, at).all()
    found: dict[tuple[str, str | None], str] = {}
    for site_id, station, evse, group, tariff_id in rows:
        if station == station_id and site_id is None and evse == evse_id:
            found[("evse", group)] = tariff_id
        elif station == station_id and site_id is None and evse is None:
            found[("station", group)] = tariff_id
        elif site_id is not None and station is None and evse is None:
            found[("site", group)] = tariff_id
    for group in groups:
        for place in ("evse", "station", "site"):
            chosen = found.get((place, group))
            if chosen is not None:
                return chosen
    return None


def _assigned_at(station_id: str) -> ColumnElement[bool]:
    """An assignment to the station, one of its EVSEs, or its site (for anyone or any group)."""
    sites = select(SiteEvse.site_id).where(SiteEvse.station_id == station_id)
    return (TariffAssignment.station_id == station_id) | TariffAssignment.site_id.in_(sites)


def applies_at(db: Session, station_id: str) -> bool:
    """Does any tariff apply at the station (to one of its EVSEs, to it, or to its site, for anyone)?"""
    return db.scalar(select(TariffAssignment.id).where(_assigned_at(station_id)).limit(1)) is not None


def stations_assigned(db: Session, tariff_id: str) -> list[str]:
    """The stations where the tariff is assigned: to them (or one of their EVSEs), or to their site."""
    sites = select(TariffAssignment.site_id).where(TariffAssignment.tariff_id == tariff_id)
    direct = select(TariffAssignment.station_id).where(
        TariffAssignment.tariff_id == tariff_id, TariffAssignment.station_id.is_not(None)
    )
    of_sites = select(SiteEvse.station_id).where(SiteEvse.site_id.in_(sites))
    return sorted({s for s in db.scalars(direct.union(of_sites)) if s is not None})


def aligned_interval_at(db: Session, station_id: str, time_zone: str, year: int) -> int | None:
    """The clock-aligned meter interval [s] that reads on every time-of-day boundary of the tariffs applying at
    the station (:func:`applies_at`'s, for anyone or any group; :mod:`csms.tariffs.aligned`); None when none of
    them has a time of day."""
    found = db.execute(
        select(TariffRow.id, TariffRow.body)
        .join(TariffAssignment, TariffAssignment.tariff_id == TariffRow.id)
        .where(_assigned_at(station_id))
    ).all()
    bodies = {tariff_id: body for tariff_id, body in found}  # a tariff assigned twice is read once
    return aligned_interval_s([parse_tariff(body) for body in bodies.values()], time_zone, year)


# ---- what a session would cost --------------------------------------------------------------------------------
def quote(
    tariff: TariffRow, *, start: datetime, kwh: Decimal, charging_minutes: int, parking_minutes: int, time_zone: str
) -> CdrResult:
    """The price of a session that charges ``kwh`` evenly over ``charging_minutes`` from ``start``, then stays
    plugged in for ``parking_minutes``."""
    if kwh < 0 or charging_minutes <= 0 or parking_minutes < 0:
        raise Invalid("kwh >= 0, charging_minutes > 0 and parking_minutes >= 0")
    charged = start + timedelta(minutes=charging_minutes)
    stop = charged + timedelta(minutes=parking_minutes)
    samples = tuple(
        MeterSample(start + timedelta(minutes=m), kwh * 1000 * m / charging_minutes)
        for m in range(charging_minutes + 1)
    )
    states = (StateChange(charged, State.PARKING),) if parking_minutes else ()
    timeline = SessionTimeline(start, stop, time_zone, samples, states)
    return price_session([parse_tariff(tariff.body)], timeline)
