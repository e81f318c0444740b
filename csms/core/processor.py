"""Group commit: the work of many stations in one database transaction, answers released after it.

The asyncio gateway gathers the sessions that received frames while the previous batch was committing and
runs :meth:`BatchProcessor.process` for them in one worker thread; the simulator calls it inline for each
delivery. Same code, two clocks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from csms.core.session import CallFailed, Staged, StationSession, Work
from csms.services import message_log, reports
from csms.services.config import CsmsConfig
from csms.services.live_transactions import LiveTransactions
from csms.services.uow import SessionFactory, UnitOfWork, held_connection, transaction

log = logging.getLogger(__name__)

#: Prune a station's message log after this many new rows (pruning every batch would cost more than it saves).
PRUNE_EVERY = 200


class BatchProcessor:
    """Runs a batch optimistically without SAVEPOINTs; if a call fails after it touched the database the
    transaction is rolled back and the batch runs again with a SAVEPOINT per call, so the failing call rolls
    back only itself (``retries`` counts those)."""

    def __init__(self, session_factory: SessionFactory, config: CsmsConfig) -> None:
        self._session_factory = session_factory
        self._held = held_connection(session_factory)
        self.config = config
        self._log_rows_since_prune: dict[str, int] = {}
        #: The running transactions of the stations served here (one writer per station: this process).
        self.live = LiveTransactions()
        self.batches = 0
        self.calls = 0
        self.retries = 0

    @property
    def session_factory(self) -> SessionFactory:
        return self._session_factory

    @session_factory.setter
    def session_factory(self, factory: SessionFactory) -> None:
        """The batches' database from now on: the connection held for them (if any) is that database's."""
        if self._held is not None:
            self._held.close()
        self._session_factory = factory
        self._held = held_connection(factory)

    def process(
        self, batch: Sequence[tuple[StationSession, Work]], now: float, answered: Mapping[str, float] | None = None
    ) -> list[tuple[StationSession, Staged | None]]:
        """Handle and commit; returns each session's staged answers (None when the commit failed). ``answered``:
        the stations that answered a CSMS call since the last batch, with when (:func:`csms.services.reports.answered`).

        Sessions are not touched after the commit: the caller releases the answers with ``deliver`` /
        ``fail`` on its own thread.
        """
        self.batches += 1
        self.calls += sum(len(work.calls) for _, work in batch)
        try:
            return self._run(batch, now, answered, isolate=False)
        except CallFailed:
            self.retries += 1
            log.debug("a call failed in a batch of %d stations: running it again isolated", len(batch))
        except Exception:
            log.exception("batch of %d stations failed to commit", len(batch))
            return [(session, None) for session, _ in batch]
        try:
            return self._run(batch, now, answered, isolate=True)
        except Exception:
            log.exception("batch of %d stations failed to commit", len(batch))
            return [(session, None) for session, _ in batch]

    def _run(
        self,
        batch: Sequence[tuple[StationSession, Work]],
        now: float,
        answered: Mapping[str, float] | None,
        *,
        isolate: bool,
    ) -> list[tuple[StationSession, Staged | None]]:
        """One transaction. Raises CallFailed (not isolated: a call, or a write it deferred to the flush,
        failed) or the commit's error."""
        with transaction(self.session_factory, self.live, self._held) as uow:
            results: list[tuple[StationSession, Staged | None]] = [
                (session, session.handle(work, uow, now, isolate=isolate)) for session, work in batch
            ]
            if answered:  # after the reports: a report of the batch, as recent or more, is the one written
                reports.answered(uow, answered, self.config)
            try:
                self._write_batches(uow)
            except Exception as exc:
                if isolate:
                    raise
                raise CallFailed("the batch's writes failed to flush") from exc
        return results

    def _write_batches(self, uow: UnitOfWork) -> None:
        """The unit of work's set-based writes, then the message log pruned where it grew enough."""
        limit = self.config.message_log_per_station
        if not limit:
            uow.log_rows.clear()
            uow.flush_batches()
            return
        uow.flush_batches()
        for station, count in uow.logged.items():  # all of the batch's, also those a read wrote before now
            self._log_rows_since_prune[station] = self._log_rows_since_prune.get(station, 0) + count
        for station, count in list(self._log_rows_since_prune.items()):
            if count < PRUNE_EVERY:
                continue
            self._log_rows_since_prune[station] = 0
            message_log.prune(uow, station, keep=limit)


def release(results: list[tuple[StationSession, Staged | None]], batch: Sequence[tuple[StationSession, Work]]) -> None:
    """After :meth:`BatchProcessor.process`: send answers (or InternalError for a failed commit)."""
    for (session, staged), (_, work) in zip(results, batch, strict=True):
        if staged is None:
            session.fail(work, "the CSMS could not store this message; retry")
        else:
            session.deliver(staged)
