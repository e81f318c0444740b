"""The site's utility tariff as an objective of every heuristic strategy (``optimal`` prices it in its LP).

Each session with a departure and an energy need is asked only for what cannot wait for a cheaper hour before
its departure; charging ahead happens only where now is as cheap as it gets before the departure; with a
demand charge, anything beyond what departures need stays under the billing period's peak so far (or the flat
import the night's remaining need allows, when that is higher). Strategies differ in who is served first
when the site is short (laxity, fairness, priority groups); the tariff decides how much is drawn now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from csms.loadmgmt.state import Tariff
from csms.loadmgmt.strategies._core import EPS, Problem, fill, finalize

#: The tariff is looked at in slices this long when a strategy asks what is cheaper later.
PRICE_SLICE_S = 900.0
#: A cost-aware plan means to be done this long before the departure.
FINISH_BEFORE_S = 900.0


@dataclass
class Needs:
    """Per session (the problem's order): the current [A] it must draw now, its laxity [s] (inf without a
    departure), whether now is as cheap as any time before its departure, and whether it has a deadline."""

    current_a: np.ndarray
    laxity_s: np.ndarray
    cheapest_now: np.ndarray
    has_deadline: np.ndarray


def needs_now(problem: Problem, now: float) -> Needs:
    """What each session must draw now: the even rate to its departure, or with a tariff only what the cheaper
    hours before the departure cannot hold."""
    n = problem.n
    tariff = problem.state.tariff
    needed = np.zeros(n)
    laxity = np.full(n, math.inf)
    cheapest_now = np.ones(n, dtype=bool)
    share_w = fair_share_w(problem) if tariff is not None else math.inf
    departures = [s.departure for s in problem.sessions if s.departure is not None]
    outlook = PriceOutlook(tariff, now, max(departures)) if tariff is not None and departures else None
    cap, watts_per_a = problem.cap.tolist(), problem.watts_per_a.tolist()  # the same values, as Python floats
    for i, s in enumerate(problem.sessions):
        remaining = s.remaining_wh
        if s.departure is None or remaining is None:
            continue
        full_w = cap[i] * watts_per_a[i]
        time_left = max(s.departure - now, 1.0)
        laxity[i] = time_left - (remaining * 3600.0 / full_w if full_w > 0 else math.inf)
        rate_w = remaining * 3600.0 / time_left
        if outlook is not None:
            rate_w, cheapest_now[i] = cost_aware_rate(outlook, s.departure, remaining, min(full_w, share_w))
        needed[i] = rate_w / watts_per_a[i]
    return Needs(needed, laxity, cheapest_now, np.isfinite(laxity) | (needed > 0))


def shape_for_cost(problem: Problem, x: np.ndarray, now: float, pause_order: np.ndarray) -> np.ndarray:
    """A fair or priority allocation ``x`` made cost-aware, then safe (:func:`finalize`): a session with a
    departure draws no more than it must now unless now is its cheapest time, and with a demand charge the rest
    stays under the peak — and what scaling to that level pushed under an EVSE's minimum (paused) is topped up
    under the same level, as ``deadline`` does, in the strategy's own ``pause_order`` (without it, needs under
    the minimum current each drew the minimum above the peak, or were scaled under it and paused). Under scarcity the
    strategy's own shares stand (a session never gets more than ``x`` gave it, but for that top-up). Without a
    tariff: ``x`` finalized with the work-conserving top-up."""
    tariff = problem.state.tariff
    if tariff is None:
        return finalize(problem, x, top_up=True, pause_order=pause_order)
    needs = needs_now(problem, now)
    if tariff.demand_charge_per_kw <= 0:
        must = np.where(needs.has_deadline, np.minimum(x, _at_least_floor(problem, needs.current_a)), 0.0)
        shaped = np.where(needs.has_deadline & ~needs.cheapest_now, must, x)
        return finalize(problem, shaped, top_up=False, pause_order=pause_order)
    # The level counts what departures need as such, not lifted to each EVSE's minimum: four cars that each need
    # a little would otherwise set a peak of four minimum currents; the top-up runs as many as the level holds.
    must = np.where(needs.has_deadline, np.minimum(x, needs.current_a), 0.0)
    target_w = flat_target_w(problem, now)
    capped = under_level(problem, must, target_w)
    return finalize(capped, under_peak(problem, x, must, target_w), top_up=True, pause_order=pause_order)


def _at_least_floor(problem: Problem, current_a: np.ndarray) -> np.ndarray:
    """A need below an EVSE's minimum current is met at the minimum (or not at all: none is zero)."""
    return np.where(current_a > 0, np.maximum(current_a, problem.floor), 0.0)


