"""One column value ↔ its JSON form in a bundle, by the column's type, so that the same row reads the same on every
backend: UTC datetimes as ISO 8601 strings, Decimals as strings (exact), floats as the shortest repr that reads back
to the same double, bytes as base64, JSON columns as they are (the line is written with sorted keys)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Date, DateTime, Float, LargeBinary, Numeric, TypeDecorator
from sqlalchemy.types import TypeEngine


def _base_type(column: Column[Any]) -> TypeEngine[Any]:
    kind = column.type
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def encode(column: Column[Any], value: Any) -> Any:
    """The JSON form of a value read from ``column``."""
    if value is None:
        return None
    kind = _base_type(column)
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(kind, Float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class BadValue(ValueError):
    """A bundle value that does not fit its column."""


def decode(column: Column[Any], value: Any) -> Any:
    """The Python value to write into ``column`` for the JSON form ``value``."""
    if value is None:
        return None
    kind = _base_type(column)
    try:
        if isinstance(kind, DateTime):
            parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if isinstance(kind, Date):
            return date.fromisoformat(value)
        if isinstance(kind, Float):
            return float(value)
        if isinstance(kind, Numeric):
            return Decimal(str(value))
        if isinstance(kind, LargeBinary):
            return base64.b64decode(value, validate=True)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise BadValue(f"column {column.name}: {value!r} is not a valid {kind.__class__.__name__}") from exc
    return value
