"""OCPI 2.2.1 (the CPO role) in the store: roaming partners and their tokens, location details, commands and the
outbox of pushes. The HTTP side (the OCPI API, the handshake, the push worker) is :mod:`csms.ocpi`.

Tokens: the token a party calls us with is kept only as its SHA-256 (it is 32 random bytes, like an API key, so
a slow hash adds nothing and a lookup by hash stays one indexed query); the token we call a party with is kept
as given, since we must send it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from csms.domain.events import AuthorizationInfo, Decision
from csms.pki.lookups import Lookup, Pending, RemoteAuthorization, Result
from csms.services.errors import Conflict, Invalid, NotFound
from csms.services.passwords import api_key_hash
from csms.store.models import OcpiCommand, OcpiLocation, OcpiParty, OcpiPush, OcpiToken, Station

PENDING, REGISTERED, UNREGISTERED = "pending", "registered", "unregistered"
_COUNTRY = re.compile(r"[A-Z]{2}")
_PARTY = re.compile(r"[A-Z0-9]{3}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return api_key_hash(token)


def check_party_code(country_code: str, party_id: str) -> None:
    """Invalid unless an ISO 3166-1 alpha-2 country code and a 3-character party id (upper case)."""
    if not _COUNTRY.fullmatch(country_code):
        raise Invalid(f"country_code: two capital letters (ISO 3166-1 alpha-2), got {country_code!r}")
    if not _PARTY.fullmatch(party_id):
        raise Invalid(f"party_id: three capital letters or digits, got {party_id!r}")


# ---- parties ---------------------------------------------------------------------------------------------------
def add_party(
    db: Session,
    country_code: str,
    party_id: str,
    now: datetime,
    *,
    name: str | None = None,
    versions_url: str | None = None,
    peer_token: str | None = None,
    organisation_id: int | None = None,
) -> tuple[OcpiParty, str | None]:
    """A new partner. Without ``versions_url``/``peer_token`` (the partner registers with us) returns the token A
    to give it, stored only as a hash; with them (its versions URL and the token A it gave us) we register with
    it later (:func:`csms.ocpi.credentials.register_with`) and no token is issued here. An unregistered party is
    added afresh (its tokens and commands go with the old row). ``organisation_id``: the organisation whose
    stations, sites and tariffs it sees (None: the platform's party, every organisation's).

    Raises:
        Invalid: a malformed code, or only one of versions_url and peer_token.  Conflict: the party exists (pending
            or registered).
    """
    check_party_code(country_code, party_id)
    if (versions_url is None) != (peer_token is None):
        raise Invalid("versions_url and token: give both (to register with the party) or neither")
    existing = find_party(db, country_code, party_id)
    if existing is not None and existing.status != UNREGISTERED:
        raise Conflict(f"party {country_code}-{party_id} already exists ({existing.status})")
    if existing is not None:  # registering again after an unregistration: a fresh start
        db.delete(existing)
        db.flush()
    token_a = None if peer_token is not None else new_token()
    row = OcpiParty(
        country_code=country_code,
        party_id=party_id,
        name=name,
        status=PENDING,
        token_hash=None if token_a is None else token_hash(token_a),
        token_kind=None if token_a is None else "A",
        peer_token=peer_token,
        versions_url=versions_url,
        endpoints=[],
        roles=[],
        push=True,
        organisation_id=organisation_id,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    db.flush()
    return row, token_a


def find_party(db: Session, country_code: str, party_id: str) -> OcpiParty | None:
    return db.scalar(select(OcpiParty).where(OcpiParty.country_code == country_code, OcpiParty.party_id == party_id))


def get_party(db: Session, country_code: str, party_id: str) -> OcpiParty:
    row = find_party(db, country_code, party_id)
    if row is None:
        raise NotFound(f"party {country_code}-{party_id} not found")
    return row


def party_by_token(db: Session, token: str) -> OcpiParty | None:
    """The party that calls us with ``token`` (None: unknown or revoked)."""
    return db.scalar(select(OcpiParty).where(OcpiParty.token_hash == token_hash(token)))


def set_push(db: Session, country_code: str, party_id: str, push: bool, now: datetime) -> OcpiParty:
    """Whether the party gets pushes (EVSE status, sessions) or pulls."""
    row = get_party(db, country_code, party_id)
    row.push, row.updated_at = push, now
    db.flush()
    return row


def set_organisation(db: Session, country_code: str, party_id: str, organisation_id: int | None,
                     now: datetime) -> OcpiParty:  # fmt: skip
    """Make the party one of ``organisation_id`` (None: the platform's, every organisation's). The next sync round
    sends it what it now sees and removes what it no longer does (:mod:`csms.ocpi.sync`)."""
    row = get_party(db, country_code, party_id)
    row.organisation_id, row.updated_at = organisation_id, now
    db.flush()
    return row


def list_parties(db: Session) -> list[OcpiParty]:
    return list(db.scalars(select(OcpiParty).order_by(OcpiParty.country_code, OcpiParty.party_id)))


def remove_party(db: Session, country_code: str, party_id: str) -> None:
    db.delete(get_party(db, country_code, party_id))
    db.flush()


def issue_token(db: Session, party: OcpiParty, kind: str, now: datetime) -> str:
    """A new token the party will call us with (B or C); the one before stops working at once."""
    token = new_token()
    party.token_hash, party.token_kind, party.updated_at = token_hash(token), kind, now
    db.flush()
    return token


def registered(
    db: Session,
    party: OcpiParty,
    *,
    peer_token: str,
    versions_url: str,
    version: str,
    endpoints: list[dict[str, Any]],
    roles: list[dict[str, Any]],
    now: datetime,
) -> None:
    """The handshake's outcome: the token we call the party with, where and with which version."""
    party.peer_token, party.versions_url, party.version = peer_token, versions_url, version
    party.endpoints, party.roles, party.status, party.updated_at = endpoints, roles, REGISTERED, now
    db.flush()


