"""The engine against the independent reference (simulator/verify/tariff_reference.py): 0 cent apart.

Random tariffs (time-of-day, weekday, date, kWh, power and duration restrictions, every dimension, step
sizes, VAT, min/max price), random sessions around DST changes in Amsterdam and Los Angeles, and a second
tariff version that takes over mid-session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.tariffs.parse import parse_tariff
from csms.tariffs.pricing import price_session
from csms.tariffs.timeline import MeterSample, SessionTimeline, State, StateChange
from simulator.verify.tariff_reference import DAYS, reference_cost

# UTC instants of DST changes, and a plain summer day
ANCHORS = {
    "Europe/Amsterdam": [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 10, 25, 1, 0, tzinfo=UTC)],
    "America/Los_Angeles": [datetime(2026, 3, 8, 10, 0, tzinfo=UTC), datetime(2026, 11, 1, 9, 0, tzinfo=UTC)],
    "UTC": [datetime(2026, 7, 1, 12, 0, tzinfo=UTC)],
}

prices = st.decimals(min_value=0, max_value=5, places=3).map(str)
vats = st.sampled_from([None, 0, 9, 20, 21])
hhmm = st.integers(0, 95).map(lambda q: f"{q * 15 // 60:02d}:{q * 15 % 60:02d}")


@st.composite
def components(draw: st.DrawFn) -> list[dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(["ENERGY", "TIME", "PARKING_TIME", "FLAT"]), min_size=1, unique=True))
    steps = {"ENERGY": [1, 100, 500, 1000], "TIME": [1, 60, 300, 900], "PARKING_TIME": [1, 60, 900], "FLAT": [0]}
    return [
        {"type": kind, "price": draw(prices), "vat": draw(vats), "step_size": draw(st.sampled_from(steps[kind]))}
        for kind in chosen
    ]


def _bounds(draw: st.DrawFn, name: str, values: st.SearchStrategy[Any], r: dict[str, Any]) -> None:
    low, high = draw(st.one_of(st.none(), values)), draw(st.one_of(st.none(), values))
    if low is not None and high is not None and high <= low:
        low, high = high, (low if low != high else None)
    if low is not None:
        r[f"min_{name}"] = low
    if high is not None:
        r[f"max_{name}"] = high


@st.composite
def restrictions(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    r: dict[str, Any] = {}
    if draw(st.booleans()):
        start, end = draw(st.one_of(st.none(), hhmm)), draw(st.one_of(st.none(), hhmm))
        if start is not None:
            r["start_time"] = start
        if end is not None and end != start:
            r["end_time"] = end
    if draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=6, unique=True))
        r["day_of_week"] = sorted(days, key=DAYS.index)  # one spelling per set, as the overlap check compares sets
    if draw(st.integers(0, 5)) == 0:
        r["start_date"] = "2026-03-29"
    _bounds(draw, "kwh", st.integers(0, 30), r)
    _bounds(draw, "power", st.integers(0, 30), r)
    _bounds(draw, "duration", st.integers(0, 600).map(lambda m: m * 60), r)
    return r


@st.composite
def tariffs(draw: st.DrawFn, tariff_id: str, begins: datetime | None) -> dict[str, Any]:
    elements = []
    for _ in range(draw(st.integers(1, 3))):
        element: dict[str, Any] = {"price_components": draw(components())}
        r = draw(restrictions())
        if r is not None:
            element["restrictions"] = r
        elements.append(element)
    tariff: dict[str, Any] = {"id": tariff_id, "currency": draw(st.sampled_from(["EUR", "USD", "JPY", "KWD"]))}
    # drop an element that repeats an earlier one's restrictions and dimensions (it never applies; refused)
    kept: list[dict[str, Any]] = []
    for element in elements:
        kinds = {c["type"] for c in element["price_components"]}
        if not any(
            e.get("restrictions") == element.get("restrictions") and kinds <= {c["type"] for c in e["price_components"]}
            for e in kept
        ):
            kept.append(element)
    tariff["elements"] = kept
    if begins is not None:
        tariff["start_date_time"] = begins.isoformat()
    low = Decimal(draw(prices)) if draw(st.integers(0, 4)) == 0 else None
    if low is not None:
        tariff["min_price"] = {"excl_vat": str(low), "incl_vat": str(low * Decimal("1.2"))}
    if draw(st.integers(0, 4)) == 0:
        high = (low or 0) + Decimal(draw(prices)) * 10
        tariff["max_price"] = {"excl_vat": str(high), "incl_vat": str(high * Decimal("1.2"))}
    return tariff


@st.composite
def cases(
    draw: st.DrawFn, off_minutes: bool = False
) -> tuple[list[dict[str, Any]], str, datetime, datetime, list[tuple[datetime, int]], Any]:
    """A session; ``off_minutes``: it, its samples, state and tariff changes fall anywhere within a minute."""
    zone = draw(st.sampled_from(sorted(ANCHORS)))

    def jitter() -> timedelta:
        return timedelta(milliseconds=draw(st.integers(0, 59_999))) if off_minutes else timedelta(0)

    start = draw(st.sampled_from(ANCHORS[zone])) + timedelta(minutes=draw(st.integers(-600, 120))) + jitter()
    minutes = draw(st.integers(1, 900))
    stop = start + timedelta(minutes=minutes) + jitter()
    first = draw(tariffs("v1", None))
    versions = [first]
    if draw(st.booleans()):
        change = min(start + timedelta(minutes=draw(st.integers(0, minutes))) + jitter(), stop)
        second = draw(tariffs("v2", change))
        second["currency"] = first["currency"]
        versions.append(second)
    # samples at least 55 s apart: a faster rise would read as a meter fault (ABSURD_POWER_KW), not energy
    shift = jitter()
    samples, at, wh = [], draw(st.integers(0, 20)), draw(st.integers(0, 10_000))
    while at <= minutes:
        wobble = timedelta(milliseconds=draw(st.integers(0, 5000))) if off_minutes else timedelta(0)
        samples.append((min(start + timedelta(minutes=at) + shift + wobble, stop), wh))
        at += draw(st.integers(1, 30))
        wh += draw(st.integers(-300, 3000))  # sometimes backwards
    toggles = sorted(draw(st.lists(st.integers(0, minutes), max_size=4, unique=True)))
    parking, state_at = [], None
    for index, minute in enumerate(toggles):
        at_minute = min(start + timedelta(minutes=minute) + jitter(), stop)
        if index % 2 == 0:
            state_at = at_minute
        else:
            parking.append((state_at, at_minute))
            state_at = None
    if state_at is not None:
        parking.append((state_at, stop))
    return versions, zone, start, stop, samples, parking


def _timeline(zone: str, start: datetime, stop: datetime, samples: Any, parking: Any) -> SessionTimeline:
    states = []
    for begin, end in parking:
        states.append(StateChange(begin, State.PARKING))
        states.append(StateChange(end, State.CHARGING))
    meter = tuple(MeterSample(at, Decimal(wh)) for at, wh in samples)
    return SessionTimeline(start, stop, zone, meter, tuple(states))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_engine_equals_the_minute_by_minute_reference(case: Any) -> None:
    versions, zone, start, stop, samples, parking = case
    parsed = [parse_tariff(v) for v in versions]
    cdr = price_session(parsed, _timeline(zone, start, stop, samples, parking))
    excl, incl = reference_cost(versions, start, stop, zone, samples, parking)
    assert (cdr.total_cost.excl_vat, cdr.total_cost.incl_vat) == (excl, incl)
    assert cdr.total_cost.excl_vat >= 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(off_minutes=True))
def test_engine_equals_the_reference_off_whole_minutes(case: Any) -> None:
    """Sessions as chargers make them: nothing falls on a whole minute (milliseconds included)."""
    versions, zone, start, stop, samples, parking = case
    parsed = [parse_tariff(v) for v in versions]
    cdr = price_session(parsed, _timeline(zone, start, stop, samples, parking))
    excl, incl = reference_cost(versions, start, stop, zone, samples, parking)
    assert (cdr.total_cost.excl_vat, cdr.total_cost.incl_vat) == (excl, incl)
