"""Bad tariffs are refused with the field and the reason (the API turns these into 422)."""

from __future__ import annotations

from typing import Any

import pytest

from csms.tariffs.parse import TariffError, parse_tariff


def _tariff(**changes: Any) -> dict[str, Any]:
    element = {"price_components": [{"type": "ENERGY", "price": "0.30", "vat": 20, "step_size": 1}]}
    return {"id": "t1", "currency": "EUR", "elements": [element], **changes}


def _with_restrictions(**restrictions: Any) -> dict[str, Any]:
    tariff = _tariff()
    tariff["elements"][0]["restrictions"] = restrictions
    return tariff


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (_tariff(currency="EUX"), "currency", "unknown ISO 4217"),
        (
            _tariff(elements=[{"price_components": [{"type": "TIME", "price": "-1", "step_size": 60}]}]),
            "elements[0].price_components[0].price",
            "negative",
        ),
        (_with_restrictions(min_kwh=20, max_kwh=10), "elements[0].restrictions.max_kwh", "greater than min_kwh"),
        (_with_restrictions(start_time="08:00", end_time="08:00"), "elements[0].restrictions.end_time", "empty"),
        (_with_restrictions(start_time="8:00"), "elements[0].restrictions.start_time", "HH:MM"),
        (_with_restrictions(day_of_week=["FUNDAY"]), "elements[0].restrictions.day_of_week", "MONDAY"),
        (
            _with_restrictions(start_date="2026-05-01", end_date="2026-04-01"),
            "elements[0].restrictions.end_date",
            "after start_date",
        ),
        (_tariff(max_price={"excl_vat": "5.00"}), "max_price.incl_vat", "required"),
        (_tariff(elements=[]), "elements", "non-empty"),
        (
            _tariff(
                elements=[
                    {"price_components": [{"type": "TIME", "price": "1", "step_size": 60}]},
                    {"price_components": [{"type": "TIME", "price": "2", "step_size": 60}]},
                ]
            ),
            "elements[1].restrictions",
            "never applies",
        ),
    ],
)
def test_refusals_name_the_field_and_the_reason(data: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(TariffError) as refused:
        parse_tariff(data)
    assert refused.value.field == field
    assert reason in refused.value.reason


def test_missing_vat_is_refused_where_the_operator_requires_it() -> None:
    data = _tariff(elements=[{"price_components": [{"type": "FLAT", "price": "1.00", "step_size": 0}]}])
    parse_tariff(data)
    with pytest.raises(TariffError) as refused:
        parse_tariff(data, require_vat=True)
    assert refused.value.field == "elements[0].price_components[0].vat"


def test_money_keeps_its_decimal_digits() -> None:
    tariff = parse_tariff(_tariff(currency="JPY"))
    assert str(tariff.elements[0].price_components[0].price) == "0.30"
