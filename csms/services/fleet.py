"""Fleet depots: drivers, vehicles, each vehicle's departure plan, its telematics state of charge, and what the
load manager needs to know when a vehicle plugs in (energy to its target, departure).

A vehicle's plan is written in its own time zone: weekly departures (weekday, HH:MM) and one-off overrides on a
date, which replace that date's weekly ones. Its state of charge now is its newest telematics reading plus the
energy its running session has delivered since (AC chargers do not know the SoC); a reading older than
``STALE_AFTER_S`` is still used, but said so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from csms.domain import meter
from csms.domain.transaction import TransactionStatus
from csms.services import rows, transactions
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import FleetDeparture, FleetDriver, FleetTelematics, FleetVehicle, IdToken, Transaction

STALE_AFTER_S = 6 * 3600.0
#: A depot's vehicle that is not plugged in counts as on its way when its next departure is at most this far.
EXPECTED_WITHIN_S = 24 * 3600.0
#: How far ahead the next departure is looked for.
HORIZON_DAYS = 8
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")


@dataclass(frozen=True, slots=True)
class Departure:
    at: datetime
    target_soc_pct: float | None
    target_kwh: float | None
    planned: str  # weekly | override


@dataclass(frozen=True, slots=True)
class Needs:
    """What a plugged vehicle needs by when, and what that rests on."""

    vehicle_id: str
    departure: Departure | None
    soc_pct: float | None
    soc_age_s: float | None
    energy_needed_wh: float | None
    notes: tuple[str, ...]


class VehicleFacts(NamedTuple):
    """What the load manager's reads need of a vehicle: these columns, by a Core select (its plan, SoC and running
    session are read by the functions below, which take a :class:`FleetVehicle` as well)."""

    id: str
    battery_kwh: float
    id_token: str | None
    emaid: str | None
    depot_id: str | None
    tz: str


_FACTS = (
    FleetVehicle.id,
    FleetVehicle.battery_kwh,
    FleetVehicle.id_token,
    FleetVehicle.emaid,
    FleetVehicle.depot_id,
    FleetVehicle.tz,
)
Vehicle = FleetVehicle | VehicleFacts


class PlannedDeparture(NamedTuple):
    """A departure of a vehicle's plan as stored (see :class:`FleetDeparture`)."""

    weekday: int | None
    on_date: str | None
    time: str
    target_soc_pct: float | None
    target_kwh: float | None


class SocReading(NamedTuple):
    """A telematics state of charge as stored (see :class:`FleetTelematics`)."""

    id: int
    vehicle_id: str
    at: datetime
    soc_pct: float
    source: str
    received_at: datetime


class RunningSession(NamedTuple):
    """A vehicle's running transaction, the columns its needs are worked out from (a Core select)."""

    id: int
    station_id: str
    evse_id: int | None
    started_at: datetime | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    last_meter_wh: float | None


#: A running session as :func:`running_session` finds it, or the transaction itself.
Running = Transaction | RunningSession

