"""Driver access: id tokens and the authorization decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from csms.domain.events import AuthorizationInfo
from csms.services import ocpi
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.bulk import Bulk
from csms.store.models import IdToken

STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")


def authorize(db: Session, id_token: str, now: datetime, station_id: str | None = None) -> AuthorizationInfo:
    """Unknown tokens are ``Unknown`` (1.6 renders it Invalid); a token past its expiry is ``Expired``. A token no
    local one matches may be an eMSP's (OCPI): :func:`csms.services.ocpi.whitelisted` (at ``station_id``: of a
    party that may see the station)."""
    row = db.get(IdToken, id_token)
    if row is None:
        return ocpi.whitelisted(db, id_token, station_id)  # a roaming driver's token, if an eMSP pushed it
    return _decided(row.status, row.expiry, row.group_id, now)


#: Straight to the driver (``Bulk.fetch_one``): SQLAlchemy's execution of it cost 6× running it (issue 13).
_LOCAL = Bulk(select(IdToken.status, IdToken.expiry, IdToken.group_id).where(IdToken.id_token == bindparam("token")))


def authorize_local(connection: Connection, id_token: str, now: datetime) -> AuthorizationInfo | None:
    """:func:`authorize` for a local token, read with one Core statement (no ORM session); None when no local
    token matches (then :func:`authorize` asks OCPI)."""
    row = _LOCAL.fetch_one(connection, {"token": id_token})
    if row is None:
        return None
    status, expiry, group_id = row
    return _decided(status, expiry, group_id, now)


def _decided(status: str, expiry: datetime | None, group_id: str | None, now: datetime) -> AuthorizationInfo:
    if status == "Accepted" and expiry is not None and expiry <= now:
        return AuthorizationInfo("Expired", expiry, group_id)
    return AuthorizationInfo(status, expiry, group_id)


def _check(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}, got {status!r}")


def create(
    db: Session,
    id_token: str,
    now: datetime,
    *,
    status: str = "Accepted",
    token_type: str = "ISO14443",
    expiry: datetime | None = None,
    group_id: str | None = None,
    upsert: bool = False,
) -> IdToken:
    _check(status)
    if not id_token or len(id_token) > 36:
        raise Invalid("id token must be 1-36 characters")
    row = db.get(IdToken, id_token)
    if row is not None and not upsert:
        raise Conflict(f"id token {id_token!r} already exists")
    if row is None:
        row = IdToken(id_token=id_token, created_at=now)
        db.add(row)
    row.status, row.token_type, row.expiry, row.group_id, row.updated_at = status, token_type, expiry, group_id, now
    db.flush()
    return row


def get(db: Session, id_token: str) -> IdToken:
    row = db.get(IdToken, id_token)
    if row is None:
        raise NotFound(f"id token {id_token!r} not found")
    return row


def update(db: Session, id_token: str, changes: dict[str, Any], now: datetime) -> IdToken:
    row = db.get(IdToken, id_token)
    if row is None:
        raise NotFound(f"id token {id_token!r} not found")
    _check(changes.get("status"))
    for key in ("status", "expiry", "group_id", "token_type"):
        if key in changes:
            setattr(row, key, changes[key])
    row.updated_at = now
    db.flush()
    return row


def list_tokens(
    db: Session, group_id: str | None = None, status: str | None = None, organisation_id: int | None = None
) -> list[IdToken]:
    query = select(IdToken).order_by(IdToken.id_token)
    if organisation_id is not None:
        query = query.where(IdToken.organisation_id == organisation_id)
    if group_id is not None:
        query = query.where(IdToken.group_id == group_id)
    if status is not None:
        query = query.where(IdToken.status == status)
    return list(db.scalars(query))
