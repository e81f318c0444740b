"""A station's credentials, changed while it is connected: password rotation and security-profile upgrade
(rules and what the CSMS stores when: :mod:`csms.services.credentials`)."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request

from csms.api.calls import Timeout, call_station_tracked, station_version
from csms.api.deps import GatewayDep
from csms.api.routes.stations import StationPath
from csms.api.schemas import PasswordOut, PasswordRequest, ProfileOut, ProfileRequest
from csms.gateway.server import Gateway
from csms.ocpp import commands
from csms.ocpp.versions import OCPP16
from csms.services.errors import Conflict, Invalid

#: Random bytes of a generated password, as URL-safe base64: 20 characters for 1.6 (16-20 allowed), 40 for 2.0.1.
_GENERATED_BYTES: dict[str, int] = {OCPP16: 15}
_GENERATED_BYTES_DEFAULT = 30

router = APIRouter(prefix="/stations/{station_id}", tags=["credentials"])


def generate_password(version: str) -> str:
    return secrets.token_urlsafe(_GENERATED_BYTES.get(version, _GENERATED_BYTES_DEFAULT))


@router.post("/password", response_model=PasswordOut)
async def rotate_password(
    request: Request, station_id: StationPath, body: PasswordRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Send the station a new HTTP Basic password (1.6 ChangeConfiguration AuthorizationKey, 2.0.1 SetVariables
    SecurityCtrlr.BasicAuthPassword). It becomes the stored one only when the station accepts it; the old one
    still admits the station until it reconnects with the new one (24 h at most). 422: a password the spec
    forbids, or neither/both of `password` and `generate`; 409: not connected."""
    if (body.password is None) == (not body.generate):
        raise Invalid("give either a password or generate: true")
    version = await station_version(request, station_id)
    password = body.password or generate_password(version)
    action, payload = commands.set_password(version, password)
    outcome, adopted = await call_station_tracked(request, gateway, station_id, version, action, payload, timeout)
    return {"call": outcome, "adopted": adopted, "password": password if body.generate else None}


def _default_url(request: Request, gateway: Gateway, profile: int) -> str:
    host = request.url.hostname or "localhost"
    if profile == 1:
        return f"ws://{host}:{gateway.port}/ocpp"
    if gateway.tls_port is None:
        raise Conflict(f"security profile {profile} needs TLS: this CSMS serves no wss:// (csms serve --tls-cert)")
    return f"wss://{host}:{gateway.tls_port}/ocpp"


@router.post("/security-profile", response_model=ProfileOut)
async def upgrade_profile(
    request: Request, station_id: StationPath, body: ProfileRequest, gateway: GatewayDep, timeout: Timeout = None
) -> dict[str, Any]:
    """Move the station to a higher security profile the way the spec orders it: 2.0.1 SetNetworkProfile (the
    new profile and URL), SetVariables OCPPCommCtrlr.NetworkConfigurationPriority, Reset; 1.6
    ChangeConfiguration SecurityProfile, Reset. Each call is sent once the one before was accepted. The stored
    profile changes when the station has reconnected meeting the new one. 409: a downgrade (recorded as a
    `profile_downgrade_refused` security event), no wss:// listener, or not connected."""
    version = await station_version(request, station_id)
    url = body.csms_url or _default_url(request, gateway, body.profile)
    sent: list[dict[str, Any]] = []
    pending = None
    for action, payload in commands.upgrade_profile(version, body.profile, url, body.configuration_slot):
        outcome, adopted = await call_station_tracked(request, gateway, station_id, version, action, payload, timeout)
        sent.append(outcome)
        if adopted:
            pending = body.profile
        elif outcome["outcome"] != "result" or not commands.accepted(outcome.get("payload") or {}):
            break
    return {"calls": sent, "pending_security_profile": pending}