# The reads load management makes at every telematics SoC and plug-in, as prepared Core statements run on the
# session's connection (the ORM's loads and flush cost more than the rest of the work): see _connection.
_TX = Transaction
_FACTS_BY = {
    key: select(*_FACTS).where(column == bindparam("key"))
    for key, column in (("id", FleetVehicle.id), ("id_token", FleetVehicle.id_token), ("emaid", FleetVehicle.emaid))
}
_OWNER_BY = {
    key: select(FleetVehicle.id, FleetVehicle.organisation_id).where(column == bindparam("key"))
    for key, column in (("id", FleetVehicle.id), ("vin", FleetVehicle.vin))
}
_PLAN = (
    select(
        FleetDeparture.weekday,
        FleetDeparture.on_date,
        FleetDeparture.time,
        FleetDeparture.target_soc_pct,
        FleetDeparture.target_kwh,
    )
    .where(FleetDeparture.vehicle_id == bindparam("vehicle_id"))
    .order_by(FleetDeparture.on_date, FleetDeparture.weekday, FleetDeparture.time)
)
_INSERT_SOC = insert(FleetTelematics).returning(FleetTelematics.id)
_NEWEST_SOC = (
    select(
        FleetTelematics.id,
        FleetTelematics.vehicle_id,
        FleetTelematics.at,
        FleetTelematics.soc_pct,
        FleetTelematics.source,
        FleetTelematics.received_at,
    )
    .where(FleetTelematics.vehicle_id == bindparam("vehicle_id"))
    .order_by(FleetTelematics.at.desc(), FleetTelematics.id.desc())
    .limit(1)
)
_RUNNING = (
    select(
        _TX.id, _TX.station_id, _TX.evse_id, _TX.started_at, _TX.meter_start_wh, _TX.meter_stop_wh, _TX.last_meter_wh
    )
    .where(_TX.status == TransactionStatus.ACTIVE.value, _TX.id_token.in_(bindparam("tokens", expanding=True)))
    .order_by(_TX.started_at.desc())
    .limit(1)
)
_LAST_STOP = (
    select(_TX.stopped_at)
    .where(_TX.id_token.in_(bindparam("tokens", expanding=True)), _TX.stopped_at.is_not(None))
    .order_by(_TX.stopped_at.desc())
    .limit(1)
)


def _connection(db: Session) -> Connection:
    """The session's connection, with what the session holds flushed first (as the ORM's queries autoflush)."""
    db.flush()
    return db.connection()


# ---- drivers and vehicles -------------------------------------------------------------------------------------
def create_driver(db: Session, driver_id: str, *, name: str, cost_centre: str | None = None) -> FleetDriver:
    if db.get(FleetDriver, driver_id) is not None:
        raise Conflict(f"driver {driver_id!r} exists")
    driver = FleetDriver(id=driver_id, name=name, cost_centre=cost_centre)
    db.add(driver)
    db.flush()
    return driver


def list_drivers(db: Session, organisation_id: int | None = None) -> list[FleetDriver]:
    """Every fleet driver (of one organisation, when given)."""
    stmt = select(FleetDriver).order_by(FleetDriver.id)
    if organisation_id is not None:
        stmt = stmt.where(FleetDriver.organisation_id == organisation_id)
    return list(db.scalars(stmt))


def create_vehicle(db: Session, vehicle_id: str, *, now: datetime, **fields: Any) -> FleetVehicle:
    """A vehicle (``fields``: name, battery_kwh, and optionally vin, max_ac_kw, max_dc_kw, id_token, emaid,
    driver_id, cost_centre, depot_id, tz)."""
    if db.get(FleetVehicle, vehicle_id) is not None:
        raise Conflict(f"vehicle {vehicle_id!r} exists")
    _check_vehicle(db, fields)
    vehicle = FleetVehicle(id=vehicle_id, created_at=now, **fields)
    db.add(vehicle)
    db.flush()
    return vehicle


def _check_vehicle(db: Session, fields: dict[str, Any]) -> None:
    if fields.get("battery_kwh") is not None and not 0 < fields["battery_kwh"] <= 2000:
        raise Invalid("battery_kwh: between 0 and 2,000")
    vin = fields.get("vin")
    if vin is not None and not _VIN.match(vin):
        raise Invalid(f"vin: {vin!r} is not a 17-character VIN (no I, O or Q)")
    _zone(fields.get("tz") or "UTC")
    token = fields.get("id_token")
    if token is not None and db.get(IdToken, token) is None:
        raise NotFound(f"token {token!r} not found (add it first: csms tokens add)")
    for unique in ("vin", "id_token", "emaid"):
        if fields.get(unique) is not None:
            holder = db.scalar(select(FleetVehicle.id).where(getattr(FleetVehicle, unique) == fields[unique]))
            if holder is not None:
                raise Conflict(f"{unique} {fields[unique]!r} belongs to vehicle {holder!r}")
    if fields.get("driver_id") is not None and db.get(FleetDriver, fields["driver_id"]) is None:
        raise NotFound(f"driver {fields['driver_id']!r} not found")


