"""Messages on a station's display: set (2.0.1 SetDisplayMessage; 1.6 DataTransfer ``org.chargetwin`` where the
charger has it), list what the CSMS set and the station reported, clear, and ask the station (2.0.1
GetDisplayMessages → NotifyDisplayMessages, stored)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from csms.api.calls import Timeout, call_station, station_version
from csms.api.deps import DbSession, GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import (
    CallOut,
    DisplayMessageCallOut,
    DisplayMessageOut,
    DisplayMessageRequest,
    DisplayQueryRequest,
)
from csms.ocpp import commands
from csms.ocpp.versions import OCPP16
from csms.services import display_messages, transactions
from csms.services.errors import DomainError, Invalid

router = APIRouter(prefix="/stations/{station_id}/display-messages", tags=["display messages"])


@router.get("", response_model=list[DisplayMessageOut])
def list_messages(db: DbSession, station_id: StationPath, include_cleared: bool = False) -> Any:
    """What the CSMS set (with the station's answer) and what the station reported holding."""
    rows = display_messages.listed(db, station_id, include_cleared=include_cleared)
    return [display_messages.as_dict(row) for row in rows]


def _new(db: Any, station_id: str, version: str, body: DisplayMessageRequest) -> dict[str, Any]:
    transaction_id = None
    if body.transaction_id is not None:
        tx = transactions.get(db, body.transaction_id)
        if tx.station_id != station_id:
            raise Invalid(f"transaction {body.transaction_id} is not on station {station_id!r}")
        transaction_id = str(tx.id) if version == OCPP16 else tx.charger_tx_id
    if body.start is not None and body.end is not None and body.end <= body.start:
        raise Invalid("end must be after start")
    message = display_messages.NewMessage(
        text=body.text,
        priority=body.priority,
        format=body.format,
        language=body.language,
        state=body.state,
        start_at=body.start,
        end_at=body.end,
        transaction_id=transaction_id,
    )
    row = display_messages.create(db, station_id, message, datetime.now(UTC))
    return display_messages.message_info(row)


@router.post("", response_model=DisplayMessageCallOut)
async def set_message(
    request: Request, station_id: StationPath, body: DisplayMessageRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Number the message, send it, keep the station's answer as its `status` (Accepted, Rejected,
    NotSupportedMessageFormat, NotSupportedPriority, NotSupportedState, UnknownTransaction; 1.6 without our
    DataTransfer: NotSupported). 409: not connected (the message is kept with status `not sent`)."""
    version = await station_version(request, station_id)
    info = await in_transaction(request, lambda db: _new(db, station_id, version, body))
    action, payload = commands.set_display_message(version, info)
    try:
        call = await call_station(gateway, station_id, action, payload, timeout)
    except DomainError:  # not connected, an invalid payload: the message stays, as not sent
        await in_transaction(request, lambda db: display_messages.answered(db, station_id, info["id"], "not sent"))
        raise
    status = _status(version, action, call) or call["outcome"]
    row = await in_transaction(
        request, lambda db: display_messages.as_dict(display_messages.answered(db, station_id, info["id"], status))
    )
    return {"message": row, "call": call}


def _status(version: str, action: str, call: dict[str, Any]) -> str:
    """The display's answer ("" when the call got none)."""
    if call["outcome"] != "result":
        return ""
    return commands.display_status(version, action, call.get("payload") or {})


@router.post("/{message_id}/clear", response_model=DisplayMessageCallOut)
async def clear_message(
    request: Request, station_id: StationPath, message_id: int, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """ClearDisplayMessage; the message is marked cleared when the station took it away (Accepted) or did not
    hold it (Unknown). 404: no such message; 409: not connected."""
    version = await station_version(request, station_id)
    await in_transaction(request, lambda db: display_messages.get(db, station_id, message_id))
    action, payload = commands.clear_display_message(version, message_id)
    call = await call_station(gateway, station_id, action, payload, timeout)
    status = _status(version, action, call)

    def store(db: Any) -> dict[str, Any]:
        if status in ("Accepted", "Unknown"):
            return display_messages.as_dict(display_messages.cleared(db, station_id, message_id, datetime.now(UTC)))
        return display_messages.as_dict(display_messages.get(db, station_id, message_id))

    return {"message": await in_transaction(request, store), "call": call}


@router.post("/query", response_model=CallOut)
async def query_messages(
    request: Request, station_id: StationPath, body: DisplayQueryRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """2.0.1 GetDisplayMessages: the station reports what it holds in NotifyDisplayMessages, which the CSMS keeps
    (`GET …/display-messages`). 422 for 1.6."""
    version = await station_version(request, station_id)
    if version == OCPP16:
        raise Invalid("OCPP 1.6 has no GetDisplayMessages")
    action, payload = commands.get_display_messages(
        version, secrets.randbelow(2**31 - 1), body.ids, body.priority, body.state
    )
    return await call_station(gateway, station_id, action, payload, timeout)
