"""``deadline``: least laxity first.

Laxity is the slack a session has: time to departure minus the time it needs at its full rate. Pass 1
gives each session with a deadline, tightest first, the current that finishes it on time (at least its
minimum, else it pauses); pass 2 gives what is left, tightest first, up to each cap; sessions without a
departure or energy need then share the rest max-min fair.
"""

from __future__ import annotations

import math

import numpy as np

from csms.loadmgmt.state import Allocation, SiteState
from csms.loadmgmt.strategies._core import EPS, build_problem, fairness_pause_order, finalize, serve, to_allocation

NAME = "deadline"


def allocate(state: SiteState, now: float) -> Allocation:
    problem = build_problem(state, now)
    n = problem.n
    needed = np.zeros(n)
    laxity = np.full(n, math.inf)
    for i, s in enumerate(problem.sessions):
        remaining = s.remaining_wh
        if s.departure is None or remaining is None:
            continue
        full_w = problem.cap[i] * problem.watts_per_a[i]
        time_left = max(s.departure - now, 1.0)
        laxity[i] = time_left - (remaining * 3600.0 / full_w if full_w > 0 else math.inf)
        needed[i] = remaining * 3600.0 / time_left / problem.watts_per_a[i]
    has_deadline = np.isfinite(laxity) | (needed > 0)
    order = sorted((int(i) for i in np.flatnonzero(has_deadline)), key=lambda i: (laxity[i], problem.sessions[i].key))
    A, b, cap, floor = problem.A, problem.b, problem.cap, problem.floor
    x = np.zeros(n)
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
    for i in order:  # pass 2: the rest, tightest first
        room = min(cap[i] - x[i], headroom(i))
        if room <= EPS or (x[i] == 0 and room < floor[i] - EPS):
            continue
        x[i] += room
        slack -= A[:, i] * room
    fairness = fairness_pause_order(problem)
    pause = np.where(has_deadline, 0.0, n + 1.0) + fairness
    x = serve(problem, x, ~has_deadline, pause)
    return to_allocation(problem, finalize(problem, x, top_up=True, pause_order=pause), NAME)
