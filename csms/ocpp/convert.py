"""Conversions at the protocol edge: OCPP timestamps and units."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from csms.ocpp.errors import ErrorKind, OcppError

#: Units a thousand times a base unit (OCPP 1.6 UnitOfMeasure; 2.0.1 uses the same names).
KILO_UNITS = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}


def parse_time(text: str | None) -> datetime | None:
    """An OCPP dateTime as an aware UTC datetime (naive input is taken as UTC)."""
    return None if text is None else _parsed(text)


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> datetime:
    """Remembered (datetimes are immutable): the stations of a fleet date their meter values alike (clock-aligned
    intervals, the same second), and a message's readings share a time."""
    try:
        value = datetime.fromisoformat(text)
        # An offset can carry a valid local time out of datetime's range (9999-12-31T23:59-05:00).
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise OcppError(ErrorKind.PROPERTY_CONSTRAINT, f"{text!r} is not an RFC 3339 date-time") from None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix, as chargers parse most reliably."""
    value = value.astimezone(UTC)
    if value.year >= 1000:  # isoformat truncates to the millisecond as below, at half the cost of strftime
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"  # %Y does not pad


@functools.lru_cache(maxsize=256)
def from_posix(seconds: float) -> datetime:
    """Remembered: a group commit converts its one ``now`` for every station session in it."""
    return datetime.fromtimestamp(seconds, UTC)


def base_unit(unit: str | None) -> tuple[int, str | None]:
    """A sampled value's unit as its base unit and the power of ten to scale the value by: ``kWh`` is
    ``(3, "Wh")``; any other unit (or none) is kept as it is, ``(0, unit)``."""
    base = KILO_UNITS.get(unit) if unit is not None else None
    return (3, base) if base is not None else (0, unit)
