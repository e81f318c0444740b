"""CDRs sender: the CDRs the CSMS stores when a priced session ends (:mod:`csms.services.cdrs`, never priced again
here), as the eMSP whose driver it was sees them: this CPO's codes, the eMSP's token as ``cdr_token``, the OCPI
location (address, EVSE uid and eMI3 id, connector). Pulled (``GET cdrs``, paged, ``date_from``/``date_to``) and
pushed (``POST`` to the party's cdrs receiver once per CDR through the outbox: retried while the eMSP is down,
never sent twice).

A CDR the CSMS rebuilds after it was pushed (a report of the session that came after its end: an offline replay
out of order, 1.6 meter values after the stop) is not sent again under its id: OCPI 2.2.1 CDRs are immutable
once sent. The correction is two more CDRs (:func:`corrections`): a **credit CDR** for the one the eMSP has
(``credit: true``, ``credit_reference_id`` its id, its own id that one's with ``-C``; every cost negated, the
session's volumes and periods as they were) and the corrected CDR under a new id (``CDR-12-R1``, ``-R2`` … for
later ones), each once per party through the outbox."""

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
from csms.store.models import Cdr, OcpiLocation, OcpiParty, OcpiPush, OcpiToken, Station, Transaction

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
        """Each CDR as it was sent to this party (with its credit and corrected CDRs), else as it is now."""
        found: list[tuple[datetime, dict[str, Any]]] = []
        for row, tx, token in _cdrs_of(db, caller.id):
            sent = _pushes(db, caller.id, row.id)
            found += [(p.created_at, p.body) for p in sent] or [(row.updated_at, cdr_of(db, config, row, tx, token))]
        return sorted(found, key=lambda item: item[0])

    found = await in_db(request, read)
    chosen, headers = env.paginate(request, page, found, lambda item: item[0], config.base_url)
    return env.ok([body for _, body in chosen], headers=headers)


#: CDR cost fields (OCPI 2.2.1 Price objects) a credit CDR negates.
COSTS = ("total_cost", "total_fixed_cost", "total_energy_cost", "total_time_cost", "total_parking_cost",
         "total_reservation_cost")  # fmt: skip


def credit_of(sent: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The credit CDR of a CDR the eMSP has: the same session, every cost negated."""
    body = {**sent, "id": f"{sent['id']}-C", "credit": True, "credit_reference_id": sent["id"],
            "last_updated": env.iso(at)}  # fmt: skip
    for key in COSTS:
        price = sent.get(key)
        if isinstance(price, dict):
            body[key] = {k: -v for k, v in price.items() if isinstance(v, int | float)}
    return body


def corrections(sent: dict[str, Any], now_body: dict[str, Any], revision: int, at: datetime) -> list[dict[str, Any]]:
    """The credit CDR and the corrected CDR (revision ``revision``) when the CDR as it is now differs from the one
    sent; none when it does not."""
    if {k: v for k, v in sent.items() if k != "last_updated"} == {
        k: v for k, v in {**now_body, "id": sent["id"]}.items() if k != "last_updated"
    }:
        return []
    return [credit_of(sent, at), {**now_body, "id": f"{now_body['id']}-R{revision}"}]


def _pushes(db: Session, party: int, cdr_id: str) -> list[OcpiPush]:
    """What was queued for the party under this CDR's keys: the CDR, then credit and corrected CDRs, oldest first."""
    return list(
        db.scalars(
            select(OcpiPush)
            .where(OcpiPush.party == party, OcpiPush.module == "cdrs")
            .where((OcpiPush.key == f"cdr:{cdr_id}") | OcpiPush.key.like(f"cdr:{cdr_id}:%"))
            .order_by(OcpiPush.id)
        )
    )


def _sent(db: Session, party: int, cdr_id: str) -> tuple[dict[str, Any] | None, int]:
    """The CDR (not a credit) last queued for the party under this CDR's keys, and how many revisions were."""
    kept = [p.body for p in _pushes(db, party, cdr_id) if not p.body.get("credit")]
    return (kept[-1] if kept else None), max(0, len(kept) - 1)


def queue_cdrs(db: Session, config: OcpiConfig, station_id: str, charger_ids: set[str], now: datetime) -> int:
    """Queue a POST of each ended transaction's CDR (named by the station's ids) to its eMSP's cdrs receiver, once
    per CDR and party, or, for one rebuilt since it was queued, its credit CDR and the corrected one; returns how
    many were queued."""
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
            to = behind(party, token)
            sent, revisions = _sent(db, party.id, row.id)
            if sent is None:
                queued += store.enqueue(db, party.id, "cdrs", "POST", url, body, now, to, key=f"cdr:{row.id}")
                continue
            fixes = corrections(sent, body, revisions + 1, now)
            if fixes:
                credit, fixed = fixes
                n = revisions + 1
                queued += store.enqueue(db, party.id, "cdrs", "POST", url, credit, now, to, key=f"cdr:{row.id}:c{n}")
                queued += store.enqueue(db, party.id, "cdrs", "POST", url, fixed, now, to, key=f"cdr:{row.id}:r{n}")
    return queued
