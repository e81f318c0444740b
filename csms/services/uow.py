"""Unit of work: one database transaction plus writes gathered for set-based statements.

Services add high-volume rows (meter samples, message log) to lists here, and note stations that were seen;
:meth:`flush_batches` writes each list with one multi-row INSERT and the liveness of all stations seen with
one ``UPDATE … WHERE id IN (…)`` per instant, just before the commit, instead of one statement per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session, sessionmaker

from csms.store.models import MessageLogEntry, MeterSample, Station

#: Opens a database session (``csms.store.database.make_session_factory``).
SessionFactory = sessionmaker[Session]


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.meter_rows: list[dict[str, Any]] = []
        self.log_rows: list[dict[str, Any]] = []
        #: (station id, when) for ``stations.last_seen_at``, in the order reported.
        self.seen: list[tuple[str, datetime]] = []

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """The block's work rolls back alone if it raises (the exception goes on): its statements (a
        SAVEPOINT) and the rows it gathered for the set-based writes. Kept when it ends normally."""
        marks = len(self.meter_rows), len(self.log_rows), len(self.seen)
        nested = self.session.begin_nested()
        try:
            yield
            nested.commit()
        except BaseException:
            nested.rollback()
            del self.meter_rows[marks[0] :]
            del self.log_rows[marks[1] :]
            del self.seen[marks[2] :]
            raise

    def flush_batches(self) -> None:
        if self.seen:
            self._write_seen()
        if self.meter_rows:
            self.session.execute(insert(MeterSample), self.meter_rows)
            self.meter_rows = []
        if self.log_rows:
            self.session.execute(insert(MessageLogEntry), self.log_rows)
            self.log_rows = []
        self.session.flush()

    def _write_seen(self) -> None:
        latest: dict[str, datetime] = {}
        for station_id, at in self.seen:  # the last report of a station wins, as row-by-row updates would
            latest[station_id] = at
        by_instant: dict[datetime, list[str]] = {}
        for station_id, at in latest.items():
            by_instant.setdefault(at, []).append(station_id)
        table: Table = Station.__table__  # type: ignore[assignment]  # declarative: a Table, typed FromClause
        connection = self.session.connection()
        for at, ids in by_instant.items():
            connection.execute(update(table).where(table.c.id.in_(ids)).values(last_seen_at=at))
        self.seen = []

    def commit(self) -> None:
        self.flush_batches()
        self.session.commit()


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[UnitOfWork]:
    """One database transaction: the set-based writes and a commit when the block ends, a rollback if it
    raises."""
    with factory() as db:
        uow = UnitOfWork(db)
        try:
            yield uow
            uow.commit()
        except BaseException:
            db.rollback()
            raise
