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

from csms.loadmgmt.state import Allocation, SiteState
from csms.loadmgmt.strategies._core import (
    EPS,
    Problem,
    build_problem,
    fairness_pause_order,
    finalize,
    serve,
    to_allocation,
)
from csms.loadmgmt.strategies._cost import flat_target_w, needs_now, under_level, under_peak

NAME = "deadline"
#: See :func:`_ahead_order`.
AHEAD_HYSTERESIS_S = 900.0


def allocate(state: SiteState, now: float) -> Allocation:
    problem = build_problem(state, now)
    n = problem.n
    tariff = state.tariff
    needs = needs_now(problem, now)
    needed, laxity, cheapest_now, has_deadline = needs.current_a, needs.laxity_s, needs.cheapest_now, needs.has_deadline
    laxities, sessions = laxity.tolist(), problem.sessions  # (Python floats: the same order as numpy's)
    order = sorted(np.flatnonzero(has_deadline).tolist(), key=lambda i: (laxities[i], sessions[i].key))
    demand = tariff is not None and tariff.demand_charge_per_kw > 0
    if demand:
        cheapest_now[:] = True  # with a demand charge, charging now up to a flat target lowers the peak to come
    ahead = _ahead_order(problem, order, needed, laxity) if demand else order
    x = _passes(problem, order, needed, cheapest_now, ahead)
    fairness = fairness_pause_order(problem)
    pause = np.where(has_deadline, 0.0, n + 1.0) + fairness
    x = serve(problem, x, ~has_deadline, pause)
    if demand:
        target_w = flat_target_w(problem, now)
        must = np.minimum(x, np.where(has_deadline, needed, 0.0))
        x = under_peak(problem, x, must, target_w)
        capped = under_level(problem, must, target_w)  # what scaling paused is topped up under the same level
        return to_allocation(problem, finalize(capped, x, top_up=True, pause_order=pause), NAME)
    return to_allocation(problem, finalize(problem, x, top_up=tariff is None, pause_order=pause), NAME)


def _ahead_order(problem: Problem, order: list[int], needed: np.ndarray, laxity: np.ndarray) -> list[int]:
    """Pass 2's order under a demand charge: tightest first, a session the last plan gave more than its need counted
    ``AHEAD_HYSTERESIS_S`` tighter. Under the level two sessions of about the same laxity took the extra in turns, a
    minute each (the one charging ahead gains laxity, the other is the tightest at the next plan): two profiles a
    minute for nothing."""
    # In Python floats: the same values, differences and order as numpy's scalars, without their cost per item.
    sessions, floors, needs, laxities = problem.sessions, problem.floor.tolist(), needed.tolist(), laxity.tolist()

    def key(i: int) -> tuple[float, tuple[str, int]]:
        ahead = sessions[i].allocated_a > max(needs[i], floors[i]) + EPS
        return (laxities[i] - AHEAD_HYSTERESIS_S if ahead else laxities[i], sessions[i].key)

    return sorted(order, key=key)


def _passes(
    problem: Problem, order: list[int], needed: np.ndarray, cheapest_now: np.ndarray, ahead: list[int]
) -> np.ndarray:
    """Pass 1 in ``order``, pass 2 in ``ahead``."""
    A, b = problem.A, problem.b
    # In Python floats: the same products, differences and quotients, row by row, as numpy's over the column,
    # without numpy's cost per call on a handful of rows (and per item on the columns).
    cap, floor, need, cheapest = problem.cap.tolist(), problem.floor.tolist(), needed.tolist(), cheapest_now.tolist()
    x = [0.0] * problem.n
    slack = b.tolist()
    columns = A.T.tolist()
    column = {i: columns[i] for i in order}
    rows_of = {i: [(r, a) for r, a in enumerate(column[i]) if a > 0] for i in order}

    def headroom(i: int) -> float:
        return _headroom(rows_of[i], slack)

    def draw(i: int, amps: float) -> None:
        for r, a in enumerate(column[i]):  # every row, zeros too (as numpy's: a -0.0 slack stays what it was)
            slack[r] -= a * amps

    for i in order:  # pass 1: what finishes each on time, tightest first
        if need[i] <= 0:
            continue
        want = min(cap[i], max(need[i], floor[i]))
        give = min(want, headroom(i))
        if give >= floor[i] - EPS:
            x[i] = give
            draw(i, give)
    for i in ahead:  # pass 2: the rest, tightest first (with a tariff: only where now is the cheapest)
        if not cheapest[i]:
            continue
        room = min(cap[i] - x[i], headroom(i))
        if room <= EPS or (x[i] == 0 and room < floor[i] - EPS):
            continue
        x[i] += room
        draw(i, room)
    return np.array(x, dtype=float)


def _headroom(rows: list[tuple[int, float]], slack: list[float]) -> float:
    """The smallest ``slack[r] / a`` of ``rows`` (inf: none): min() over them written out, the first of equal ones
    kept as min() keeps it (a generator per call cost more than its one or two rows)."""
    room = None
    for r, a in rows:
        q = slack[r] / a
        if room is None or q < room:
            room = q
    return math.inf if room is None else room
