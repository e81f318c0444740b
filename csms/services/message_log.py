"""The OCPP message log: rows are gathered by the unit of work (``log_rows``) and written per batch; each
station keeps only its newest frames, which the console's station page shows with their secrets masked."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from csms.ocpp import commands
from csms.services import station_rows
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


def recent(db: Session, station_id: str, limit: int = 50) -> list[MessageLogEntry]:
    """The station's newest logged frames, newest first. Raises NotFound: no such station."""
    station_rows.get(db, station_id)
    query = select(MessageLogEntry).where(MessageLogEntry.station_id == station_id)
    return list(db.scalars(query.order_by(MessageLogEntry.id.desc()).limit(limit)))


def shown(row: MessageLogEntry, version: str) -> dict[str, Any]:
    """A logged frame as an operator may read it: a call's or result's secrets masked
    (:func:`csms.ocpp.commands.masked`: station passwords, 1.6 AuthorizationKey)."""
    text = row.frame
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        message = None
    if isinstance(message, list) and len(message) >= 3 and row.action:
        at = 3 if message[0] == 2 and len(message) >= 4 else 2 if message[0] == 3 else None
        if at is not None and isinstance(message[at], dict):
            try:
                hidden = commands.masked(version, row.action, message[at])
            except (KeyError, ValueError):
                hidden = None
            if hidden is not None:
                message[at] = hidden
                text = orjson.dumps(message).decode()
    return {"id": row.id, "direction": row.direction, "action": row.action, "frame": text, "at": row.at}
