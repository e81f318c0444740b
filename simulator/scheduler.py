"""The :class:`~csms.core.scheduler.Scheduler` of virtual time: SimPy's environment.

POSIX time is ``epoch + env.now``. A callback due now runs after the events already scheduled for this
instant (SimPy breaks ties by insertion order), which is what lets the embedded CSMS gather every frame of
one instant into one group commit. Database work runs inline: nothing else runs in virtual time meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import simpy
from simpy.events import NORMAL

T = TypeVar("T")


def _run(call: _Call) -> None:
    if not call.cancelled:
        call.fn()


#: Every call's list of callbacks: one shared tuple (SimPy only iterates it, then sets the event's to None).
_RUN = (_run,)


class _Call:
    """A callback due at an instant, scheduled as its own SimPy event: what a ``Timeout`` with the callback
    appended would be, without the ``Timeout``'s own fields and list (the twin schedules one per alarm and
    per frame in transit). SimPy's ``step`` reads only ``callbacks`` and ``_ok`` of an event."""

    __slots__ = ("callbacks", "cancelled", "fn")
    _ok = True

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn, self.cancelled = fn, False
        self.callbacks: Any = _RUN


class SimPyScheduler:
    def __init__(self, env: simpy.Environment, epoch: float) -> None:
        self.env, self.epoch = env, float(epoch)

    def now(self) -> float:
        return self.epoch + self.env.now  # the epoch is a float, so the sum is one even at SimPy's initial 0

    def call_at(self, when: float, fn: Callable[[], None]) -> _Call:
        call = _Call(fn)
        # The key, hence the order among simultaneous events, that ``env.timeout(delay)`` would have had.
        self.env.schedule(call, NORMAL, max(0.0, when - self.now()))  # type: ignore[arg-type]  # an Event in all SimPy reads
        return call

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> _Call:
        return self.call_at(self.now() + delay_s, fn)

    def cancel(self, handle: _Call) -> None:
        handle.cancelled = True

    def run_db(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        then(work())
