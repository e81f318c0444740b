"""Usage reports: sessions, energy, revenue, occupancy, utilisation and uptime per site, station, driver, driver
group, day or month, and the hour-by-weekday occupancy behind the heat map.

Revenue is what the sessions' CDRs say (:mod:`csms.services.cdrs`: priced by the tariff that applied, in that
tariff's currency), counted in the period the session started in, like its energy; a session without a CDR (no
tariff applied, or still running) adds none. A report holds one currency: the one asked for, or the only one
the period's CDRs have.

Sessions are read in batches (``yield_per``) and folded into one row per key as they come, so a year of a
thousand stations never sits in memory; :func:`sessions` streams the rows themselves for exports. A session
belongs to the period it *started* in (its count and energy); its occupancy (plug-in to plug-out, clipped to
the period) is split over the days or months it spans. Days and months are those of ``tz`` (local time at the
edge); everything stored is UTC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from csms import uptime as up
from csms.domain import meter, money
from csms.services import organisations, uptime
from csms.services.errors import Invalid
from csms.store.models import Cdr, Connector, FleetDriver, FleetVehicle, IdToken, SiteEvse, Transaction

Dimension = Literal["site", "station", "driver", "group", "vehicle", "cost_centre", "day", "month"]
DIMENSIONS: tuple[Dimension, ...] = ("site", "station", "driver", "group", "vehicle", "cost_centre", "day", "month")
#: The key of a session without one (no site, no token, a token in no group).
NONE_KEY = "(none)"


@dataclass(frozen=True, slots=True)
class SessionRow:
    transaction_id: int
    station_id: str
    evse_id: int | None
    site_id: str | None
    id_token: str | None
    group_id: str | None
    vehicle_id: str | None
    cost_centre: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    energy_wh: float
    status: str
    stop_reason: str | None
    currency: str | None  # of the session's CDR; None: not priced
    cost_excl_vat: Decimal | None
    cost_incl_vat: Decimal | None


SESSION_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SessionRow))


@dataclass(slots=True)
class _Totals:
    sessions: int = 0
    energy_wh: float = 0.0
    occupied_s: float = 0.0
    revenue_excl_vat: Decimal = Decimal(0)
    revenue_incl_vat: Decimal = Decimal(0)


def period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC (naive is UTC), checked."""
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    if end <= start:
        raise Invalid("the period's end must be after its start")
    return start, end


def sessions(
    db: Session,
    start: datetime,
    end: datetime,
    *,
    site_id: str | None = None,
    station_id: str | None = None,
    batch: int = 2000,
    organisation_id: int | None = None,
) -> Iterator[SessionRow]:
    """The sessions that started in ``[start, end)`` (at one organisation's stations, when given), oldest first,
    read ``batch`` rows at a time."""
    stmt = (
        select(
            Transaction.id,
            Transaction.station_id,
            Transaction.evse_id,
            SiteEvse.site_id,
            Transaction.id_token,
            IdToken.group_id,
            FleetVehicle.id.label("vehicle_id"),
            func.coalesce(FleetVehicle.cost_centre, FleetDriver.cost_centre).label("cost_centre"),
            Transaction.started_at,
            Transaction.stopped_at,
            Transaction.meter_start_wh,
            Transaction.meter_stop_wh,
            Transaction.last_meter_wh,
            Transaction.status,
            Transaction.stop_reason,
            Cdr.currency,
            Cdr.total_cost_excl_vat,
            Cdr.total_cost_incl_vat,
        )
        .outerjoin(Cdr, Cdr.transaction_id == Transaction.id)
        .outerjoin(
            SiteEvse, and_(SiteEvse.station_id == Transaction.station_id, SiteEvse.evse_id == Transaction.evse_id)
        )
        .outerjoin(IdToken, IdToken.id_token == Transaction.id_token)
        .outerjoin(FleetVehicle, FleetVehicle.id_token == Transaction.id_token)
        .outerjoin(FleetDriver, FleetDriver.id == FleetVehicle.driver_id)
        .where(Transaction.started_at >= start, Transaction.started_at < end)
        .order_by(Transaction.started_at, Transaction.id)
        .execution_options(yield_per=batch)
    )
    if site_id is not None:
        stmt = stmt.where(SiteEvse.site_id == site_id)
    if station_id is not None:
        stmt = stmt.where(Transaction.station_id == station_id)
    if organisation_id is not None:
        stmt = stmt.where(Transaction.station_id.in_(organisations.station_ids(organisation_id)))
    for r in db.execute(stmt):
        yield SessionRow(
            r.id,
            r.station_id,
            r.evse_id,
            r.site_id,
            r.id_token,
            r.group_id,
            r.vehicle_id,
            r.cost_centre,
            r.started_at,
            r.stopped_at,
            round(meter.session_energy_wh(r.meter_start_wh, r.meter_stop_wh, r.last_meter_wh), 3),
            r.status,
            r.stop_reason,
            r.currency,
            None if r.total_cost_excl_vat is None else Decimal(r.total_cost_excl_vat),
            None if r.total_cost_incl_vat is None else Decimal(r.total_cost_incl_vat),
        )


