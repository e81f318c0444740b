"""``deadline``: least laxity first.

Laxity is the slack a session has: time to departure minus the time it needs at its full rate. Pass 1
gives each session with a deadline, tightest first, the current that finishes it on time (at least its
minimum, else it pauses); pass 2 gives what is left, tightest first, up to each cap; sessions without a
departure or energy need then share the rest max-min fair.

With the site's utility tariff (``state.tariff``) energy cost becomes part of the plan: pass 1 asks only for
what cannot wait for a cheaper hour before the departure (the rest is left to those hours), pass 2 charges
ahead only where now is as cheap as it gets before the departure, and with a demand charge the extra of pass
2 and of the sessions without a deadline never lifts the site above the billing period's peak so far. Without
a tariff the plan is as above, unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from csms.loadmgmt.state import Allocation, SiteState, Tariff
from csms.loadmgmt.strategies._core import (
    EPS,
    Problem,
    build_problem,
    fairness_pause_order,
    finalize,
    serve,
    to_allocation,
)

NAME = "deadline"
#: The tariff is looked at in slices this long when a strategy asks what is cheaper later.
PRICE_SLICE_S = 900.0
#: A cost-aware plan means to be done this long before the departure.
FINISH_BEFORE_S = 900.0


def allocate(state: SiteState, now: float) -> Allocation:
    problem = build_problem(state, now)
    n = problem.n
    tariff = state.tariff
    needed = np.zeros(n)
    laxity = np.full(n, math.inf)
    cheapest_now = np.ones(n, dtype=bool)
    share_w = _fair_share_w(problem) if tariff is not None else math.inf
    departures = [s.departure for s in problem.sessions if s.departure is not None]
    outlook = _PriceOutlook(tariff, now, max(departures)) if tariff is not None and departures else None
    for i, s in enumerate(problem.sessions):
        remaining = s.remaining_wh
        if s.departure is None or remaining is None:
            continue
        full_w = problem.cap[i] * problem.watts_per_a[i]
        time_left = max(s.departure - now, 1.0)
        laxity[i] = time_left - (remaining * 3600.0 / full_w if full_w > 0 else math.inf)
        rate_w = remaining * 3600.0 / time_left
        if outlook is not None:
            rate_w, cheapest_now[i] = _cost_aware_rate(outlook, s.departure, remaining, min(full_w, share_w))
        needed[i] = rate_w / problem.watts_per_a[i]
    has_deadline = np.isfinite(laxity) | (needed > 0)
    order = sorted((int(i) for i in np.flatnonzero(has_deadline)), key=lambda i: (laxity[i], problem.sessions[i].key))
    demand = tariff is not None and tariff.demand_charge_per_kw > 0
    if demand:
        cheapest_now[:] = True  # with a demand charge, charging now up to a flat target lowers the peak to come
    x = _passes(problem, order, needed, cheapest_now)
    fairness = fairness_pause_order(problem)
    pause = np.where(has_deadline, 0.0, n + 1.0) + fairness
    x = serve(problem, x, ~has_deadline, pause)
    if demand:
        target_w = _flat_target_w(problem, now)
        x = _under_peak(problem, x, np.minimum(x, np.where(has_deadline, needed, 0.0)), target_w)
    return to_allocation(problem, finalize(problem, x, top_up=tariff is None, pause_order=pause), NAME)


def _passes(problem: Problem, order: list[int], needed: np.ndarray, cheapest_now: np.ndarray) -> np.ndarray:
    A, b, cap, floor = problem.A, problem.b, problem.cap, problem.floor
    x = np.zeros(problem.n)
    slack = b.copy()

    def headroom(i: int) -> float:
        col = A[:, i]
        on = col > 0
        return float(np.min(slack[on] / col[on])) if on.any() else math.inf

    for i in order:  # pass 1: what finishes each on time, tightest first
        if needed[i] <= 0:
            continue
        want = min(cap[i], max(needed[i], floor[i]))
        give = min(want, headroom(i))
        if give >= floor[i] - EPS:
            x[i] = give
            slack -= A[:, i] * give
    for i in order:  # pass 2: the rest, tightest first (with a tariff: only where now is the cheapest)
        if not cheapest_now[i]:
            continue
        room = min(cap[i] - x[i], headroom(i))
        if room <= EPS or (x[i] == 0 and room < floor[i] - EPS):
            continue
        x[i] += room
        slack -= A[:, i] * room
    return x


class _PriceOutlook:
    """The tariff from ``now`` to the last departure in slices, computed once per plan: for any deadline, how
    long before it energy is cheaper than now, as cheap as now, and whether now is the cheapest."""

    def __init__(self, tariff: Tariff, now: float, until: float) -> None:
        self.now = now
        self.price_now = tariff.price_at(now)
        edges = np.arange(now, max(until, now) + PRICE_SLICE_S, PRICE_SLICE_S)
        self.edges = edges
        mids = edges[:-1] + PRICE_SLICE_S / 2
        prices = np.array([tariff.price_at(float(t)) for t in mids])
        self.cheaper = np.concatenate([[0.0], np.cumsum(prices < self.price_now - 1e-12)]) * PRICE_SLICE_S
        self.same = np.concatenate([[0.0], np.cumsum(np.abs(prices - self.price_now) <= 1e-12)]) * PRICE_SLICE_S

    def before(self, deadline: float) -> tuple[float, float]:
        """Seconds cheaper than now and as cheap as now from now until ``deadline``."""
        k = min(int((deadline - self.now) // PRICE_SLICE_S), len(self.edges) - 1)
        return float(self.cheaper[max(k, 0)]), float(self.same[max(k, 0)])


def _cost_aware_rate(
    outlook: _PriceOutlook, departure: float, remaining_wh: float, full_w: float
) -> tuple[float, bool]:
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


def _fair_share_w(problem: Problem) -> float:
    """What each session could count on later if the grid connection were shared equally: the cheap hours
    hold no more than that, whatever one EVSE's rating (every session counting on the site at full power is
    how a fleet misses its departures)."""
    state = problem.state
    root = state.site.root
    limit_w = root.limit_kw * 1000.0 if root.limit_kw is not None else math.inf
    if root.phase_limits_a is not None:
        limit_w = min(limit_w, sum(root.phase_limits_a) * root.voltage)
    building_w = float(np.sum(state.building_load_a)) * root.voltage
    return max(0.0, limit_w - building_w) / max(1, problem.n)


def _flat_target_w(problem: Problem, now: float) -> float:
    """The site's import if every session's remaining energy were spread evenly until the last departure: the
    lowest peak the night's need allows (the demand charge is paid on the peak, so a flat import is cheapest)."""
    state = problem.state
    sessions = [s for s in problem.sessions if s.departure is not None and s.remaining_wh is not None]
    if not sessions:
        return 0.0
    horizon_s = max(max(s.departure for s in sessions if s.departure is not None) - now - FINISH_BEFORE_S, 900.0)
    need_w = sum(s.remaining_wh or 0.0 for s in sessions) * 3600.0 / horizon_s
    return need_w + float(np.sum(state.building_load_a)) * state.site.root.voltage


def _under_peak(problem: Problem, x: np.ndarray, must: np.ndarray, target_w: float = 0.0) -> np.ndarray:
    """Scale the extra above ``must`` (what deadlines need) so the site stays under its billing-period peak (or
    the flat target, when higher)."""
    state = problem.state
    fixed_w = float(np.sum(state.building_load_a)) * state.site.root.voltage
    fixed_w += sum(state.site.evse(k).power_w(a) for k, a in state.reserved_a.items() if k in state.site.index)
    base_w = fixed_w + float(np.dot(must, problem.watts_per_a))
    extra_w = float(np.dot(x - must, problem.watts_per_a))
    room_w = max(state.peak_w, target_w, base_w) - base_w
    if extra_w <= room_w + EPS or extra_w <= 0:
        return x
    scaled: np.ndarray = must + (x - must) * (room_w / extra_w)
    return scaled
