"""The :class:`~csms.core.scheduler.Scheduler` of virtual time: SimPy's environment.

POSIX time is ``epoch + env.now``. A callback due now runs after the events already scheduled for this
instant (SimPy breaks ties by insertion order), which is what lets the embedded CSMS gather every frame of
one instant into one group commit. Database work runs inline: nothing else runs in virtual time meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import simpy

T = TypeVar("T")


class _Call:
    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn, self.cancelled = fn, False

    def __call__(self, _event: simpy.Event) -> None:
        if not self.cancelled:
            self.fn()


class SimPyScheduler:
    def __init__(self, env: simpy.Environment, epoch: float) -> None:
        self.env, self.epoch = env, float(epoch)

    def now(self) -> float:
        return self.epoch + self.env.now  # the epoch is a float, so the sum is one even at SimPy's initial 0

    def call_at(self, when: float, fn: Callable[[], None]) -> _Call:
        call = _Call(fn)
        self.env.timeout(max(0.0, when - self.now())).callbacks.append(call)
        return call

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> _Call:
        return self.call_at(self.now() + delay_s, fn)

    def cancel(self, handle: _Call) -> None:
        handle.cancelled = True

    def run_db(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        then(work())
