"""Money: ``Decimal`` amounts in a currency, stored and summed as integers of its minor unit (cents), never
float. The minor units are ISO 4217's; a currency not listed here is refused (a typo must not bill in an
invented currency)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: ISO 4217 minor units of the currencies an operator is likely to bill in.
_TWO = (
    "AED ARS AUD BGN BRL CAD CHF CNY COP CZK DKK EGP EUR GBP HKD HUF IDR ILS INR MAD MXN MYR NOK NZD PEN PHP PLN QAR "
    "RON RSD RUB SAR SEK SGD THB TRY TWD UAH USD ZAR"
)
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(("CLP", "ISK", "JPY", "KRW", "VND"), 0),
    **dict.fromkeys(("BHD", "JOD", "KWD", "OMR", "TND"), 3),
}


class UnknownCurrency(ValueError):
    def __init__(self, currency: str) -> None:
        super().__init__(f"unknown currency {currency!r} (an ISO 4217 code such as EUR, USD, GBP)")


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(currency) from None


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """``amount`` in whole units rounded half up to the minor unit, as an integer of minor units."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {amount!r}")
    return int((value.scaleb(minor_units(currency))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor(minor: int, currency: str) -> Decimal:
    """Integer minor units back to a ``Decimal`` with the currency's places (1234 EUR cents -> 12.34)."""
    places = minor_units(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_amount(minor: int, currency: str) -> str:
    """For people: ``12.34 EUR``; thousands separated (``1,234.50 EUR``)."""
    places = minor_units(currency)
    return f"{from_minor(minor, currency):,.{places}f} {currency}"
