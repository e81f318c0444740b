"""What the site's grid import cost, from the twin's meter and the scenario's utility tariff: energy at the
time-of-use price of each step, plus the demand charge on the run's peak 15-minute average import (the
billing-period peak utilities charge on)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from csms.loadmgmt.state import Tariff
from simulator.scenario.models import UtilityTariff
from simulator.twin.records import SessionRecord
from simulator.twin.site_meter import MeterStep
from simulator.verify.optimum import Constraints, LimitStep, curtail, limits_from_meter_log

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


def section(
    world: Any, site: Any, spec: UtilityTariff, zone: str | None, epoch: float,
    curtailed: Sequence[tuple[float, float, float]] = (),
) -> dict[str, Any]:  # fmt: skip
    """The run's bill beside two others for the same sessions (each car given what it received in the run):
    uncontrolled charging, and the cost-optimal plan with perfect foresight; ``savings_fraction`` is the share
    of the possible savings the run reached."""
    log = world.ground_truth
    tariff = tariff_of(spec, zone)
    energy_cost = sum(
        s.import_kw * s.duration_s / 3600.0 * tariff.price_at(epoch + s.t_s + s.duration_s / 2) for s in log
    )
    peak = peak_window_kw(log)
    demand_cost = peak * spec.demand_charge_per_kw
    total = energy_cost + demand_cost
    sessions = world.session_records()
    limits = limits_from_meter_log(log, phase_limits_a=site.phase_limits_a, voltage=site.voltage)
    limits = [curtail(step, log_step, curtailed) for step, log_step in zip(limits, log, strict=True)]
    baseline = float(uncontrolled_cost(sessions, log, tariff, epoch))
    best = cost_optimum(sessions, log, tariff, epoch, limits)
    possible = None if best is None else baseline - best
    return {
        "currency": spec.currency,
        "import_kwh": round(sum(s.import_kw * s.duration_s for s in log) / 3600.0, 3),
        "energy_cost": round(float(energy_cost), 2),
        "peak_15min_kw": round(float(peak), 3),
        "demand_charge": round(demand_cost, 2),
        "total_cost": round(total, 2),
        "uncontrolled_cost": round(baseline, 2),
        "cost_optimal": None if best is None else round(best, 2),  # None: the run broke the site's limits
        "savings_fraction": None
        if possible is None
        else round((baseline - total) / possible, 4)
        if possible > 1e-6
        else 1.0,
    }


# ---- what the same sessions could have cost --------------------------------------------------------------------
def uncontrolled_cost(
    sessions: Sequence[tuple[SessionRecord, float]], log: Sequence[MeterStep], tariff: Tariff, epoch: float
) -> float:
    """The bill had every car charged at its full power from plug-in until it had what it received in the run
    (no load management, no grid limit): the baseline savings are measured from."""
    ev_kw = np.zeros(len(log))
    for s, received_kwh in sessions:
        left = received_kwh
        for k, step in enumerate(log):
            if left <= 1e-9:
                break
            start, end = max(step.t_s, s.plug_in_s), min(step.t_s + step.duration_s, s.departure_s)
            if end <= start:
                continue
            kwh = min(left, s.max_kw * (end - start) / 3600.0)
            ev_kw[k] += kwh * 3600.0 / step.duration_s
            left -= kwh
    shifted = [replace_import(step, step.building_kw + ev_kw[k]) for k, step in enumerate(log)]
    return _bill(shifted, tariff, epoch)


def cost_optimum(
    sessions: Sequence[tuple[SessionRecord, float]], log: Sequence[MeterStep], tariff: Tariff, epoch: float,
    limits: Sequence[LimitStep],
) -> float | None:  # fmt: skip
    """The cheapest bill with perfect foresight that gives every car what it received in the run under the
    site's limits: a linear program (HiGHS) over the 15-minute windows the demand charge is measured on
    (energy per car and window, the window's energy within what the site's limits allowed over it, each
    window at its price, the demand charge on the highest window). Windows are a relaxation of the per-step
    limits, so the bound is if anything optimistic: the run's savings fraction is not flattered."""
    from scipy.optimize import linprog

    windows = _windows(log, limits)
    n, c = len(sessions), len(windows)
    if n == 0 or c == 0:
        return _bill(log, tariff, epoch)
    width = n * c + 1  # e[s, w] (kWh), then P (kW)
    plugged = np.array(
        [[max(0.0, min(w.end, r.departure_s) - max(w.start, r.plug_in_s)) / 3600.0 for w in windows]
         for r, _ in sessions]
    )  # fmt: skip
    rows, equal = Constraints(), Constraints()
    for i, (_, received) in enumerate(sessions):
        equal.add(((i * c + k, 1.0) for k in range(c)), received)
    for k, w in enumerate(windows):
        if math.isfinite(w.ev_kwh_max):
            rows.add(((i * c + k, 1.0) for i in range(n)), max(0.0, w.ev_kwh_max))
        hours = (w.end - w.start) / 3600.0
        rows.add([*((i * c + k, 1.0 / hours) for i in range(n)), (n * c, -1.0)], -w.building_kwh / hours)
    price = np.array([tariff.price_at(epoch + (w.start + w.end) / 2) for w in windows])
    cost = np.concatenate([np.repeat(price[None, :], n, axis=0).ravel(), [tariff.demand_charge_per_kw]])
    ub = np.concatenate([(np.array([r.max_kw for r, _ in sessions])[:, None] * plugged).ravel(), [math.inf]])
    result = linprog(  # type: ignore[call-overload]
        cost, A_ub=rows.matrix(width), b_ub=np.array(rows.rhs), A_eq=equal.matrix(width), b_eq=np.array(equal.rhs),
        bounds=np.column_stack([np.zeros(width), ub]), method="highs",
    )  # fmt: skip
    if result.status == 2:  # infeasible: the run gave the cars more than the site's limits allowed (it broke them)
        return None
    if result.status != 0 or result.x is None:
        raise RuntimeError(f"cost optimum LP failed: {result.message}")
    return float(result.fun) + float(np.dot(price, [w.building_kwh for w in windows]))


