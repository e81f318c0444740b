"""A :class:`~csms.core.scheduler.Scheduler` a test moves by hand: time stands still until ``advance``."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ManualScheduler:
    def __init__(self, now: float) -> None:
        self._now = now
        self._queue: list[tuple[float, int, list[Any]]] = []
        self._order = itertools.count()
        self.db_jobs = 0

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, fn: Callable[[], None]) -> list[Any]:
        entry: list[Any] = [fn]
        heapq.heappush(self._queue, (max(when, self._now), next(self._order), entry))
        return entry

    def cancel(self, handle: list[Any]) -> None:
        handle[0] = None

    def run_db(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        self.db_jobs += 1
        then(work())

    def advance(self, until: float) -> None:
        """Run every callback due by ``until`` in time order, then stand at ``until``."""
        while self._queue and self._queue[0][0] <= until:
            when, _, entry = heapq.heappop(self._queue)
            self._now = when
            if entry[0] is not None:
                entry[0]()
        self._now = until

    def pending(self) -> list[float]:
        return sorted(when for when, _, entry in self._queue if entry[0] is not None)
