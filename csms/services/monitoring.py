"""The variable monitors the CSMS set on 2.0.1 stations (block N): what was asked, what each station answered
and the id it gave, which were cleared; and the events stations report (NotifyEvent, kept as station events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.ocpp.outgoing import MonitorSpec
from csms.services import station_rows
from csms.store.models import StationEvent, VariableMonitorRow

TYPES = ("UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned")


def as_dict(row: VariableMonitorRow) -> dict[str, Any]:
    return {
        "monitor_id": row.monitor_id,
        "component": row.component,
        "evse_id": row.evse_id,
        "variable": row.variable,
        "type": row.type,
        "value": row.value,
        "severity": row.severity,
        "transaction": row.transaction,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "cleared_at": row.cleared_at.isoformat() if row.cleared_at else None,
    }


def record_set(
    db: Session, station_id: str, sent: list[MonitorSpec], results: list[dict[str, Any]], now: datetime
) -> list[VariableMonitorRow]:
    """SetVariableMonitoring's answer, in the order of ``sent`` (the station answers in the order asked)."""
    station_rows.get(db, station_id)
    rows = []
    for spec, result in zip(sent, results, strict=False):
        status = str(result.get("status", ""))
        monitor_id = result.get("id") if status == "Accepted" else None
        row = None
        if monitor_id is not None:
            row = _active(db, station_id, int(monitor_id))  # a replaced monitor keeps its row
        if row is None:
            row = VariableMonitorRow(station_id=station_id, created_at=now)
            db.add(row)
        row.monitor_id = monitor_id
        row.component, row.evse_id, row.variable = spec.ref.component or "", spec.ref.evse_id, spec.ref.variable
        row.type, row.value, row.severity, row.transaction = spec.type, spec.value, spec.severity, spec.transaction
        row.status, row.cleared_at = status, None
        rows.append(row)
    db.flush()
    return rows


def _active(db: Session, station_id: str, monitor_id: int) -> VariableMonitorRow | None:
    return db.scalars(
        select(VariableMonitorRow).where(
            VariableMonitorRow.station_id == station_id,
            VariableMonitorRow.monitor_id == monitor_id,
            VariableMonitorRow.cleared_at.is_(None),
        )
    ).first()


def record_cleared(db: Session, station_id: str, results: list[dict[str, Any]], now: datetime) -> None:
    """ClearVariableMonitoring's answer: a monitor the station removed (Accepted) or does not hold (NotFound)
    is cleared here too."""
    for result in results:
        if result.get("status") in ("Accepted", "NotFound"):
            row = _active(db, station_id, int(result["id"]))
            if row is not None:
                row.status, row.cleared_at = "cleared", now
    db.flush()


def listed(db: Session, station_id: str, *, include_cleared: bool = False) -> list[VariableMonitorRow]:
    station_rows.get(db, station_id)
    query = select(VariableMonitorRow).where(VariableMonitorRow.station_id == station_id)
    if not include_cleared:
        query = query.where(VariableMonitorRow.cleared_at.is_(None))
    return list(db.scalars(query.order_by(VariableMonitorRow.id)))


def events(
    db: Session, station_id: str, *, kind: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[StationEvent]:
    """What the station reported beside its transactions and statuses (NotifyEvent as ``device_event``,
    DataTransfer, firmware and log statuses, remediation, implausible values …), newest first."""
    station_rows.get(db, station_id)
    query = select(StationEvent).where(StationEvent.station_id == station_id)
    if kind is not None:
        query = query.where(StationEvent.kind == kind)
    if since is not None:
        query = query.where(StationEvent.timestamp >= since)
    return list(db.scalars(query.order_by(StationEvent.timestamp.desc(), StationEvent.id.desc()).limit(limit)))
