"""The plots of a virtual-time run drawn in a forked process, on the machine's other core.

``sim run`` spends its fixed cost after the simulated night on the report (the offline optimum, the CSMS's
records, ``report.json``) and on three PNGs (matplotlib: ~0.25 s to import, ~0.45 s to draw a depot night).
A child forked before the run imports :mod:`simulator.plots` while the parent imports the runner and simulates,
then draws each plot as soon as the parent sends its data, while the parent builds the report. The same
functions with the same arguments write the same files; only the process that runs them changes.

Without ``os.fork``, on one CPU, or when the process already runs other threads (a fork copies only the calling
thread, and a lock another thread holds stays held in the child), the plots are drawn in the process itself.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from queue import SimpleQueue
from typing import IO, Any, Protocol


class Plotter(Protocol):
    def draw(self, name: str, *args: Any) -> None:
        """Call ``simulator.plots.<name>(*args)``, here or elsewhere; ``finish`` says when all are written."""
        ...


class InlinePlotter:
    """Draws in this process, when asked."""

    def draw(self, name: str, *args: Any) -> None:
        from simulator import plots  # matplotlib: only when a plot is drawn

        getattr(plots, name)(*args)


class PlotProcessFailed(RuntimeError):
    pass


class ForkedPlotter:
    """A child process that draws what it is sent, in order; it reports the first failure at :meth:`finish`."""

    def __init__(self, pid: int, jobs: IO[bytes], outcome: IO[bytes]) -> None:
        self.pid, self._jobs, self._outcome = pid, jobs, outcome
        self._broken = False

    @classmethod
    def start(cls) -> ForkedPlotter:
        jobs_read, jobs_write = os.pipe()
        outcome_read, outcome_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(jobs_write)
            os.close(outcome_read)
            _serve(os.fdopen(jobs_read, "rb"), os.fdopen(outcome_write, "wb"))
        os.close(jobs_read)
        os.close(outcome_write)
        return cls(pid, os.fdopen(jobs_write, "wb"), os.fdopen(outcome_read, "rb"))

    def draw(self, name: str, *args: Any) -> None:
        if self._broken:
            return
        try:
            pickle.dump((name, args), self._jobs, protocol=pickle.HIGHEST_PROTOCOL)
            self._jobs.flush()
        except BrokenPipeError:  # the child is gone: finish() says how it ended
            self._broken = True

    def finish(self) -> None:
        """Wait until every plot sent is written; raises :class:`PlotProcessFailed` if one was not."""
        self._close_jobs()
        failure = self._outcome.read().decode()
        self._outcome.close()
        status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        if failure or status != 0:
            raise PlotProcessFailed(failure or f"the plot process ended with status {status}")

    def abandon(self) -> None:
        """The run failed: stop the child without waiting for its plots."""
        self._close_jobs()
        self._outcome.close()
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)

    def _close_jobs(self) -> None:
        with suppress(BrokenPipeError):
            self._jobs.close()


def _serve(jobs: IO[bytes], outcome: IO[bytes]) -> None:
    """The child: import the plots, draw each job until the parent closes the pipe, report, exit without
    running anything of the parent's (atexit handlers, buffered output it copied at the fork)."""
    failure = ""
    try:
        received = _read_ahead(jobs)
        from simulator import plots

        for name, args in received:
            if not failure:  # after a failure keep reading, so that the parent never blocks on a full pipe
                try:
                    getattr(plots, name)(*args)
                except Exception:
                    failure = traceback.format_exc()
    except BaseException:
        failure = failure or traceback.format_exc()
    try:
        outcome.write(failure.encode())
        outcome.flush()
    finally:
        os._exit(1 if failure else 0)


def _read_ahead(jobs: IO[bytes]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The jobs in the order sent, each read off the pipe by a thread as soon as it is written. A job is larger
    than the pipe's buffer (a depot night's SoC series: ~0.5 MB), so a child that read one only when it was done
    drawing the one before would keep the parent waiting in ``draw`` instead of building its report."""
    queue: SimpleQueue[tuple[str, tuple[Any, ...]] | BaseException | None] = SimpleQueue()

    def read() -> None:
        try:
            while True:
                queue.put(pickle.load(jobs))
        except EOFError:
            queue.put(None)
        except BaseException as exc:  # handed to the drawing thread, which reports it
            queue.put(exc)

    threading.Thread(target=read, name="plot-jobs", daemon=True).start()

    def received() -> Iterator[tuple[str, tuple[Any, ...]]]:
        while (job := queue.get()) is not None:
            if isinstance(job, BaseException):
                raise job
            yield job

    return received()


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def plotter() -> Iterator[Plotter]:
    """A plotter for one run: forked when that can help, else inline. On leaving, every plot is written (or the
    child's failure raised); if the block raised, the child is stopped."""
    if not hasattr(os, "fork") or _cpus() < 2 or threading.active_count() > 1:
        yield InlinePlotter()
        return
    forked = ForkedPlotter.start()
    try:
        yield forked
    except BaseException:
        forked.abandon()
        raise
    forked.finish()
