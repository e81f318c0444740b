"""Re-pointing a connected station to another CSMS (``csms migrate repoint``): the calls of
:mod:`csms.migration.repoint`, sent in order, then a watch of the station's connection until the deadline.

The re-points of this process are kept in memory (``app.state.repoints``), one per station, the last one: a
restart forgets them (the station's own settings are what counts; read them with ``csms stations get-config``).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from csms.api.calls import Timeout, call_station, call_station_tracked
from csms.api.deps import GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import SecurityProfile, Strict, examples
from csms.gateway.server import Gateway
from csms.migration import repoint
from csms.migration.repoint import Status
from csms.ocpp import commands
from csms.ocpp.outgoing import Call
from csms.ocpp.versions import OCPP16
from csms.services import stations, transactions
from csms.services.errors import Conflict, Invalid, NotFound

router = APIRouter(prefix="/stations/{station_id}/repoint", tags=["migration"])

#: How often the watch looks at the station's connection, and (1.6) whether its transactions ended.
_POLL_S = 0.2
_IDLE_POLL_S = 1.0


class RepointRequest(Strict):
    model_config = examples({"url": "wss://new-csms.example.com/ocpp", "within_s": 600})

    url: str = Field(max_length=512, pattern=r"^wss?://[^\s]+$", description="the new CSMS's OCPP URL, without "
                     "the station id (the station appends it)")  # fmt: skip
    security_profile: SecurityProfile | None = Field(None, description="2.0.1: the profile for the new URL "
                                                     "(default: the station's current one)")  # fmt: skip
    within_s: float = Field(600, gt=0, le=86400, description="the station must have left this CSMS by then, "
                            "else it is reported not moved and its old settings are restored")  # fmt: skip
    url_key: str | None = Field(None, min_length=1, max_length=50, description="1.6: the vendor configuration "
                                "key of the URL, for a vendor the CSMS does not know")  # fmt: skip
    current_url: str | None = Field(None, max_length=512, pattern=r"^wss?://[^\s]+$", description="2.0.1: this "
                                    "CSMS's URL as the station reaches it, written to a fallback slot when the "
                                    "station reports no NetworkConfigurationPriority (default: from the request "
                                    "host and the gateway's port)")  # fmt: skip


class RepointOut(BaseModel):
    station_id: str
    ocpp_version: str
    url: str
    status: Status
    detail: str
    slot: int | None = None
    restored: bool | None = Field(None, description="the old settings were restored after a failed move")
    deadline: datetime | None = None
    calls: list[dict[str, Any]]


@dataclass
class _Repoint:
    station_id: str
    ocpp_version: str
    url: str
    status: Status = Status.PENDING
    detail: str = "sending the calls"
    slot: int | None = None
    restored: bool | None = None
    deadline: datetime | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    rollback: Call | None = None

    def end(self, status: Status, detail: str) -> None:
        self.status, self.detail = status, detail


def _registry(request: Request) -> dict[str, _Repoint]:
    state = request.app.state
    if not hasattr(state, "repoints"):
        state.repoints, state.repoint_tasks = {}, set()
    registry: dict[str, _Repoint] = state.repoints
    return registry


def _out(record: _Repoint) -> dict[str, Any]:
    out = asdict(record)
    del out["rollback"]
    return out


def _accepted(outcome: dict[str, Any]) -> bool:
    return outcome["outcome"] == "result" and commands.accepted(outcome.get("payload") or {})


@router.post("", response_model=RepointOut)
async def start_repoint(
    request: Request, station_id: StationPath, body: RepointRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Move a connected station to another CSMS. 2.0.1: GetVariables NetworkConfigurationPriority,
    SetNetworkProfile (the new URL in a free slot), SetVariables NetworkConfigurationPriority (the new slot
    first, the old ones after it), Reset OnIdle. 1.6: GetConfiguration and ChangeConfiguration of the vendor's
    URL key, Reset Hard once no transaction runs. The answer comes once the calls are sent (status
    `pending`); `GET` this path follows it to `moved` or `not_moved` (the old settings restored). A 1.6
    vendor without a known key is `cannot_repoint`. 409: not connected, or a re-point of it is pending."""
    registry = _registry(request)
    running = registry.get(station_id)
    if running is not None and running.status is Status.PENDING:
        raise Conflict(f"station {station_id!r} is being re-pointed already")
    station = await in_transaction(request, lambda db: stations.get(db, station_id))
    if not gateway.is_connected(station_id):
        raise Conflict(f"station {station_id!r} is not connected")
    profile = body.security_profile or station.security_profile
    if profile >= 2 and not body.url.startswith("wss://"):
        raise Invalid(f"security profile {profile} needs a wss:// URL")
    record = _Repoint(station_id, station.ocpp_version, body.url)
    registry[station_id] = record
    first = gateway.links.get(station_id)  # before any call: a quick reboot must not pass for the first link
    if station.ocpp_version == OCPP16:
        await _send_16(request, gateway, record, station.vendor, body, timeout)
    else:
        current = body.current_url or _current_url(request, gateway, station.security_profile)
        await _send_201(request, gateway, record, (profile, current, station.security_profile), timeout)
    if record.status is Status.PENDING:
        record.deadline = datetime.now(UTC) + timedelta(seconds=body.within_s)
        record.detail = "watching the station until the deadline"
        task = asyncio.create_task(_watch(request, gateway, record, (first, body.within_s), timeout))
        request.app.state.repoint_tasks.add(task)
        task.add_done_callback(request.app.state.repoint_tasks.discard)
    return _out(record)


