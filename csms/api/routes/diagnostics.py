"""Remote diagnostics and firmware: uploads and downloads the CSMS serves itself, and the calls that use them.

``public_router`` is *not* behind the API key: stations cannot send one. Its URLs carry a random token
instead (one-time for an upload, until expiry for a firmware download), so they cannot be guessed.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import Field

from csms.api.auth import Caller
from csms.api.calls import Timeout, call_station, station_version
from csms.api.deps import DbSession, GatewayDep, in_transaction
from csms.api.redaction import attachment
from csms.api.routes.stations import StationPath
from csms.api.schemas import CallOut, Out, Strict, UtcDatetime, examples
from csms.ocpp import commands
from csms.ocpp.convert import format_time
from csms.ocpp.outgoing import Call, SignedFirmware
from csms.services import diagnostics, uptime
from csms.services.errors import TooLarge

router = APIRouter(tags=["diagnostics"])
public_router = APIRouter(tags=["station downloads and uploads (token, no API key)"])

Token = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
FirmwareName = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,100}$")]
DIAGNOSTICS_TTL = diagnostics.DIAGNOSTICS_TTL
FIRMWARE_TTL = diagnostics.FIRMWARE_TTL


def _raw_body(description: str, *content_types: str) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that reads the raw request itself (FastAPI cannot infer it)."""
    binary = {"schema": {"type": "string", "format": "binary"}, "example": f"<{description}>"}
    content = dict.fromkeys(content_types, binary)
    return {"requestBody": {"required": True, "description": description, "content": content}}


UPLOAD_BODY = _raw_body("the log archive's bytes", "multipart/form-data", "application/octet-stream")
FIRMWARE_BODY = _raw_body("the firmware image's bytes", "application/octet-stream")


class DiagnosticsRequest(Strict):
    model_config = examples(
        {"start_time": "2026-01-15T00:00:00Z", "stop_time": "2026-01-15T12:00:00Z", "log_type": "DiagnosticsLog"}
    )

    start_time: UtcDatetime | None = None
    stop_time: UtcDatetime | None = None
    log_type: Literal["DiagnosticsLog", "SecurityLog"] = "DiagnosticsLog"
    retries: int | None = Field(None, ge=0, le=100)
    retry_interval: int | None = Field(None, ge=0, le=86_400)


class FirmwareRequest(Strict):
    model_config = examples(
        {"name": "fw-2.4.1.bin", "retrieve_at": "2026-01-16T02:00:00Z", "retries": 3, "retry_interval": 300}
    )

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")
    retrieve_at: UtcDatetime | None = Field(None, description="default: now")
    retries: int | None = Field(None, ge=0, le=100)
    retry_interval: int | None = Field(None, ge=0, le=86_400)


class SignedFirmwareRequest(FirmwareRequest):
    model_config = examples(
        {
            "name": "fw-2.4.1.bin",
            "signing_certificate": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n",
            "signature": "MEUCIQDx...base64...",
            "install_at": "2026-01-16T03:00:00Z",
        }
    )

    signing_certificate: str = Field(
        min_length=1, max_length=5500, description="PEM certificate that signed the image (the station checks it)"
    )
    signature: str = Field(min_length=1, max_length=800, description="base64 signature of the image")
    install_at: UtcDatetime | None = Field(None, description="default: as soon as it is downloaded")


class ExtendedTriggerRequest(Strict):
    model_config = examples({"message": "SignChargePointCertificate"})

    message: Literal[
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargePointCertificate",
        "StatusNotification",
    ]
    evse_id: int | None = Field(None, ge=0, le=2**31 - 1)


class AvailabilityRequest(Strict):
    model_config = examples({"evse_id": 1, "operative": False})

    evse_id: int = Field(0, ge=0, le=2**31 - 1, description="0: the whole station")
    operative: bool


class TriggerRequest(Strict):
    model_config = examples({"message": "StatusNotification", "evse_id": 1})

    message: Literal[
        "BootNotification",
        "DiagnosticsStatusNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
        "TransactionEvent",
    ]
    evse_id: int | None = Field(None, ge=0, le=2**31 - 1)


class TransferOut(Out):
    id: int
    station_id: str
    kind: str
    request_id: int | None
    firmware_name: str | None
    requested_at: datetime
    expires_at: datetime
    call_status: str | None
    status: str | None
    status_at: datetime | None
    finished: bool
    file_name: str | None
    size: int | None
    uploaded_at: datetime | None


