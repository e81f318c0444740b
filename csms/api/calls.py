"""What every endpoint that calls a station shares: the timeout parameter, the station's version, and
sending the call with the gateway's refusals turned into API errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Request

from csms.api.deps import in_transaction
from csms.gateway.server import Gateway, StationNotConnected
from csms.ocpp import commands
from csms.ocpp.errors import LocalCallError
from csms.services import credentials, stations
from csms.services.errors import Conflict, Invalid

Timeout = Annotated[float | None, Query(gt=0, le=300, description="seconds to wait for the answer")]


async def station_version(request: Request, station_id: str) -> str:
    """The station's OCPP version.

    Raises:
        NotFound: no such station (404).
    """
    return await in_transaction(request, lambda db: stations.get(db, station_id).ocpp_version)


async def call_station(
    gateway: Gateway, station_id: str, action: str, payload: dict[str, Any], timeout: float | None
) -> dict[str, Any]:
    """Send a call and wait for its outcome (result, CALLERROR or timeout).

    Raises:
        Conflict: the station is not connected (409).  Invalid: the payload is not valid for its version (422).
    """
    try:
        return await gateway.route_call(station_id, action, payload, timeout)
    except StationNotConnected:
        raise Conflict(f"station {station_id!r} is not connected") from None
    except LocalCallError as exc:
        raise Invalid(exc.description) from None


async def call_station_tracked(
    request: Request,
    gateway: Gateway,
    station_id: str,
    version: str,
    action: str,
    payload: dict[str, Any],
    timeout: float | None,
) -> tuple[dict[str, Any], bool]:
    """:func:`call_station` for any call, also one that changes the station's password or security profile
    (:mod:`csms.services.credentials`): that one is checked first and adopted only when the station took it.
    Returns the outcome and whether a credential change was adopted.

    Raises:
        Invalid: the password breaks the spec's rule (422).  Conflict: a profile downgrade (409, recorded as a
            security event), or the station is not connected.
    """
    change = commands.credential_change(version, action, payload)
    if change is None:
        return await call_station(gateway, station_id, action, payload, timeout), False
    refusal = await in_transaction(request, lambda db: credentials.vet(db, station_id, change, datetime.now(UTC)))
    if refusal:
        raise Conflict(refusal)
    outcome = await call_station(gateway, station_id, action, payload, timeout)
    taken = outcome["outcome"] == "result" and commands.change_taken(
        version, action, payload, outcome.get("payload") or {}
    )
    if taken:
        await in_transaction(request, lambda db: credentials.adopt(db, station_id, change, datetime.now(UTC)))
    return outcome, taken