def unregister(db: Session, party: OcpiParty, now: datetime) -> None:
    """Credentials deleted (by either side): neither token works any more; the party stays listed."""
    party.token_hash = party.token_kind = party.peer_token = None
    party.endpoints, party.status, party.updated_at = [], UNREGISTERED, now
    db.flush()


def is_hub(party: OcpiParty) -> bool:
    return any(r.get("role") == "HUB" for r in party.roles or [])


def speaks_for(party: OcpiParty, country_code: str, party_id: str) -> bool:
    """Whether the party may push and read objects under these codes: its own, its roles', or any behind a hub."""
    return is_hub(party) or (country_code, party_id) in codes(party)


def codes(party: OcpiParty) -> set[tuple[str, str]]:
    """The country code / party id pairs the party speaks for: its own and its credentials' roles'."""
    return {(party.country_code, party.party_id)} | {
        (str(r.get("country_code")), str(r.get("party_id"))) for r in party.roles or []
    }


def endpoint_url(party: OcpiParty, identifier: str, role: str) -> str | None:
    """The party's URL of module ``identifier`` in ``role`` (SENDER or RECEIVER), as its version details said."""
    for endpoint in party.endpoints or []:
        if endpoint.get("identifier") == identifier and endpoint.get("role") == role:
            return str(endpoint["url"])
    return None


# ---- location details ------------------------------------------------------------------------------------------
_LOCATION_RULES = {
    "address": r".{1,45}",
    "city": r".{1,45}",
    "country": r"[A-Z]{3}",
    "latitude": r"-?[0-9]{1,2}\.[0-9]{5,7}",
    "longitude": r"-?[0-9]{1,3}\.[0-9]{5,7}",
    "time_zone": r"[A-Za-z_]+(/[A-Za-z0-9_+-]+)*",
}


def set_location(db: Session, location_id: str, details: dict[str, Any], now: datetime) -> OcpiLocation:
    """Create or replace the OCPI details of a site (or of a station in no site).

    Raises:
        Invalid: naming the field OCPI would refuse (country: ISO 3166 alpha-3; coordinates as OCPI writes them).
    """
    if not 1 <= len(location_id) <= 36:
        raise Invalid("location id: 1-36 characters (an OCPI location id)")
    for key, pattern in _LOCATION_RULES.items():
        if not re.fullmatch(pattern, str(details.get(key) or "")):
            raise Invalid(f"{key}: {details.get(key)!r} does not match {pattern}")
    for key, most in (("postal_code", 10), ("name", 255), ("time_zone", 255)):  # the columns' lengths
        if details.get(key) is not None and len(details[key]) > most:
            raise Invalid(f"{key}: at most {most} characters")
    row = db.get(OcpiLocation, location_id)
    if row is None:
        row = OcpiLocation(id=location_id)
        db.add(row)
    for key, value in details.items():
        setattr(row, key, value)
    row.updated_at = now
    db.flush()
    return row


def locations(db: Session) -> list[OcpiLocation]:
    return list(db.scalars(select(OcpiLocation).order_by(OcpiLocation.id)))


# ---- tokens the eMSPs pushed ---------------------------------------------------------------------------------
def put_token(db: Session, party: OcpiParty, body: dict[str, Any], last_updated: datetime) -> tuple[OcpiToken, bool]:
    """Store the party's token (its OCPI Token object); returns the row and whether it is new."""
    key = (body["country_code"], body["party_id"], body["uid"], body["type"])
    row = find_token(db, *key)
    created = row is None
    if row is None:
        row = OcpiToken(country_code=key[0], party_id=key[1], uid=key[2], type=key[3])
        db.add(row)
    elif row.party != party.id:
        raise Conflict(f"token {key[2]!r} belongs to another party")
    row.party = party.id
    row.contract_id, row.group_id = body["contract_id"], body.get("group_id")
    row.valid, row.whitelist, row.body, row.last_updated = body["valid"], body["whitelist"], body, last_updated
    db.flush()
    return row, created


