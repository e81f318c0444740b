"""What a station may report as a measurement, and how far ahead of the CSMS's clock it may date it.

A value outside these limits is a broken meter, a unit or encoding bug, or a hostile station; stored as it
came it would become the truth everything downstream computes from (an energy register of 1.7e308 Wh made
a transaction's energy ``inf``; a status dated in 2999 froze its port, as no later status is newer). The
services flag such a value instead (a station event saying what and why) and leave it out of the data.

Limits, each in the measurand's base unit (the adapters convert to it):

* every value finite, and ``|value| ≤ MAX_ABS_VALUE`` (1e12);
* an energy register (``Energy.Active.Import.Register``, and a transaction's meterStart/meterStop) counts
  up from zero: ``0 ≤ Wh ≤ MAX_REGISTER_WH`` (1e12 Wh = 1 TWh, far beyond any charger's lifetime);
* power within ±1 GW, current within ±1 MA (negative: exporting): wide, as EVSE 0 may be a whole site's
  grid meter, and meant to catch only what no meter can read;
* a timestamp no more than ``MAX_CLOCK_AHEAD`` (10 minutes) after the ``now`` the caller passes (the time
  the CSMS received the message; the cores never read the clock). Older timestamps are fine: offline
  stations replay their backlog.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from csms.domain.events import ENERGY_REGISTER, Sample

MAX_CLOCK_AHEAD = timedelta(minutes=10)
MAX_ABS_VALUE = 1e12
MAX_REGISTER_WH = 1e12
#: (lowest, highest) per measurand; any other measurand: ±MAX_ABS_VALUE.
LIMITS: dict[str, tuple[float, float]] = {
    ENERGY_REGISTER: (0.0, MAX_REGISTER_WH),
    "Power.Active.Import": (-1e9, 1e9),
    "Current.Import": (-1e6, 1e6),
}
_ANY = (-MAX_ABS_VALUE, MAX_ABS_VALUE)


def value_problem(measurand: str, value: float) -> str | None:
    """Why ``value`` cannot be a reading of ``measurand`` (None: it can)."""
    if not math.isfinite(value):
        return "not a finite number"
    low, high = LIMITS.get(measurand, _ANY)
    if not low <= value <= high:
        return f"outside {low:g}..{high:g} for {measurand}"
    return None


def ahead(timestamp: datetime, now: datetime) -> bool:
    """Dated further ahead of ``now`` than a station's clock may drift."""
    return timestamp - now > MAX_CLOCK_AHEAD


def time_problem(timestamp: datetime, now: datetime) -> str | None:
    if ahead(timestamp, now):
        return f"dated more than {int(MAX_CLOCK_AHEAD.total_seconds() // 60)} minutes ahead of the CSMS clock"
    return None


def sample_problem(sample: Sample, now: datetime) -> str | None:
    """Why ``sample`` is implausible (None: it is plausible)."""
    return value_problem(sample.measurand, sample.value) or time_problem(sample.timestamp, now)


def all_plausible(samples: Iterable[Sample], now: datetime) -> bool:
    """Whether :func:`sample_problem` finds nothing in any of ``samples``, in one pass: the check every meter
    value goes through, where a problem is rare. (A range test is false for NaN and outside any finite limit for
    an infinity, so it also says what ``math.isfinite`` would.)"""
    latest = now + MAX_CLOCK_AHEAD
    limits = LIMITS
    for sample in samples:
        low, high = limits.get(sample.measurand, _ANY)
        if not low <= sample.value <= high or sample.timestamp > latest:
            return False
    return True
