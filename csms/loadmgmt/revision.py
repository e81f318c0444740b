"""A count of the changes to what load management's alarm and stored forecasts are computed from.

The plugin asks the manager for its next deadline and for the forecasts to store after every committed report
(56,225 times a depot night), and most reports change neither. Whatever can move them bumps the one counter the
manager shares with its planners and their trackers: a plan made (its time), a demand-response limit, a slot
that failed or stopped failing, a building-load reading (the forecast), a site planned or dropped. The plugin
asks again only when the count moved.
"""

from __future__ import annotations


class Revision:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def bump(self) -> None:
        self.count += 1
