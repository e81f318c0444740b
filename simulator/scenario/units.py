"""Parsing of the scenario's human units: durations ("1h30m") and points in time ("05:30", "+2h")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["TimePoint", "parse_clock", "parse_duration_s", "parse_session_time", "parse_time_point"]

_DURATION_RE = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_CLOCK_RE = re.compile(r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?$")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}

DURATION_HELP = "a duration like '13h', '30m', '90s', '1h30m' or a number of seconds"
TIME_POINT_HELP = "a time of day 'HH:MM', an offset from the start like '+1h30m', or a date-time"


def parse_duration_s(value: object) -> float:
    """Seconds in ``value``: a non-negative number of seconds or a string like ``"1h30m"``.

    Raises:
        ValueError: with the expected form, for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"expected {DURATION_HELP} (not negative), got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION_RE.match(text)
            if text and match:
                return sum(float(v) * _UNIT_S[k] for k, v in match.groupdict().items() if v is not None)
        else:
            if seconds >= 0:
                return seconds
    raise ValueError(f"expected {DURATION_HELP}, got {value!r}")


def parse_clock(value: object) -> time:
    """``"HH:MM"`` or ``"HH:MM:SS"`` → ``datetime.time``.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = _CLOCK_RE.match(value.strip())
        if match:
            return time(int(match["h"]), int(match["m"]), int(match["s"] or 0))
    raise ValueError(f"expected a time of day 'HH:MM', got {value!r}")


@dataclass(frozen=True)
class TimePoint:
    """A point on the scenario timeline, resolved against the scenario's start.

    Exactly one of: ``clock`` (a time of day in the scenario's time zone: the first such moment at or after
    the start, so times earlier than the start mean the next day), ``offset_s`` (seconds after the start),
    ``absolute`` (a time-zone-aware date-time).
    """

    clock: time | None = None
    offset_s: float | None = None
    absolute: datetime | None = None

    def seconds_after(self, start: datetime) -> float:
        """Seconds from ``start`` (aware, in the scenario's zone) to this point; may be negative for
        an absolute time before the start."""
        if self.offset_s is not None:
            return self.offset_s
        start_utc = start.astimezone(UTC)
        if self.absolute is not None:
            return (self.absolute.astimezone(UTC) - start_utc).total_seconds()
        assert self.clock is not None
        day = start.date()
        candidate = datetime.combine(day, self.clock, tzinfo=start.tzinfo)
        if candidate.astimezone(UTC) < start_utc:
            candidate = datetime.combine(day + timedelta(days=1), self.clock, tzinfo=start.tzinfo)
        return (candidate.astimezone(UTC) - start_utc).total_seconds()

    def __str__(self) -> str:
        if self.clock is not None:
            return self.clock.strftime("%H:%M:%S" if self.clock.second else "%H:%M")
        if self.offset_s is not None:
            return f"+{self.offset_s:g}s"
        assert self.absolute is not None
        return self.absolute.isoformat()


def parse_time_point(value: object) -> TimePoint:
    """Parse ``"HH:MM"``, ``"+<duration>"`` or a date-time (object or ISO string).

    Raises:
        ValueError: with the accepted forms.
    """
    if isinstance(value, TimePoint):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"expected {TIME_POINT_HELP}; a date-time needs a UTC offset, got {value!r}")
        return TimePoint(absolute=value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("+"):
            try:
                return TimePoint(offset_s=parse_duration_s(text[1:]))
            except ValueError:
                pass
        elif _CLOCK_RE.match(text):
            return TimePoint(clock=parse_clock(text))
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return parse_time_point(parsed)
    raise ValueError(f"expected {TIME_POINT_HELP}, got {value!r}")


SESSION_TIME_HELP = (
    "seconds after the start (a number), a date-time with a UTC offset (ISO 8601, or RFC 1123 as ACN-Data "
    "writes it: 'Wed, 25 Apr 2018 11:08:04 GMT'), 'HH:MM' or '+<duration>'"
)


def parse_session_time(value: object) -> TimePoint:
    """A replayed session's time: a number of seconds after the start, an ACN-Data RFC 1123 date-time, or
    anything ``parse_time_point`` takes.

    Raises:
        ValueError: with the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {SESSION_TIME_HELP}, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            if "," in text:  # RFC 1123 starts with the day name and a comma; ISO 8601 has none
                try:
                    return parse_time_point(parsedate_to_datetime(text))
                except (TypeError, ValueError):
                    raise ValueError(f"expected {SESSION_TIME_HELP}, got {value!r}") from None
    if isinstance(value, int | float):
        if not 0 <= value < float("inf"):
            raise ValueError(f"expected {SESSION_TIME_HELP} (not negative), got {value!r}")
        return TimePoint(offset_s=float(value))
    try:
        return parse_time_point(value)
    except ValueError:
        raise ValueError(f"expected {SESSION_TIME_HELP}, got {value!r}") from None
