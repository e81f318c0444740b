"""``wire_time`` writes an instant from the POSIX float itself: the same text as ``format_time(from_posix(…))``,
whose datetime rounds the fraction to the microsecond half to even before the millisecond is cut."""

from __future__ import annotations

import random

from csms.ocpp.convert import format_time, from_posix
from simulator.station.wire_time import wire_time


def _through_datetime(seconds: float) -> str:
    return format_time(from_posix(seconds))


def test_wire_time_writes_what_a_datetime_writes() -> None:
    draws = random.Random(7)
    instants = [0.0, 1e-7, 5e-7, 1.5e-6, 0.9999995, 86_399.9999996, 1.77e9, 253_402_300_799.0, 253_402_300_799.9999]
    for _ in range(60_000):
        instants.append(draws.uniform(0.0, 4.1e9))
        instants.append(1.77e9 + draws.randrange(10**8) / 10_000 + draws.choice((0.0, 5e-7, -5e-7, 4.9999e-7)))
        instants.append(round(draws.uniform(0.0, 2.5e11), draws.choice((0, 1, 3, 6))))
    for seconds in instants:
        wire_time.cache_clear()
        assert wire_time(seconds) == _through_datetime(seconds), seconds


def test_instants_outside_the_fast_range_go_through_a_datetime() -> None:
    for seconds in (-0.5, -86_400.25, -1e9):
        assert wire_time(seconds) == _through_datetime(seconds)
