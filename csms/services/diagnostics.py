"""Diagnostics/log uploads and firmware downloads over the CSMS's own HTTP endpoints, tracked to completion.

The URL handed to a station carries a random token (``secrets.token_urlsafe(32)``); only its SHA-256 is
stored. A diagnostics upload token works once; a firmware token until it expires (stations retry downloads).
Status notifications (1.6 Diagnostics/FirmwareStatusNotification, 2.0.1 LogStatus/FirmwareStatusNotification)
update the request they belong to: 2.0.1 by ``requestId``, 1.6 (which has none) the station's latest open
request of that kind.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.services import organisations
from csms.services.errors import Conflict, Invalid, NotFound, TooLarge
from csms.store.models import DEFAULT_ORGANISATION_ID, FileTransfer, FirmwareFile
from csms.store.models import Station as StationRow

#: How long an upload URL handed to a station works (once), and a firmware URL (until then: stations retry).
DIAGNOSTICS_TTL = timedelta(days=1)
FIRMWARE_TTL = timedelta(days=7)
#: The largest diagnostics upload stored; the API stops reading beyond it (413).
#: The default of ``CsmsConfig.max_upload_bytes`` (``csms serve --max-upload-bytes``).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: The largest firmware image stored (charger images run to tens of MB); the API stops reading beyond it (413).
MAX_FIRMWARE_BYTES = 200 * 1024 * 1024
FIRMWARE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
#: The last status of a request (anything else means it is still in progress).
FINAL_STATUSES = {
    # 1.6 DiagnosticsStatus says UploadFailed; LogStatus (2.0.1, 1.6 security extension) UploadFailure.
    "diagnostics": {
        "Uploaded",
        "UploadFailed",
        "UploadFailure",
        "BadMessage",
        "NotSupportedOperation",
        "PermissionDenied",
    },
    "firmware": {
        "Installed",
        "DownloadFailed",
        "InstallationFailed",
        "InstallVerificationFailed",
        "InvalidSignature",
        "SignatureVerificationFailed",
    },
}
NOTICE_KINDS = {"diagnostics_status": "diagnostics", "firmware_status": "firmware"}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_transfer(
    db: Session, station_id: str, kind: str, now: datetime, ttl: timedelta, firmware_name: str | None = None
) -> tuple[FileTransfer, str]:
    if db.get(StationRow, station_id) is None:
        raise NotFound(f"station {station_id!r} not found")
    token = secrets.token_urlsafe(32)
    row = FileTransfer(
        station_id=station_id,
        kind=kind,
        token_hash=_hash(token),
        firmware_name=firmware_name,
        requested_at=now,
        expires_at=now + ttl,
        finished=False,
    )
    db.add(row)
    db.flush()
    row.request_id = row.id  # 2.0.1 requestId
    db.flush()
    return row, token


def request_diagnostics(db: Session, station_id: str, now: datetime, ttl: timedelta) -> tuple[FileTransfer, str]:
    return _new_transfer(db, station_id, "diagnostics", now, ttl)


def request_firmware(
    db: Session, station_id: str, name: str, now: datetime, ttl: timedelta, organisation_id: int | None = None
) -> tuple[FileTransfer, str]:
    """A firmware transfer of the stored file ``name`` (another organisation's file than ``organisation_id``,
    when given, is not found)."""
    file = db.get(FirmwareFile, name)
    if file is None or not organisations.visible(organisation_id, file.organisation_id):
        raise NotFound(f"firmware file {name!r} not found")
    return _new_transfer(db, station_id, "firmware", now, ttl, firmware_name=name)


def set_call_status(db: Session, transfer_id: int, status: str) -> None:
    row = db.get(FileTransfer, transfer_id)
    if row is not None:
        row.call_status = status
        if status not in ("Accepted", "AcceptedCanceled", "result"):
            row.finished = True


def upload_slot(db: Session, token: str, now: datetime) -> FileTransfer:
    """The diagnostics request an upload token opens (checked before the upload's body is read).

    Raises:
        NotFound: unknown or expired token.  Conflict: the token was used already.
    """
    row = db.scalars(
        select(FileTransfer).where(FileTransfer.token_hash == _hash(token), FileTransfer.kind == "diagnostics")
    ).first()
    if row is None or row.expires_at <= now:
        raise NotFound("unknown or expired upload token")
    if row.uploaded_at is not None:
        raise Conflict("this upload token was used already")
    return row


def receive_upload(
    db: Session,
    token: str,
    file_name: str | None,
    content_type: str | None,
    content: bytes,
    now: datetime,
    limit: int = MAX_UPLOAD_BYTES,
) -> FileTransfer:
    """Store what a station uploaded. NotFound for an unknown or expired token, Conflict when already used,
    TooLarge beyond ``limit`` bytes (the CSMS's ``max_upload_bytes``)."""
    row = upload_slot(db, token, now)
    if len(content) > limit:
        raise TooLarge(f"upload larger than {limit} bytes")
    row.file_name = (file_name or "diagnostics")[:255]
    row.content_type = (content_type or "application/octet-stream")[:100]
    row.content = content
    row.size = len(content)
    row.uploaded_at = now
    db.flush()
    return row


def firmware_slot(db: Session, name: str) -> None:
    """Whether a firmware image may be stored under ``name``, checked before its body is read.

    Raises:
        Invalid: not a firmware name.  Conflict: the name is taken.
    """
    if not FIRMWARE_NAME.match(name):
        raise Invalid("a firmware name is 1-100 of A-Z a-z 0-9 . _ -")
    if db.get(FirmwareFile, name) is not None:
        raise Conflict(f"firmware file {name!r} exists")


def store_firmware(
    db: Session, name: str, content: bytes, now: datetime, organisation_id: int = DEFAULT_ORGANISATION_ID
) -> FirmwareFile:
    """The file of ``organisation_id``. Raises: Invalid, Conflict (see :func:`firmware_slot`); TooLarge beyond
    :data:`MAX_FIRMWARE_BYTES`."""
    firmware_slot(db, name)
    if len(content) > MAX_FIRMWARE_BYTES:
        raise TooLarge(f"firmware image larger than {MAX_FIRMWARE_BYTES} bytes")
    row = FirmwareFile(
        name=name,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        created_at=now,
        organisation_id=organisation_id,
    )
    db.add(row)
    db.flush()
    return row


def list_firmware(db: Session, organisation_id: int | None = None) -> list[FirmwareFile]:
    """Every stored firmware file (of one organisation, when given)."""
    query = select(FirmwareFile).order_by(FirmwareFile.name)
    if organisation_id is not None:
        query = query.where(FirmwareFile.organisation_id == organisation_id)
    return list(db.scalars(query))


def firmware_for_token(db: Session, name: str, token: str, now: datetime) -> bytes:
    """The firmware file a station was sent a URL for (NotFound for anything else)."""
    row = db.scalars(
        select(FileTransfer).where(FileTransfer.token_hash == _hash(token), FileTransfer.kind == "firmware")
    ).first()
    if row is None or row.firmware_name != name or row.expires_at <= now:
        raise NotFound("unknown or expired firmware token")
    file = db.get(FirmwareFile, name)
    if file is None:
        raise NotFound(f"firmware file {name!r} not found")
    return file.content


def track_status(db: Session, station_id: str, notice_kind: str, data: dict[str, Any], now: datetime) -> None:
    """A status notification: update the request it belongs to (its last status wins)."""
    kind = NOTICE_KINDS.get(notice_kind)
    status = data.get("status")
    if kind is None or status is None:
        return
    query = select(FileTransfer).where(FileTransfer.station_id == station_id, FileTransfer.kind == kind)
    if "requestId" in data:
        query = query.where(FileTransfer.request_id == data["requestId"])
    elif status == "Idle":  # 1.6: nothing in progress
        return
    row = db.scalars(query.order_by(FileTransfer.id.desc())).first()
    if row is None:
        return
    row.status, row.status_at = status, now
    if status in FINAL_STATUSES[kind]:
        row.finished = True


def list_transfers(db: Session, station_id: str, kind: str | None = None) -> list[FileTransfer]:
    query = select(FileTransfer).where(FileTransfer.station_id == station_id).order_by(FileTransfer.id.desc())
    if kind is not None:
        query = query.where(FileTransfer.kind == kind)
    return list(db.scalars(query))


def upload_content(db: Session, transfer_id: int) -> FileTransfer:
    row = db.get(FileTransfer, transfer_id)
    if row is None or row.kind != "diagnostics":
        raise NotFound(f"diagnostics request {transfer_id} not found")
    return row
