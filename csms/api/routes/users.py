"""The console's users over the API (issue 21): list, add with a role (a one-time link to set the password),
change a role, disable and enable, a new one-time link. An organisation's owners and admins manage its users,
a platform admin every organisation's; the rules (no platform admin made by anyone else, an organisation keeps
an owner, nobody demotes or disables themselves) are ``csms.services.users``'s, shared with the console page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from pydantic import Field

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import Out, Strict, examples
from csms.services import organisations, users
from csms.services.roles import ROLES

router = APIRouter(prefix="/users", tags=["users"])

UserPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
Role = Annotated[str, Field(description=f"one of {', '.join(ROLES)}", max_length=40)]


class UserOut(Out):
    id: int
    email: str
    role: str
    organisation: str | None
    disabled: bool
    totp: bool
    created_at: datetime


class UserLinkOut(UserOut):
    set_password_url: str = Field(description="the one-time link to hand to the user (shown once)")


class UserCreate(Strict):
    model_config = examples({"email": "ops@example.com", "role": "operator"})

    email: str = Field(max_length=254)
    role: Role
    organisation: str | None = Field(
        None, max_length=64, description="slug; only a platform admin names another organisation than its own"
    )


class UserUpdate(Strict):
    model_config = examples({"role": "viewer"}, {"disabled": True})

    role: Role | None = None
    disabled: bool | None = None


def _out(db: Any, user: Any, slugs: dict[int, str] | None = None) -> dict[str, Any]:
    slugs = slugs if slugs is not None else organisations.slugs(db)
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "organisation": slugs.get(user.organisation_id),
        "disabled": user.disabled,
        "totp": user.totp_secret is not None,
        "created_at": user.created_at,
    }


def _link(request: Request, token: str) -> str:
    return str(request.base_url).rstrip("/") + f"/set-password/{token}"


@router.get("", response_model=list[UserOut])
def list_users(db: DbSession, caller: Caller) -> list[dict[str, Any]]:
    """The users of the caller's organisation (a platform admin: every user)."""
    slugs = organisations.slugs(db)
    return [_out(db, u, slugs) for u in users.visible_users(db, caller.manager)]


@router.post("", response_model=UserLinkOut, status_code=status.HTTP_201_CREATED)
def create_user(request: Request, db: DbSession, caller: Caller, body: UserCreate) -> dict[str, Any]:
    """A user with a role and the one-time link with which they set their password (valid for a day)."""
    user, token = users.add_by(db, caller.manager, body.email, body.role, body.organisation, datetime.now(UTC))
    return _out(db, user) | {"set_password_url": _link(request, token)}


@router.patch("/{user_id}", response_model=UserOut)
def update_user(db: DbSession, caller: Caller, user_id: UserPath, body: UserUpdate) -> dict[str, Any]:
    """Change the role, or disable (every session ends, sign-in refused) or enable the user."""
    user = users.managed(db, caller.manager, user_id)
    if body.role is not None:
        user = users.change_role_by(db, caller.manager, user_id, body.role)
    if body.disabled is not None:
        user = users.set_disabled_by(db, caller.manager, user_id, body.disabled, datetime.now(UTC))
    return _out(db, user)


@router.post("/{user_id}/reset-link", response_model=UserLinkOut)
def reset_link(request: Request, db: DbSession, caller: Caller, user_id: UserPath) -> dict[str, Any]:
    """A new one-time link to set the password (an earlier link stops working)."""
    user, token = users.reset_by(db, caller.manager, user_id, datetime.now(UTC))
    return _out(db, user) | {"set_password_url": _link(request, token)}