def find_token(db: Session, country_code: str, party_id: str, uid: str, type_: str) -> OcpiToken | None:
    return db.scalar(
        select(OcpiToken).where(
            OcpiToken.country_code == country_code,
            OcpiToken.party_id == party_id,
            OcpiToken.uid == uid,
            OcpiToken.type == type_,
        )
    )


def token_by_uid(db: Session, uid: str, station_id: str | None = None) -> OcpiToken | None:
    """The eMSP token a driver presented at a station (its uid is the OCPP idToken); RFID first. With
    ``station_id``: only a token of a party that may see that station (the platform's, or one of the station's
    organisation)."""
    stmt = select(OcpiToken).where(OcpiToken.uid == uid)
    if station_id is not None:
        station = db.get(Station, station_id)
        platform = OcpiParty.organisation_id.is_(None)
        seen_by = platform if station is None else or_(platform, OcpiParty.organisation_id == station.organisation_id)
        stmt = stmt.join(OcpiParty, OcpiParty.id == OcpiToken.party).where(seen_by)
    rows = list(db.scalars(stmt))
    rows.sort(key=lambda r: (r.type != "RFID", r.id))
    return rows[0] if rows else None


# ---- authorising a roaming driver -------------------------------------------------------------------------------
#: OCPI AllowedType → the OCPP authorization status (1.6 has no NoCredit).
ALLOWED = {"ALLOWED": "Accepted", "BLOCKED": "Blocked", "EXPIRED": "Expired", "NO_CREDIT": "Invalid",
           "NOT_ALLOWED": "Invalid"}  # fmt: skip


def whitelisted(db: Session, uid: str, station_id: str | None = None) -> AuthorizationInfo:
    """A token no local id token matches, by what its eMSP pushed: Unknown when none did (at ``station_id``: no
    party that may see the station did), Invalid when it is not valid, else Accepted in its group. (Which tokens
    need the eMSP asked first, at Authorize: :func:`realtime`.)"""
    row = token_by_uid(db, uid, station_id)
    if row is None:
        return AuthorizationInfo("Unknown")
    return AuthorizationInfo("Accepted" if row.valid else "Invalid", None, row.group_id)


@dataclass(frozen=True)
class RoamingCheck(Pending):
    """Authorize of a roaming token its eMSP wants asked (whitelist NEVER or ALLOWED_OFFLINE): the eMSP's
    ``authorize`` answer decides; without an answer, ALLOWED_OFFLINE falls back to the whitelist, NEVER refuses."""

    request: RemoteAuthorization
    fallback: str
    group_id: str | None

    @property
    def lookups(self) -> tuple[Lookup, ...]:
        return (self.request,)

    def finish(self, results: Sequence[Result], now: datetime) -> Decision:
        (answer,) = results
        if not isinstance(answer, dict):
            return AuthorizationInfo(self.fallback, None, self.group_id)
        return AuthorizationInfo(ALLOWED.get(str(answer.get("allowed")), "Invalid"), None, self.group_id)


#: After a START_SESSION or RESERVE_NOW the eMSP authorised, its token is not asked about again at that station
#: for this long (OCPI 2.2.1 13.3.4, 13.3.5).
COMMANDED = timedelta(minutes=15)


def realtime(db: Session, uid: str, station_id: str, now: datetime) -> RoamingCheck | AuthorizationInfo | None:
    """What Authorize of roaming token ``uid`` at ``station_id`` waits for; None: the whitelist answers."""
    row = token_by_uid(db, uid, station_id)
    if row is None or row.whitelist in ("ALWAYS", "ALLOWED"):
        return None
    commanded = select(OcpiCommand.id).where(
        OcpiCommand.token_uid == uid, OcpiCommand.station_id == station_id,
        OcpiCommand.command.in_(("START_SESSION", "RESERVE_NOW")), OcpiCommand.created_at >= now - COMMANDED,
    )  # fmt: skip
    if db.scalar(commanded.limit(1)) is not None:
        return AuthorizationInfo("Accepted", None, row.group_id)
    # Asked also when the token is not valid (12.4.5: its state may have changed since).
    fallback = "Accepted" if row.whitelist == "ALLOWED_OFFLINE" and row.valid else "Invalid"
    party = db.get(OcpiParty, row.party)
    url = None if party is None or party.peer_token is None else endpoint_url(party, "tokens", "SENDER")
    if party is None or party.peer_token is None or url is None:  # the eMSP cannot be asked
        return AuthorizationInfo(fallback, None, row.group_id)
    station = db.get(Station, station_id)
    location = (station.site_id or station.id) if station is not None else station_id
    target = f"{url.rstrip('/')}/{uid}/authorize?type={row.type}"
    request = RemoteAuthorization(target, party.peer_token, {"location_id": location})
    return RoamingCheck(request, fallback, row.group_id)


