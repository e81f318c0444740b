"""Unit of work: one database transaction plus rows gathered for batch insertion.

Services add high-volume rows (meter samples, message log) to lists here; :meth:`flush_batches` writes each
list with one multi-row INSERT just before the commit, instead of one INSERT per row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from csms.store.models import MessageLogEntry, MeterSample


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.meter_rows: list[dict[str, Any]] = []
        self.log_rows: list[dict[str, Any]] = []

    def mark(self) -> tuple[int, int]:
        return len(self.meter_rows), len(self.log_rows)

    def rollback_to(self, mark: tuple[int, int]) -> None:
        del self.meter_rows[mark[0] :]
        del self.log_rows[mark[1] :]

    def flush_batches(self) -> None:
        if self.meter_rows:
            self.session.execute(insert(MeterSample), self.meter_rows)
            self.meter_rows = []
        if self.log_rows:
            self.session.execute(insert(MessageLogEntry), self.log_rows)
            self.log_rows = []
        self.session.flush()

    def commit(self) -> None:
        self.flush_batches()
        self.session.commit()
