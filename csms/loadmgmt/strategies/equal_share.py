"""``equal_share``: max-min fair. Every plugged EVSE rises together until its cap or a tight limit; when
there is not enough for everyone's minimum current, those with the most energy so far pause first."""

from __future__ import annotations

from csms.loadmgmt.state import Allocation, SiteState
from csms.loadmgmt.strategies._core import build_problem, fairness_pause_order, serve, to_allocation
from csms.loadmgmt.strategies._cost import shape_for_cost

NAME = "equal_share"


def allocate(state: SiteState, now: float) -> Allocation:
    problem = build_problem(state, now)
    order = fairness_pause_order(problem)
    x = serve(problem, problem.cap * 0.0, problem.all(), order)
    return to_allocation(problem, shape_for_cost(problem, x, now, order), NAME)