class PriceOutlook:
    """The tariff from ``now`` to the last departure in slices, computed once per plan: for any deadline, how
    long before it energy is cheaper than now, as cheap as now, and whether now is the cheapest."""

    def __init__(self, tariff: Tariff, now: float, until: float) -> None:
        self.now = now
        self.price_now = tariff.price_at(now)
        edges = np.arange(now, max(until, now) + PRICE_SLICE_S, PRICE_SLICE_S)
        self.slices = len(edges)
        mids = edges[:-1] + PRICE_SLICE_S / 2
        prices = np.array([tariff.price_at(float(t)) for t in mids])
        # Python floats (the same values): :meth:`before` is asked once per session and plan.
        cheaper = np.concatenate([[0.0], np.cumsum(prices < self.price_now - 1e-12)]) * PRICE_SLICE_S
        same = np.concatenate([[0.0], np.cumsum(np.abs(prices - self.price_now) <= 1e-12)]) * PRICE_SLICE_S
        self.cheaper: list[float] = cheaper.tolist()
        self.same: list[float] = same.tolist()

    def before(self, deadline: float) -> tuple[float, float]:
        """Seconds cheaper than now and as cheap as now from now until ``deadline`` (the slice the deadline falls
        in counted in part: whole slices only would shrink the window by up to a slice, and a must-rate near the
        departure would jump at every quarter hour)."""
        offset = max(0.0, deadline - self.now)
        k = min(int(offset // PRICE_SLICE_S), self.slices - 1)
        part = (offset - k * PRICE_SLICE_S) / PRICE_SLICE_S if k + 1 < self.slices else 0.0
        cheaper = self.cheaper[k] + part * (self.cheaper[k + 1] - self.cheaper[k]) if part else self.cheaper[k]
        same = self.same[k] + part * (self.same[k + 1] - self.same[k]) if part else self.same[k]
        return cheaper, same


def cost_aware_rate(outlook: PriceOutlook, departure: float, remaining_wh: float, full_w: float) -> tuple[float, bool]:
    """The power [W] a session must draw now so that what is left fits, at full power, into the hours before
    its departure that are cheaper than now; and whether now is as cheap as any time before it."""
    now = outlook.now
    if departure - now > 2 * FINISH_BEFORE_S:
        departure -= FINISH_BEFORE_S  # a plan that ends at the departure leaves a few Wh to rounding and deadbands
    cheaper_s, same_s = outlook.before(departure)
    must_now_wh = max(0.0, remaining_wh - full_w * cheaper_s / 3600.0)
    if must_now_wh <= 0.0:
        return 0.0, cheaper_s == 0.0
    window = same_s if same_s > 0 else max(departure - now, 1.0)
    return must_now_wh * 3600.0 / window, cheaper_s == 0.0


def fair_share_w(problem: Problem) -> float:
    """What each session could count on later if the grid connection were shared equally: the cheap hours
    hold no more than that, whatever one EVSE's rating (every session counting on the site at full power is
    how a fleet misses its departures)."""
    state = problem.state
    root = state.site.root
    limit_w = root.limit_kw * 1000.0 if root.limit_kw is not None else math.inf
    if root.phase_limits_a is not None:
        limit_w = min(limit_w, sum(root.phase_limits_a) * root.voltage)
    departures = [s.departure for s in problem.sessions if s.departure is not None]
    building_w = building_ahead_w(problem, max(departures, default=problem.now))
    return max(0.0, limit_w - building_w) / max(1, problem.n)


def building_ahead_w(problem: Problem, until: float) -> float:
    """The building's load from now until ``until`` [W]: the learnt profile's mean where it has been learnt
    (:mod:`csms.loadmgmt.forecast`), else the load of now held (its mean over the demand window when the state has
    it: a minute's noise is no forecast)."""
    state = problem.state
    forecast = state.building_forecast
    mean_a = None if forecast is None or until <= problem.now else forecast.mean_a(problem.now, until)
    if mean_a is None and state.building_billed_w is not None:
        return state.building_billed_w
    amps = float(np.sum(state.building_load_a)) if mean_a is None else mean_a
    return amps * state.site.root.voltage


def flat_target_w(problem: Problem, now: float) -> float:
    """The site's import if every session's remaining energy, and the energy of the vehicles on their way
    (``state.expected``), were spread evenly until the last departure: the lowest peak the night's need allows
    (the demand charge is paid on the peak, so a flat import is cheapest). Counting the vehicles still to come
    lets the early arrivals charge harder now instead of the peak being set when the last ones arrive."""
    state = problem.state
    needs: list[tuple[float, float]] = []
    for s in problem.sessions:
        if s.departure is not None and s.remaining_wh is not None:
            needs.append((s.remaining_wh, s.departure))
    needs += [(v.energy_needed_wh, v.departure) for v in state.expected if v.departure > now]
    if not needs:
        return 0.0
    horizon_s = max(max(departure for _, departure in needs) - now - FINISH_BEFORE_S, 900.0)
    need_w = sum(wh for wh, _ in needs) * 3600.0 / horizon_s
    return need_w + building_ahead_w(problem, now + horizon_s)


def under_peak(problem: Problem, x: np.ndarray, must: np.ndarray, target_w: float = 0.0) -> np.ndarray:
    """Share the extra above ``must`` (what deadlines need) so the site stays under its billing-period peak (or the
    flat target, when higher): max-min fair from ``must`` up, each session at most what ``x`` gave it (``x`` stands
    when it is under the level).

    Not ``x``'s extra scaled in proportion: ``deadline``'s least laxity first hands the extra to the tightest
    sessions up to the site's limit, and scaled down to the level it left the others (given their minimum for a need
    under it) below their minimum current, paused; a van paused a minute was the tightest the next, so each van was
    paused and resumed every few minutes all night (depot-night: 9,300 toggles)."""
    room_w = _level_w(problem, must, target_w) - _base_w(problem, must)
    extra_w = float(np.dot(x - must, problem.watts_per_a))
    if extra_w <= room_w + EPS or extra_w <= 0:
        return x
    level = under_level(problem, must, target_w)
    return fill(replace(level, cap=np.minimum(level.cap, x)), must, x > must + EPS)


def under_level(problem: Problem, must: np.ndarray, target_w: float) -> Problem:
    """The problem with one more limit: the site's import at most the level :func:`under_peak` keeps to. A
    strategy tops up under it what scaling left unused (EVSEs scaled below their minimum current are paused, and
    their share would otherwise be lost to the plan: the night's energy then comes later, at a higher peak)."""
    level_kw = (_level_w(problem, must, target_w) - _fixed_w(problem)) / 1000.0
    row = problem.watts_per_a.reshape(1, -1) / 1000.0
    return replace(
        problem, A=np.vstack([problem.A, row]), b=np.append(problem.b, level_kw), rows=[*problem.rows, "cost:kW"]
    )


def _fixed_w(problem: Problem) -> float:
    return problem.billed_fixed_w


def _base_w(problem: Problem, must: np.ndarray) -> float:
    return _fixed_w(problem) + float(np.dot(must, problem.watts_per_a))


def _level_w(problem: Problem, must: np.ndarray, target_w: float) -> float:
    return max(problem.state.peak_w, target_w, _base_w(problem, must))
