"""Conversions at the protocol edge: OCPP timestamps and units."""

from __future__ import annotations

from datetime import UTC, datetime

from csms.ocpp.errors import ErrorKind, OcppError

ENERGY_UNITS_TO_WH = {None: 1.0, "Wh": 1.0, "kWh": 1000.0}


def parse_time(text: str | None) -> datetime | None:
    """An OCPP dateTime as an aware UTC datetime (naive input is taken as UTC)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
        # An offset can carry a valid local time out of datetime's range (9999-12-31T23:59-05:00).
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise OcppError(ErrorKind.PROPERTY_CONSTRAINT, f"{text!r} is not an RFC 3339 date-time") from None


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix, as chargers parse most reliably."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def from_posix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def energy_to_wh(value: float, unit: str | None) -> float | None:
    """An energy value in Wh, or None when the unit is not an energy unit."""
    factor = ENERGY_UNITS_TO_WH.get(unit)
    return None if factor is None else value * factor
