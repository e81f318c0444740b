"""Organisations (tenants): created by the CLI, named by a slug; which objects a caller may see is
:func:`visible` (a platform admin's ``organisation_id`` is None: every organisation)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import DEFAULT_ORGANISATION_ID, BillingAccount, Organisation, Station

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def create(db: Session, slug: str, name: str | None, now: datetime) -> Organisation:
    """Raises:
    Invalid: a slug that is not 1-64 of ``a-z 0-9 -`` (starting with a letter or digit), a name over 200.
    Conflict: the slug exists."""
    if not _SLUG.fullmatch(slug):
        raise Invalid("organisation slug must be 1-64 characters of a-z, 0-9 and '-', starting with a letter or digit")
    if name is not None and not 1 <= len(name) <= 200:
        raise Invalid("organisation name must be 1-200 characters")
    if db.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise Conflict(f"organisation {slug} exists")
    row = Organisation(slug=slug, name=name or slug, created_at=now)
    db.add(row)
    db.flush()
    return row


def by_slug(db: Session, slug: str | None) -> Organisation:
    """The organisation named ``slug`` (None: the default one). Raises NotFound."""
    if slug is None:
        row = db.get(Organisation, DEFAULT_ORGANISATION_ID)
    else:
        row = db.scalar(select(Organisation).where(Organisation.slug == slug))
    if row is None:
        raise NotFound(f"organisation {slug or 'default'} not found")
    return row


def list_organisations(db: Session) -> list[Organisation]:
    return list(db.scalars(select(Organisation).order_by(Organisation.id)))


def slugs(db: Session) -> dict[int, str]:
    return {row.id: row.slug for row in list_organisations(db)}


def visible(scope: int | None, organisation_id: int) -> bool:
    """Whether a caller scoped to organisation ``scope`` (None: every organisation) sees an object of
    ``organisation_id``."""
    return scope is None or scope == organisation_id


def station_ids(organisation_id: int) -> Select[str]:
    """The ids of one organisation's stations, as a subquery for what hangs off a station."""
    return select(Station.id).where(Station.organisation_id == organisation_id)


def account_ids(organisation_id: int) -> Select[str]:
    """The ids of one organisation's billing accounts, as a subquery for what hangs off an account."""
    return select(BillingAccount.id).where(BillingAccount.organisation_id == organisation_id)
