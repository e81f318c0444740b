"""Locations sender: OCPI Locations, EVSEs and Connectors generated from the CSMS's sites, stations and connectors.

A location is a site (its stations' EVSEs are the location's EVSEs) or a station in no site, published once its
OCPI details (address, coordinates, time zone: ``csms ocpi locations set``) are given. An EVSE's ``uid`` is
``STATION*EVSE``; its status follows the connectors' last OCPP status. What the CSMS does not know of a connector
(its plug standard, format, voltage) is taken from the site's EVSE settings (AC/DC, its current limit) with
Type 2 socket / CCS cable as the stated assumption (docs/ocpi.md).

OCPI 2.2.1 never deletes an EVSE: one that is gone (its station decommissioned, deleted or moved to another
location) is listed with status REMOVED. Every build records the EVSEs it publishes per location
(:class:`csms.store.models.OcpiEvse`: the EVSE object as published, and ``removed_at`` once it is gone), so the
list, one location and one EVSE keep a gone EVSE as it was last published, status REMOVED, ``last_updated`` when
it was found gone (its location's ``last_updated`` follows, so a ``date_from`` pull sees it); the push side
(:mod:`csms.ocpi.sync`) builds the same objects, so push and pull agree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from csms.ocpi import envelope as env
from csms.ocpi.deps import Caller, OcpiConfig, RegisteredCaller, config_of, in_db
from csms.services import ocpi as store
from csms.services import tariffs
from csms.store.models import Connector, OcpiEvse, OcpiLocation, Site, SiteEvse, Station, TariffAssignment

router = APIRouter(prefix="/2.2.1/locations")

#: OCPP connector status → OCPI EVSE status (1.6 and 2.0.1 words).
STATUS = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Occupied": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}
#: Which connector's status speaks for an EVSE with several: the most telling first.
_RANK = ["CHARGING", "RESERVED", "BLOCKED", "OUTOFORDER", "INOPERATIVE", "AVAILABLE", "UNKNOWN"]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Keys that change without the object changing for a partner (pushed apart, or only a timestamp).
VOLATILE = frozenset({"last_updated", "status"})
#: A recorded EVSE seen for the first time (another request may record it at once: the first one stays).
_RECORD = {"postgresql": postgresql.insert(OcpiEvse).on_conflict_do_nothing(),
           "sqlite": sqlite.insert(OcpiEvse).on_conflict_do_nothing()}  # fmt: skip


def static(value: Any) -> Any:
    """``value`` without :data:`VOLATILE` keys, at any depth."""
    if isinstance(value, dict):
        return {k: static(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [static(v) for v in value]
    return value


def evse_uid(station_id: str, evse_id: int) -> str:
    return f"{station_id}*{evse_id}"


def parse_uid(uid: str) -> tuple[str, int] | None:
    station, _, evse = uid.rpartition("*")
    return (station, int(evse)) if station and evse.isdigit() else None


def location_id_of(station: Station) -> str:
    return station.site_id or station.id


def emi3(config: OcpiConfig, station_id: str, evse_id: int) -> str:
    return f"{config.country_code}*{config.party_id}*E{re.sub('[^A-Z0-9]', '', station_id.upper())[:24]}*{evse_id}"


def evse_status(connectors: list[Connector]) -> str:
    states = [STATUS.get(c.status or "", "UNKNOWN") for c in connectors] or ["UNKNOWN"]
    return min(states, key=_RANK.index)


def _connector(db: Session, row: Connector, wiring: SiteEvse | None, updated: datetime, priced: bool) -> dict[str, Any]:
    """``priced``: some tariff is assigned somewhere (else no tariff is looked up)."""
    dc = wiring is not None and wiring.dc
    amps = int(wiring.max_current_a) if wiring is not None else 32
    out: dict[str, Any] = {
        "id": str(row.connector_id),
        "standard": "IEC_62196_T2_COMBO" if dc else "IEC_62196_T2",
        "format": "CABLE" if dc else "SOCKET",
        "power_type": "DC" if dc else "AC_3_PHASE",
        "max_voltage": 400 if dc else 230,
        "max_amperage": amps,
        "last_updated": env.iso(updated),
    }
    if wiring is not None and wiring.max_power_kw:
        out["max_electric_power"] = int(wiring.max_power_kw * 1000)
    tariff = tariffs.resolve(db, row.station_id, row.evse_id, None) if priced else None
    if tariff is not None:
        out["tariff_ids"] = [tariff.id]
    return out


def in_service(station: Station) -> bool:
    """Whether the station's EVSEs are published: a decommissioned station (its registration refused,
    ``registration_policy`` reject) is not; its EVSEs are pushed REMOVED (:mod:`csms.ocpi.sync`)."""
    return station.registration_policy != "reject"


def organisations_of(db: Session) -> dict[str, int]:
    """Location id → the organisation it belongs to: a site's (its stations' when the site has no row of its own),
    else (a station in no site) the station's."""
    out: dict[str, int] = {}
    for station in db.scalars(select(Station).order_by(Station.id)):
        out.setdefault(location_id_of(station), station.organisation_id)
    for location_id, organisation_id in db.execute(select(OcpiEvse.location_id, OcpiEvse.organisation_id)):
        if organisation_id is not None:  # a location whose stations are all gone: its removed EVSEs'
            out.setdefault(location_id, organisation_id)
    out.update({site.id: site.organisation_id for site in db.scalars(select(Site))})
    return out


