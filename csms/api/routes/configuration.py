"""A station's settings and the typed commands around its connectors and charging profiles: read and change
configuration (1.6 GetConfiguration/ChangeConfiguration, 2.0.1 GetVariables/SetVariables) with the station's
answer per setting and what it reported kept (`GET …/variables`, which also holds NotifyReport's device model),
UnlockConnector, ClearChargingProfile, GetCompositeSchedule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from csms.api.calls import Timeout, call_station, station_version
from csms.api.deps import DbSession, GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import (
    CallOut,
    ClearProfileRequest,
    CompositeScheduleRequest,
    StoredVariableOut,
    UnlockRequest,
    VariableIn,
    VariablesGetRequest,
    VariablesOut,
    VariablesSetRequest,
)
from csms.gateway.server import Gateway
from csms.ocpp import commands
from csms.ocpp.outgoing import Call, VariableRef, VariableResult
from csms.ocpp.versions import OCPP16
from csms.services import configuration
from csms.services.errors import Invalid

router = APIRouter(prefix="/stations/{station_id}", tags=["configuration"])


@router.get("/variables", response_model=list[StoredVariableOut])
def stored_variables(
    db: DbSession,
    station_id: StationPath,
    component: Annotated[str | None, Query(max_length=50)] = None,
    variable: Annotated[str | None, Query(max_length=50)] = None,
) -> Any:
    """The settings the station last reported (NotifyReport, GetVariables, GetConfiguration) or took (SetVariables,
    ChangeConfiguration). 1.6 keys have no component."""
    rows = configuration.listed(db, station_id, component=component, variable=variable)
    return [configuration.as_dict(row) for row in rows]


def _ref(version: str, item: VariableIn) -> VariableRef:
    if version != OCPP16 and item.component is None:
        raise Invalid(f"{item.variable}: OCPP {version} names a variable by its component too")
    if version == OCPP16:
        return VariableRef(item.variable)
    return VariableRef(item.variable, item.component, item.evse_id, item.instance)


@router.post("/variables/get", response_model=VariablesOut)
async def get_variables(
    request: Request, station_id: StationPath, body: VariablesGetRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Ask the station (1.6 GetConfiguration, every key when none is named; 2.0.1 GetVariables); what it reports
    is kept. 422: a 2.0.1 variable without its component, or none named; 409: not connected."""
    version = await station_version(request, station_id)
    refs = [_ref(version, item) for item in body.variables]
    if version != OCPP16 and not refs:
        raise Invalid("name at least one variable (the whole device model comes with a base report)")
    limit = await in_transaction(request, lambda db: configuration.per_message(db, station_id, version, "get"))
    calls = commands.get_configuration(version, refs, limit)
    return await _exchange(request, gateway, station_id, version, calls, timeout)


@router.post("/variables/set", response_model=VariablesOut)
async def set_variables(
    request: Request, station_id: StationPath, body: VariablesSetRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Change settings (1.6 one ChangeConfiguration per key, 2.0.1 one SetVariables); a value the station took is
    kept. A password or security profile is refused here (422): `POST …/password` and `…/security-profile`
    change them the way the spec orders. 409: not connected."""
    version = await station_version(request, station_id)
    limit = await in_transaction(request, lambda db: configuration.per_message(db, station_id, version, "set"))
    calls = commands.set_configuration(version, [(_ref(version, item), item.value) for item in body.values], limit)
    for action, payload in calls:
        if commands.credential_change(version, action, payload) is not None:
            raise Invalid("passwords and security profiles change through /password and /security-profile")
    return await _exchange(request, gateway, station_id, version, calls, timeout)


async def _exchange(
    request: Request, gateway: Gateway, station_id: str, version: str, calls: list[Call], timeout: float | None
) -> dict[str, Any]:
    outcomes: list[dict[str, Any]] = []
    results: list[VariableResult] = []
    for action, payload in calls:
        outcome = await call_station(gateway, station_id, action, payload, timeout)
        outcomes.append(outcome)
        if outcome["outcome"] == "result":
            results += commands.configuration_results(version, action, payload, outcome.get("payload") or {})
    now = datetime.now(UTC)
    await in_transaction(request, lambda db: configuration.remember_results(db, station_id, results, now))
    return {"calls": outcomes, "results": [_result(r) for r in results]}


def _result(r: VariableResult) -> dict[str, Any]:
    ref = r.ref
    return {"component": ref.component, "evse_id": ref.evse_id, "variable": ref.variable, "instance": ref.instance,
            "status": r.status, "value": r.value, "readonly": r.readonly}  # fmt: skip


@router.post("/unlock", response_model=CallOut)
async def unlock_connector(
    request: Request, station_id: StationPath, body: UnlockRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """UnlockConnector (1.6 connector N is EVSE N). 409: not connected."""
    version = await station_version(request, station_id)
    action, payload = commands.unlock_connector(version, body.evse_id, body.connector_id)
    return await call_station(gateway, station_id, action, payload, timeout)


@router.post("/charging-profiles/clear", response_model=CallOut)
async def clear_charging_profile(
    request: Request, station_id: StationPath, body: ClearProfileRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """ClearChargingProfile by id or by EVSE, purpose and stack level. 409: not connected."""
    version = await station_version(request, station_id)
    action, payload = commands.clear_charging_profile(
        version, profile_id=body.id, evse_id=body.evse_id, purpose=body.purpose, stack_level=body.stack_level
    )
    return await call_station(gateway, station_id, action, payload, timeout)


@router.post("/composite-schedule", response_model=CallOut)
async def composite_schedule(
    request: Request,
    station_id: StationPath,
    body: CompositeScheduleRequest,
    gateway: GatewayDep,
    timeout: Timeout = None,
) -> dict[str, Any]:
    """GetCompositeSchedule: what the station will draw on an EVSE (0: the grid connection) over `duration_s`."""
    version = await station_version(request, station_id)
    action, payload = commands.get_composite_schedule(version, body.evse_id, body.duration_s, body.unit)
    return await call_station(gateway, station_id, action, payload, timeout)
