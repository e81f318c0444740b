"""Authorization at a station: the token's own status, then the access rules of the place (a multifamily
garage lets in only the passes it issued, in their hours and within their energy)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from csms.domain.events import AuthorizationInfo
from csms.pki.lookups import Pending
from csms.services import authorization, multifamily, ocpi
from csms.services.uow import UnitOfWork
from csms.store.models import IdToken


def authorize_request(db: Session, id_token: str, station_id: str, now: datetime) -> AuthorizationInfo | Pending:
    """Authorize: :func:`authorize_at`, or, for a roaming token whose eMSP wants to be asked, the eMSP's answer
    (real-time authorisation, a lookup the host makes after the commit)."""
    if db.get(IdToken, id_token) is None:
        asked = ocpi.realtime(db, id_token, station_id, now)
        if asked is not None:
            return asked
    return authorize_at(db, id_token, station_id, now)


def authorize_in(uow: UnitOfWork, id_token: str, station_id: str, now: datetime) -> AuthorizationInfo:
    """:func:`authorize_at` in a batch, without opening its ORM session for what is most often asked: a local token
    at a station in no property's garage (two or three Core reads); anything else goes the ORM way."""
    connection = uow.read_connection()
    info = authorization.authorize_local(connection, id_token, now)
    if info is None or (info.status == "Accepted" and multifamily.in_a_garage(connection, station_id)):
        return authorize_at(uow.session, id_token, station_id, now)
    return info


def authorize_at(db: Session, id_token: str, station_id: str, now: datetime) -> AuthorizationInfo:
    info = authorization.authorize(db, id_token, now, station_id)
    if info.status != "Accepted":
        return info
    refused = multifamily.access(db, id_token, station_id, now)
    return info if refused is None else AuthorizationInfo(refused, info.expiry, info.group_id)
