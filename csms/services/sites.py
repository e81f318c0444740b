"""Sites under load management: the electrical tree, EVSE assignments, and the site meter.

The store keeps the tree as rows; :func:`topology` turns them into the frozen
:class:`csms.loadmgmt.topology.Site` the planner works on. Site meter readings come from the API or from a
meter station's connector-0 / EVSE-0 MeterValues (:func:`record_station_meter`, called by
``transactions.meter_values``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.domain import meter
from csms.loadmgmt import topology as topo
from csms.loadmgmt.state import Tariff
from csms.loadmgmt.strategies import STRATEGIES
from csms.services.errors import Conflict, Invalid, NotFound
from csms.services.uow import UnitOfWork
from csms.store.bulk import Bulk
from csms.store.models import Site, SiteEvse, SiteMeterReading, SiteNode, Station

SITE_FIELDS = (
    "name",
    "strategy",
    "interval_s",
    "voltage",
    "safety_margin_kw",
    "priority_groups",
    "meter_station_id",
    "meter_includes_ev",
    "utility_tariff",
    "openadr_enrolled",
    "openadr_resource_id",
)
NOT_NULL = ("strategy", "interval_s", "voltage", "safety_margin_kw", "meter_includes_ev", "openadr_enrolled")
EVSE_FIELDS = ("phases", "max_current_a", "min_current_a", "fallback_current_a", "dc", "max_power_kw")


# ---- sites ----------------------------------------------------------------------------------------------
def _check_site_fields(db: Session, values: dict[str, Any]) -> None:
    if "strategy" in values and values["strategy"] not in STRATEGIES:
        raise Invalid(f"strategy must be one of {', '.join(STRATEGIES)}, got {values['strategy']!r}")
    for name in ("interval_s", "voltage"):
        if name in values and not (isinstance(values[name], int | float) and 0 < values[name] < math.inf):
            raise Invalid(f"{name} must be a positive number, got {values[name]!r}")
    if "safety_margin_kw" in values and not (0 <= values["safety_margin_kw"] < math.inf):
        raise Invalid("safety_margin_kw must be >= 0")
    meter = values.get("meter_station_id")
    if meter is not None and db.get(Station, meter) is None:
        raise Invalid(f"meter_station_id: station {meter!r} not found")
    if values.get("utility_tariff") is not None:
        to_tariff(values["utility_tariff"])


def _check_resource_id(db: Session, site_id: str, values: dict[str, Any]) -> None:
    """One site per OpenADR resource id (a site's own id counts as its resource id when it has none)."""
    if "openadr_resource_id" not in values:
        return
    resource = values["openadr_resource_id"] or site_id
    clash = db.scalar(
        select(Site.id).where(
            Site.id != site_id,
            or_(Site.openadr_resource_id == resource, and_(Site.id == resource, Site.openadr_resource_id.is_(None))),
        )
    )
    if clash is not None:
        raise Conflict(f"openadr_resource_id {resource!r} already names site {clash!r}")


def to_tariff(spec: dict[str, Any] | None) -> Tariff | None:
    """The load manager's :class:`Tariff` from a site's ``utility_tariff`` (Invalid, naming the field)."""
    if spec is None:
        return None
    zone = spec.get("tz", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Invalid(f"utility_tariff.tz: unknown time zone {zone!r}") from None
    periods = []
    for i, period in enumerate(spec.get("periods") or [{"from": "00:00", "price": "0"}]):
        start = str(period.get("from", ""))
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", start):
            raise Invalid(f"utility_tariff.periods[{i}].from: {start!r} is not HH:MM")
        price = _non_negative(f"utility_tariff.periods[{i}].price", period.get("price"))
        periods.append((int(start[:2]) * 3600.0 + int(start[3:]) * 60.0, price))
    if [p[0] for p in periods] != sorted({p[0] for p in periods}):
        raise Invalid("utility_tariff.periods: the 'from' times must rise, each once")
    demand = _non_negative("utility_tariff.demand_charge_per_kw", spec.get("demand_charge_per_kw", 0))
    return Tariff(periods=tuple(periods), demand_charge_per_kw=demand, zone=zone)


def _non_negative(field: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{field}: not a number: {value!r}") from None
    if not (0 <= number < math.inf):
        raise Invalid(f"{field}: a number >= 0")
    return number


def create(
    db: Session,
    site_id: str,
    *,
    now: datetime,
    nodes: Sequence[dict[str, Any]],
    evses: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> Site:
    """Create a site with its tree (``nodes``: ``{id, parent, limit_kw, phase_limits_a, safety_margin_kw}``,
    exactly one without a parent) and EVSE assignments (``{station_id, evse_id, node, phases, …}``).

    Raises:
        Conflict: the site exists, or an EVSE is already assigned elsewhere.  Invalid: the reason.
    """
    if db.get(Site, site_id) is not None:
        raise Conflict(f"site {site_id!r} already exists")
    unknown = set(fields) - set(SITE_FIELDS)
    if unknown:
        raise Invalid(f"unknown site fields: {', '.join(sorted(unknown))}")
    _check_site_fields(db, fields)
    _check_resource_id(db, site_id, {"openadr_resource_id": None, **fields})
    row = Site(id=site_id, created_at=now, updated_at=now, **{"priority_groups": [], **fields})
    db.add(row)
    db.flush()
    _add_nodes(db, row, nodes)
    for evse in evses:
        assign_evse(db, site_id, **evse)
    topology(db, site_id)  # the whole tree must make a valid topology
    return row


def _add_nodes(db: Session, site: Site, nodes: Sequence[dict[str, Any]]) -> None:
    by_key = {n["id"]: n for n in nodes}
    if len(by_key) != len(nodes):
        raise Invalid("node ids must be unique within the site")
    roots = [n["id"] for n in nodes if n.get("parent") is None]
    if len(roots) != 1:
        raise Invalid(f"expected exactly one node without a parent (the grid connection), got {roots or 'none'}")
    for n in nodes:
        if n.get("parent") is not None and n["parent"] not in by_key:
            raise Invalid(f"node {n['id']!r}: parent {n['parent']!r} is not a node of this site")
    rows: dict[str, SiteNode] = {}

    def insert(key: str, trail: tuple[str, ...]) -> SiteNode:
        if key in rows:
            return rows[key]
        if key in trail:
            raise Invalid(f"node {key!r}: the parents form a cycle")
        spec = by_key[key]
        parent = insert(spec["parent"], (*trail, key)) if spec.get("parent") is not None else None
        node = SiteNode(site_id=site.id, key=key, parent_id=parent.id if parent else None)
        _set_node_limits(node, spec)
        db.add(node)
        db.flush()
        rows[key] = node
        return node

    for key in by_key:
        insert(key, ())


def _set_node_limits(node: SiteNode, spec: dict[str, Any]) -> None:
    phase_limits = spec.get("phase_limits_a")
    if phase_limits is not None and (len(phase_limits) != 3 or any(not 0 <= x < math.inf for x in phase_limits)):
        raise Invalid(f"node {node.key!r}: phase_limits_a must be three currents >= 0 (L1, L2, L3)")
    limit_kw = spec.get("limit_kw")
    if limit_kw is not None and not 0 <= limit_kw < math.inf:
        raise Invalid(f"node {node.key!r}: limit_kw must be >= 0")
    node.limit_kw = limit_kw
    node.limit_l1_a, node.limit_l2_a, node.limit_l3_a = phase_limits or (None, None, None)
    node.safety_margin_kw = float(spec.get("safety_margin_kw") or 0.0)


def get(db: Session, site_id: str) -> Site:
    row = db.get(Site, site_id)
    if row is None:
        raise NotFound(f"site {site_id!r} not found")
    return row


def list_sites(db: Session, organisation_id: int | None = None) -> list[Site]:
    """Every site (of one organisation, when given)."""
    query = select(Site).order_by(Site.id)
    if organisation_id is not None:
        query = query.where(Site.organisation_id == organisation_id)
    return list(db.scalars(query))


def sites_of_stations(
    db: Session, organisation_id: int | None = None, station_ids: Iterable[str] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """station → the (id, name) of each site its EVSEs are on (of one organisation's sites, of the named
    stations only, when given); one query."""
    query = (
        select(SiteEvse.station_id, Site.id, Site.name)
        .join(Site, Site.id == SiteEvse.site_id)
        .distinct()
        .order_by(SiteEvse.station_id, Site.id)
    )
    if organisation_id is not None:
        query = query.where(Site.organisation_id == organisation_id)
    if station_ids is not None:
        query = query.where(SiteEvse.station_id.in_(list(station_ids)))
    placed: dict[str, list[tuple[str, str]]] = {}
    for station_id, site_id, name in db.execute(query):
        placed.setdefault(station_id, []).append((site_id, name or site_id))
    return placed


def nodes_of(db: Session, site_id: str) -> list[SiteNode]:
    return list(db.scalars(select(SiteNode).where(SiteNode.site_id == site_id).order_by(SiteNode.id)))


def evses_of(db: Session, site_id: str) -> list[SiteEvse]:
    return list(
        db.scalars(select(SiteEvse).where(SiteEvse.site_id == site_id).order_by(SiteEvse.station_id, SiteEvse.evse_id))
    )


def update(db: Session, site_id: str, changes: dict[str, Any], now: datetime) -> Site:
    row = get(db, site_id)
    _check_site_fields(db, changes)
    _check_resource_id(db, site_id, changes)
    for key, value in changes.items():
        if key not in SITE_FIELDS:
            raise Invalid(f"unknown site field {key!r}")
        if key in NOT_NULL and value is None:
            raise Invalid(f"{key} cannot be null")
        setattr(row, key, value if key != "priority_groups" else list(value or []))
    row.updated_at = now
    db.flush()
    topology(db, site_id)
    return row


def put_node(db: Session, site_id: str, key: str, spec: dict[str, Any]) -> SiteNode:
    """Create or change a node below an existing one (the root's parent cannot change)."""
    get(db, site_id)
    existing = {n.key: n for n in nodes_of(db, site_id)}
    node = existing.get(key)
    parent_key = spec.get("parent")
    if node is not None and node.parent_id is None:
        if parent_key is not None:
            raise Invalid(f"node {key!r} is the grid connection: it has no parent")
    else:
        if parent_key is None or parent_key not in existing:
            raise Invalid(f"node {key!r}: parent must be an existing node of the site, got {parent_key!r}")
        parent = existing[parent_key]
        walk: SiteNode | None = parent
        by_id = {n.id: n for n in existing.values()}
        while walk is not None:
            if walk.key == key:
                raise Invalid(f"node {key!r}: the parents form a cycle")
            walk = by_id.get(walk.parent_id) if walk.parent_id is not None else None
        if node is None:
            node = SiteNode(site_id=site_id, key=key)
            db.add(node)
        node.parent_id = parent.id
    _set_node_limits(node, spec)
    db.flush()
    topology(db, site_id)
    return node


# ---- EVSE assignments ------------------------------------------------------------------------------------
def assign_evse(db: Session, site_id: str, station_id: str, evse_id: int, node: str, **wiring: Any) -> SiteEvse:
    """Put an EVSE under a node (moving it within the site is allowed; from another site is a Conflict)."""
    get(db, site_id)
    station = db.get(Station, station_id)
    if station is None:
        raise Invalid(f"station {station_id!r} not found")
    if not 1 <= evse_id <= 1000:
        raise Invalid(f"evse_id must be 1..1000 (0 is the whole station), got {evse_id}")
    node_row = db.scalars(select(SiteNode).where(SiteNode.site_id == site_id, SiteNode.key == node)).first()
    if node_row is None:
        raise Invalid(f"node {node!r} is not a node of site {site_id!r}")
    if station.site_id is not None and station.site_id != site_id:
        raise Conflict(f"station {station_id!r} belongs to site {station.site_id!r}")
    unknown = set(wiring) - set(EVSE_FIELDS)
    if unknown:
        raise Invalid(f"unknown EVSE fields: {', '.join(sorted(unknown))}")
    values = {k: v for k, v in wiring.items() if v is not None}
    try:
        topo.parse_phases(values.get("phases", "L1L2L3"))
    except topo.TopologyError as exc:
        raise Invalid(f"EVSE {station_id}/{evse_id}: {exc}") from None
    row = db.scalars(select(SiteEvse).where(SiteEvse.station_id == station_id, SiteEvse.evse_id == evse_id)).first()
    if row is None:
        row = SiteEvse(site_id=site_id, station_id=station_id, evse_id=evse_id, node_id=node_row.id)
        db.add(row)
    row.node_id = node_row.id
    for key, value in values.items():
        setattr(row, key, value)
    station.site_id = site_id
    db.flush()
    _evse(row)  # validates ratings and wiring
    return row


def unassign_evse(db: Session, site_id: str, station_id: str, evse_id: int) -> None:
    row = db.scalars(
        select(SiteEvse).where(
            SiteEvse.site_id == site_id, SiteEvse.station_id == station_id, SiteEvse.evse_id == evse_id
        )
    ).first()
    if row is None:
        raise NotFound(f"EVSE {station_id}/{evse_id} is not assigned to site {site_id!r}")
    db.delete(row)
    db.flush()
    left = db.scalars(select(SiteEvse.id).where(SiteEvse.station_id == station_id)).first()
    if left is None:
        station = db.get(Station, station_id)
        if station is not None:
            station.site_id = None


def _evse(row: SiteEvse) -> topo.Evse:
    try:
        return topo.Evse(
            station_id=row.station_id,
            evse_id=row.evse_id,
            phases=topo.parse_phases(row.phases or "L1L2L3"),
            max_current_a=row.max_current_a if row.max_current_a is not None else 32.0,
            min_current_a=row.min_current_a if row.min_current_a is not None else topo.MIN_CURRENT_A,
            fallback_current_a=row.fallback_current_a if row.fallback_current_a is not None else topo.MIN_CURRENT_A,
            dc=bool(row.dc),
            max_power_w=row.max_power_kw * 1000.0 if row.max_power_kw is not None else None,
        )
    except topo.TopologyError as exc:
        raise Invalid(str(exc)) from None


def topology(db: Session, site_id: str) -> topo.Site:
    """The frozen tree the planner needs.

    Raises:
        NotFound: no such site.  Invalid: the rows do not make a valid tree.
    """
    site = get(db, site_id)
    rows = nodes_of(db, site_id)
    evses = evses_of(db, site_id)
    children: dict[int | None, list[SiteNode]] = {}
    for n in rows:
        children.setdefault(n.parent_id, []).append(n)
    by_node: dict[int, list[SiteEvse]] = {}
    for e in evses:
        by_node.setdefault(e.node_id, []).append(e)
    roots = children.get(None, [])
    if len(roots) != 1:
        raise Invalid(f"site {site_id!r} needs exactly one root node")

    def build(n: SiteNode) -> topo.Node:
        limits = (n.limit_l1_a, n.limit_l2_a, n.limit_l3_a)
        margin = n.safety_margin_kw + (site.safety_margin_kw if n.parent_id is None else 0.0)
        return topo.Node(
            id=n.key,
            phase_limits_a=None if any(x is None for x in limits) else limits,  # type: ignore[arg-type]
            limit_kw=n.limit_kw,
            voltage=site.voltage,
            safety_margin_kw=margin,
            children=tuple(build(c) for c in children.get(n.id, [])),
            evses=tuple(_evse(e) for e in by_node.get(n.id, [])),
        )

    try:
        return topo.Site(site_id, build(roots[0]), priority_groups=tuple(site.priority_groups or ()))
    except topo.TopologyError as exc:
        raise Invalid(str(exc)) from None


# ---- site meter ------------------------------------------------------------------------------------------
def record_reading(
    db: Session,
    site_id: str,
    *,
    timestamp: datetime,
    now: datetime,
    power_w: float | None = None,
    currents_a: Sequence[float | None] | None = None,
    includes_ev: bool | None = None,
    source: str = "api",
) -> SiteMeterReading:
    """Raises: NotFound (site), Invalid (no value, negative or non-finite values, wrong phase count).

    Two prepared statements straight to the driver on the session's connection (:class:`~csms.store.bulk.Bulk`;
    the returned row is not in the session): the twin records a reading a minute, and the ORM's load of the site
    and flush of the row, then SQLAlchemy's execution of the two statements, cost more than the re-plan's
    database work."""
    connection = db.connection()
    found = _INCLUDES_EV.fetch_one(connection, {"site_id": site_id})
    if found is None or found[0] is None:
        raise NotFound(f"site {site_id!r} not found")
    site_includes_ev = found[0]
    currents = list(currents_a) if currents_a is not None else [None, None, None]
    if len(currents) != 3:
        raise Invalid(f"currents_a must have three values (L1, L2, L3), got {len(currents)}")
    values = [v for v in [power_w, *currents] if v is not None]
    if not values:
        raise Invalid("a reading needs power_w or currents_a")
    if any(not (math.isfinite(v) and v >= 0) for v in values):
        raise Invalid("readings must be finite and >= 0 (import only)")
    columns = {
        "site_id": site_id,
        "timestamp": timestamp,
        "source": source,
        "power_w": power_w,
        "current_l1_a": currents[0],
        "current_l2_a": currents[1],
        "current_l3_a": currents[2],
        "includes_ev": site_includes_ev if includes_ev is None else includes_ev,
        "received_at": now,
    }
    inserted = _INSERT_READING.fetch_one(connection, columns)
    assert inserted is not None  # RETURNING of an INSERT: one row
    return SiteMeterReading(id=inserted[0], **columns)


_INCLUDES_EV = Bulk(select(Site.meter_includes_ev).where(Site.id == bindparam("site_id")))
_INSERT_READING = Bulk(insert(SiteMeterReading).returning(SiteMeterReading.id))


def readings(db: Session, site_id: str, limit: int = 100) -> list[SiteMeterReading]:
    get(db, site_id)
    return list(
        db.scalars(
            select(SiteMeterReading)
            .where(SiteMeterReading.site_id == site_id)
            .order_by(SiteMeterReading.timestamp.desc(), SiteMeterReading.id.desc())
            .limit(limit)
        )
    )


def record_station_meter(uow: UnitOfWork, station_id: str, samples: Iterable[ev.Sample], now: datetime) -> int:
    """EVSE-0 samples of a site's meter station become site readings (:func:`csms.domain.meter.grid_readings`,
    one per timestamp); returns how many. Samples of other stations are ignored."""
    db = uow.session
    site = db.scalars(select(Site).where(Site.meter_station_id == station_id)).first()
    if site is None:
        return 0
    count = 0
    for reading in meter.grid_readings(samples):
        record_reading(
            db,
            site.id,
            timestamp=reading.at,
            now=now,
            power_w=reading.power_w,
            currents_a=list(reading.currents_a) if reading.line_currents_a else None,
            source=f"station:{station_id}",
        )
        count += 1
    return count