def get_vehicle(db: Session, vehicle_id: str) -> FleetVehicle:
    return rows.found(db, FleetVehicle, vehicle_id, "vehicle")


def vehicle_facts(db: Session, vehicle_id: str) -> VehicleFacts:
    """:class:`VehicleFacts` of a vehicle (raises NotFound as :func:`get_vehicle`)."""
    row = _connection(db).execute(_FACTS_BY["id"], {"key": vehicle_id}).first()
    if row is None:
        raise NotFound(f"vehicle {vehicle_id!r} not found")
    return VehicleFacts(*row)


def list_vehicles(db: Session, depot_id: str | None = None, organisation_id: int | None = None) -> list[FleetVehicle]:
    """Every vehicle (of one depot, of one organisation, when given)."""
    stmt = select(FleetVehicle).order_by(FleetVehicle.id)
    if depot_id is not None:
        stmt = stmt.where(FleetVehicle.depot_id == depot_id)
    if organisation_id is not None:
        stmt = stmt.where(FleetVehicle.organisation_id == organisation_id)
    return list(db.scalars(stmt))


def vehicle_of_token(db: Session, id_token: str) -> VehicleFacts | None:
    """The vehicle an id token (RFID card, or ISO 15118 contract id) brings to a charger."""
    connection = _connection(db)
    found = connection.execute(_FACTS_BY["id_token"], {"key": id_token}).first()
    found = found or connection.execute(_FACTS_BY["emaid"], {"key": id_token}).first()
    return None if found is None else VehicleFacts(*found)


# ---- the departure plan ---------------------------------------------------------------------------------------
def set_weekly_plan(db: Session, vehicle_id: str, departures: Sequence[dict[str, Any]]) -> list[FleetDeparture]:
    """Replace the vehicle's weekly departures: ``{"weekday": 0-6, "time": "HH:MM"}`` with ``target_soc_pct`` or
    ``target_kwh``."""
    get_vehicle(db, vehicle_id)
    rows = [_departure(vehicle_id, d, weekday=_weekday(d.get("weekday"))) for d in departures]
    db.execute(
        delete(FleetDeparture).where(FleetDeparture.vehicle_id == vehicle_id, FleetDeparture.weekday.is_not(None))
    )
    db.add_all(rows)
    db.flush()
    return rows


def add_override(db: Session, vehicle_id: str, departure: dict[str, Any], *, now: datetime) -> FleetDeparture:
    """A one-off departure on ``date`` (YYYY-MM-DD, the vehicle's zone): that day's weekly ones do not apply."""
    vehicle = get_vehicle(db, vehicle_id)
    try:
        on = date.fromisoformat(str(departure.get("date")))
    except ValueError:
        raise Invalid("date: YYYY-MM-DD") from None
    row = _departure(vehicle_id, departure, on_date=on.isoformat())
    if _local(on, row.time, vehicle.tz) <= now:
        raise Invalid(f"date: {on} {row.time} ({vehicle.tz}) is in the past")
    db.add(row)
    db.flush()
    return row


def plan_of(db: Session, vehicle_id: str) -> list[PlannedDeparture]:
    get_vehicle(db, vehicle_id)
    return _plan(db, vehicle_id)


def _plan(db: Session, vehicle_id: str) -> list[PlannedDeparture]:
    return [PlannedDeparture(*row) for row in _connection(db).execute(_PLAN, {"vehicle_id": vehicle_id})]


def _departure(
    vehicle_id: str, d: dict[str, Any], *, weekday: int | None = None, on_date: str | None = None
) -> FleetDeparture:
    at = str(d.get("time", ""))
    if not _TIME.match(at):
        raise Invalid(f"time: {at!r} is not HH:MM")
    soc, kwh = d.get("target_soc_pct"), d.get("target_kwh")
    if (soc is None) == (kwh is None):
        raise Invalid("give one target: target_soc_pct or target_kwh")
    if soc is not None and not 0 < float(soc) <= 100:
        raise Invalid("target_soc_pct: above 0, at most 100")
    if kwh is not None and float(kwh) <= 0:
        raise Invalid("target_kwh: above 0")
    soc, kwh = None if soc is None else float(soc), None if kwh is None else float(kwh)
    return FleetDeparture(
        vehicle_id=vehicle_id, weekday=weekday, on_date=on_date, time=at, target_soc_pct=soc, target_kwh=kwh
    )