class TransferCallOut(Out):
    transfer: TransferOut
    location: str
    call: CallOut


class FirmwareOut(Out):
    name: str
    size: int
    sha256: str
    created_at: datetime


def _base_url(request: Request) -> str:
    public = getattr(request.app.state, "public_url", None)
    return (public or str(request.base_url)).rstrip("/")


def _call_status(result: dict[str, Any]) -> str:
    if result["outcome"] != "result":
        return result["outcome"]
    return (result.get("payload") or {}).get("status", "Accepted")


# ---- station-facing, token-guarded --------------------------------------------------------------------------
@public_router.put(
    "/uploads/diagnostics/{token}", status_code=201, operation_id="put_diagnostics_upload", openapi_extra=UPLOAD_BODY
)
@public_router.post(
    "/uploads/diagnostics/{token}", status_code=201, operation_id="post_diagnostics_upload", openapi_extra=UPLOAD_BODY
)
async def upload_diagnostics(request: Request, token: Token) -> dict[str, Any]:
    """The URL handed to a station in GetDiagnostics/GetLog: multipart/form-data (first file part) or a raw body.

    The token is checked before the body is read (404 unknown or expired, 409 used), and the body is read
    only up to the CSMS's `max_upload_bytes` (`csms serve --max-upload-bytes`; 413 beyond it; the token stays
    usable)."""
    await in_transaction(request, lambda db: diagnostics.upload_slot(db, token, datetime.now(UTC)))
    limit = request.app.state.gateway.config.max_upload_bytes
    body = await _bounded_body(request, limit)
    content_type = request.headers.get("content-type", "application/octet-stream")
    file_name = request.headers.get("x-file-name")
    if content_type.startswith("multipart/form-data"):
        file_name, content_type, body = _first_file_part(content_type, body)

    def store(db: Any) -> dict[str, Any]:
        row = diagnostics.receive_upload(db, token, file_name, content_type, body, datetime.now(UTC), limit)
        return {"id": row.id, "size": row.size, "file_name": row.file_name}

    return await in_transaction(request, store)


