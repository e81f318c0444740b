"""Whether a tariff element's restrictions hold at one instant of a session (OCPI 2.2.1 semantics).

Minimums are inclusive, maximums exclusive; times and dates are local to the session's time zone and an
``end_time`` before ``start_time`` wraps over midnight. Energy, power and current are what the meter said
at the last sample at or before the instant, so they change only at samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from csms.tariffs.model import WEEKDAYS, Restrictions


@dataclass(frozen=True)
class Moment:
    local: datetime  # the instant in the session's time zone
    duration_s: Fraction  # since the session started
    energy_kwh: Fraction  # metered since the start, at the last sample
    power_kw: Fraction  # average over the current sample interval
    current_a: Fraction | None


def _within(value: Fraction | None, low: object, high: object) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    if low is not None and value < Fraction(str(low)):
        return False
    return high is None or value < Fraction(str(high))


def _time_of_day_ok(r: Restrictions, m: Moment) -> bool:
    now = m.local.time().replace(tzinfo=None)
    if r.start_time is not None and r.end_time is not None and r.end_time < r.start_time:
        return now >= r.start_time or now < r.end_time
    if r.start_time is not None and now < r.start_time:
        return False
    return r.end_time is None or now < r.end_time


def _calendar_ok(r: Restrictions, m: Moment) -> bool:
    today = m.local.date()
    if r.start_date is not None and today < r.start_date:
        return False
    if r.end_date is not None and today >= r.end_date:
        return False
    return r.day_of_week is None or WEEKDAYS[today.weekday()] in r.day_of_week


def matches(r: Restrictions | None, m: Moment) -> bool:
    if r is None:
        return True
    if r.reservation is not None:  # reservation-only elements price reservations, not charging sessions
        return False
    return (
        _time_of_day_ok(r, m)
        and _calendar_ok(r, m)
        and _within(m.duration_s, r.min_duration, r.max_duration)
        and _within(m.energy_kwh, r.min_kwh, r.max_kwh)
        and _within(m.power_kw, r.min_power, r.max_power)
        and _within(m.current_a, r.min_current, r.max_current)
    )