def _weekday(value: Any) -> int:
    if not isinstance(value, int) or not 0 <= value <= 6:
        raise Invalid("weekday: 0 (Monday) to 6 (Sunday)")
    return value


def next_departure(db: Session, vehicle: Vehicle, after: datetime) -> Departure | None:
    """The vehicle's first planned departure after ``after``."""
    plan = _plan(db, vehicle.id)
    zone = _zone(vehicle.tz)
    overrides = {d.on_date for d in plan if d.on_date is not None}
    first = after.astimezone(zone).date()
    for offset in range(HORIZON_DAYS):
        day = first + timedelta(days=offset)
        if day.isoformat() in overrides:
            todays = [(d, "override") for d in plan if d.on_date == day.isoformat()]
        else:
            todays = [(d, "weekly") for d in plan if d.weekday == day.weekday()]
        for d, kind in sorted(todays, key=lambda pair: pair[0].time):
            at = _local(day, d.time, vehicle.tz)
            if at > after:
                return Departure(at, d.target_soc_pct, d.target_kwh, kind)
    return None


def _local(day: date, hhmm: str, tz: str) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=_zone(tz)).astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"tz: unknown time zone {name!r}") from None


# ---- telematics -----------------------------------------------------------------------------------------------
def record_soc(
    db: Session, *, vehicle_id: str | None = None, vin: str | None = None, soc_pct: float, at: datetime,
    now: datetime, source: str = "api", organisation_id: int | None = None,
) -> SocReading:  # fmt: skip
    """A telematics state of charge, by vehicle id or VIN (a vehicle of another organisation than
    ``organisation_id``, when given, is not found). Core statements: a vehicle's SoC arrives every few minutes."""
    connection = _connection(db)
    vehicle = connection.execute(_OWNER_BY["id" if vehicle_id else "vin"], {"key": vehicle_id or vin}).first()
    if vehicle is None and vehicle_id:
        raise NotFound(f"vehicle {vehicle_id!r} not found")
    if vehicle is not None and organisation_id is not None and vehicle.organisation_id != organisation_id:
        vehicle = None
    if vehicle is None:
        raise NotFound(f"no vehicle has VIN {vin!r}")
    if not 0 <= soc_pct <= 100:
        raise Invalid(f"soc_pct: {soc_pct} is not between 0 and 100")
    if at > now + timedelta(minutes=5):
        raise Invalid("at: a reading from the future")
    values = {"vehicle_id": vehicle.id, "at": at, "soc_pct": soc_pct, "source": source[:40], "received_at": now}
    row_id = connection.execute(_INSERT_SOC, values).scalar_one()
    return SocReading(row_id, vehicle.id, at, soc_pct, source[:40], now)


def newest_soc(db: Session, vehicle_id: str) -> SocReading | None:
    row = _connection(db).execute(_NEWEST_SOC, {"vehicle_id": vehicle_id}).first()
    return None if row is None else SocReading(*row)


# ---- what the load manager needs ------------------------------------------------------------------------------
def running_session(db: Session, vehicle: Vehicle) -> RunningSession | None:
    """The vehicle's running transaction, if it is plugged in now (found by its token)."""
    tokens = [t for t in (vehicle.id_token, vehicle.emaid) if t]
    if not tokens:
        return None
    row = _connection(db).execute(_RUNNING, {"tokens": tokens}).first()
    return None if row is None else RunningSession(*row)