# ---- commands ---------------------------------------------------------------------------------------------------
def record_command(
    db: Session,
    party: OcpiParty,
    command: str,
    response_url: str,
    now: datetime,
    **fields: Any,
) -> OcpiCommand:
    """``fields``: station_id, remote_start_id, authorization_reference, token_uid (:class:`OcpiCommand`)."""
    row = OcpiCommand(party=party.id, command=command, response_url=response_url, created_at=now, **fields)
    db.add(row)
    db.flush()
    return row


def command_result(db: Session, command_id: int, result: str, message: str | None, now: datetime) -> None:
    """Keep the command's result and queue it for the eMSP's response_url."""
    row = db.get(OcpiCommand, command_id)
    if row is None:
        return
    row.result = result
    body: dict[str, Any] = {"result": result}
    if message:
        body["message"] = [{"language": "en", "text": message[:512]}]
    enqueue(db, row.party, "commands", "POST", row.response_url, body, now)


# ---- the outbox -------------------------------------------------------------------------------------------------
def enqueue(  # noqa: PLR0913 - a push is these; to and key are the rare ones
    db: Session,
    party: int,
    module: str,
    method: str,
    url: str,
    body: dict[str, Any],
    now: datetime,
    to: tuple[str, str] | None = None,
    key: str | None = None,
) -> bool:
    """``to``: the party behind a hub the push is for (its OCPI-to headers); None: the receiving party itself.
    ``key``: what may go to the party only once (a CDR); returns False, queueing nothing, when it went already."""
    if key is not None and db.scalar(select(OcpiPush.id).where(OcpiPush.party == party, OcpiPush.key == key)):
        return False
    db.add(OcpiPush(party=party, module=module, method=method, url=url, body=body, status="pending", attempts=0,
                    next_attempt_at=now, created_at=now, to_country_code=to[0] if to else None,
                    to_party_id=to[1] if to else None, key=key))  # fmt: skip
    db.flush()
    return True


#: A push taken by a worker is not due for another worker until this long has passed (its attempt is recorded
#: well before): two nodes of a cluster never send the same push at once, and one that died mid-attempt leaves
#: its pushes to the others after this.
CLAIM = timedelta(seconds=60)


def due_pushes(db: Session, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Pending pushes whose time has come, oldest first, with the token to send them with; each is claimed
    (:data:`CLAIM`; on PostgreSQL the rows another worker is claiming are skipped, not waited for)."""
    stmt = (
        select(OcpiPush, OcpiParty.peer_token, OcpiParty.country_code, OcpiParty.party_id)
        .join(OcpiParty, OcpiParty.id == OcpiPush.party)
        .where(OcpiPush.status == "pending", OcpiPush.next_attempt_at <= now)
        .order_by(OcpiPush.id)
        .limit(limit)
        .with_for_update(of=OcpiPush, skip_locked=True)
    )
    due = []
    for p, token, country, party in db.execute(stmt):
        p.next_attempt_at = now + CLAIM
        due.append({"id": p.id, "method": p.method, "url": p.url, "body": p.body, "attempts": p.attempts,
                    "token": token, "country_code": p.to_country_code or country,
                    "party_id": p.to_party_id or party})  # fmt: skip
    db.flush()
    return due


def record_push(
    db: Session,
    push_id: int,
    *,
    at: datetime,
    status: int | None,
    error: str | None,
    delivered: bool,
    retry_after_s: float | None,
) -> None:
    row = db.get(OcpiPush, push_id)
    if row is None:
        return
    row.attempts += 1
    row.last_status, row.last_error = status, None if error is None else error[:300]
    if delivered:
        row.status, row.delivered_at = "delivered", at
    elif retry_after_s is None:
        row.status = "abandoned"
    else:
        row.next_attempt_at = at + timedelta(seconds=retry_after_s)
    db.flush()


def pushes(db: Session, status: str | None = None, limit: int = 100) -> list[OcpiPush]:
    stmt = select(OcpiPush).order_by(OcpiPush.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(OcpiPush.status == status)
    return list(db.scalars(stmt))


def next_push_at(db: Session) -> datetime | None:
    return db.scalar(select(OcpiPush.next_attempt_at).where(OcpiPush.status == "pending").order_by(
        OcpiPush.next_attempt_at).limit(1))  # fmt: skip
