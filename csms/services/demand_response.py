"""Demand response in the store: which sites the OpenADR VEN speaks for (a site's ``openadr_enrolled`` and the
resource id the VTN names it by), and the limits of the events it accepted (``site_curtailments``), kept so that
whichever process plans a site — after a restart, or a cluster node taking its lease over — obeys them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from csms.loadmgmt.manager import StoredCurtailment
from csms.services import sites
from csms.services.errors import Invalid, NotFound
from csms.store.models import Site, SiteCurtailment


def represented(db: Session, only: Sequence[str] = ()) -> tuple[dict[str, str], dict[str, float | None]]:
    """The sites the VEN speaks for — resource id → site id — and each one's limit at its grid connection [kW].

    The enrolled sites (``openadr_enrolled``), each by its ``openadr_resource_id`` or else its id; ``only`` (the
    ``openadr_sites`` start-up override) names the sites instead, enrolled or not, by the same resource ids."""
    query = select(Site.id, Site.openadr_resource_id)
    query = query.where(Site.id.in_(list(only))) if only else query.where(Site.openadr_enrolled.is_(True))
    by_resource = {resource or site_id: site_id for site_id, resource in db.execute(query.order_by(Site.id))}
    limits: dict[str, float | None] = {}
    for site_id in sorted(set(by_resource.values())):
        try:
            limits[site_id] = sites.topology(db, site_id).grid_limit_kw
        except (NotFound, Invalid):
            limits[site_id] = None
    return by_resource, limits


def record(
    db: Session, site_id: str, event_id: str, steps: Sequence[tuple[float, float, float]], now: datetime
) -> None:
    """What an event says for a site (``steps``: start, end (POSIX s), limit kW), replacing what it said before;
    each step is ``{event_id}#{i}``."""
    cancel(db, site_id, event_id)
    for i, (start, end, limit_kw) in enumerate(steps):
        db.add(SiteCurtailment(site_id=site_id, event_id=f"{event_id}#{i}", start=_utc(start), end=_utc(end),
                               limit_kw=limit_kw, created_at=now))  # fmt: skip
    db.flush()


def cancel(db: Session, site_id: str, event_id: str) -> None:
    """The event's steps for the site are gone (cancelled, or about to be replaced)."""
    prefix = f"{event_id}#"
    rows = db.scalars(select(SiteCurtailment).where(SiteCurtailment.site_id == site_id)).all()
    ids = [r.id for r in rows if r.event_id.startswith(prefix)]
    if ids:
        db.execute(delete(SiteCurtailment).where(SiteCurtailment.id.in_(ids)))
    db.flush()


def active(db: Session, now: float, only: Collection[str] | None = None) -> list[StoredCurtailment]:
    """The limits not over at ``now`` (of the sites ``only`` names), earliest first."""
    query = select(SiteCurtailment).where(SiteCurtailment.end > _utc(now))
    if only is not None:
        query = query.where(SiteCurtailment.site_id.in_(list(only)))
    rows = db.scalars(query.order_by(SiteCurtailment.start, SiteCurtailment.id))
    return [StoredCurtailment(r.site_id, r.event_id, r.start.timestamp(), r.end.timestamp(), r.limit_kw) for r in rows]


def _utc(posix: float) -> datetime:
    return datetime.fromtimestamp(posix, UTC)
