"""The clock-aligned meter interval that puts a reading on every time-of-day boundary of some tariffs.

A CDR spreads each meter interval's energy evenly over it (:mod:`.timeline`): when a price changes at a time of
day inside an interval and the power steps there, some energy of one price is billed at the other. A meter
reading *on* the boundary removes that. Clock-aligned meter values (OCPP 1.6 ``ClockAlignedDataInterval``,
2.0.1 ``AlignedDataCtrlr.Interval``) are read at every multiple of their interval from midnight, so an interval
that divides each boundary's second of the day reads on every boundary.

The tariffs' ``start_time``/``end_time`` are local; a station counts its intervals from midnight, its local one
or UTC's (the twin's). An interval that also divides each UTC offset the zone takes in the year (and the day)
reads on the boundaries either way, in summer and in winter: the greatest such is the gcd of them all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from csms.tariffs.model import Tariff

DAY_S = 86400
#: The shortest interval asked for (OCPI times are whole minutes, and the offsets of today's zones whole quarter
#: hours, so the gcd is never below it; a bound against anything stranger).
MIN_INTERVAL_S = 60


def _second_of_day(at: time) -> int:
    return at.hour * 3600 + at.minute * 60 + at.second


def boundaries_s(tariffs: Iterable[Tariff]) -> set[int]:
    """The local seconds of the day at which some element's ``start_time``/``end_time`` changes the price."""
    found: set[int] = set()
    for tariff in tariffs:
        for element in tariff.elements:
            r = element.restrictions
            if r is not None:
                found.update(_second_of_day(t) for t in (r.start_time, r.end_time) if t is not None)
    return found


def utc_offsets_s(time_zone: str, year: int) -> set[int]:
    """The UTC offsets [s] ``time_zone`` takes in ``year`` (read on the 1st and 15th of each month)."""
    zone = ZoneInfo(time_zone)
    offsets = set()
    for month in range(1, 13):
        for day in (1, 15):
            offset = datetime(year, month, day, 12, tzinfo=UTC).astimezone(zone).utcoffset()
            if offset is not None:
                offsets.add(int(offset.total_seconds()))
    return offsets


def aligned_interval_s(tariffs: Iterable[Tariff], time_zone: str, year: int) -> int | None:
    """The interval [s] that reads on every time-of-day boundary of ``tariffs`` priced in ``time_zone``, counted
    from local or UTC midnight, in ``year``: the gcd of the boundaries, the zone's offsets and the day, at least
    :data:`MIN_INTERVAL_S`. None when no element has a time of day (nothing to align with)."""
    boundaries = boundaries_s(tariffs)
    if not boundaries:
        return None
    interval = math.gcd(DAY_S, *boundaries, *(abs(o) for o in utc_offsets_s(time_zone, year)))
    return max(interval, MIN_INTERVAL_S)
