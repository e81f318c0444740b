"""Sites under load management: the electrical tree, EVSE assignments, the site meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import (
    EvseOut,
    EvseWiring,
    MeterReadingIn,
    MeterReadingOut,
    NodeOut,
    NodePut,
    SiteCreate,
    SiteOut,
    SiteUpdate,
)
from csms.services import sites
from csms.services.errors import Invalid
from csms.store.models import Site

router = APIRouter(prefix="/sites", tags=["sites"])

SitePath = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[^\x00-\x1f/]+$")]
StationPath = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[^\x00-\x1f/]+$")]
EvsePath = Annotated[int, Path(ge=1, le=1000)]
#: A reading further in the future than this is refused (a clock error, not a measurement).
MAX_CLOCK_SKEW = timedelta(minutes=5)


async def _rebuild(request: Request, site_id: str) -> None:
    """After the commit (a background task runs after the response, the commit before it): the load
    manager re-reads the site."""
    lm = getattr(request.app.state, "load_management", None)
    if lm is not None:
        lm.site_changed(site_id)


def _changed(request: Request, background: BackgroundTasks, site_id: str) -> None:
    background.add_task(_rebuild, request, site_id)


def site_out(db: Session, row: Site) -> SiteOut:
    nodes = sites.nodes_of(db, row.id)
    keys = {n.id: n.key for n in nodes}
    node_out = [
        NodeOut(
            id=n.key,
            parent=keys.get(n.parent_id) if n.parent_id is not None else None,
            limit_kw=n.limit_kw,
            phase_limits_a=None if n.limit_l1_a is None else (n.limit_l1_a, n.limit_l2_a, n.limit_l3_a),
            safety_margin_kw=n.safety_margin_kw,
        )
        for n in nodes
    ]
    evse_out = [
        EvseOut.model_validate(
            {**{k: getattr(e, k) for k in EvseOut.model_fields if k != "node"}, "node": keys[e.node_id]}
        )
        for e in sites.evses_of(db, row.id)
    ]
    fields = {k: getattr(row, k) for k in SiteOut.model_fields if k not in ("nodes", "evses")}
    return SiteOut.model_validate({**fields, "nodes": node_out, "evses": evse_out})


@router.post("", response_model=SiteOut, status_code=status.HTTP_201_CREATED)
def create_site(
    body: SiteCreate, db: DbSession, request: Request, background: BackgroundTasks, caller: Caller
) -> SiteOut:
    """Create a site with its tree (one node without a parent: the grid connection) and EVSE assignments.
    422 names what is wrong; 409 when the site exists or a station belongs to another site."""
    fields = body.model_dump(exclude={"id", "nodes", "evses"}, by_alias=True)
    row = sites.create(
        db,
        body.id,
        now=datetime.now(UTC),
        nodes=[n.model_dump() for n in body.nodes],
        evses=[e.model_dump() for e in body.evses],
        **fields,
    )
    caller.adopt(row)
    _changed(request, background, body.id)
    return site_out(db, row)


@router.get("", response_model=list[SiteOut])
def list_sites(db: DbSession, caller: Caller) -> list[SiteOut]:
    return [site_out(db, row) for row in sites.list_sites(db, caller.scope)]


@router.get("/{site_id}", response_model=SiteOut)
def get_site(site_id: SitePath, db: DbSession) -> SiteOut:
    return site_out(db, sites.get(db, site_id))


@router.patch("/{site_id}", response_model=SiteOut)
def update_site(
    site_id: SitePath, body: SiteUpdate, db: DbSession, request: Request, background: BackgroundTasks
) -> SiteOut:
    """Change the strategy, interval, margins, priority groups, meter station, utility tariff or demand-response
    enrolment (`openadr_enrolled`, `openadr_resource_id`: the VEN speaks for the site from its next event on);
    fields left out keep their value. 409 when another site has that resource id."""
    row = sites.update(db, site_id, body.model_dump(exclude_unset=True, by_alias=True), datetime.now(UTC))
    _changed(request, background, site_id)
    return site_out(db, row)


@router.put("/{site_id}/nodes/{node_id}", response_model=SiteOut)
def put_node(
    site_id: SitePath,
    node_id: StationPath,
    body: NodePut,
    db: DbSession,
    request: Request,
    background: BackgroundTasks,
) -> SiteOut:
    """Add a panel/feeder under an existing node, or change a node's limits."""
    sites.put_node(db, site_id, node_id, body.model_dump())
    _changed(request, background, site_id)
    return site_out(db, sites.get(db, site_id))


@router.put("/{site_id}/evses/{station_id}/{evse_id}", response_model=SiteOut)
def assign_evse(
    site_id: SitePath,
    station_id: StationPath,
    evse_id: EvsePath,
    body: EvseWiring,
    db: DbSession,
    request: Request,
    background: BackgroundTasks,
) -> SiteOut:
    """Assign an EVSE to a node (or move it, or change its wiring and limits)."""
    sites.assign_evse(db, site_id, station_id, evse_id, **body.model_dump())
    sites.topology(db, site_id)
    _changed(request, background, site_id)
    return site_out(db, sites.get(db, site_id))


@router.delete("/{site_id}/evses/{station_id}/{evse_id}", status_code=status.HTTP_204_NO_CONTENT)
def unassign_evse(
    site_id: SitePath,
    station_id: StationPath,
    evse_id: EvsePath,
    db: DbSession,
    request: Request,
    background: BackgroundTasks,
) -> Response:
    sites.unassign_evse(db, site_id, station_id, evse_id)
    _changed(request, background, site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT, background=background)


@router.post("/{site_id}/meter-readings", response_model=MeterReadingOut, status_code=status.HTTP_201_CREATED)
def post_meter_reading(
    site_id: SitePath, body: MeterReadingIn, db: DbSession, request: Request, background: BackgroundTasks
) -> MeterReadingOut:
    """A reading of the site's grid-connection meter (the building's load, or the whole import when
    `includes_ev`)."""
    now = datetime.now(UTC)
    if body.power_w is not None and body.power_kw is not None:
        raise Invalid("give power_w or power_kw, not both")
    if body.timestamp > now + MAX_CLOCK_SKEW:
        raise Invalid(f"timestamp {body.timestamp.isoformat()} is in the future")
    power_w = body.power_w if body.power_kw is None else body.power_kw * 1000.0
    row = sites.record_reading(
        db,
        site_id,
        timestamp=body.timestamp,
        now=now,
        power_w=power_w,
        currents_a=body.currents_a,
        includes_ev=body.includes_ev,
    )
    lm = getattr(request.app.state, "load_management", None)
    if lm is not None:  # after the commit: the manager re-plans with the reading
        background.add_task(
            _reading, lm, site_id, power_w, body.currents_a, body.includes_ev if body.includes_ev is not None else None
        )
    return MeterReadingOut.model_validate(row)


async def _reading(lm: Any, site_id: str, power_w: Any, currents_a: Any, includes_ev: Any) -> None:
    lm.site_reading(site_id, power_w=power_w, currents_a=currents_a, includes_ev=includes_ev)


@router.get("/{site_id}/meter-readings", response_model=list[MeterReadingOut])
def list_meter_readings(
    site_id: SitePath, db: DbSession, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[MeterReadingOut]:
    """The newest readings first."""
    return [MeterReadingOut.model_validate(r) for r in sites.readings(db, site_id, limit)]
