"""ISO 4217 currencies and their minor units: money is rounded to these, never to floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def _codes(text: str, exponent: int) -> dict[str, int]:
    return dict.fromkeys(text.split(), exponent)


# Active ISO 4217 codes with their number of minor units (the exponent).
_MINOR_UNITS: dict[str, int] = {
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


def is_known(code: str) -> bool:
    return code in _MINOR_UNITS


def minor_units(code: str) -> int:
    return _MINOR_UNITS[code]


def round_money(amount: Decimal, code: str) -> Decimal:
    """Round half up to the currency's minor unit (0.005 EUR -> 0.01 EUR)."""
    return amount.quantize(Decimal(1).scaleb(-_MINOR_UNITS[code]), rounding=ROUND_HALF_UP)