@router.get("", response_model=RepointOut)
async def repoint_status(request: Request, station_id: StationPath) -> dict[str, Any]:
    """The station's last re-point in this process. 404: none."""
    record = _registry(request).get(station_id)
    if record is None:
        raise NotFound(f"station {station_id!r} has not been re-pointed by this CSMS since it started")
    return _out(record)


def _current_url(request: Request, gateway: Gateway, profile: int) -> str:
    host = request.url.hostname or "localhost"
    if profile >= 2 and gateway.tls_port is not None:
        return f"wss://{host}:{gateway.tls_port}/ocpp"
    return f"ws://{host}:{gateway.port}/ocpp"


async def _send(request: Request, gateway: Gateway, record: _Repoint, call: Call, timeout: float | None) -> bool:
    action, payload = call
    try:
        outcome, _ = await call_station_tracked(
            request, gateway, record.station_id, record.ocpp_version, action, payload, timeout
        )
    except Conflict as exc:  # gone meanwhile, or a profile downgrade the credentials rules refuse
        outcome = {"action": action, "outcome": "refused", "error": exc.message}
    record.calls.append(outcome)
    if not _accepted(outcome):
        record.end(Status.REFUSED, f"{action} was not accepted: {outcome.get('error') or outcome.get('payload')}")
        return False
    return True


async def _send_201(
    request: Request, gateway: Gateway, record: _Repoint, profiles: tuple[int, str, int], timeout: float | None
) -> None:
    new_profile, current_url, current_profile = profiles
    read = await call_station(gateway, record.station_id, *repoint.read_priority(), timeout)
    record.calls.append(read)
    priority = repoint.priority_of(read.get("payload") or {}) if read["outcome"] == "result" else []
    plan = repoint.plan_201(priority, record.url, new_profile, current_url, current_profile)
    record.slot = plan.slot
    for call in plan.calls:
        if not await _send(request, gateway, record, call, timeout):
            if call[0] == "Reset":  # the new priority is set: take it back, or the next reboot moves it
                record.restored = await _restore(request, gateway, record, plan.rollback, timeout)
            return
    record.rollback = plan.rollback


async def _send_16(
    request: Request, gateway: Gateway, record: _Repoint, vendor: str | None, body: RepointRequest,
    timeout: float | None,
) -> None:  # fmt: skip
    key = repoint.url_key(vendor, body.url_key)
    if key is None:
        record.end(Status.CANNOT, repoint.cannot_repoint(vendor))
        return
    read = await call_station(gateway, record.station_id, *repoint.read_key(key), timeout)
    record.calls.append(read)
    old = repoint.key_value(read.get("payload") or {}, key) if read["outcome"] == "result" else None
    if old is None:
        record.end(Status.REFUSED, f"the station does not report the key {key}: {repoint.cannot_repoint(vendor)}")
        return
    if await _send(request, gateway, record, repoint.write_key(key, record.url), timeout):
        record.rollback = repoint.write_key(key, old)


async def _restore(request: Request, gateway: Gateway, record: _Repoint, call: Call, timeout: float | None) -> bool:
    if not gateway.is_connected(record.station_id):
        return False
    status, detail = record.status, record.detail
    restored = await _send(request, gateway, record, call, timeout)
    record.end(status, detail)  # a refused restore is said by `restored`, not by the re-point's status
    return restored


async def _watch(
    request: Request, gateway: Gateway, record: _Repoint, start: tuple[Any, float], timeout: float | None
) -> None:
    """Until the deadline: a new connection of the station here means it came back (not moved, restore);
    none at the deadline means it left; the first connection still open means it never rebooted."""
    first, within_s = start
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    station_id = record.station_id
    try:
        if record.ocpp_version == OCPP16 and not await _reboot_when_idle(request, gateway, record, deadline, timeout):
            return
        link = gateway.links.get(station_id)
        while loop.time() < deadline:
            await asyncio.sleep(_POLL_S)
            link = gateway.links.get(station_id)
            if link is not None and link is not first:
                break
        came_back = link is not None and link is not first
        record.end(*repoint.verdict(came_back, link is not None and link is first))
        if record.status is Status.NOT_MOVED and record.rollback is not None:
            if came_back:  # the station's new connection must be registered before it takes calls
                await asyncio.sleep(_POLL_S)
            record.restored = await _restore(request, gateway, record, record.rollback, timeout)
    except Exception as exc:  # never a silent pending: the watch's end is what the operator reads
        record.end(Status.NOT_MOVED, f"the watch failed: {exc}")
        raise


async def _reboot_when_idle(
    request: Request, gateway: Gateway, record: _Repoint, deadline: float, timeout: float | None
) -> bool:
    """1.6: Reset Hard once the station runs no transaction (False: it did not happen; the record says why)."""
    loop = asyncio.get_running_loop()
    station_id = record.station_id
    while (running := await in_transaction(request, lambda db: transactions.running_on(db, station_id))) > 0:
        if loop.time() >= deadline:
            record.end(Status.NOT_MOVED, f"{running} transaction(s) still running at the deadline: not rebooted")
            if record.rollback is not None:
                record.restored = await _restore(request, gateway, record, record.rollback, timeout)
            return False
        record.detail = f"waiting for {running} running transaction(s) to end before the reset"
        await asyncio.sleep(_IDLE_POLL_S)
    if await _send(request, gateway, record, repoint.reboot_16(), timeout):
        record.detail = "watching the station until the deadline"
        return True
    if record.rollback is not None:
        record.restored = await _restore(request, gateway, record, record.rollback, timeout)
    return False
