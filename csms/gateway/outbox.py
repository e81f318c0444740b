"""The loop of every outbox sender (webhook deliveries, OCPI pushes): rows committed with the change that caused
them are sent by a round of :meth:`OutboxWorker.deliver_due`, run when woken (something was just queued) or
every ``poll_s``; the round's database work goes to one thread of its own, so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


class OutboxWorker:
    """Subclasses send one round in :meth:`deliver_due` and release what they hold in :meth:`close`."""

    def __init__(self, session_factory: sessionmaker[Session], *, name: str, poll_s: float) -> None:
        self.session_factory = session_factory
        self.name = name
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def start(self) -> None:
        """Run the loop: a round on a wake-up or every ``poll_s``."""
        self._loop_task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.close()
        self._db.shutdown(wait=True)

    def wake(self) -> None:
        """Something was queued and committed: send it now rather than at the next poll."""
        self._wake.set()

    async def deliver_due(self) -> int:
        """Attempt what is due; returns how many were attempted."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the sender holds (its HTTP client)."""

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("%s: delivery round failed", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def _in_db(self, work: Callable[[Session], Any]) -> Any:
        """``work`` in a transaction on the sender's database thread."""

        def run() -> Any:
            with self.session_factory() as db, db.begin():
                return work(db)

        return await asyncio.get_running_loop().run_in_executor(self._db, run)