def usage(
    db: Session,
    start: datetime,
    end: datetime,
    by: Dimension,
    *,
    tz: tzinfo = UTC,
    site_id: str | None = None,
    currency: str | None = None,
    organisation_id: int | None = None,
) -> list[dict[str, Any]]:
    """One row per ``by`` key: sessions started, energy [kWh], revenue (excl. and incl. VAT, in ``currency`` or
    the one currency of the period's CDRs), occupied hours, and where it has a meaning (site, station, day,
    month) the utilisation — occupied time over the ports' time — and for sites and stations the NEVI uptime of
    their ports over the period. With ``organisation_id``: only that organisation's stations, sessions and ports."""
    if by not in DIMENSIONS:
        raise Invalid(f"by must be one of {', '.join(DIMENSIONS)}")
    if currency is not None and not money.is_known(currency):
        raise Invalid(f"currency: {currency!r} is not an ISO 4217 currency")
    start, end = period(start, end)
    totals: dict[str, _Totals] = defaultdict(_Totals)
    seen: set[str] = set()
    for row in sessions(db, start, end, site_id=site_id, organisation_id=organisation_id):
        started = totals[_key(row, by, tz)]
        started.sessions += 1
        started.energy_wh += row.energy_wh
        _add_revenue(started, row, currency, seen)
        for key, seconds in _occupancy(row, by, start, end, tz):
            totals[key].occupied_s += seconds
    if by in ("day", "month"):
        for key in _buckets(start, end, by, tz):
            totals.setdefault(key, _Totals())
    capacity = _capacity_s(db, start, end, by, tz, site_id, organisation_id)
    availability = _uptime(db, start, end, by, organisation_id) if by in ("site", "station") else {}
    rows = []
    for key in sorted(totals):
        t = totals[key]
        ports_s = capacity.get(key)
        rows.append(
            {
                by: key,
                "sessions": t.sessions,
                "energy_kwh": round(t.energy_wh / 1000, 3),
                "currency": currency or next(iter(seen), None),
                "revenue_excl_vat": t.revenue_excl_vat,
                "revenue_incl_vat": t.revenue_incl_vat,
                "occupied_hours": round(t.occupied_s / 3600, 3),
                "utilisation_pct": round(100 * t.occupied_s / ports_s, 2) if ports_s else None,
                "uptime_pct": availability.get(key),
            }
        )
    return rows


def _add_revenue(totals: _Totals, row: SessionRow, currency: str | None, seen: set[str]) -> None:
    """The session's CDR total, when it has one in the report's currency (``seen``: the currencies met so far)."""
    if row.currency is None or row.cost_excl_vat is None or row.cost_incl_vat is None:
        return
    seen.add(row.currency)
    if currency is None and len(seen) > 1:
        raise Invalid(f"currency: the period's sessions were priced in {', '.join(sorted(seen))}; choose one")
    if currency in (None, row.currency):
        totals.revenue_excl_vat += row.cost_excl_vat
        totals.revenue_incl_vat += row.cost_incl_vat


def occupancy_by_hour(
    db: Session,
    start: datetime,
    end: datetime,
    *,
    tz: tzinfo = UTC,
    site_id: str | None = None,
    organisation_id: int | None = None,
) -> list[list[float]]:
    """Mean share of ports occupied, 7 weekdays (Monday first) × 24 local hours, over the period."""
    start, end = period(start, end)
    occupied = [[0.0] * 24 for _ in range(7)]
    for row in sessions(db, start, end, site_id=site_id, organisation_id=organisation_id):
        for hour_start, seconds in _split(_span(row, start, end), "hour", tz):
            occupied[hour_start.weekday()][hour_start.hour] += seconds
    ports = max(1, len(_ports(db, site_id, organisation_id)))
    hours = [[0.0] * 24 for _ in range(7)]
    for hour_start, seconds in _split((start, end), "hour", tz):
        hours[hour_start.weekday()][hour_start.hour] += seconds
    return [
        [round(occupied[d][h] / (ports * hours[d][h]), 4) if hours[d][h] else 0.0 for h in range(24)] for d in range(7)
    ]


# ---- keys and time ----------------------------------------------------------------------------------------
def _key(row: SessionRow, by: Dimension, tz: tzinfo) -> str:
    if by in ("day", "month"):
        assert row.started_at is not None  # the query selects by started_at
        return _bucket_key(row.started_at.astimezone(tz), by)
    value = {
        "site": row.site_id,
        "station": row.station_id,
        "driver": row.id_token,
        "group": row.group_id,
        "vehicle": row.vehicle_id,
        "cost_centre": row.cost_centre,
    }[by]
    return value or NONE_KEY


def _bucket_key(local: datetime, by: str) -> str:
    return local.strftime("%Y-%m-%d" if by == "day" else "%Y-%m")


