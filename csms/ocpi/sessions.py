"""Sessions sender: the CSMS's transactions of a party's drivers (their token is one the party pushed or started a
session with) as OCPI Sessions, pulled (``GET sessions``, paged, ``date_from``/``date_to`` on ``last_updated``) and
pushed (``PUT`` to the party's sessions receiver when a session starts and when it ends). A party sees only its
own drivers' sessions. ``kwh`` is the transaction's energy (:mod:`csms.domain.meter`'s reading of its samples);
``total_cost`` is not sent yet (it will come from the CDRs the billing work stores, docs/ocpi.md)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from csms.ocpi import envelope as env
from csms.ocpi.deps import OcpiConfig, RegisteredCaller, config_of, in_db
from csms.ocpi.locations import evse_uid, location_id_of
from csms.services import cdrs, tariffs
from csms.services import ocpi as store
from csms.store.models import OcpiCommand, OcpiParty, OcpiToken, Station, Transaction

router = APIRouter(prefix="/2.2.1/sessions")
log = logging.getLogger(__name__)


def _updated(tx: Transaction) -> datetime:
    times = [t for t in (tx.started_at, tx.last_meter_at, tx.stopped_at) if t is not None]
    return max(times)


def start_command(db: Session, tx: Transaction, party: int) -> OcpiCommand | None:
    """The START_SESSION that began ``tx`` (2.0.1: by its remoteStartId; 1.6: the party's last for that token at
    that station before the start)."""
    stmt = select(OcpiCommand).where(OcpiCommand.party == party, OcpiCommand.command == "START_SESSION")
    if tx.remote_start_id is not None:
        found = db.scalar(stmt.where(OcpiCommand.remote_start_id == tx.remote_start_id).limit(1))
        if found is not None:
            return found
    if tx.started_at is None:
        return None
    return db.scalar(
        stmt.where(OcpiCommand.station_id == tx.station_id, OcpiCommand.token_uid == tx.id_token,
                   OcpiCommand.created_at <= tx.started_at).order_by(OcpiCommand.id.desc()).limit(1)
    )  # fmt: skip


def auth_method(command: OcpiCommand | None, token: OcpiToken) -> str:
    if command is not None:
        return "COMMAND"
    return "AUTH_REQUEST" if token.whitelist in ("NEVER", "ALLOWED_OFFLINE") else "WHITELIST"


def _cost(db: Session, config: OcpiConfig, tx: Transaction) -> tuple[dict[str, Any], str, list[Any]] | None:
    """The session's cost, currency and charging periods: its stored CDR's once it has ended, else its running
    ones now (the CDR's pricing, csms/services/cdrs.py, as the charger's cost display gets it; the periods as the
    CDR will have them); None when neither exists."""
    if tx.stopped_at is not None:
        row = cdrs.stored_for(db, tx.id)
        if row is None:
            return None
        price = {
            "excl_vat": float(Decimal(row.total_cost_excl_vat)),
            "incl_vat": float(Decimal(row.total_cost_incl_vat)),
        }
        return price, row.currency, list(row.body.get("charging_periods") or [])
    if config.pricing is None or tx.started_at is None:
        return None
    try:
        priced = cdrs.price(db, tx, max(config.clock(), tx.started_at), config.pricing, final=False)
    except Exception:  # the session is still listed, without a cost
        log.exception("running cost of transaction %s", tx.id)
        return None
    if priced is None:
        return None
    total = priced.result.total_cost
    running = {"excl_vat": float(total.excl_vat)}
    if total.incl_vat is not None:
        running["incl_vat"] = float(total.incl_vat)
    return running, priced.result.currency, cdrs.charging_periods(priced.result)


def session_of(db: Session, config: OcpiConfig, tx: Transaction, token: OcpiToken) -> dict[str, Any]:
    station = db.get(Station, tx.station_id)
    evse = tx.evse_id or 1
    command = start_command(db, tx, token.party)
    tariff = tariffs.resolve(db, tx.station_id, evse, token.group_id)
    out: dict[str, Any] = {
        "country_code": config.country_code,
        "party_id": config.party_id,
        "id": str(tx.id),
        "start_date_time": env.iso(tx.started_at or _updated(tx)),
        "kwh": round(tx.energy_wh / 1000, 3),
        "cdr_token": {
            "country_code": token.country_code,
            "party_id": token.party_id,
            "uid": token.uid,
            "type": token.type,
            "contract_id": token.contract_id,
        },
        "auth_method": auth_method(command, token),
        "location_id": location_id_of(station) if station is not None else tx.station_id,
        "evse_uid": evse_uid(tx.station_id, evse),
        "connector_id": str(tx.connector_id or 1),
        "currency": tariff.currency if tariff is not None else "EUR",
        "status": "COMPLETED" if tx.stopped_at is not None else "ACTIVE",
        "last_updated": env.iso(_updated(tx)),
    }
    if tx.stopped_at is not None:
        out["end_date_time"] = env.iso(tx.stopped_at)
    cost = _cost(db, config, tx)
    if cost is not None:
        out["total_cost"], out["currency"], periods = cost
        if periods:
            out["charging_periods"] = periods
    if command is not None and command.authorization_reference:
        out["authorization_reference"] = command.authorization_reference
    return out


def owned(db: Session, party: int, ids: list[int] | None = None) -> list[tuple[Transaction, OcpiToken]]:
    """The party's drivers' transactions (their token is one of the party's), at its organisation's stations
    when it has one."""
    stmt = (
        select(Transaction, OcpiToken)
        .join(OcpiToken, OcpiToken.uid == Transaction.id_token)
        .where(OcpiToken.party == party, Transaction.started_at.is_not(None))
        .order_by(Transaction.id)
    )
    organisation_id = db.scalar(select(OcpiParty.organisation_id).where(OcpiParty.id == party))
    if organisation_id is not None:
        stmt = stmt.join(Station, Station.id == Transaction.station_id).where(
            Station.organisation_id == organisation_id
        )
    if ids is not None:
        stmt = stmt.where(Transaction.id.in_(ids))
    seen: set[int] = set()
    out = []
    for tx, token in db.execute(stmt):
        if tx.id not in seen:  # one token per session, the first that matches
            seen.add(tx.id)
            out.append((tx, token))
    return out


@router.get("")
async def list_sessions(request: Request, caller: RegisteredCaller) -> JSONResponse:
    page = env.page_of(request)
    config = config_of(request)

    def read(db: Session) -> list[tuple[datetime, dict[str, Any]]]:
        return [(_updated(tx), session_of(db, config, tx, token)) for tx, token in owned(db, caller.id)]

    found = await in_db(request, read)
    chosen, headers = env.paginate(request, page, found, lambda item: item[0], config.base_url)
    return env.ok([body for _, body in chosen], headers=headers)


def by_charger_id(db: Session, station_id: str, charger_ids: set[str]) -> set[int]:
    if not charger_ids:
        return set()
    return set(db.scalars(select(Transaction.id).where(Transaction.station_id == station_id, or_(
        *(Transaction.charger_tx_id == c for c in charger_ids)))))  # fmt: skip


def _receivers(db: Session) -> list[tuple[OcpiParty, str]]:
    """Registered parties that take pushes, with their sessions receiver."""
    parties = db.scalars(select(OcpiParty).where(OcpiParty.status == store.REGISTERED, OcpiParty.push))
    return [(p, url) for p in parties if (url := store.endpoint_url(p, "sessions", "RECEIVER")) is not None]


def behind(party: OcpiParty, token: OcpiToken) -> tuple[str, str] | None:
    """Through a hub, a session is for the eMSP whose token it is (the routing headers say so)."""
    return (token.country_code, token.party_id) if store.is_hub(party) else None


def queue_progress(db: Session, config: OcpiConfig, station_id: str, charger_ids: set[str], now: datetime) -> int:
    """Queue a PATCH of the kWh so far of these running sessions (named by the station's ids) to their eMSP."""
    ids = by_charger_id(db, station_id, charger_ids)
    queued = 0
    for party, url in _receivers(db) if ids else []:
        for tx, token in owned(db, party.id, sorted(ids)):
            if tx.stopped_at is not None:
                continue
            patch = {"kwh": round(tx.energy_wh / 1000, 3), "last_updated": env.iso(_updated(tx))}
            target = f"{url.rstrip('/')}/{config.country_code}/{config.party_id}/{tx.id}"
            store.enqueue(db, party.id, "sessions", "PATCH", target, patch, now, behind(party, token))
            queued += 1
    return queued


def queue_sessions(db: Session, config: OcpiConfig, station_id: str, tx_ids: set[int], charger_ids: set[str],
                   now: datetime) -> int:  # fmt: skip
    """Queue a PUT of each of these transactions' sessions to the party whose driver it is (when it takes pushes
    and has a sessions receiver); ``charger_ids``: transactions named by the station's own id."""
    tx_ids = tx_ids | by_charger_id(db, station_id, charger_ids)
    if not tx_ids:
        return 0
    queued = 0
    for party, url in _receivers(db):
        for tx, token in owned(db, party.id, sorted(tx_ids)):
            body = session_of(db, config, tx, token)
            target = f"{url.rstrip('/')}/{config.country_code}/{config.party_id}/{body['id']}"
            store.enqueue(db, party.id, "sessions", "PUT", target, body, now, behind(party, token))
            queued += 1
    return queued
