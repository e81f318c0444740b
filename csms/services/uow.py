"""Unit of work: one database transaction plus writes gathered for set-based statements.

Services add high-volume rows (meter samples, message log) to lists here, and note stations that were seen;
:meth:`flush_batches` writes each list with one multi-row INSERT and the liveness of all stations seen with
one ``UPDATE … WHERE id IN (…)`` per instant, just before the commit, instead of one statement per call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from csms.store.models import MessageLogEntry, MeterSample, Station

Mark = tuple[int, int, int]


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.meter_rows: list[dict[str, Any]] = []
        self.log_rows: list[dict[str, Any]] = []
        #: (station id, when) for ``stations.last_seen_at``, in the order reported.
        self.seen: list[tuple[str, datetime]] = []

    def mark(self) -> Mark:
        return len(self.meter_rows), len(self.log_rows), len(self.seen)

    def rollback_to(self, mark: Mark) -> None:
        del self.meter_rows[mark[0] :]
        del self.log_rows[mark[1] :]
        del self.seen[mark[2] :]

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
        table = Station.__table__
        connection = self.session.connection()
        for at, ids in by_instant.items():
            connection.execute(update(table).where(table.c.id.in_(ids)).values(last_seen_at=at))
        self.seen = []

    def commit(self) -> None:
        self.flush_batches()
        self.session.commit()
