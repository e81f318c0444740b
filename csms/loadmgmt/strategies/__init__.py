"""Allocation strategies, chosen per site by name. Each is ``allocate(state: SiteState, now) -> Allocation``;
``none`` means the site is not managed (the planner sends nothing)."""

from __future__ import annotations

from csms.loadmgmt.strategies import deadline, equal_share, optimal, priority
from csms.loadmgmt.strategies._core import Strategy

STRATEGIES: dict[str, Strategy | None] = {
    "none": None,
    "equal_share": equal_share.allocate,
    "priority": priority.allocate,
    "deadline": deadline.allocate,
    "optimal": optimal.allocate,
}

__all__ = ["STRATEGIES", "Strategy", "get"]


def get(name: str) -> Strategy | None:
    """Raises KeyError naming the known strategies."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}") from None
