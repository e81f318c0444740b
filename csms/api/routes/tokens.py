"""Id tokens (RFID cards, app tokens): who may charge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, status
from sqlalchemy.orm import Session

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.local_lists import list_sync
from csms.api.schemas import TokenCreate, TokenOut, TokenStatus, TokenUpdate
from csms.services import authorization, local_lists

router = APIRouter(prefix="/tokens", tags=["id tokens"])

TokenPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[^\x00-\x1f]+$")]


@router.post("", response_model=TokenOut, status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenCreate, db: DbSession, request: Request, background: BackgroundTasks, caller: Caller
) -> TokenOut:
    """Create an id token (409 when it exists)."""
    row = authorization.create(
        db,
        body.id_token,
        datetime.now(UTC),
        status=body.status,
        token_type=body.type,
        expiry=body.expiry,
        group_id=body.group_id,
    )
    caller.adopt(row)
    _lists_follow(request, background, db, row.id_token, {row.group_id})
    return TokenOut.model_validate(row)


@router.get("", response_model=list[TokenOut])
def list_tokens(
    db: DbSession, caller: Caller, group_id: str | None = None, status: TokenStatus | None = None
) -> list[TokenOut]:
    found = authorization.list_tokens(db, group_id=group_id, status=status, organisation_id=caller.scope)
    return [TokenOut.model_validate(row) for row in found]


@router.get("/{id_token}", response_model=TokenOut)
def get_token(id_token: TokenPath, db: DbSession) -> TokenOut:
    return TokenOut.model_validate(authorization.get(db, id_token))


@router.patch("/{id_token}", response_model=TokenOut)
def update_token(
    id_token: TokenPath, body: TokenUpdate, db: DbSession, request: Request, background: BackgroundTasks
) -> TokenOut:
    """Change status, expiry, group or type; fields left out keep their value, null clears expiry/group."""
    changes = body.model_dump(exclude_unset=True)
    if "type" in changes:
        changes["token_type"] = changes.pop("type")
    before = authorization.get(db, id_token).group_id
    row = authorization.update(db, id_token, changes, datetime.now(UTC))
    _lists_follow(request, background, db, id_token, {before, row.group_id})
    return TokenOut.model_validate(row)


def _lists_follow(
    request: Request, background: BackgroundTasks, db: Session, id_token: str, groups: set[str | None]
) -> None:
    """The stations whose local list carries (or should carry) the token get a differential update once the
    change is committed (the response is sent first)."""
    station_ids = local_lists.token_changed(db, id_token, groups, datetime.now(UTC))
    if station_ids:
        background.add_task(list_sync(request).sync_quietly, station_ids)