def needs(db: Session, vehicle: Vehicle, now: datetime, session: Running | None = None) -> Needs:
    """Energy to the next departure's target and when, from the newest SoC plus what the session delivered
    since it was read."""
    departure = next_departure(db, vehicle, now)
    notes: list[str] = []
    reading = newest_soc(db, vehicle.id)
    soc = age = None
    if reading is not None:
        age = (now - reading.at).total_seconds()
        since_reading = _delivered_since(db, session, reading.at)
        soc = min(100.0, reading.soc_pct + 100 * since_reading / (vehicle.battery_kwh * 1000))
        if age > STALE_AFTER_S:
            notes.append(f"telematics SoC is {age / 3600:.1f} h old")
    else:
        notes.append("no telematics SoC")
    energy = None
    if departure is None:
        notes.append(f"no departure planned in the next {HORIZON_DAYS} days")
    elif departure.target_kwh is not None:
        delivered = _delivered_since(db, session, None)
        energy = max(0.0, departure.target_kwh * 1000 - delivered)
    elif soc is not None and departure.target_soc_pct is not None:
        energy = max(0.0, (departure.target_soc_pct - soc) / 100 * vehicle.battery_kwh * 1000)
    return Needs(vehicle.id, departure, None if soc is None else round(soc, 1), age, energy, tuple(notes))


def session_needs(db: Session, vehicle: Vehicle, now: datetime, session: Running | None) -> Needs:
    """:func:`needs` as load management counts a session's need: the energy to the target from the session's
    start (what it still needs plus what it has delivered), not from now."""
    found = needs(db, vehicle, now, session)
    if found.energy_needed_wh is None or session is None:
        return found
    return replace(found, energy_needed_wh=found.energy_needed_wh + _delivered_since(db, session, None))


def on_its_way(db: Session, vehicle: Vehicle, now: datetime, *, unplugged: bool = False) -> Needs | None:
    """What a depot's vehicle that is not plugged in will need by its next departure (the load manager plans the
    night with it). None when it is not expected: no depot, plugged in now, no departure within
    ``EXPECTED_WITHIN_S``, no telematics SoC, or charged since its newest reading (that SoC is out of date).
    ``unplugged``: the caller has just found it without a running session (:func:`running_session`)."""
    if vehicle.depot_id is None or (not unplugged and running_session(db, vehicle) is not None):
        return None
    found = needs(db, vehicle, now)
    if found.departure is None or found.energy_needed_wh is None or found.soc_age_s is None:
        return None
    if (found.departure.at - now).total_seconds() > EXPECTED_WITHIN_S:
        return None
    tokens = [t for t in (vehicle.id_token, vehicle.emaid) if t]
    if tokens:
        charged = _connection(db).execute(_LAST_STOP, {"tokens": tokens}).scalar()
        if charged is not None and charged > now - timedelta(seconds=found.soc_age_s):
            return None
    return found


def _delivered_since(db: Session, session: Running | None, since: datetime | None) -> float:
    """Energy the session delivered after ``since`` (None: all of it) [Wh]: the newest energy register less the
    register at ``since``, read between the stored samples around it; 0 without a session."""
    if session is None:
        return 0.0
    total = meter.session_energy_wh(session.meter_start_wh, session.meter_stop_wh, session.last_meter_wh)
    started = session.started_at
    if since is None or started is None or since <= started:
        return total
    registers = [(r.at, r.energy_wh) for r in transactions.stored_readings(db, session.id) if r.energy_wh is not None]
    if session.meter_start_wh is not None and (not registers or registers[0][0] > started):
        registers.insert(0, (started, session.meter_start_wh))
    if not registers or registers[-1][0] <= since:
        return 0.0
    return max(0.0, registers[-1][1] - _register_at(registers, since))


def _register_at(registers: Sequence[tuple[datetime, float]], at: datetime) -> float:
    """The energy register at ``at``, linear between the readings around it (the first before any)."""
    before = [(t, wh) for t, wh in registers if t <= at]
    if not before:
        return registers[0][1]
    t0, wh0 = before[-1]
    after = next(((t, wh) for t, wh in registers if t > at), None)
    if after is None:
        return wh0
    t1, wh1 = after
    return wh0 + (wh1 - wh0) * (at - t0).total_seconds() / (t1 - t0).total_seconds()
