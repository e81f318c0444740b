"""Messages on stations' displays: the CSMS numbers each message per station, keeps what it set and what the
station answered, and what the station reports it holds (NotifyDisplayMessages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from csms.ocpp.convert import format_time, parse_time
from csms.services import station_rows
from csms.services.errors import NotFound
from csms.store.models import DisplayMessageRow

PRIORITIES = ("AlwaysFront", "InFront", "NormalCycle")
STATES = ("Charging", "Faulted", "Idle", "Unavailable")
FORMATS = ("ASCII", "HTML", "URI", "UTF8")


@dataclass(frozen=True, slots=True)
class NewMessage:
    text: str
    priority: str = "NormalCycle"
    format: str = "UTF8"
    language: str | None = None
    state: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    #: The transaction as the station knows it (2.0.1: its own id; 1.6: ours).
    transaction_id: str | None = None


def as_dict(row: DisplayMessageRow) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "priority": row.priority,
        "state": row.state,
        "start": row.start_at.isoformat() if row.start_at else None,
        "end": row.end_at.isoformat() if row.end_at else None,
        "transaction_id": row.transaction_id,
        "text": row.text,
        "format": row.format,
        "language": row.language,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "cleared_at": row.cleared_at.isoformat() if row.cleared_at else None,
    }


def message_info(row: DisplayMessageRow) -> dict[str, Any]:
    """The row as OCPP 2.0.1 MessageInfoType."""
    content: dict[str, Any] = {"format": row.format, "content": row.text}
    if row.language:
        content["language"] = row.language
    info: dict[str, Any] = {"id": row.message_id, "priority": row.priority, "message": content}
    optional = {
        "state": row.state,
        "startDateTime": format_time(row.start_at) if row.start_at else None,
        "endDateTime": format_time(row.end_at) if row.end_at else None,
        "transactionId": row.transaction_id,
    }
    info.update({key: value for key, value in optional.items() if value is not None})
    return info


def create(db: Session, station_id: str, message: NewMessage, now: datetime) -> DisplayMessageRow:
    """A new message, numbered after the station's last one, waiting for the station's answer.

    Raises:
        NotFound: no such station.
    """
    station_rows.get(db, station_id)
    last = db.scalar(select(func.max(DisplayMessageRow.message_id)).where(DisplayMessageRow.station_id == station_id))
    row = DisplayMessageRow(
        station_id=station_id,
        message_id=(last or 0) + 1,
        priority=message.priority,
        state=message.state,
        start_at=message.start_at,
        end_at=message.end_at,
        transaction_id=message.transaction_id,
        text=message.text,
        format=message.format,
        language=message.language,
        status="sending",
        created_at=now,
    )
    db.add(row)
    db.flush()
    return row


def get(db: Session, station_id: str, message_id: int) -> DisplayMessageRow:
    row = db.scalars(
        select(DisplayMessageRow).where(
            DisplayMessageRow.station_id == station_id, DisplayMessageRow.message_id == message_id
        )
    ).first()
    if row is None:
        raise NotFound(f"station {station_id!r} has no display message {message_id}")
    return row


def answered(db: Session, station_id: str, message_id: int, status: str) -> DisplayMessageRow:
    row = get(db, station_id, message_id)
    row.status = status
    db.flush()
    return row


def cleared(db: Session, station_id: str, message_id: int, now: datetime) -> DisplayMessageRow:
    row = get(db, station_id, message_id)
    row.status, row.cleared_at = "cleared", now
    db.flush()
    return row


def listed(db: Session, station_id: str, *, include_cleared: bool = False) -> list[DisplayMessageRow]:
    station_rows.get(db, station_id)
    query = select(DisplayMessageRow).where(DisplayMessageRow.station_id == station_id)
    if not include_cleared:
        query = query.where(DisplayMessageRow.cleared_at.is_(None))
    return list(db.scalars(query.order_by(DisplayMessageRow.message_id)))


def reported(db: Session, station_id: str, infos: list[dict[str, Any]], now: datetime) -> None:
    """NotifyDisplayMessages: what the station holds. A message the CSMS set keeps its row (status reported);
    one it did not set (another CSMS, the station's own) is added."""
    for info in infos:
        content = info.get("message", {})
        row = db.scalars(
            select(DisplayMessageRow).where(
                DisplayMessageRow.station_id == station_id, DisplayMessageRow.message_id == info["id"]
            )
        ).first()
        if row is None:
            row = DisplayMessageRow(station_id=station_id, message_id=info["id"], created_at=now)
            db.add(row)
        row.priority = info.get("priority", "NormalCycle")
        row.state = info.get("state")
        row.start_at = parse_time(info["startDateTime"]) if info.get("startDateTime") else None
        row.end_at = parse_time(info["endDateTime"]) if info.get("endDateTime") else None
        row.transaction_id = info.get("transactionId")
        row.text = str(content.get("content", ""))
        row.format = str(content.get("format", "UTF8"))
        row.language = content.get("language")
        row.status, row.cleared_at = "reported", None
    db.flush()
