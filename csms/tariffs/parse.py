"""OCPI 2.2.1 Tariff JSON -> :class:`~csms.tariffs.model.Tariff`, refusing bad input with the field and why."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from csms.domain import money as currency
from csms.tariffs.model import (
    DayOfWeek,
    Dimension,
    Price,
    PriceComponent,
    Restrictions,
    Tariff,
    TariffElement,
)


class TariffError(ValueError):
    """A tariff refused: ``field`` is a JSON path such as ``elements[0].price_components[1].price``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _decimal(value: Any, path: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TariffError(path, "must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TariffError(path, "must be a number") from None
    if not number.is_finite():
        raise TariffError(path, "must be a finite number")
    if minimum is not None and number < minimum:
        raise TariffError(path, f"must not be negative (got {number})")
    return number


def _optional_decimal(data: Mapping[str, Any], key: str, path: str) -> Decimal | None:
    return None if data.get(key) is None else _decimal(data[key], f"{path}.{key}")


def _int(value: Any, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TariffError(path, f"must be an integer >= {minimum}")
    return value


def _time(value: Any, path: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise TariffError(path, 'must be local time "HH:MM"') from None


def _date(value: Any, path: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise TariffError(path, 'must be a date "YYYY-MM-DD"') from None


def _datetime(value: Any, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TariffError(path, "must be an ISO 8601 date-time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _component(data: Any, path: str) -> PriceComponent:
    if not isinstance(data, Mapping):
        raise TariffError(path, "must be an object")
    try:
        dimension = Dimension(str(data.get("type")))
    except ValueError:
        raise TariffError(f"{path}.type", "must be ENERGY, TIME, FLAT or PARKING_TIME") from None
    if "price" not in data:
        raise TariffError(f"{path}.price", "is required")
    if "step_size" not in data:
        raise TariffError(f"{path}.step_size", "is required")
    step = _int(data["step_size"], f"{path}.step_size", minimum=0 if dimension is Dimension.FLAT else 1)
    vat = _optional_decimal(data, "vat", path)
    if vat is not None and vat > 100:
        raise TariffError(f"{path}.vat", "must be a percentage between 0 and 100")
    return PriceComponent(dimension, _decimal(data["price"], f"{path}.price"), step, vat)


def _restrictions(data: Any, path: str) -> Restrictions:
    if not isinstance(data, Mapping):
        raise TariffError(path, "must be an object")

    def clock(key: str) -> time | None:
        return None if data.get(key) is None else _time(data[key], f"{path}.{key}")

    def day(key: str) -> date | None:
        return None if data.get(key) is None else _date(data[key], f"{path}.{key}")

    def seconds(key: str) -> int | None:
        return None if data.get(key) is None else _int(data[key], f"{path}.{key}")

    def number(key: str) -> Decimal | None:
        return _optional_decimal(data, key, path)

    days = data.get("day_of_week")
    day_set: frozenset[DayOfWeek] | None = None
    if days is not None:
        try:
            day_set = frozenset(DayOfWeek(day) for day in days)
        except (TypeError, ValueError):
            raise TariffError(f"{path}.day_of_week", "must be a list of MONDAY … SUNDAY") from None
        if not day_set:
            raise TariffError(f"{path}.day_of_week", "an empty list never matches")
    reservation = data.get("reservation")
    if reservation not in (None, "RESERVATION", "RESERVATION_EXPIRES"):
        raise TariffError(f"{path}.reservation", "must be RESERVATION or RESERVATION_EXPIRES")
    restrictions = Restrictions(
        start_time=clock("start_time"),
        end_time=clock("end_time"),
        start_date=day("start_date"),
        end_date=day("end_date"),
        min_kwh=number("min_kwh"),
        max_kwh=number("max_kwh"),
        min_current=number("min_current"),
        max_current=number("max_current"),
        min_power=number("min_power"),
        max_power=number("max_power"),
        min_duration=seconds("min_duration"),
        max_duration=seconds("max_duration"),
        day_of_week=day_set,
        reservation=reservation,
    )
    _check_contradictions(restrictions, path)
    return restrictions


def _check_contradictions(r: Restrictions, path: str) -> None:
    if r.start_time is not None and r.start_time == r.end_time:
        raise TariffError(f"{path}.end_time", "equals start_time: the window is empty")
    if r.start_date is not None and r.end_date is not None and r.end_date <= r.start_date:
        raise TariffError(f"{path}.end_date", "must be after start_date")
    pairs = (("min_kwh", "max_kwh"), ("min_current", "max_current"), ("min_power", "max_power"))
    for low, high in (*pairs, ("min_duration", "max_duration")):
        low_value, high_value = getattr(r, low), getattr(r, high)
        if low_value is not None and high_value is not None and high_value <= low_value:
            raise TariffError(f"{path}.{high}", f"must be greater than {low}: no session can match")


def _price(data: Any, path: str, needs_incl_vat: bool) -> Price:
    if not isinstance(data, Mapping) or "excl_vat" not in data:
        raise TariffError(f"{path}.excl_vat", "is required")
    incl = _optional_decimal(data, "incl_vat", path)
    if incl is None and needs_incl_vat:
        raise TariffError(f"{path}.incl_vat", "is required when the tariff's prices carry VAT")
    return Price(_decimal(data["excl_vat"], f"{path}.excl_vat"), incl)


def _element(data: Any, path: str) -> TariffElement:
    if not isinstance(data, Mapping):
        raise TariffError(path, "must be an object")
    raw = data.get("price_components")
    if not isinstance(raw, list) or not raw:
        raise TariffError(f"{path}.price_components", "must be a non-empty list")
    components = tuple(_component(c, f"{path}.price_components[{i}]") for i, c in enumerate(raw))
    seen: set[Dimension] = set()
    for i, component in enumerate(components):
        if component.type in seen:
            raise TariffError(f"{path}.price_components[{i}].type", f"{component.type} appears twice")
        seen.add(component.type)
    restrictions = data.get("restrictions")
    parsed = None if restrictions is None else _restrictions(restrictions, f"{path}.restrictions")
    return TariffElement(components, parsed)


def _check_shadowed(elements: tuple[TariffElement, ...]) -> None:
    """An element with the same restrictions as an earlier one whose dimensions it already prices never applies."""
    for i, element in enumerate(elements):
        for j, earlier in enumerate(elements[:i]):
            kinds = {c.type for c in element.price_components}
            if earlier.restrictions == element.restrictions and kinds <= {c.type for c in earlier.price_components}:
                raise TariffError(
                    f"elements[{i}].restrictions", f"overlap elements[{j}] entirely: this element never applies"
                )


def _check_vat(elements: tuple[TariffElement, ...], require_vat: bool) -> bool:
    """Whether any price carries VAT; with ``require_vat`` every component must state it (0 is fine)."""
    carries = False
    for i, element in enumerate(elements):
        for j, component in enumerate(element.price_components):
            if component.vat is None and require_vat:
                raise TariffError(f"elements[{i}].price_components[{j}].vat", "is required (VAT applies here)")
            carries = carries or bool(component.vat)
    return carries


def parse_tariff(data: Any, *, require_vat: bool = False) -> Tariff:
    """Parse an OCPI 2.2.1 Tariff object; ``require_vat`` is the operator's rule that every price names its VAT."""
    if not isinstance(data, Mapping):
        raise TariffError("$", "a tariff must be a JSON object")
    tariff_id = data.get("id")
    if not isinstance(tariff_id, str) or not 1 <= len(tariff_id) <= 36:
        raise TariffError("id", "must be a string of 1 to 36 characters")
    code = data.get("currency")
    if not isinstance(code, str) or not currency.is_known(code):
        raise TariffError("currency", f"unknown ISO 4217 currency {code!r}")
    raw = data.get("elements")
    if not isinstance(raw, list) or not raw:
        raise TariffError("elements", "must be a non-empty list")
    elements = tuple(_element(e, f"elements[{i}]") for i, e in enumerate(raw))
    _check_shadowed(elements)
    carries_vat = _check_vat(elements, require_vat)
    min_price = None if data.get("min_price") is None else _price(data["min_price"], "min_price", carries_vat)
    max_price = None if data.get("max_price") is None else _price(data["max_price"], "max_price", carries_vat)
    if min_price is not None and max_price is not None and max_price.excl_vat < min_price.excl_vat:
        raise TariffError("max_price.excl_vat", "must not be below min_price.excl_vat")
    start = None if data.get("start_date_time") is None else _datetime(data["start_date_time"], "start_date_time")
    end = None if data.get("end_date_time") is None else _datetime(data["end_date_time"], "end_date_time")
    if start is not None and end is not None and end <= start:
        raise TariffError("end_date_time", "must be after start_date_time")
    known = {"id", "currency", "elements", "min_price", "max_price", "start_date_time", "end_date_time"}
    extra = {k: v for k, v in data.items() if k not in known}
    return Tariff(tariff_id, code, elements, min_price, max_price, start, end, extra)
