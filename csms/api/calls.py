"""What every endpoint that calls a station shares: the timeout parameter, the station's version, and
sending the call with the gateway's refusals turned into API errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import Query, Request

from csms.api.deps import in_transaction
from csms.gateway.server import Gateway, StationNotConnected
from csms.ocpp import commands
from csms.ocpp.errors import LocalCallError
from csms.ocpp.versions import OCPP16
from csms.services import configuration, credentials, stations
from csms.services.errors import Conflict, Invalid

Timeout = Annotated[float | None, Query(gt=0, le=300, description="seconds to wait for the answer")]


async def station_version(request: Request, station_id: str) -> str:
    """The station's OCPP version.

    Raises:
        NotFound: no such station (404).
    """
    return await in_transaction(request, lambda db: stations.get(db, station_id).ocpp_version)


class CallRouter(Protocol):
    """Whatever sends a call to a station and waits for its outcome (the gateway; an embedded CSMS's door)."""

    async def route_call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]: ...


async def call_station(
    gateway: CallRouter, station_id: str, action: str, payload: dict[str, Any], timeout: float | None
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


#: 2.0.1 calls whose items the CSMS splits by the station's ItemsPerMessage (B06.FR.05, B05): payload key,
#: result key, and which limit applies.
_SPLIT = {"GetVariables": ("getVariableData", "getVariableResult", "get"),
          "SetVariables": ("setVariableData", "setVariableResult", "set")}  # fmt: skip
#: Calls whose answers tell the CSMS a station's settings (kept: `GET …/variables`).
_CONFIGURATION = frozenset({"GetVariables", "SetVariables", "GetConfiguration", "ChangeConfiguration"})


async def send_any(
    request: Request,
    gateway: Gateway,
    station_id: str,
    version: str,
    action: str,
    payload: dict[str, Any],
    timeout: float | None,
) -> dict[str, Any]:
    """:func:`call_station_tracked` for an operator's raw call, with the rules every door keeps: a 2.0.1
    Get/SetVariables with more items than the station takes in one message goes as several, their answers
    joined; what a configuration call's answer says of the station's settings is kept."""
    split = _SPLIT.get(action) if version != OCPP16 else None
    parts = [payload]
    if split is not None:
        items_key, _, direction = split
        limit = await in_transaction(request, lambda db: configuration.per_message(db, station_id, version, direction))
        items = payload.get(items_key) or []
        if limit and len(items) > limit:
            parts = [{**payload, items_key: items[i : i + limit]} for i in range(0, len(items), limit)]
    outcomes = [
        await call_station_tracked(request, gateway, station_id, version, action, part, timeout) for part in parts
    ]
    results = [
        result
        for part, (outcome, _) in zip(parts, outcomes, strict=True)
        if outcome["outcome"] == "result" and action in _CONFIGURATION
        for result in commands.configuration_results(version, action, part, outcome.get("payload") or {})
    ]
    if results:
        now = datetime.now(UTC)
        await in_transaction(request, lambda db: configuration.remember_results(db, station_id, results, now))
    return _joined([outcome for outcome, _ in outcomes], split[1] if split is not None else None)


def _joined(outcomes: list[dict[str, Any]], result_key: str | None) -> dict[str, Any]:
    """One call's outcome, or the split call's: the first that got no result, else the results joined."""
    failed = [o for o in outcomes if o["outcome"] != "result"]
    if len(outcomes) == 1 or failed or result_key is None:
        return failed[0] if failed else outcomes[-1]
    joined = [item for o in outcomes for item in (o.get("payload") or {}).get(result_key, [])]
    return {**outcomes[-1], "payload": {result_key: joined}}
