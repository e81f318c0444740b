"""An independent, deliberately simple tariff calculator: it walks the session minute by minute.

It reads the OCPI JSON itself (not the engine's model) and shares no code with csms/tariffs, so the
hypothesis tests compare two separate readings of OCPI 2.2.1. Sessions, samples, state changes and tariff
changes must fall on whole minutes, and the zone's offsets must be whole minutes.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
MINOR = {"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _hhmm(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def _restrictions_hold(r: dict[str, Any] | None, ctx: dict[str, Any]) -> bool:
    if not r:
        return True
    if r.get("reservation"):
        return False
    minute_of_day, today = ctx["minute_of_day"], ctx["date"]
    start, end = r.get("start_time"), r.get("end_time")
    if start is not None and end is not None and _hhmm(end) < _hhmm(start):
        if not (minute_of_day >= _hhmm(start) or minute_of_day < _hhmm(end)):
            return False
    else:
        if start is not None and minute_of_day < _hhmm(start):
            return False
        if end is not None and minute_of_day >= _hhmm(end):
            return False
    if r.get("start_date") and today < date.fromisoformat(r["start_date"]):
        return False
    if r.get("end_date") and today >= date.fromisoformat(r["end_date"]):
        return False
    if r.get("day_of_week") and DAYS[today.weekday()] not in r["day_of_week"]:
        return False
    for key, value in (("kwh", ctx["kwh"]), ("power", ctx["kw"]), ("duration", ctx["seconds"])):
        low, high = r.get(f"min_{key}"), r.get(f"max_{key}")
        if low is not None and value < Fraction(str(low)):
            return False
        if high is not None and value >= Fraction(str(high)):
            return False
    return True


def reference_cost(
    tariffs: list[dict[str, Any]],
    start: datetime,
    stop: datetime,
    zone: str,
    samples: list[tuple[datetime, int]],
    parking: list[tuple[datetime, datetime]],
) -> tuple[Decimal, Decimal]:
    """Total cost (excl. VAT, incl. VAT) of the session; ``parking`` lists [from, to) spans of not charging."""
    tz = ZoneInfo(zone)
    highs: list[int] = []
    for _, wh in samples:
        highs.append(max([wh, *highs[-1:]]))
    totals: dict[str, list[Any]] = {}  # dimension -> [volume, excl, incl, last component]
    flat_done = False
    minutes = int((stop - start).total_seconds() // 60)
    for m in range(minutes):
        t = start + timedelta(minutes=m)
        valid = [
            x
            for x in tariffs
            if (x.get("start_date_time") is None or _when(x["start_date_time"]) <= t)
            and (x.get("end_date_time") is None or t < _when(x["end_date_time"]))
        ]
        if not valid:
            continue
        tariff = valid[-1]
        before = [i for i, (at, _) in enumerate(samples) if at <= t]
        kwh, kw, wh_this_minute = Fraction(0), Fraction(0), Fraction(0)
        if before:
            i = before[-1]
            kwh = Fraction(highs[i] - highs[0], 1000)
            if i + 1 < len(samples):
                span = (samples[i + 1][0] - samples[i][0]).total_seconds()
                delta = highs[i + 1] - highs[i]
                kw = Fraction(delta) * Fraction(36, 10) / int(span)
                wh_this_minute = Fraction(delta) * 60 / int(span)
        local = t.astimezone(tz)
        ctx = {
            "minute_of_day": local.hour * 60 + local.minute,
            "date": local.date(),
            "kwh": kwh,
            "kw": kw,
            "seconds": m * 60,
        }
        parked = any(a <= t < b for a, b in parking)
        volumes = {"ENERGY": wh_this_minute, "PARKING_TIME" if parked else "TIME": Fraction(60)}
        for dimension in ("ENERGY", "TIME", "PARKING_TIME", "FLAT"):
            component = None
            for element in tariff["elements"]:
                found = [c for c in element["price_components"] if c["type"] == dimension]
                if found and _restrictions_hold(element.get("restrictions"), ctx):
                    component = found[0]
                    break
            if component is None:
                continue
            if dimension == "FLAT":
                if flat_done:
                    continue
                flat_done = True
                volume, excl = Fraction(1), Fraction(str(component["price"]))
            else:
                volume = volumes.get(dimension, Fraction(0))
                per = 1000 if dimension == "ENERGY" else 3600
                excl = volume * Fraction(str(component["price"])) / per
            if volume == 0:
                continue
            vat = component.get("vat")
            incl = excl if vat is None else excl * (1 + Fraction(str(vat)) / 100)
            entry = totals.setdefault(dimension, [Fraction(0), Fraction(0), Fraction(0), None])
            entry[0] += volume
            entry[1] += excl
            entry[2] += incl
            entry[3] = component
    total_excl = total_incl = Fraction(0)
    for dimension, (volume, excl, incl, last) in totals.items():
        total_excl += excl
        total_incl += incl
        step = last["step_size"]
        if dimension != "FLAT" and step > 1:
            rounded_up = math.ceil(volume / step) * step
            per = 1000 if dimension == "ENERGY" else 3600
            extra = (rounded_up - volume) * Fraction(str(last["price"])) / per
            total_excl += extra
            vat = last.get("vat")
            total_incl += extra if vat is None else extra * (1 + Fraction(str(vat)) / 100)
    at_start = [
        x
        for x in tariffs
        if (x.get("start_date_time") is None or _when(x["start_date_time"]) <= start)
        and (x.get("end_date_time") is None or start < _when(x["end_date_time"]))
    ]
    bounds = at_start[-1] if at_start else tariffs[0]
    low, high = bounds.get("min_price"), bounds.get("max_price")
    if low is not None and total_excl < Fraction(str(low["excl_vat"])):
        total_excl = Fraction(str(low["excl_vat"]))
        total_incl = Fraction(str(low.get("incl_vat", low["excl_vat"])))
    if high is not None and total_excl > Fraction(str(high["excl_vat"])):
        total_excl = Fraction(str(high["excl_vat"]))
        total_incl = Fraction(str(high.get("incl_vat", high["excl_vat"])))
    digits = MINOR[tariffs[0]["currency"]]

    def cents(x: Fraction) -> Decimal:
        return Decimal(math.floor(x * 10**digits + Fraction(1, 2))).scaleb(-digits)

    return cents(total_excl), cents(total_incl)
