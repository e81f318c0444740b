"""API keys: created once (the plain key is shown to the operator a single time), stored only as a hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.services import organisations
from csms.services.errors import Invalid, NotFound
from csms.services.passwords import api_key_hash, new_api_key
from csms.services.roles import PLATFORM_ADMIN, ROLES
from csms.store.models import ApiKey


def create(
    db: Session, name: str, now: datetime, role: str = PLATFORM_ADMIN, organisation: str | None = None
) -> tuple[ApiKey, str]:
    """A new key of ``role`` in ``organisation`` (a slug; None: the default one): returns its row and the plain
    key (which is not stored anywhere).

    Raises:
        Invalid: empty or over-long name, unknown role. NotFound: no such organisation.
    """
    if not name or len(name) > 100:
        raise Invalid("api key name must be 1-100 characters")
    if role not in ROLES:
        raise Invalid(f"role: must be one of {', '.join(ROLES)}")
    org = organisations.by_slug(db, organisation)
    key = new_api_key()
    row = ApiKey(
        name=name, key_hash=api_key_hash(key), created_at=now, revoked=False, role=role, organisation_id=org.id
    )
    db.add(row)
    db.flush()
    return row, key


def is_valid(db: Session, key: str) -> bool:
    """True when ``key`` is a stored, non-revoked key (looked up by its hash)."""
    return lookup(db, key) is not None


def lookup(db: Session, key: str) -> ApiKey | None:
    """The stored, non-revoked key ``key`` (looked up by its hash), or None."""
    return db.scalars(select(ApiKey).where(ApiKey.key_hash == api_key_hash(key), ApiKey.revoked.is_(False))).first()


def list_keys(db: Session, organisation_id: int | None = None) -> list[ApiKey]:
    """Every key (of one organisation, when given)."""
    query = select(ApiKey).order_by(ApiKey.id)
    if organisation_id is not None:
        query = query.where(ApiKey.organisation_id == organisation_id)
    return list(db.scalars(query))


def revoke(db: Session, key_id: int) -> ApiKey:
    row = db.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"api key {key_id} not found")
    row.revoked = True
    db.flush()
    return row