async def _bounded_body(request: Request, limit: int, what: str = "upload") -> bytes:
    """The request body, read chunk by chunk and abandoned as soon as it exceeds ``limit`` bytes."""
    too_large = TooLarge(f"{what} larger than {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _first_file_part(content_type: str, body: bytes) -> tuple[str | None, str, bytes]:
    """multipart/form-data without extra dependencies: the stdlib MIME parser, first part (a file if any)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if not parts:
        return None, "application/octet-stream", body
    part = next((p for p in parts if p.get_filename()), parts[0])
    payload = part.get_payload(decode=True)  # bytes, or None for an empty part
    return part.get_filename(), part.get_content_type(), payload if isinstance(payload, bytes) else b""


@public_router.get("/firmware/{name}", response_class=Response)
async def download_firmware(
    request: Request, name: FirmwareName, token: Annotated[str, Query(min_length=20, max_length=100)]
) -> Response:
    """The firmware URL handed to a station in UpdateFirmware (404 without a valid token)."""
    content = await in_transaction(
        request, lambda db: diagnostics.firmware_for_token(db, name, token, datetime.now(UTC))
    )
    headers = {"Content-Disposition": attachment(name)}
    return Response(content, media_type="application/octet-stream", headers=headers)


# ---- operator-facing (API key) ------------------------------------------------------------------------------
@router.post(
    "/firmware-files", response_model=FirmwareOut, status_code=status.HTTP_201_CREATED, openapi_extra=FIRMWARE_BODY
)
async def upload_firmware(
    request: Request, caller: Caller, name: Annotated[str, Query(pattern=r"^[A-Za-z0-9._-]{1,100}$")]
) -> Any:
    """Store a firmware image (the raw request body) under ``name``, to be sent with UpdateFirmware.

    The name is checked before the body is read (409 taken), and the body is read only up to
    ``csms.services.diagnostics.MAX_FIRMWARE_BYTES`` (413 beyond it)."""
    await in_transaction(request, lambda db: diagnostics.firmware_slot(db, name))
    content = await _bounded_body(request, diagnostics.MAX_FIRMWARE_BYTES, "firmware image")
    now = datetime.now(UTC)
    return await in_transaction(
        request,
        lambda db: FirmwareOut.model_validate(
            diagnostics.store_firmware(db, name, content, now, caller.organisation_id)
        ),
    )


@router.get("/firmware-files", response_model=list[FirmwareOut])
def list_firmware(db: DbSession, caller: Caller) -> Any:
    return diagnostics.list_firmware(db, caller.scope)


@router.post("/stations/{station_id}/diagnostics", response_model=TransferCallOut)
async def request_diagnostics(
    request: Request,
    station_id: StationPath,
    gateway: GatewayDep,
    body: DiagnosticsRequest | None = None,
    timeout: Timeout = None,
) -> Any:
    """GetDiagnostics (1.6) or GetLog (2.0.1) with a one-time upload URL on this CSMS; follow it with
    ``GET /stations/{id}/transfers``."""
    return await _upload_request(
        request, station_id, gateway, body or DiagnosticsRequest(), timeout, commands.get_diagnostics
    )


@router.post("/stations/{station_id}/log", response_model=TransferCallOut)
async def request_log(
    request: Request,
    station_id: StationPath,
    gateway: GatewayDep,
    body: DiagnosticsRequest | None = None,
    timeout: Timeout = None,
) -> Any:
    """GetLog (2.0.1, and the 1.6 security extension): a DiagnosticsLog or SecurityLog uploaded to a one-time
    URL on this CSMS, tracked by LogStatusNotification; follow it with ``GET /stations/{id}/transfers``."""
    return await _upload_request(request, station_id, gateway, body or DiagnosticsRequest(), timeout, commands.get_log)


async def _upload_request(
    request: Request,
    station_id: str,
    gateway: Any,
    body: DiagnosticsRequest,
    timeout: float | None,
    build: Callable[..., Call],
) -> Any:
    version = await station_version(request, station_id)

    def create(db: Any) -> tuple[int, int, str]:
        row, token = diagnostics.request_diagnostics(db, station_id, datetime.now(UTC), DIAGNOSTICS_TTL)
        return row.id, row.request_id or row.id, token

    transfer_id, request_id, token = await in_transaction(request, create)
    location = f"{_base_url(request)}/api/v1/uploads/diagnostics/{token}"
    action, payload = build(
        version,
        location,
        request_id,
        start_time=format_time(body.start_time) if body.start_time else None,
        stop_time=format_time(body.stop_time) if body.stop_time else None,
        log_type=body.log_type,
        retries=body.retries,
        retry_interval=body.retry_interval,
    )
    return await _send_transfer(request, gateway, station_id, action, payload, timeout, transfer_id, location)


@router.post("/stations/{station_id}/firmware", response_model=TransferCallOut)
async def update_firmware(
    request: Request,
    station_id: StationPath,
    body: FirmwareRequest,
    gateway: GatewayDep,
    caller: Caller,
    timeout: Timeout = None,
) -> Any:
    """UpdateFirmware (1.6 or 2.0.1) pointing at the stored firmware file on this CSMS."""
    version = await station_version(request, station_id)

    def create(db: Any) -> tuple[int, int, str]:
        now = datetime.now(UTC)
        row, token = diagnostics.request_firmware(db, station_id, body.name, now, FIRMWARE_TTL, caller.scope)
        return row.id, row.request_id or row.id, token

    transfer_id, request_id, token = await in_transaction(request, create)
    location = f"{_base_url(request)}/api/v1/firmware/{body.name}?token={token}"
    retrieve_at = format_time(body.retrieve_at or datetime.now(UTC))
    action, payload = commands.update_firmware(
        version, location, request_id, retrieve_at, retries=body.retries, retry_interval=body.retry_interval
    )
    return await _send_transfer(request, gateway, station_id, action, payload, timeout, transfer_id, location)


@router.post("/stations/{station_id}/signed-firmware", response_model=TransferCallOut)
async def signed_update_firmware(
    request: Request,
    station_id: StationPath,
    body: SignedFirmwareRequest,
    gateway: GatewayDep,
    caller: Caller,
    timeout: Timeout = None,
) -> Any:
    """1.6 SignedUpdateFirmware (security extension) or 2.0.1 UpdateFirmware with the signing certificate and
    signature, pointing at the stored firmware file; tracked by (Signed)FirmwareStatusNotification."""
    version = await station_version(request, station_id)

    def create(db: Any) -> tuple[int, int, str]:
        now = datetime.now(UTC)
        row, token = diagnostics.request_firmware(db, station_id, body.name, now, FIRMWARE_TTL, caller.scope)
        return row.id, row.request_id or row.id, token

    transfer_id, request_id, token = await in_transaction(request, create)
    location = f"{_base_url(request)}/api/v1/firmware/{body.name}?token={token}"
    firmware = SignedFirmware(
        location=location,
        request_id=request_id,
        retrieve_at=format_time(body.retrieve_at or datetime.now(UTC)),
        signing_certificate=body.signing_certificate,
        signature=body.signature,
        install_at=format_time(body.install_at) if body.install_at else None,
        retries=body.retries,
        retry_interval=body.retry_interval,
    )
    action, payload = commands.signed_update_firmware(version, firmware)
    return await _send_transfer(request, gateway, station_id, action, payload, timeout, transfer_id, location)


async def _send_transfer(
    request: Request,
    gateway: Any,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float | None,
    transfer_id: int,
    location: str,
) -> dict[str, Any]:
    try:
        result = await call_station(gateway, station_id, action, payload, timeout)
        call_status = _call_status(result)
    except Exception:
        await in_transaction(request, lambda db: diagnostics.set_call_status(db, transfer_id, "not_sent"))
        raise

    def finish(db: Any) -> TransferOut:
        diagnostics.set_call_status(db, transfer_id, call_status)
        db.flush()
        return TransferOut.model_validate(diagnostics.list_transfers(db, station_id)[0])

    transfer = await in_transaction(request, finish)
    return {"transfer": transfer, "location": location, "call": result}


@router.get("/stations/{station_id}/transfers", response_model=list[TransferOut])
def list_transfers(
    station_id: StationPath, db: DbSession, kind: Annotated[Literal["diagnostics", "firmware"] | None, Query()] = None
) -> Any:
    """Diagnostics and firmware requests, newest first, each with the last status the station reported."""
    return diagnostics.list_transfers(db, station_id, kind)


@router.get("/stations/{station_id}/transfers/{transfer_id}/content", response_class=Response)
def download_upload(
    station_id: StationPath, transfer_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: DbSession
) -> Response:
    """The file a station uploaded for a diagnostics request."""
    row = diagnostics.upload_content(db, transfer_id)
    if row.station_id != station_id or row.content is None:
        return Response(status_code=status.HTTP_404_NOT_FOUND)
    headers = {"Content-Disposition": attachment(row.file_name or "diagnostics")}
    return Response(row.content, media_type=row.content_type or "application/octet-stream", headers=headers)


@router.post("/stations/{station_id}/change-availability", response_model=CallOut)
async def change_availability(
    request: Request, station_id: StationPath, body: AvailabilityRequest, gateway: GatewayDep, timeout: Timeout = None
) -> Any:
    """ChangeAvailability. An accepted (or scheduled) order is recorded: an Unavailable the operator ordered
    is not an outage."""
    version = await station_version(request, station_id)
    action, payload = commands.change_availability(version, body.evse_id, body.operative)
    result = await call_station(gateway, station_id, action, payload, timeout)
    if _call_status(result) in ("Accepted", "Scheduled"):
        await in_transaction(
            request,
            lambda db: uptime.record_availability_order(
                db, station_id, body.evse_id, body.operative, datetime.now(UTC)
            ),
        )
    return result


@router.post("/stations/{station_id}/extended-trigger", response_model=CallOut)
async def extended_trigger_message(
    request: Request,
    station_id: StationPath,
    body: ExtendedTriggerRequest,
    gateway: GatewayDep,
    timeout: Timeout = None,
) -> Any:
    """1.6 ExtendedTriggerMessage (security extension) or 2.0.1 TriggerMessage; SignChargePointCertificate is
    2.0.1's SignChargingStationCertificate."""
    version = await station_version(request, station_id)
    action, payload = commands.extended_trigger(version, body.message, body.evse_id)
    return await call_station(gateway, station_id, action, payload, timeout)


@router.post("/stations/{station_id}/trigger", response_model=CallOut)
async def trigger_message(
    request: Request, station_id: StationPath, body: TriggerRequest, gateway: GatewayDep, timeout: Timeout = None
) -> Any:
    """TriggerMessage; Diagnostics/LogStatusNotification are translated for the station's version."""
    version = await station_version(request, station_id)
    action, payload = commands.trigger(version, body.message, body.evse_id)
    return await call_station(gateway, station_id, action, payload, timeout)
