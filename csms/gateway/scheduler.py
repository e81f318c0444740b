"""The :class:`~csms.core.scheduler.Scheduler` of real time: the asyncio loop and the wall clock.

Database work runs on one worker thread, jobs in the order given, and its result is handed back on the
loop: the loop that holds thousands of sockets never waits for a commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncioScheduler:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csms-db")
        self._jobs: set[Future[Any]] = set()

    def now(self) -> float:
        return self._clock()

    def call_at(self, when: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_at(loop.time() + max(0.0, when - self._clock()), fn)

    def cancel(self, handle: asyncio.TimerHandle) -> None:
        handle.cancel()

    def run_db(self, work: Callable[[], T], then: Callable[[T], None]) -> None:
        loop = asyncio.get_running_loop()
        job = self._db.submit(work)
        self._jobs.add(job)

        def back_on_the_loop(done: Future[T]) -> None:
            self._jobs.discard(done)
            if done.cancelled():
                return
            error = done.exception()
            if error is not None:
                log.error("database job failed", exc_info=error)
                return
            then(done.result())

        job.add_done_callback(lambda done: loop.call_soon_threadsafe(back_on_the_loop, done))

    async def idle(self) -> None:
        """Wait until every database job handed in so far has run and handed back its result."""
        while self._jobs:
            await asyncio.wait([asyncio.wrap_future(job) for job in list(self._jobs)])
            await asyncio.sleep(0)

    def shutdown(self) -> None:
        self._db.shutdown(wait=True)
