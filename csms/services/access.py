"""Authorization at a station: the token's own status, then the access rules of the place (a multifamily
garage lets in only the passes it issued, in their hours and within their energy)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from csms.domain.events import AuthorizationInfo
from csms.services import authorization, multifamily


def authorize_at(db: Session, id_token: str, station_id: str, now: datetime) -> AuthorizationInfo:
    info = authorization.authorize(db, id_token, now)
    if info.status != "Accepted":
        return info
    refused = multifamily.access(db, id_token, station_id, now)
    return info if refused is None else AuthorizationInfo(refused, info.expiry, info.group_id)