@dataclasses.dataclass(frozen=True)
class _Window:
    start: float
    end: float
    building_kwh: float
    ev_kwh_max: float  # what the site's kW limit left the EVs over the window (inf: no kW limit)


def _windows(log: Sequence[MeterStep], limits: Sequence[LimitStep]) -> list[_Window]:
    grouped: dict[int, list[int]] = {}
    for k, st in enumerate(log):
        grouped.setdefault(int(st.t_s // DEMAND_WINDOW_S), []).append(k)
    out = []
    for cells in grouped.values():
        hours = [log[k].duration_s / 3600.0 for k in cells]
        building = sum(log[k].building_kw * h for k, h in zip(cells, hours, strict=True))
        caps = [limits[k].limit_kw for k in cells if k < len(limits)]
        ev_max = (
            math.inf
            if any(c is None for c in caps) or not caps
            else sum((c or 0.0) * h for c, h in zip(caps, hours, strict=True))
        )
        out.append(_Window(log[cells[0]].t_s, log[cells[-1]].t_s + log[cells[-1]].duration_s, building, ev_max))
    return out


def replace_import(step: MeterStep, import_kw: float) -> MeterStep:
    return dataclasses.replace(step, import_kw=import_kw, ev_kw=import_kw - step.building_kw)


def _bill(log: Sequence[MeterStep], tariff: Tariff, epoch: float) -> float:
    energy = sum(s.import_kw * s.duration_s / 3600.0 * tariff.price_at(epoch + s.t_s + s.duration_s / 2) for s in log)
    return energy + peak_window_kw(log) * tariff.demand_charge_per_kw
