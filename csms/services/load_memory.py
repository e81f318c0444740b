"""What load management is handed from the store: each site's set-up, and what a starting process knows.

The load manager (:mod:`csms.loadmgmt.manager`) reads no store; its shells call these readers (on a worker
thread when they must not block) and hand it the plain records they return.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.domain.transaction import TransactionStatus
from csms.loadmgmt import topology as topo
from csms.loadmgmt.manager import Memory, SiteSetup, StoredReading, StoredSession
from csms.loadmgmt.planner import PlannerConfig
from csms.ocpp.versions import OCPP16
from csms.services import demand_response, sites
from csms.store.models import BuildingForecastRow, Connector, IdToken, Site, SiteMeterReading, Station, Transaction


def read_setup(db: Session, site_id: str, config: PlannerConfig | None = None) -> SiteSetup:
    """A site's set-up from the store (raises ``NotFound``/``Invalid`` like :func:`sites.topology`)."""
    row = sites.get(db, site_id)
    tree = sites.topology(db, site_id)
    ids = sorted({e.station_id for e in tree.evses})
    versions = {s.id: s.ocpp_version for s in db.scalars(select(Station).where(Station.id.in_(ids)))} if ids else {}
    base = config or PlannerConfig()
    return SiteSetup(
        site_id=row.id,
        topology=tree,
        strategy=row.strategy,
        interval_s=row.interval_s,
        meter_station_id=row.meter_station_id,
        meter_includes_ev=bool(row.meter_includes_ev),
        versions=versions,
        config=replace(base, interval_s=row.interval_s),
        tariff=sites.to_tariff(row.utility_tariff),
    )


def read_all(db: Session, config: PlannerConfig | None = None, only: Collection[str] | None = None) -> list[SiteSetup]:
    """Every site in the store (managed or not: a site with strategy ``none`` plans nothing), or the sites
    ``only`` names (a cluster node plans the sites whose lease it holds)."""
    return [read_setup(db, row.id, config) for row in sites.list_sites(db) if only is None or row.id in only]


def site_ids(db: Session) -> list[str]:
    """Every site's id (the leases a cluster's nodes compete for)."""
    return [row.id for row in sites.list_sites(db)]


def read_memory(
    db: Session, now: float, config: PlannerConfig | None = None, only: Collection[str] | None = None
) -> Memory:
    """Sites (or the sites ``only`` names), sessions of their EVSEs (1.6: our transaction id; 2.0.1: the
    charger's) and each site's meter readings of the last ``meter_window_s``."""
    setups = read_all(db, config, only)
    managed = {e.key for setup in setups for e in setup.topology.evses}
    versions: dict[str, str] = {sid: v for sid, v in db.execute(select(Station.id, Station.ocpp_version))}
    groups: dict[str, str | None] = {t: g for t, g in db.execute(select(IdToken.id_token, IdToken.group_id))}
    statuses = {
        (c.station_id, c.evse_id): c
        for c in db.scalars(select(Connector).where(Connector.evse_id > 0).order_by(Connector.connector_id))
    }
    sessions: dict[topo.EvseKey, StoredSession] = {}
    running = select(Transaction).where(Transaction.status == TransactionStatus.ACTIVE).order_by(Transaction.id)
    for tx in db.scalars(running):
        key = (tx.station_id, tx.evse_id or 0)
        if key not in managed:
            continue
        tx_id = str(tx.id) if versions.get(tx.station_id) == OCPP16 else tx.charger_tx_id
        energy = None
        if tx.last_meter_wh is not None and tx.meter_start_wh is not None:
            energy = max(0.0, tx.last_meter_wh - tx.meter_start_wh)
        port = statuses.get(key)
        sessions[key] = StoredSession(
            key,
            tx.started_at.timestamp() if tx.started_at is not None else now,
            tx_id,
            groups.get(tx.id_token) if tx.id_token else None,
            tx.meter_start_wh,
            energy,
            port is not None and _state(port) is ev.PortState.FAULTED,
        )
    for key, port in statuses.items():
        state = _state(port)
        if key in managed and key not in sessions and state is not None and state.plugged:
            sessions[key] = StoredSession(key, port.status_at.timestamp() if port.status_at is not None else now)
    window = (config or PlannerConfig()).meter_window_s
    since = datetime.fromtimestamp(now - window, tz=UTC)
    recent = select(SiteMeterReading).where(SiteMeterReading.timestamp >= since)
    if only is not None:
        recent = recent.where(SiteMeterReading.site_id.in_([s.site_id for s in setups]))
    readings = [
        StoredReading(
            r.site_id,
            r.timestamp.timestamp(),
            r.power_w,
            (r.current_l1_a, r.current_l2_a, r.current_l3_a),
            bool(r.includes_ev),
        )
        for r in db.scalars(recent.order_by(SiteMeterReading.timestamp, SiteMeterReading.id))
    ]
    site_ids = [s.site_id for s in setups]
    return Memory(
        setups,
        sorted(sessions.values(), key=lambda s: s.key),
        readings,
        curtailments=demand_response.active(db, now, site_ids),
        forecasts=read_forecasts(db, site_ids),
    )


def read_forecasts(db: Session, site_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The stored building forecasts of these sites (:meth:`BuildingForecast.record`), by site."""
    if not site_ids:
        return {}
    rows = db.scalars(select(BuildingForecastRow).where(BuildingForecastRow.site_id.in_(list(site_ids))))
    return {row.site_id: dict(row.profile) for row in rows}


def save_forecasts(db: Session, records: Mapping[str, Mapping[str, Any]], at: datetime) -> None:
    """Store building forecasts (by site, as :meth:`LoadManager.forecasts_to_store` hands them out); a site
    deleted meanwhile is skipped. The caller commits."""
    for site_id, record in records.items():
        if db.get(Site, site_id) is None:
            continue
        row = db.get(BuildingForecastRow, site_id)
        if row is None:
            db.add(BuildingForecastRow(site_id=site_id, profile=dict(record), updated_at=at))
        else:
            row.profile, row.updated_at = dict(record), at


def _state(port: Connector) -> ev.PortState | None:
    return None if port.status is None else ev.port_state(port.status)
