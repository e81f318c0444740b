"""Stations: provisioning, registration decisions, and what we know of them (with their live connection)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from sqlalchemy.orm import Session

from csms.api.auth import Caller
from csms.api.deps import DbSession, GatewayDep, in_transaction
from csms.api.schemas import (
    ConnectorOut,
    DisconnectOut,
    EvChargingOut,
    PendingRegistrationOut,
    StationApprove,
    StationCreate,
    StationOut,
    StationUpdate,
)
from csms.gateway.server import Gateway
from csms.services import ev_charging, stations, tariffs
from csms.store.models import Connector, Station

router = APIRouter(prefix="/stations", tags=["stations"])

_UNSET = object()

StationPath = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[^\x00-\x1f/]+$")]


def station_out(
    row: Station, ports: list[Connector], gateway: Gateway, tariff_ids: Mapping[str, str] | None = None
) -> StationOut:
    return StationOut.model_validate(
        {
            **{key: getattr(row, key) for key in StationOut.model_fields if hasattr(row, key)},
            "connected": gateway.is_connected(row.id),
            "tariff_id": (tariff_ids or {}).get(row.id),
            "connectors": [ConnectorOut.model_validate(port) for port in ports if port.station_id == row.id],
        }
    )


@router.get("", response_model=list[StationOut])
def list_stations(db: DbSession, gateway: GatewayDep, caller: Caller) -> list[StationOut]:
    """Every station of the caller's organisation, with its live connection and its connectors' last status."""
    ports = stations.connectors(db)
    defaults = tariffs.station_defaults(db)
    return [station_out(row, ports, gateway, defaults) for row in stations.list_stations(db, caller.scope)]


@router.post("", response_model=StationOut, status_code=status.HTTP_201_CREATED)
def provision(body: StationCreate, db: DbSession, gateway: GatewayDep, caller: Caller) -> StationOut:
    """Provision a station the operator expects (409 when the id exists; 422 when the password breaks the
    spec's rule for its version, or a profile-2 station has none)."""
    row = stations.provision(
        db,
        body.id,
        ocpp_version=body.ocpp_version,
        password=body.password,
        now=datetime.now(UTC),
        policy=body.registration_policy,
        security_profile=body.security_profile,
    )
    caller.adopt(row)
    return station_out(row, [], gateway)


@router.get("/pending", response_model=list[PendingRegistrationOut])
def list_pending(db: DbSession) -> list[PendingRegistrationOut]:
    """Unknown stations that connected while auto-registration is on, oldest first; each is refused until
    approved."""
    return [PendingRegistrationOut.model_validate(row) for row in stations.list_pending(db)]


@router.post("/pending/{station_id}/approve", response_model=StationOut, status_code=status.HTTP_201_CREATED)
def approve_pending(station_id: StationPath, body: StationApprove, db: DbSession, gateway: GatewayDep) -> StationOut:
    """Create the station from its pending registration with the credentials given here (404 when not
    pending; 422 when the password breaks the spec's rule or a profile-1/2 approval has none)."""
    row = stations.approve(
        db,
        station_id,
        password=body.password,
        security_profile=body.security_profile,
        ocpp_version=body.ocpp_version,
        now=datetime.now(UTC),
    )
    return station_out(row, [], gateway)


@router.get("/{station_id}", response_model=StationOut)
def get_station(station_id: StationPath, db: DbSession, gateway: GatewayDep) -> StationOut:
    row = stations.get(db, station_id)
    return station_out(row, stations.connectors(db, [station_id]), gateway, tariffs.station_defaults(db, [station_id]))


@router.get("/{station_id}/charging-needs", response_model=list[EvChargingOut])
def charging_needs(station_id: StationPath, db: DbSession) -> list[EvChargingOut]:
    """ISO 15118 smart charging per EVSE: what the EV asked for, the TxProfile the station accepted, the EV's
    schedule and whether the CSMS accepted it (404: unknown station)."""
    return [EvChargingOut.model_validate(row) for row in ev_charging.of_station(db, station_id)]


@router.patch("/{station_id}", response_model=StationOut)
async def update_station(
    station_id: StationPath, body: StationUpdate, request: Request, gateway: GatewayDep
) -> StationOut:
    """Accept (or reject) a station, change its password (null removes it) or its security profile. A
    change of password, profile or version, or the reject policy, ends the station's live connection once
    committed: its next handshake is checked against the new credentials and its next boot is answered by
    the new policy. `tariff_id` sets (or, null, removes) the station's tariff for every driver."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("security_profile", 0) is None:
        del changes["security_profile"]
    tariff_change = changes.pop("tariff_id", _UNSET)

    def work(db: Session) -> StationOut:
        row = stations.update(db, station_id, changes)
        if tariff_change is not _UNSET:
            tariffs.set_station_default(db, station_id, tariff_change, datetime.now(UTC))
        defaults = tariffs.station_defaults(db, [station_id])
        return station_out(row, stations.connectors(db, [station_id]), gateway, defaults)

    out = await in_transaction(request, work)
    if stations.must_reconnect(changes):
        await gateway.route_disconnect(station_id, "the operator changed the station's credentials or registration")
        out.connected = False
    return out


@router.post("/{station_id}/disconnect", response_model=DisconnectOut)
async def disconnect(request: Request, station_id: StationPath, gateway: GatewayDep) -> DisconnectOut:
    """Close the station's WebSocket connection (1008, on whichever node holds it). The station reconnects on its
    own back-off and boots again: the way to make a charger that is stuck in a bad state start over without a
    Reset. 404: no such station; ``disconnected`` false: it was not connected."""
    await in_transaction(request, lambda db: stations.get(db, station_id))
    connected = gateway.is_connected(station_id)
    if connected:
        await gateway.route_disconnect(station_id, "the operator disconnected it")
    return DisconnectOut(station_id=station_id, disconnected=connected)
