"""The 2.0.1 device model beyond single settings: base reports (GetBaseReport → NotifyReport, kept as the
station's variables), variable monitors (SetVariableMonitoring, ClearVariableMonitoring; what alerts is the
`monitor_alert` rule), and the events stations report (NotifyEvent and the rest of the station events)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from csms.api.calls import Timeout, call_station, station_version
from csms.api.deps import DbSession, GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import (
    BaseReportRequest,
    CallOut,
    ClearMonitorsRequest,
    LoggedMessageOut,
    MonitorOut,
    MonitorsCallOut,
    MonitorsRequest,
    StationEventOut,
)
from csms.ocpp import commands
from csms.ocpp.outgoing import MonitorSpec, VariableRef
from csms.services import message_log, monitoring, station_rows
from csms.services.errors import Invalid

router = APIRouter(prefix="/stations/{station_id}", tags=["device model"])


def _for_201(call: Any) -> Any:
    """The call for a 2.0.1 station; 422 with the reason for 1.6."""
    try:
        return call()
    except ValueError as exc:
        raise Invalid(str(exc)) from None


@router.post("/reports", response_model=CallOut)
async def base_report(
    request: Request, station_id: StationPath, body: BaseReportRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """GetBaseReport: the station reports its device model in NotifyReport messages, kept as its variables
    (`GET …/variables`). 422 for 1.6 (read its keys with `POST …/variables/get`)."""
    version = await station_version(request, station_id)
    action, payload = _for_201(lambda: commands.get_base_report(version, secrets.randbelow(2**31 - 1), body.base))
    return await call_station(gateway, station_id, action, payload, timeout)


@router.post("/monitors", response_model=MonitorsCallOut)
async def set_monitors(
    request: Request, station_id: StationPath, body: MonitorsRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """SetVariableMonitoring; each monitor is kept with the station's answer and the id it gave. A monitor
    that alerts raises a `monitor_alert` alert for its EVSE until it clears. 422 for 1.6; 409: not connected."""
    version = await station_version(request, station_id)
    specs = [
        MonitorSpec(VariableRef(m.variable, m.component, m.evse_id), m.type, m.value, m.severity, m.transaction, m.id)
        for m in body.monitors
    ]
    action, payload = _for_201(lambda: commands.set_variable_monitoring(version, specs))
    call = await call_station(gateway, station_id, action, payload, timeout)
    results = (call.get("payload") or {}).get("setMonitoringResult", []) if call["outcome"] == "result" else []
    now = datetime.now(UTC)

    def store(db: Any) -> list[dict[str, Any]]:
        return [monitoring.as_dict(row) for row in monitoring.record_set(db, station_id, specs, results, now)]

    return {"monitors": await in_transaction(request, store), "call": call}


@router.get("/monitors", response_model=list[MonitorOut])
def list_monitors(db: DbSession, station_id: StationPath, include_cleared: bool = False) -> Any:
    return [monitoring.as_dict(row) for row in monitoring.listed(db, station_id, include_cleared=include_cleared)]


@router.post("/monitors/clear", response_model=CallOut)
async def clear_monitors(
    request: Request, station_id: StationPath, body: ClearMonitorsRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """ClearVariableMonitoring of the station's monitor ids; those it removed or does not hold are cleared."""
    version = await station_version(request, station_id)
    action, payload = _for_201(lambda: commands.clear_variable_monitoring(version, body.ids))
    call = await call_station(gateway, station_id, action, payload, timeout)
    results = (call.get("payload") or {}).get("clearMonitoringResult", []) if call["outcome"] == "result" else []
    now = datetime.now(UTC)
    await in_transaction(request, lambda db: monitoring.record_cleared(db, station_id, results, now))
    return call


@router.get("/events", response_model=list[StationEventOut])
def station_events(
    db: DbSession,
    station_id: StationPath,
    kind: Annotated[str | None, Query(max_length=40, description="e.g. device_event (NotifyEvent)")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """What the station reported beside transactions and statuses, newest first: `device_event` (NotifyEvent),
    `data_transfer`, `firmware_status`, `diagnostics_status`, `log_status`, `auto_remediation`, …"""
    rows = monitoring.events(db, station_id, kind=kind, since=since, limit=limit)
    return [{"kind": row.kind, "timestamp": row.timestamp, "data": row.data} for row in rows]


@router.get("/messages", response_model=list[LoggedMessageOut])
def station_messages(db: DbSession, station_id: StationPath, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """The station's newest OCPP frames, both directions, newest first (the message log keeps the last
    `message_log_per_station` of each station); station passwords and keys in them are masked."""
    version = station_rows.get(db, station_id).ocpp_version
    return [message_log.shown(row, version) for row in message_log.recent(db, station_id, limit)]
