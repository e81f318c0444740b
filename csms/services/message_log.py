"""The OCPP message log: rows are gathered by the unit of work (``log_rows``) and written per batch; each
station keeps only its newest frames."""

from __future__ import annotations

from sqlalchemy import delete, select

from csms.services.uow import UnitOfWork
from csms.store.models import MessageLogEntry


def prune(uow: UnitOfWork, station_id: str, keep: int) -> None:
    """Delete the station's logged frames but the newest ``keep``."""
    cutoff = uow.session.scalars(
        select(MessageLogEntry.id)
        .where(MessageLogEntry.station_id == station_id)
        .order_by(MessageLogEntry.id.desc())
        .offset(keep)
        .limit(1)
    ).first()
    if cutoff is not None:
        uow.session.execute(
            delete(MessageLogEntry).where(MessageLogEntry.station_id == station_id, MessageLogEntry.id <= cutoff)
        )
