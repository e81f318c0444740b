"""What the CPO sends partners on its own, besides EVSE status and sessions: a location or a tariff that changed
(a station added, renamed or moved to another site, a location's details, a tariff created or changed) is PUT to
each party's locations / tariffs receiver through the push outbox; and the tokens of each party that offers a
tokens sender are pulled now and then (``date_from`` the last pull).

Changes are found by content, not by who changed what: each round builds the objects as the modules serve them
and compares each with what the party was last sent (:attr:`csms.store.models.OcpiParty.pushed`, a SHA-256 per
object without its timestamps and statuses — EVSE status goes by its own PATCH). So a change made through the
API, the CLI or an import is pushed alike. A party's first round records what it has (it pulled after
registering) without sending. What is gone is pushed too: OCPI 2.2.1 keeps a location and its EVSEs, and an EVSE
that is gone (its station removed, decommissioned, or moved to another location) is listed REMOVED
(:mod:`csms.ocpi.locations` keeps it): it is PATCHed to status REMOVED, and PUT whole when it comes back; a deleted
tariff is DELETEd at the party's tariffs receiver. A party of an organisation is sent only that organisation's
locations and tariffs (an EVSE it no longer sees is PATCHed REMOVED too).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from csms.ocpi import envelope as env
from csms.ocpi import locations, tariffs
from csms.ocpi.client import PeerError
from csms.ocpi.deps import OcpiConfig
from csms.ocpi.envelope import Us
from csms.ocpi.tokens import pull
from csms.services import ocpi as store

log = logging.getLogger(__name__)
#: The value ``ocpi_parties.pushed`` keeps for an EVSE the party was sent REMOVED (a live one's is "").
REMOVED = "REMOVED"


def fingerprint(obj: Any) -> str:
    """SHA-256 of the object without its timestamps and statuses (:data:`csms.ocpi.locations.VOLATILE`)."""
    return hashlib.sha256(json.dumps(locations.static(obj), sort_keys=True, default=str).encode()).hexdigest()


def queue_changes(db: Session, config: OcpiConfig, now: datetime) -> int:
    """PUT each location and tariff that changed since a registered pushing party was last sent it, PATCH each EVSE
    it was sent that is gone (listed REMOVED: its station removed, decommissioned or moved elsewhere; or no longer
    the party's to see) to REMOVED, PUT each it was sent REMOVED that is back, and DELETE each tariff it was sent
    that is deleted; a party of an organisation is sent only that organisation's. Returns how many pushes were
    queued."""
    parties = [p for p in store.list_parties(db) if p.status == store.REGISTERED and p.push and p.peer_token]
    wanted = [(p, store.endpoint_url(p, "locations", "RECEIVER"), store.endpoint_url(p, "tariffs", "RECEIVER"))
              for p in parties]  # fmt: skip
    wanted = [w for w in wanted if w[1] or w[2]]
    built: dict[int | None, dict[str, list[tuple[str, dict[str, Any]]]]] = {}
    queued = 0
    for party, *urls in wanted:
        if party.organisation_id not in built:
            org = party.organisation_id
            built[org] = {
                "locations": [(f"location:{o['id']}", o) for o in locations.build(db, config, None, org, now)],
                "tariffs": [(f"tariff:{body['id']}", body) for _, body in tariffs.build(db, config, org)],
            }
        objects = built[party.organisation_id]
        before = dict(party.pushed or {})
        seen: dict[str, str] = {}
        first = party.pushed is None
        listed = {f"evse:{o['id']}/{e['uid']}": e for _, o in objects["locations"] for e in o["evses"]}
        evses = {key: REMOVED if e["status"] == REMOVED else "" for key, e in listed.items()}
        loc_url, tariff_url = urls
        base = f"/{config.country_code}/{config.party_id}/"
        if not first:  # gone since the last round: EVSEs to REMOVED (before their location's PUT), tariffs DELETEd
            gone = {key for key, value in before.items() if key.startswith("evse:") and value != REMOVED
                    and evses.get(key, REMOVED) == REMOVED}  # fmt: skip
            gone |= {key for key in before if key.startswith("tariff:")} - {key for key, _ in objects["tariffs"]}
            queued += _queue_gone(db, party.id, sorted(gone), listed, loc_url, tariff_url, base, now)
            back = sorted(key for key, value in evses.items() if value == "" and before.get(key) == REMOVED)
            for key in back:  # a REMOVED EVSE listed again: PUT whole
                if loc_url is not None:
                    target = f"{loc_url.rstrip('/')}{base}{key.removeprefix('evse:')}"
                    queued += store.enqueue(db, party.id, "locations", "PUT", target, listed[key], now)
        seen.update(evses)
        for (module, items), url in zip(objects.items(), urls, strict=True):
            for key, body in items:
                digest = fingerprint(body)
                if before.get(key) != digest and not first and url is not None:
                    target = f"{url.rstrip('/')}{base}{body['id']}"
                    queued += store.enqueue(db, party.id, module, "PUT", target, body, now)
                seen[key] = digest
        if seen != before or first:
            party.pushed = seen
    db.flush()
    return queued


def _queue_gone(db: Session, party: int, gone: list[str], listed: dict[str, dict[str, Any]], loc_url: str | None,
                tariff_url: str | None, base: str, now: datetime) -> int:  # fmt: skip
    """PATCH each gone EVSE (``evse:LOCATION/UID``) to REMOVED — ``last_updated`` as a pull lists it (when it was
    found gone), else now (no longer the party's to see) —, DELETE each gone tariff (``tariff:ID``)."""
    queued = 0
    for key in gone:
        kind, _, name = key.partition(":")
        if kind == "evse" and loc_url is not None:
            removed = {
                "status": REMOVED,
                "last_updated": listed[key]["last_updated"] if key in listed else env.iso(now),
            }
            queued += store.enqueue(db, party, "locations", "PATCH", loc_url.rstrip("/") + base + name, removed, now)
        elif kind == "tariff" and tariff_url is not None:
            queued += store.enqueue(db, party, "tariffs", "DELETE", tariff_url.rstrip("/") + base + name, {}, now)
    return queued


async def pull_tokens_due(
    factory: sessionmaker[Session], client: httpx.AsyncClient, us: Us, now: datetime, every_s: float
) -> list[str]:
    """Pull the tokens of each registered party with a tokens sender whose last pull is ``every_s`` old (or that
    was never pulled): ``date_from`` its last pull. Returns what went wrong, per party."""

    def read() -> list[tuple[str, str, datetime | None]]:
        with factory() as db:
            return [
                (p.country_code, p.party_id, p.tokens_pulled_at)
                for p in store.list_parties(db)
                if p.status == store.REGISTERED and p.peer_token and store.endpoint_url(p, "tokens", "SENDER")
                and (p.tokens_pulled_at is None or (now - p.tokens_pulled_at).total_seconds() >= every_s)
            ]  # fmt: skip

    def pulled(country_code: str, party_id: str) -> None:
        with factory() as db, db.begin():
            store.get_party(db, country_code, party_id).tokens_pulled_at = now

    due = await asyncio.to_thread(read)  # on a thread, never on the event loop (csms.ocpi.tokens.pull says why)
    problems = []
    for country_code, party_id, since in due:
        try:
            kept, refused = await pull(factory, country_code, party_id, client, us, date_from=since)
        except PeerError as exc:
            problems.append(f"{country_code}-{party_id}: {exc}")
            continue
        problems += [f"{country_code}-{party_id}: {r}" for r in refused]
        await asyncio.to_thread(pulled, country_code, party_id)
        log.info("pulled %d tokens of %s-%s", kept, country_code, party_id)
    return problems