def _span(row: SessionRow, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Plug-in to plug-out (or the period's end for a session still running), clipped to the period."""
    begin = max(row.started_at or start, start)
    finish = min(row.stopped_at or end, end)
    return begin, max(begin, finish)


def _occupancy(row: SessionRow, by: Dimension, start: datetime, end: datetime, tz: tzinfo) -> list[tuple[str, float]]:
    span = _span(row, start, end)
    if by in ("day", "month"):
        return [(_bucket_key(at, by), seconds) for at, seconds in _split(span, by, tz)]
    return [(_key(row, by, tz), (span[1] - span[0]).total_seconds())]


def _split(span: tuple[datetime, datetime], unit: str, tz: tzinfo) -> Iterator[tuple[datetime, float]]:
    """``span`` cut at local hour, day or month boundaries: (local start of the piece's bucket, seconds)."""
    begin, end = span
    while begin < end:
        local = begin.astimezone(tz)
        bucket = _floor(local, unit)
        following = _next(bucket, unit).astimezone(UTC)
        cut = min(end, following)
        yield bucket, (cut - begin).total_seconds()
        begin = cut


def _floor(local: datetime, unit: str) -> datetime:
    if unit == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    floored = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return floored.replace(day=1) if unit == "month" else floored


def _next(bucket: datetime, unit: str) -> datetime:
    """The next bucket's local start: wall-clock arithmetic for days and months (a DST day has 23 or 25
    hours), elapsed time for hours."""
    if unit == "hour":
        return (bucket.astimezone(UTC) + timedelta(hours=1)).astimezone(bucket.tzinfo)
    naive = bucket.replace(tzinfo=None)
    if unit == "day":
        naive += timedelta(days=1)
    else:
        naive = naive.replace(year=naive.year + naive.month // 12, month=naive.month % 12 + 1)
    return naive.replace(tzinfo=bucket.tzinfo)


def _buckets(start: datetime, end: datetime, by: str, tz: tzinfo) -> list[str]:
    return sorted({_bucket_key(at, by) for at, _ in _split((start, end), by, tz)})


# ---- denominators ---------------------------------------------------------------------------------------------
def _ports(
    db: Session, site_id: str | None = None, organisation_id: int | None = None
) -> list[tuple[str, int, str | None]]:
    """Every port (station, EVSE) with its site: the site's wiring, else the station's known connectors (of one
    organisation's stations, when given)."""
    wired = {
        (r.station_id, r.evse_id): r.site_id
        for r in db.execute(select(SiteEvse.station_id, SiteEvse.evse_id, SiteEvse.site_id))
    }
    known = db.execute(
        select(Connector.station_id, Connector.evse_id)
        .where(Connector.evse_id > 0)
        .group_by(Connector.station_id, Connector.evse_id)
    )
    ports = dict.fromkeys(wired) | {(r.station_id, r.evse_id): None for r in known}
    if organisation_id is not None:
        own = set(db.scalars(organisations.station_ids(organisation_id)))
        ports = {port: None for port in ports if port[0] in own}
    out = [(s, e, wired.get((s, e))) for s, e in sorted(ports)]
    return out if site_id is None else [p for p in out if p[2] == site_id]


def _capacity_s(
    db: Session,
    start: datetime,
    end: datetime,
    by: Dimension,
    tz: tzinfo,
    site_id: str | None,
    organisation_id: int | None = None,
) -> dict[str, float]:
    """Port-seconds each key had on offer in the period (no denominator for drivers and groups)."""
    ports = _ports(db, site_id, organisation_id)
    length = (end - start).total_seconds()
    if by == "station":
        counts: dict[str, int] = defaultdict(int)
        for station_id, _, _ in ports:
            counts[station_id] += 1
        return {k: n * length for k, n in counts.items()}
    if by == "site":
        counts = defaultdict(int)
        for _, _, site in ports:
            counts[site or NONE_KEY] += 1
        return {k: n * length for k, n in counts.items()}
    if by in ("day", "month"):
        out: dict[str, float] = defaultdict(float)
        for at, seconds in _split((start, end), by, tz):
            out[_bucket_key(at, by)] += seconds * len(ports)
        return out
    return {}


def _uptime(
    db: Session, start: datetime, end: datetime, by: Dimension, organisation_id: int | None = None
) -> dict[str, float | None]:
    """Mean NEVI uptime of each station's (or site's) ports over the period."""
    site_of = {(s, e): site for s, e, site in _ports(db, organisation_id=organisation_id)}
    values: dict[str, list[float]] = defaultdict(list)
    for row in uptime.port_uptime(db, up.Period(start, end), organisation_id=organisation_id):
        key = row["station_id"] if by == "station" else site_of.get((row["station_id"], row["evse_id"])) or NONE_KEY
        if row["uptime_pct"] is not None:
            values[key].append(row["uptime_pct"])
    return {k: round(sum(v) / len(v), 3) for k, v in values.items() if v}


def count(db: Session, start: datetime, end: datetime) -> int:
    """How many sessions started in the period (an export's size before it is streamed)."""
    start, end = period(start, end)
    stmt = (
        select(func.count())
        .select_from(Transaction)
        .where(Transaction.started_at >= start, Transaction.started_at < end)
    )
    return int(db.scalar(stmt) or 0)
