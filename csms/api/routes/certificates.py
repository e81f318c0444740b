"""Station certificates: what the CSMS's CA issued (and revoking one), and the root certificates on a
station (InstallCertificate, GetInstalledCertificateIds, DeleteCertificate; what stations report is stored)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from csms.api.calls import Timeout, call_station, station_version
from csms.api.deps import GatewayDep, in_transaction
from csms.api.routes.stations import StationPath
from csms.api.schemas import (
    CertificateCallOut,
    DeleteCertificateRequest,
    InstallCertificateRequest,
    InstalledCertificateOut,
    IssuedCertificateOut,
    RevokedOut,
    RootCertificateType,
)
from csms.ocpp import commands
from csms.services import certificates
from csms.services.errors import Invalid

router = APIRouter(tags=["certificates"])

SerialPath = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{1,64}$", description="lower- or upper-case hex")]


@router.get("/certificates", response_model=list[IssuedCertificateOut])
async def list_issued(request: Request, station_id: Annotated[str | None, Query(max_length=48)] = None) -> Any:
    """Certificates the CSMS's CA issued (SignCertificate), oldest first."""
    return await in_transaction(
        request, lambda db: [certificates.as_dict(r) for r in certificates.issued(db, station_id)]
    )


@router.post("/certificates/{serial}/revoke", response_model=RevokedOut)
async def revoke(request: Request, serial: SerialPath, gateway: GatewayDep) -> Any:
    """Revoke an issued certificate: refused at every later handshake, and the stations connected with it
    here are disconnected (other nodes of a cluster within a minute). 404: unknown serial; 409: revoked."""
    now = datetime.now(UTC)
    row = await in_transaction(request, lambda db: certificates.as_dict(certificates.revoke(db, serial, now)))
    return {**row, "disconnected": gateway.host.drop_certificate({row["serial"]})}


@router.get("/stations/{station_id}/certificates/installed", response_model=list[InstalledCertificateOut])
async def list_installed(request: Request, station_id: StationPath) -> Any:
    """What the station last reported installed (refresh with POST …/installed/refresh)."""
    await station_version(request, station_id)
    return await in_transaction(request, lambda db: _installed(db, station_id))


def _installed(db: Any, station_id: str) -> list[dict[str, Any]]:
    return [certificates.installed_as_dict(row) for row in certificates.installed(db, station_id)]


async def _refresh(
    request: Request, gateway: GatewayDep, station_id: str, version: str, types: list[str], timeout: float | None
) -> dict[str, Any]:
    try:
        action, payload = commands.get_installed_certificate_ids(version, types)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    result = await call_station(gateway, station_id, action, payload, timeout)
    if result["outcome"] == "result":
        chains = certificates.reported_chains(version, types, result["payload"])
        now = datetime.now(UTC)
        await in_transaction(request, lambda db: certificates.store_installed(db, station_id, chains, types, now))
    return {**result, "installed": await in_transaction(request, lambda db: _installed(db, station_id))}


@router.post("/stations/{station_id}/certificates/installed/refresh", response_model=CertificateCallOut)
async def refresh_installed(
    request: Request,
    station_id: StationPath,
    gateway: GatewayDep,
    certificate_type: Annotated[list[RootCertificateType] | None, Query()] = None,
    timeout: Timeout = None,
) -> Any:
    """GetInstalledCertificateIds; the answer replaces what was stored for those types (1.6: give exactly
    one type)."""
    version = await station_version(request, station_id)
    return await _refresh(request, gateway, station_id, version, list(certificate_type or []), timeout)


@router.post("/stations/{station_id}/certificates/install", response_model=CertificateCallOut)
async def install(
    request: Request,
    station_id: StationPath,
    body: InstallCertificateRequest,
    gateway: GatewayDep,
    timeout: Timeout = None,
) -> Any:
    """InstallCertificate of a root certificate; when Accepted, the station's list of that type is read
    back (GetInstalledCertificateIds) and stored. 422: a type the station's version does not have."""
    version = await station_version(request, station_id)
    try:
        action, payload = commands.install_certificate(version, body.certificate_type, body.certificate)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    result = await call_station(gateway, station_id, action, payload, timeout)
    if result["outcome"] == "result" and result["payload"].get("status") == "Accepted":
        refreshed = await _refresh(request, gateway, station_id, version, [body.certificate_type], timeout)
        return {**result, "installed": refreshed["installed"]}
    return {**result, "installed": await in_transaction(request, lambda db: _installed(db, station_id))}


@router.post("/stations/{station_id}/certificates/delete", response_model=CertificateCallOut)
async def delete(
    request: Request,
    station_id: StationPath,
    body: DeleteCertificateRequest,
    gateway: GatewayDep,
    timeout: Timeout = None,
) -> Any:
    """DeleteCertificate by its hash data (as listed installed); forgotten here when the station Accepted."""
    version = await station_version(request, station_id)
    data = body.hash_data.model_dump()
    action, payload = commands.delete_certificate(version, data)
    result = await call_station(gateway, station_id, action, payload, timeout)
    if result["outcome"] == "result" and result["payload"].get("status") == "Accepted":
        await in_transaction(request, lambda db: certificates.forget_installed(db, station_id, data))
    return {**result, "installed": await in_transaction(request, lambda db: _installed(db, station_id))}