def visible(db: Session, location_id: str, organisation_id: int | None) -> bool:
    """Whether a party of ``organisation_id`` (None: the platform's, every organisation's) sees the location."""
    return organisation_id is None or organisations_of(db).get(location_id) == organisation_id


def build(
    db: Session,
    config: OcpiConfig,
    only: str | None = None,
    organisation_id: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every published location (or only ``only``), as OCPI Location objects, ordered by id; with
    ``organisation_id`` only that organisation's locations and stations. Records the EVSEs published and those
    gone since (at ``now``, else the CPO's clock), and lists the gone ones REMOVED (the module's docstring)."""
    details = {d.id: d for d in store.locations(db) if d.publish and (only is None or d.id == only)}
    if organisation_id is not None:
        owners = organisations_of(db)
        details = {k: d for k, d in details.items() if owners.get(k) == organisation_id}
    stations = [s for s in db.scalars(select(Station).order_by(Station.id))
                if location_id_of(s) in details and in_service(s)]  # fmt: skip
    ids = [s.id for s in stations]
    by_id = {s.id: s for s in stations}
    connectors: dict[tuple[str, int], list[Connector]] = defaultdict(list)
    for c in db.scalars(select(Connector).where(Connector.station_id.in_(ids), Connector.evse_id > 0).order_by(
            Connector.station_id, Connector.evse_id, Connector.connector_id)):  # fmt: skip
        connectors[(c.station_id, c.evse_id)].append(c)
    wiring = {(w.station_id, w.evse_id): w for w in db.scalars(select(SiteEvse).where(SiteEvse.station_id.in_(ids)))}
    priced = db.scalar(select(TariffAssignment.id).limit(1)) is not None
    live: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
    for (station_id, evse_id), ports in connectors.items():
        updated = max([p.status_at or _EPOCH for p in ports])
        station = by_id[station_id]
        uid = evse_uid(station_id, evse_id)
        live[(location_id_of(station), uid)] = ({
            "uid": uid,
            "evse_id": emi3(config, station_id, evse_id),
            "status": evse_status(ports),
            "capabilities": ["REMOTE_START_STOP_CAPABLE", "RESERVABLE", "UNLOCK_CAPABLE"],
            "connectors": [_connector(db, p, wiring.get((station_id, evse_id)), updated, priced) for p in ports],
            "last_updated": env.iso(updated),
        }, station.organisation_id)  # fmt: skip
    records = _record(db, set(details), live, config.clock() if now is None else now)
    evses: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (location_id, _), row in sorted(records.items(), key=lambda item: _order(item[0][1])):
        if organisation_id is not None and row.organisation_id != organisation_id:
            continue
        if row.removed_at is not None:
            evses[location_id].append({**row.body, "status": "REMOVED", "last_updated": env.iso(row.removed_at)})
            continue
        evse = live[(location_id, row.uid)][0]
        # Its object changed when it was (re)published or changed: a date_from pull since then must see it.
        updated = max(datetime.fromisoformat(evse["last_updated"]), row.published_at)
        evses[location_id].append({**evse, "last_updated": env.iso(updated)})
    return [_location(config, d, evses.get(d.id, [])) for d in sorted(details.values(), key=lambda d: d.id)]


def _order(uid: str) -> tuple[str, int]:
    return parse_uid(uid) or (uid, 0)


def _record(
    db: Session, locations: set[str], live: dict[tuple[str, str], tuple[dict[str, Any], int]], now: datetime
) -> dict[tuple[str, str], OcpiEvse]:
    """Bring the record of the EVSEs published at ``locations`` up to ``live`` (location, uid → the EVSE object and
    its station's organisation): a new one recorded, a changed one's object kept (``published_at`` now), a gone
    one ``removed_at`` now, one back published again. Writes only what changed. Returns every record there."""
    query = select(OcpiEvse).where(OcpiEvse.location_id.in_(locations)).order_by(OcpiEvse.location_id, OcpiEvse.uid)
    rows = {(r.location_id, r.uid): r for r in db.scalars(query)}
    new = [{"location_id": loc, "uid": uid, "organisation_id": org, "body": evse, "published_at": now,
            "removed_at": None} for (loc, uid), (evse, org) in live.items() if (loc, uid) not in rows]  # fmt: skip
    if new:
        db.execute(_RECORD[db.get_bind().dialect.name], new)
        rows = {(r.location_id, r.uid): r for r in db.scalars(query.execution_options(populate_existing=True))}
    for key, row in rows.items():
        if key not in live:
            if row.removed_at is None:
                row.removed_at = now
            continue
        evse, org = live[key]
        changed = _static_evse(row.body) != _static_evse(evse)
        if row.removed_at is not None or changed:
            row.removed_at, row.published_at = None, now
        if changed or row.organisation_id != org:
            row.body, row.organisation_id = evse, org
    return rows


def _static_evse(evse: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`static` of an EVSE object as :func:`build` makes it, without the recursion (a build compares each)."""
    top = {k: v for k, v in evse.items() if k not in VOLATILE and k != "connectors"}
    return top, [{k: v for k, v in c.items() if k not in VOLATILE} for c in evse.get("connectors", [])]


def _location(config: OcpiConfig, d: OcpiLocation, evses: list[dict[str, Any]]) -> dict[str, Any]:
    updated = max([d.updated_at, *(datetime.fromisoformat(e["last_updated"]) for e in evses)])
    out: dict[str, Any] = {
        "country_code": config.country_code,
        "party_id": config.party_id,
        "id": d.id,
        "publish": True,
        "address": d.address,
        "city": d.city,
        "country": d.country,
        "coordinates": {"latitude": d.latitude, "longitude": d.longitude},
        "evses": evses,
        "time_zone": d.time_zone,
        "last_updated": env.iso(updated),
    }
    if d.name:
        out["name"] = d.name
    if d.postal_code:
        out["postal_code"] = d.postal_code
    return out


def _updated(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["last_updated"])


@router.get("")
async def list_locations(request: Request, caller: RegisteredCaller) -> JSONResponse:
    page = env.page_of(request)
    config = config_of(request)
    found = await in_db(request, lambda db: build(db, config, organisation_id=caller.organisation_id))
    chosen, headers = env.paginate(request, page, found, _updated, config.base_url)
    return env.ok(chosen, headers=headers)


async def _one(request: Request, location_id: str, caller: Caller) -> dict[str, Any]:
    config = config_of(request)
    found = await in_db(request, lambda db: build(db, config, location_id, caller.organisation_id))
    if not found:
        raise env.OcpiError(env.UNKNOWN_LOCATION, f"unknown location {location_id!r}", 404)
    return found[0]


def _evse(location: dict[str, Any], uid: str) -> dict[str, Any]:
    evse = next((e for e in location["evses"] if e["uid"] == uid), None)
    if evse is None:
        raise env.OcpiError(env.UNKNOWN_LOCATION, f"unknown EVSE {uid!r} at location {location['id']!r}", 404)
    return evse


@router.get("/{location_id}")
async def get_location(request: Request, location_id: str, caller: RegisteredCaller) -> JSONResponse:
    return env.ok(await _one(request, location_id, caller))


@router.get("/{location_id}/{uid}")
async def get_evse(request: Request, location_id: str, uid: str, caller: RegisteredCaller) -> JSONResponse:
    return env.ok(_evse(await _one(request, location_id, caller), uid))


@router.get("/{location_id}/{uid}/{connector_id}")
async def get_connector(
    request: Request, location_id: str, uid: str, connector_id: str, caller: RegisteredCaller
) -> JSONResponse:
    evse = _evse(await _one(request, location_id, caller), uid)
    connector = next((c for c in evse["connectors"] if c["id"] == connector_id), None)
    if connector is None:
        raise env.OcpiError(env.UNKNOWN_LOCATION, f"unknown connector {connector_id!r} of EVSE {uid!r}", 404)
    return env.ok(connector)


# ---- pushing EVSE status ----------------------------------------------------------------------------------------
def queue_status(db: Session, config: OcpiConfig, station_id: str, evse_ids: set[int], now: datetime) -> int:
    """Queue a PATCH of each EVSE's status to every registered party that takes pushes and has a locations
    receiver; returns how many were queued."""
    station = db.get(Station, station_id)
    if station is None or not evse_ids:
        return 0
    location_id = location_id_of(station)
    details = db.get(OcpiLocation, location_id)
    if details is None or not details.publish or not in_service(station):
        return 0
    parties = [p for p in store.list_parties(db) if p.status == store.REGISTERED and p.push
               and (p.organisation_id is None or p.organisation_id == station.organisation_id)]  # fmt: skip
    targets = [(p, url) for p in parties if (url := store.endpoint_url(p, "locations", "RECEIVER")) is not None]
    queued = 0
    for evse_id in sorted(evse_ids):
        ports = list(db.scalars(select(Connector).where(Connector.station_id == station_id,
                                                         Connector.evse_id == evse_id)))  # fmt: skip
        if not ports:
            continue
        updated = max([p.status_at or now for p in ports])
        patch = {"status": evse_status(ports), "last_updated": env.iso(updated)}
        uid = evse_uid(station_id, evse_id)
        for party, url in targets:
            target = f"{url.rstrip('/')}/{config.country_code}/{config.party_id}/{location_id}/{uid}"
            store.enqueue(db, party.id, "locations", "PATCH", target, patch, now)
            queued += 1
    return queued
