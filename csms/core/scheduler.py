"""The clock a sans-IO core is driven by, and the one way to arm a timer at a core's next deadline.

Cores never read the wall clock or sleep: they answer "when do you next need me?" (``next_deadline()``) and
are called back then (``handle_timer(now)``). A :class:`Scheduler` is what the shell injects to make that
happen: SimPy's environment in virtual time (:mod:`simulator.scheduler`), the asyncio loop in real time
(:mod:`csms.gateway.scheduler`). It also runs database work: on a worker thread in real time, so the loop
that holds the sockets never waits for a commit; inline in virtual time, where nothing else runs meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Timers(Protocol):
    """A clock with callbacks: all a sans-IO core's deadlines need (the twin's chargers need no more)."""

    def now(self) -> float:
        """The present instant, POSIX seconds."""
        ...

    def call_at(self, when: float, fn: Callable[[], None]) -> Any:
        """Call ``fn`` at ``when`` (at once, after the callbacks already due, when ``when`` is past).
        Returns a handle for :meth:`cancel`."""
        ...

    def cancel(self, handle: Any) -> None: ...


class Scheduler(Timers, Protocol):
    """Timers, and database work off the clock's thread: what the CSMS host needs."""

    def run_db(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        """Run ``work`` (blocking database work) off the clock's thread, then ``then(result)`` back on it.

        Jobs run one at a time in the order given. A job that raises is logged and its ``then`` not called.
        """
        ...


class Alarm:
    """One timer per deadline owner: :meth:`arm` it with the owner's next deadline whenever that may have
    moved; it calls ``fire`` once at that time.

    A pending alarm that rings no later than a new deadline is kept (the owner re-arms after it fires, so an
    early ring is harmless), and ``None`` keeps what is pending: owners call this after every input, and
    most inputs do not move the deadline earlier. :meth:`disarm` cancels for good (a closed connection).

    Slotted, and a subclass may override :meth:`fire` instead of passing a callback: the host keeps one per held
    connection (tens of thousands), where a closure each would cost more than the alarm itself.
    """

    __slots__ = ("_fire", "_handle", "at", "scheduler")

    def __init__(self, scheduler: Timers, fire: Callable[[], None] | None = None) -> None:
        self.scheduler, self._fire = scheduler, fire
        self.at: float | None = None
        self._handle: Any = None

    def fire(self) -> None:
        """What happens at the deadline: the callback given (subclasses override this instead)."""
        assert self._fire is not None
        self._fire()

    def arm(self, deadline: float | None) -> None:
        if deadline is None:
            return
        if self.at is not None and self.at <= deadline and self.at >= self.scheduler.now():
            return
        if self._handle is not None:
            self.scheduler.cancel(self._handle)
        self.at = deadline
        self._handle = self.scheduler.call_at(deadline, self._ring)

    def disarm(self) -> None:
        if self._handle is not None:
            self.scheduler.cancel(self._handle)
        self.at = self._handle = None

    def _ring(self) -> None:
        self.at = self._handle = None
        self.fire()
