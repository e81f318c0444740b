"""Authorization at a station: the token's own status, then the access rules of the place (a multifamily
garage lets in only the passes it issued, in their hours and within their energy)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from csms.domain.events import AuthorizationInfo
from csms.pki.lookups import Pending
from csms.services import authorization, multifamily, ocpi
from csms.store.models import IdToken


def authorize_request(db: Session, id_token: str, station_id: str, now: datetime) -> AuthorizationInfo | Pending:
    """Authorize: :func:`authorize_at`, or, for a roaming token whose eMSP wants to be asked, the eMSP's answer
    (real-time authorisation, a lookup the host makes after the commit)."""
    if db.get(IdToken, id_token) is None:
        asked = ocpi.realtime(db, id_token, station_id, now)
        if asked is not None:
            return asked
    return authorize_at(db, id_token, station_id, now)


def authorize_at(db: Session, id_token: str, station_id: str, now: datetime) -> AuthorizationInfo:
    info = authorization.authorize(db, id_token, now, station_id)
    if info.status != "Accepted":
        return info
    refused = multifamily.access(db, id_token, station_id, now)
    return info if refused is None else AuthorizationInfo(refused, info.expiry, info.group_id)
