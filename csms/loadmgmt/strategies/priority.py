"""``priority``: token groups in the site's order (e.g. fleet before guests). Each group is served
max-min fair from what the groups before it left; sessions of groups the site does not list come last."""

from __future__ import annotations

import numpy as np

from csms.loadmgmt.state import Allocation, SiteState
from csms.loadmgmt.strategies._core import build_problem, fairness_pause_order, serve, to_allocation
from csms.loadmgmt.strategies._cost import shape_for_cost

NAME = "priority"


def allocate(state: SiteState, now: float) -> Allocation:
    problem = build_problem(state, now)
    groups = state.site.priority_groups
    level = np.array([groups.index(s.group) if s.group in groups else len(groups) for s in problem.sessions])
    fairness = fairness_pause_order(problem)
    # Pausing: lowest-priority group first, then the fairness order within it.
    order = level * (problem.n + 1) + fairness
    x = problem.cap * 0.0
    for g in range(len(groups) + 1):
        x = serve(problem, x, level == g, order)
    return to_allocation(problem, shape_for_cost(problem, x, now, order), NAME)
