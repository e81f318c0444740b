"""An independent, deliberately simple tariff calculator: it walks the session piece by piece.

It reads the OCPI 2.2.1 JSON itself (not the CSMS's model) and shares no code with ``csms.tariffs``, so two
separate readings of OCPI 2.2.1 can be compared: the hypothesis tests (tests/tariffs/test_against_reference.py)
against the CSMS's engine, and the report's ``billing`` section, which prices the twin's own truth with it.

The session is cut at every whole minute (local minutes, the zone's offsets being whole minutes), at each of its
meter samples and charging/parking changes, at its start and stop, at each tariff version's start and end and
where a duration restriction begins or ends. Inside a piece nothing a restriction reads changes: the time of day
and date are those of its start, the energy so far is the register at the sample before it (the highest seen,
a register never runs backwards), the power that of the span between the samples around it. Energy is the
straight line between two samples; a piece after the last sample has none.
"""

from __future__ import annotations

import bisect
import itertools
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
MINOR = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0, "KWD": 3}
DIMENSIONS = ("ENERGY", "TIME", "PARKING_TIME", "FLAT")
Wh = int | float | Decimal | Fraction


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _hhmm(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def _seconds(span: timedelta) -> Fraction:
    return Fraction(span // timedelta(microseconds=1), 1_000_000)


def _time_of_day_holds(r: dict[str, Any], minute_of_day: int) -> bool:
    start, end = r.get("start_time"), r.get("end_time")
    if start is not None and end is not None and _hhmm(end) < _hhmm(start):  # across midnight
        return minute_of_day >= _hhmm(start) or minute_of_day < _hhmm(end)
    return (start is None or minute_of_day >= _hhmm(start)) and (end is None or minute_of_day < _hhmm(end))


def _dates_hold(r: dict[str, Any], today: date) -> bool:
    if r.get("start_date") and today < date.fromisoformat(r["start_date"]):
        return False
    if r.get("end_date") and today >= date.fromisoformat(r["end_date"]):
        return False
    return not (r.get("day_of_week") and DAYS[today.weekday()] not in r["day_of_week"])


def _restrictions_hold(r: dict[str, Any] | None, ctx: dict[str, Any]) -> bool:
    if not r:
        return True
    if r.get("reservation") or not _time_of_day_holds(r, ctx["minute_of_day"]) or not _dates_hold(r, ctx["date"]):
        return False
    for key, value in (("kwh", ctx["kwh"]), ("power", ctx["kw"]), ("duration", ctx["seconds"])):
        low, high = r.get(f"min_{key}"), r.get(f"max_{key}")
        if low is not None and value < Fraction(str(low)):
            return False
        if high is not None and value >= Fraction(str(high)):
            return False
    return True


def _in_force(tariffs: list[dict[str, Any]], t: datetime) -> list[dict[str, Any]]:
    return [
        x
        for x in tariffs
        if (x.get("start_date_time") is None or _when(x["start_date_time"]) <= t)
        and (x.get("end_date_time") is None or t < _when(x["end_date_time"]))
    ]


def _cuts(
    tariffs: list[dict[str, Any]],
    start: datetime,
    stop: datetime,
    samples: list[tuple[datetime, Wh]],
    parking: list[tuple[datetime, datetime]],
) -> list[datetime]:
    """Every instant of [start, stop] where something a restriction or a volume reads may change."""
    cuts = {start, stop}
    minute = start.astimezone(UTC).replace(second=0, microsecond=0)
    while minute < stop:
        cuts.add(minute)
        minute += timedelta(minutes=1)
    cuts.update(at for at, _ in samples)
    for a, b in parking:
        cuts.update((a, b))
    for x in tariffs:
        cuts.update(_when(x[key]) for key in ("start_date_time", "end_date_time") if x.get(key))
        for element in x["elements"]:
            r = element.get("restrictions") or {}
            for key in ("min_duration", "max_duration"):
                if r.get(key) is not None:
                    cuts.add(start + timedelta(seconds=float(Fraction(str(r[key])))))
    return sorted(t for t in cuts if start <= t <= stop)


def _with_vat(excl: Fraction, component: dict[str, Any]) -> Fraction:
    vat = component.get("vat")
    return excl if vat is None else excl * (1 + Fraction(str(vat)) / 100)


def _per(dimension: str) -> int:
    return 1000 if dimension == "ENERGY" else 3600  # Wh per kWh, seconds per hour


class _Totals:
    """Per dimension: volume, excl. and incl. VAT so far, and the last component that priced it."""

    def __init__(self) -> None:
        self.by_dimension: dict[str, list[Any]] = {}
        self.flat_done = False

    def add(self, tariff: dict[str, Any], ctx: dict[str, Any], volumes: dict[str, Fraction]) -> None:
        for dimension in DIMENSIONS:
            component = next(
                (
                    found[0]
                    for element in tariff["elements"]
                    if (found := [c for c in element["price_components"] if c["type"] == dimension])
                    and _restrictions_hold(element.get("restrictions"), ctx)
                ),
                None,
            )
            if component is None or (dimension == "FLAT" and self.flat_done):
                continue
            if dimension == "FLAT":
                self.flat_done = True
                volume, excl = Fraction(1), Fraction(str(component["price"]))
            else:
                volume = volumes.get(dimension, Fraction(0))
                excl = volume * Fraction(str(component["price"])) / _per(dimension)
            if volume == 0:
                continue
            entry = self.by_dimension.setdefault(dimension, [Fraction(0), Fraction(0), Fraction(0), None])
            entry[0] += volume
            entry[1] += excl
            entry[2] += _with_vat(excl, component)
            entry[3] = component

    def sums(self) -> tuple[Fraction, Fraction]:
        """Excl. and incl. VAT, each dimension's volume rounded up to the step size of its last component."""
        total_excl = total_incl = Fraction(0)
        for dimension, (volume, excl, incl, last) in self.by_dimension.items():
            total_excl += excl
            total_incl += incl
            step = last.get("step_size", 1)
            if dimension != "FLAT" and step > 1:
                extra = (math.ceil(volume / step) * step - volume) * Fraction(str(last["price"])) / _per(dimension)
                total_excl += extra
                total_incl += _with_vat(extra, last)
        return total_excl, total_incl


def reference_cost(
    tariffs: list[dict[str, Any]],
    start: datetime,
    stop: datetime,
    zone: str,
    samples: list[tuple[datetime, Wh]],
    parking: list[tuple[datetime, datetime]],
) -> tuple[Decimal, Decimal]:
    """Total cost (excl. VAT, incl. VAT) of the session; ``samples`` are (instant, energy register in Wh) in time
    order, ``parking`` lists [from, to) spans of not charging; a later tariff in ``tariffs`` takes over from an
    earlier one where both are in force."""
    tz = ZoneInfo(zone)
    times = [at for at, _ in samples]
    highs: list[Fraction] = []
    for _, wh in samples:
        highs.append(max([Fraction(wh), *highs[-1:]]))
    totals = _Totals()
    for t, until in itertools.pairwise(_cuts(tariffs, start, stop, samples, parking)):
        valid = _in_force(tariffs, t)
        if not valid:
            continue
        length = _seconds(until - t)
        i = bisect.bisect_right(times, t) - 1
        kwh, kw, wh_here = Fraction(0), Fraction(0), Fraction(0)
        if i >= 0:
            kwh = (highs[i] - highs[0]) / 1000
            if i + 1 < len(samples):
                span = _seconds(samples[i + 1][0] - samples[i][0])
                delta = highs[i + 1] - highs[i]
                kw = delta * Fraction(36, 10) / span  # Wh over seconds -> kW
                wh_here = delta * length / span
        local = t.astimezone(tz)
        ctx = {
            "minute_of_day": local.hour * 60 + local.minute,
            "date": local.date(),
            "kwh": kwh,
            "kw": kw,
            "seconds": _seconds(t - start),
        }
        parked = any(a <= t < b for a, b in parking)
        totals.add(valid[-1], ctx, {"ENERGY": wh_here, "PARKING_TIME" if parked else "TIME": length})
    total_excl, total_incl = totals.sums()
    at_start = _in_force(tariffs, start)
    bounds = at_start[-1] if at_start else tariffs[0]
    low, high = bounds.get("min_price"), bounds.get("max_price")
    if low is not None and total_excl < Fraction(str(low["excl_vat"])):
        total_excl = Fraction(str(low["excl_vat"]))
        total_incl = Fraction(str(low.get("incl_vat", low["excl_vat"])))
    if high is not None and total_excl > Fraction(str(high["excl_vat"])):
        total_excl = Fraction(str(high["excl_vat"]))
        total_incl = Fraction(str(high.get("incl_vat", high["excl_vat"])))
    digits = MINOR[tariffs[0]["currency"]]

    def rounded(x: Fraction) -> Decimal:
        return Decimal(math.floor(x * 10**digits + Fraction(1, 2))).scaleb(-digits)

    return rounded(total_excl), rounded(total_incl)


def minor_units(amount: Decimal, currency: str) -> int:
    """An amount in the currency's minor unit (cents for EUR)."""
    return int(amount.scaleb(MINOR[currency]))
