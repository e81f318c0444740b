"""Money: ``Decimal`` amounts in a currency, stored and summed as integers of its minor unit (cents), never
float. The minor units are ISO 4217's; a currency not listed here is refused (a typo must not bill in an
invented currency)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


#: ISO 4217 minor units of the currencies an operator is likely to bill in.
def _codes(text: str, exponent: int) -> dict[str, int]:
    return dict.fromkeys(text.split(), exponent)


#: Active ISO 4217 codes with their number of minor units (the exponent).
MINOR_UNITS: dict[str, int] = {
    **_codes(
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF "
        "CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL "
        "HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MRU "
        "MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR "
        "SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES "
        "WST XCD YER ZAR ZMW ZWL",
        2,
    ),
    **_codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF", 0),
    **_codes("BHD IQD JOD KWD LYD OMR TND", 3),
    **_codes("CLF UYW", 4),
}


def is_known(currency: str) -> bool:
    return currency in MINOR_UNITS


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
