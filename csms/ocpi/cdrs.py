"""CDRs sender: the CDRs the CSMS stores when a priced session ends (:mod:`csms.services.cdrs`, never priced again
here), as the eMSP whose driver it was sees them: this CPO's codes, the eMSP's token as ``cdr_token``, the OCPI
location (address, EVSE uid and eMI3 id, connector). Pulled (``GET cdrs``, paged, ``date_from``/``date_to``) and
pushed (``POST`` to the party's cdrs receiver once per CDR through the outbox: retried while the eMSP is down,
never sent twice)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.ocpi import envelope as env
from csms.ocpi.deps import OcpiConfig, RegisteredCaller, config_of, in_db
from csms.ocpi.locations import emi3, evse_uid, location_id_of
from csms.ocpi.sessions import auth_method, behind, by_charger_id, owned, start_command
from csms.services import ocpi as store
from csms.store.models import Cdr, OcpiLocation, OcpiParty, OcpiToken, Station, Transaction

router = APIRouter(prefix="/2.2.1/cdrs")


def cdr_of(db: Session, config: OcpiConfig, row: Cdr, tx: Transaction, token: OcpiToken) -> dict[str, Any]:
    """The stored CDR as this eMSP's: our codes, its token, our OCPI location."""
    station = db.get(Station, tx.station_id)
    location_id = location_id_of(station) if station is not None else tx.station_id
    details = db.get(OcpiLocation, location_id)
    evse = tx.evse_id or 1
    location: dict[str, Any] = {
        "id": location_id,
        "evse_uid": evse_uid(tx.station_id, evse),
        "evse_id": emi3(config, tx.station_id, evse),
        "connector_id": str(tx.connector_id or 1),
    }
    if details is not None:
        location.update(address=details.address, city=details.city, country=details.country,
                        coordinates={"latitude": details.latitude, "longitude": details.longitude})  # fmt: skip
        if details.name:
            location["name"] = details.name
        if details.postal_code:
            location["postal_code"] = details.postal_code
    command = start_command(db, tx, token.party)
    body = {
        **row.body,
        "country_code": config.country_code,
        "party_id": config.party_id,
        "cdr_token": {
            "country_code": token.country_code,
            "party_id": token.party_id,
            "uid": token.uid,
            "type": token.type,
            "contract_id": token.contract_id,
        },
        "auth_method": auth_method(command, token),
        "cdr_location": {**row.body.get("cdr_location", {}), **location},
        "last_updated": env.iso(row.updated_at),
    }
    if command is not None and command.authorization_reference:
        body["authorization_reference"] = command.authorization_reference
    return body


def _cdrs_of(db: Session, party: int, ids: list[int] | None = None) -> list[tuple[Cdr, Transaction, OcpiToken]]:
    by_tx = {tx.id: (tx, token) for tx, token in owned(db, party, ids)}
    if not by_tx:
        return []
    rows = db.scalars(select(Cdr).where(Cdr.transaction_id.in_(list(by_tx))).order_by(Cdr.transaction_id))
    return [(row, *by_tx[row.transaction_id]) for row in rows]


@router.get("")
async def list_cdrs(request: Request, caller: RegisteredCaller) -> JSONResponse:
    page = env.page_of(request)
    config = config_of(request)

    def read(db: Session) -> list[tuple[datetime, dict[str, Any]]]:
        return [(row.updated_at, cdr_of(db, config, row, tx, token)) for row, tx, token in _cdrs_of(db, caller.id)]

    found = await in_db(request, read)
    chosen, headers = env.paginate(request, page, found, lambda item: item[0], config.base_url)
    return env.ok([body for _, body in chosen], headers=headers)


def queue_cdrs(db: Session, config: OcpiConfig, station_id: str, charger_ids: set[str], now: datetime) -> int:
    """Queue a POST of each ended transaction's CDR (named by the station's ids) to its eMSP's cdrs receiver, once
    per CDR and party; returns how many were queued."""
    ids = by_charger_id(db, station_id, charger_ids)
    if not ids:
        return 0
    queued = 0
    for party in db.scalars(select(OcpiParty).where(OcpiParty.status == store.REGISTERED, OcpiParty.push)):
        url = store.endpoint_url(party, "cdrs", "RECEIVER")
        if url is None:
            continue
        for row, tx, token in _cdrs_of(db, party.id, sorted(ids)):
            body = cdr_of(db, config, row, tx, token)
            queued += store.enqueue(db, party.id, "cdrs", "POST", url, body, now, behind(party, token),
                                    key=f"cdr:{row.id}")  # fmt: skip
    return queued
