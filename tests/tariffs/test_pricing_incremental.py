"""A running cost fed a piece at a time (the charger display's updates, issue 13: each update prices only what was
stored since the last one) equals the session priced again from all of it at every update, to the whole CDR.

Random sessions of tests/tariffs/test_against_reference.py: time-of-day, weekday, kWh, power and duration
restrictions, every dimension (idle fees: PARKING_TIME), step sizes, min/max price, DST nights, a second tariff
version taking over mid-session, a meter that runs backwards; updates at random instants, off whole minutes too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.tariffs.parse import parse_tariff
from csms.tariffs.pricing import RunningCost, feed, price_session
from csms.tariffs.timeline import SessionTimeline
from tests.tariffs.test_against_reference import _timeline, cases


def _updates(draw: st.DrawFn, start: datetime, stop: datetime) -> list[datetime]:
    seconds = int((stop - start).total_seconds())
    offsets = draw(st.lists(st.integers(0, seconds), min_size=1, max_size=40, unique=True))
    return [start + timedelta(seconds=s) for s in sorted(offsets)] + [stop]


def _check(case: Any, updates: list[datetime]) -> int:
    versions, zone, start, stop, samples, parking = case
    parsed = [parse_tariff(v) for v in versions]
    whole = _timeline(zone, start, stop, samples, parking)
    running = RunningCost(parsed, start, zone)
    fed = start - timedelta(microseconds=1)
    compared = 0
    for at in updates:
        new_samples = [s for s in whole.samples if fed < s.at <= at]
        new_states = [c for c in whole.states if fed < c.at <= at]
        feed(running, new_samples, new_states)
        fed = at
        prefix = SessionTimeline(
            start,
            at,
            zone,
            tuple(s for s in whole.samples if s.at <= at),
            tuple(c for c in whole.states if c.at <= at),
        )
        assert running.estimate(at) == price_session(parsed, prefix, final=False), at
        compared += 1
    return compared


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fed_at_each_update_equals_priced_again_from_the_start(data: st.DataObject) -> None:
    case = data.draw(cases())
    _, _, start, stop, _, _ = case
    assert _check(case, _updates(data.draw, start, stop)) >= 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fed_at_each_update_off_whole_minutes(data: st.DataObject) -> None:
    """Samples, state and tariff changes within a minute (milliseconds), the updates on whole seconds."""
    case = data.draw(cases(off_minutes=True))
    _, _, start, stop, _, _ = case
    assert _check(case, _updates(data.draw, start, stop)) >= 2
