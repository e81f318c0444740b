"""Calls to connected stations: any OCPP action, and typed remote start/stop and reset.

These endpoints are ``async``: they await the gateway, which lives on the same event loop. Their database
reads run on a worker thread (:func:`~csms.api.deps.in_transaction`).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from csms.api.calls import Timeout, call_station, send_any, station_version
from csms.api.deps import GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import CallOut, RemoteStartOut, RemoteStartRequest, RemoteStopRequest, ResetRequest
from csms.ocpp import commands
from csms.services import stations, transactions
from csms.services.errors import NotFound

router = APIRouter(prefix="/stations/{station_id}", tags=["calls"])

ActionPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$", description="an OCPP action, e.g. Reset")]


@router.post("/calls/{action}", response_model=CallOut)
async def send_call(
    request: Request,
    station_id: StationPath,
    action: ActionPath,
    gateway: GatewayDep,
    payload: Annotated[
        dict[str, Any] | None,
        Body(
            description="the call's payload, as the OCPP schema names it",
            examples=[{"requestedMessage": "Heartbeat"}, {"key": ["HeartbeatInterval"]}],
        ),
    ] = None,
    timeout: Timeout = None,
) -> dict[str, Any]:
    """Send any OCPP call, validated first against the station's version (422), to a connected station (409).

    Returns the station's CALLRESULT (`outcome: result`), its CALLERROR (`outcome: error`), or `timeout`.
    A call that sets the station's password or security profile (1.6 ChangeConfiguration AuthorizationKey /
    SecurityProfile, 2.0.1 SetVariables SecurityCtrlr.BasicAuthPassword / SetNetworkProfile) is checked and
    adopted as through `/password` and `/security-profile`: 422 for a password the spec forbids, 409 for a
    profile downgrade. A 2.0.1 Get/SetVariables with more items than the station takes in one message (its
    ItemsPerMessage) is sent as several, their answers joined; what a configuration call's answer says of the
    station's settings is kept (`GET …/variables`).
    """
    version = await station_version(request, station_id)
    return await send_any(request, gateway, station_id, version, action, payload or {}, timeout)


@router.post("/remote-start", response_model=RemoteStartOut)
async def remote_start(
    request: Request, station_id: StationPath, body: RemoteStartRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """1.6 RemoteStartTransaction or 2.0.1 RequestStartTransaction (with a fresh remoteStartId)."""
    version = await station_version(request, station_id)
    remote_start_id = secrets.randbelow(2**31 - 2) + 1
    action, payload = commands.remote_start(
        version, body.id_token, body.evse_id, remote_start_id=remote_start_id, id_token_type=body.id_token_type
    )
    result = await call_station(gateway, station_id, action, payload, timeout)
    return {**result, "remote_start_id": payload.get("remoteStartId")}


@router.post("/remote-stop", response_model=CallOut)
async def remote_stop(
    request: Request, station_id: StationPath, body: RemoteStopRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Stop one of the station's transactions, named by our transaction id."""

    def lookup(db: Any) -> tuple[str, str]:
        version = stations.get(db, station_id).ocpp_version
        tx = transactions.get(db, body.transaction_id)
        if tx.station_id != station_id:
            raise NotFound(f"transaction {body.transaction_id} is not on station {station_id!r}")
        return version, tx.charger_tx_id

    version, charger_tx_id = await in_transaction(request, lookup)
    action, payload = commands.remote_stop(version, body.transaction_id, charger_tx_id)
    return await call_station(gateway, station_id, action, payload, timeout)


@router.post("/reset", response_model=CallOut)
async def reset(
    request: Request,
    station_id: StationPath,
    gateway: GatewayDep,
    body: ResetRequest | None = None,
    timeout: Timeout = None,
) -> dict[str, Any]:
    """Soft (2.0.1 OnIdle) or hard (2.0.1 Immediate) reset."""
    version = await station_version(request, station_id)
    action, payload = commands.reset(version, (body or ResetRequest()).type)
    return await call_station(gateway, station_id, action, payload, timeout)
