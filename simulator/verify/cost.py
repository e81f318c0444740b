"""What the site's grid import cost, from the twin's meter and the scenario's utility tariff: energy at the
time-of-use price of each step, plus the demand charge on the run's peak 15-minute average import (the
billing-period peak utilities charge on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from csms.loadmgmt.state import Tariff
from simulator.scenario.models import UtilityTariff
from simulator.twin.site_meter import MeterStep

DEMAND_WINDOW_S = 900.0


def tariff_of(spec: UtilityTariff, zone: str | None) -> Tariff:
    periods = tuple((int(p.from_[:2]) * 3600.0 + int(p.from_[3:]) * 60.0, p.price) for p in spec.periods)
    return Tariff(periods=periods, demand_charge_per_kw=spec.demand_charge_per_kw, zone=zone or "UTC")


def peak_window_kw(log: Sequence[MeterStep]) -> float:
    """The highest average import over any 15-minute window aligned to the run's start."""
    windows: dict[int, float] = {}
    for s in log:
        t, end = s.t_s, s.t_s + s.duration_s
        while t < end:
            w = int(t // DEMAND_WINDOW_S)
            cut = min(end, (w + 1) * DEMAND_WINDOW_S)
            windows[w] = windows.get(w, 0.0) + s.import_kw * (cut - t)
            t = cut
    return max((kws / DEMAND_WINDOW_S for kws in windows.values()), default=0.0)


def section(log: Sequence[MeterStep], spec: UtilityTariff, zone: str | None, epoch: float) -> dict[str, Any]:
    tariff = tariff_of(spec, zone)
    energy_cost = sum(
        s.import_kw * s.duration_s / 3600.0 * tariff.price_at(epoch + s.t_s + s.duration_s / 2) for s in log
    )
    peak = peak_window_kw(log)
    demand_cost = peak * spec.demand_charge_per_kw
    return {
        "currency": spec.currency,
        "import_kwh": round(sum(s.import_kw * s.duration_s for s in log) / 3600.0, 3),
        "energy_cost": round(energy_cost, 2),
        "peak_15min_kw": round(peak, 3),
        "demand_charge": round(demand_cost, 2),
        "total_cost": round(energy_cost + demand_cost, 2),
    }
