"""How long another process's main thread waited for a CPU while it was ready to run (Linux's
``/proc/PID/schedstat``: time on a CPU, time waiting on a run queue, in nanoseconds).

A test that bounds how long a process takes to do something (a graceful stop "at once", "within its grace")
asserts the product's own time: what it spent working, sleeping on its timers and waiting for its peers. On a
CI machine shared with other jobs, or with two CPU burners next to it, the same stop takes longer by the time
the scheduler kept the process off the CPU while it could have run. That time is measured here, for the
process's main thread (its event loop: where the stop's steps run one after the other), and taken off the
wall-clock figure; a stop that is slow by itself (a timer waited out, a lock, a slow step) stays as slow.
Where the kernel keeps no such figures, nothing is taken off.
"""

from __future__ import annotations

from pathlib import Path


class RunQueueWait:
    """``sample()`` while the process lives (the last sample before it exits counts); ``waited_s`` since the
    first sample."""

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/schedstat")
        self._first: int | None = None
        self._last: int | None = None
        self.sample()

    def sample(self) -> None:
        try:
            waited_ns = int(self._path.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return  # exited (or no schedstat): the last sample stands
        if self._first is None:
            self._first = waited_ns
        self._last = waited_ns

    @property
    def waited_s(self) -> float:
        if self._first is None or self._last is None:
            return 0.0
        return (self._last - self._first) / 1e9
