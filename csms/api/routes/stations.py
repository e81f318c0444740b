"""Stations: provisioning, registration decisions, and what we know of them (with their live connection)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, status

from csms.api.deps import DbSession, GatewayDep
from csms.api.schemas import ConnectorOut, StationCreate, StationOut, StationUpdate
from csms.gateway.server import Gateway
from csms.services import stations
from csms.store.models import Connector, Station

router = APIRouter(prefix="/stations", tags=["stations"])

StationPath = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[^\x00-\x1f/]+$")]


def station_out(row: Station, ports: list[Connector], gateway: Gateway) -> StationOut:
    return StationOut.model_validate(
        {
            **{key: getattr(row, key) for key in StationOut.model_fields if hasattr(row, key)},
            "connected": gateway.is_connected(row.id),
            "connectors": [ConnectorOut.model_validate(port) for port in ports if port.station_id == row.id],
        }
    )


@router.get("", response_model=list[StationOut])
def list_stations(db: DbSession, gateway: GatewayDep) -> list[StationOut]:
    """Every station, with its live connection and its connectors' last status."""
    ports = stations.connectors(db)
    return [station_out(row, ports, gateway) for row in stations.list_stations(db)]


@router.post("", response_model=StationOut, status_code=status.HTTP_201_CREATED)
def provision(body: StationCreate, db: DbSession, gateway: GatewayDep) -> StationOut:
    """Provision a station the operator expects (409 when the id exists; 422 when the password breaks the
    spec's rule for its version, or a profile-2 station has none)."""
    stations.check_password(body.password, body.ocpp_version)
    row = stations.provision(
        db,
        body.id,
        ocpp_version=body.ocpp_version,
        password=body.password,
        now=datetime.now(UTC),
        policy=body.registration_policy,
        security_profile=body.security_profile,
    )
    return station_out(row, [], gateway)


@router.get("/{station_id}", response_model=StationOut)
def get_station(station_id: StationPath, db: DbSession, gateway: GatewayDep) -> StationOut:
    row = stations.get(db, station_id)
    return station_out(row, stations.connectors(db, [station_id]), gateway)


@router.patch("/{station_id}", response_model=StationOut)
def update_station(station_id: StationPath, body: StationUpdate, db: DbSession, gateway: GatewayDep) -> StationOut:
    """Accept (or reject) a station, change its password (null removes it) or its security profile. The
    station's next boot is answered by the new policy; its next handshake follows the new profile."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("security_profile", 0) is None:
        del changes["security_profile"]
    if changes.get("password") is not None:
        stations.check_password(changes["password"], stations.get(db, station_id).ocpp_version)
    row = stations.update(db, station_id, changes)
    return station_out(row, stations.connectors(db, [station_id]), gateway)
