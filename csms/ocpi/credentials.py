"""Versions, version details and credentials: the registration handshake in both directions.

A partner registers with us: it calls ``POST credentials`` with the token A that ``csms ocpi parties add`` printed,
giving its token B and versions URL; we fetch its 2.2.1 endpoints with token B and answer with a new token C,
which from then on is the only token of that party we accept (token A stops working). ``PUT`` does the same again
(new endpoints, a new token C), ``DELETE`` unregisters.

We register with a partner (:func:`register_with`): with the token A it gave us we fetch its endpoints, issue a
token B for it, and ``POST`` our credentials; its answer's token C is what we call it with from then on.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from csms.ocpi import envelope as env
from csms.ocpi.client import PeerError, call, version_details
from csms.ocpi.deps import AnyCaller, Caller, OcpiConfig, config_of, in_db, now, now_of
from csms.ocpi.models import VERSION, Credentials
from csms.services import ocpi as store
from csms.store.models import OcpiParty

router = APIRouter()

#: Module → the interfaces this CPO implements (its role in each).
INTERFACES = {
    "credentials": ("SENDER", "RECEIVER"),
    "locations": ("SENDER",),
    "tariffs": ("SENDER",),
    "sessions": ("SENDER",),
    "cdrs": ("SENDER",),
    "tokens": ("RECEIVER",),
    "commands": ("RECEIVER",),
}


@router.get("/versions")
async def versions(request: Request, _caller: AnyCaller) -> JSONResponse:
    config = config_of(request)
    return env.ok([{"version": VERSION, "url": f"{config.base_url}/{VERSION}"}])


@router.get("/2.2.1")
async def details(request: Request, _caller: AnyCaller) -> JSONResponse:
    config = config_of(request)
    endpoints = [
        {"identifier": module, "role": role, "url": config.module_url(module)}
        for module in config.modules
        for role in INTERFACES.get(module, ())
    ]
    return env.ok({"version": VERSION, "endpoints": endpoints})


def our_credentials(config: OcpiConfig, token: str) -> dict[str, Any]:
    return {"token": token, "url": config.versions_url, "roles": [config.role()]}


@router.get("/2.2.1/credentials")
async def get_credentials(request: Request, caller: AnyCaller) -> JSONResponse:
    """The credentials the caller uses with us (its own token: we keep only its hash)."""
    return env.ok(our_credentials(config_of(request), caller.token))


async def _body(request: Request) -> Credentials:
    try:
        return Credentials.model_validate(await request.json())
    except ValueError as exc:
        raise env.OcpiError(env.INVALID_PARAMETERS, f"credentials: {_first_error(exc)}") from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}"
    return str(exc)


async def _handshake(request: Request, caller: Caller, credentials: Credentials) -> JSONResponse:
    """Fetch the partner's endpoints with its token, then answer with a fresh token C."""
    client: httpx.AsyncClient = request.app.state.ocpi_client
    try:
        to = (caller.country_code, caller.party_id)
        _, found = await version_details(client, credentials.url, credentials.token, config_of(request).us, to)
    except PeerError as exc:
        code = env.UNSUPPORTED_VERSION if "no version" in str(exc) else env.UNABLE_TO_USE_CLIENT_API
        raise env.OcpiError(code, str(exc)) from None
    endpoints = [e.model_dump(mode="json") for e in found.endpoints]
    roles = [r.model_dump(mode="json", exclude_none=True) for r in credentials.roles]
    at = now_of(request)

    def store_it(db: Session) -> str:
        party = db.get(OcpiParty, caller.id)
        assert party is not None
        token_c = store.issue_token(db, party, "C", at)
        store.registered(db, party, peer_token=credentials.token, versions_url=credentials.url, version=VERSION,
                         endpoints=endpoints, roles=roles, now=at)  # fmt: skip
        return token_c

    token_c = await in_db(request, store_it)
    return env.ok(our_credentials(config_of(request), token_c))


@router.post("/2.2.1/credentials")
async def post_credentials(request: Request, caller: AnyCaller) -> JSONResponse:
    if caller.kind != "A":
        raise env.OcpiError(env.CLIENT_ERROR, "already registered: update with PUT, or DELETE first", 405)
    return await _handshake(request, caller, await _body(request))


@router.put("/2.2.1/credentials")
async def put_credentials(request: Request, caller: AnyCaller) -> JSONResponse:
    if caller.kind == "A" or caller.status != store.REGISTERED:
        raise env.OcpiError(env.CLIENT_ERROR, "not registered: register with POST first", 405)
    return await _handshake(request, caller, await _body(request))


@router.delete("/2.2.1/credentials")
async def delete_credentials(request: Request, caller: AnyCaller) -> JSONResponse:
    if caller.kind == "A" or caller.status != store.REGISTERED:
        raise env.OcpiError(env.CLIENT_ERROR, "not registered", 405)

    def forget(db: Session) -> None:
        party = db.get(OcpiParty, caller.id)
        assert party is not None
        store.unregister(db, party, at)

    at = now_of(request)
    await in_db(request, forget)
    return env.ok()


# ---- we unregister at a partner ----------------------------------------------------------------------------------
async def unregister_at(
    factory: sessionmaker[Session],
    config: OcpiConfig | None,
    country_code: str,
    party_id: str,
    client: httpx.AsyncClient,
) -> bool:
    """Tell a registered partner its credentials to us are void (``DELETE`` its credentials endpoint), then forget
    its endpoints and tokens here; returns whether it was registered (and so told).

    Raises:
        PeerError: the partner could not be told (nothing changed here then).
    """

    def read() -> tuple[str | None, str | None]:
        with factory() as db:
            party = store.get_party(db, country_code, party_id)
            if party.status != store.REGISTERED:
                return None, None
            return store.endpoint_url(party, "credentials", "RECEIVER"), party.peer_token

    def forget() -> None:
        with factory() as db, db.begin():
            store.unregister(db, store.get_party(db, country_code, party_id), now())

    url, token = await asyncio.to_thread(read)  # the database on a thread, never on the event loop
    if token is None:
        return False
    if url is None:
        raise PeerError(f"party {country_code}-{party_id} lists no credentials endpoint")
    await call(client, "DELETE", url, token, us=None if config is None else config.us, to=(country_code, party_id))
    await asyncio.to_thread(forget)
    return True


# ---- we register with a partner -------------------------------------------------------------------------------
async def register_with(
    factory: sessionmaker[Session], config: OcpiConfig, country_code: str, party_id: str, client: httpx.AsyncClient
) -> dict[str, Any]:
    """Register with the partner added with its versions URL and token A; returns its credentials.

    Raises:
        PeerError: it could not be reached, offers no 2.2.1 or no credentials module, or refused us.
    """

    def read() -> tuple[str | None, str | None]:
        with factory() as db:
            party = store.get_party(db, country_code, party_id)
            if party.status == store.REGISTERED:
                raise PeerError(f"already registered with {country_code}-{party_id}")
            return party.versions_url, party.peer_token

    def issue_b(at: datetime) -> str:
        with factory() as db, db.begin():
            return store.issue_token(db, store.get_party(db, country_code, party_id), "B", at)

    def keep(theirs: Credentials, endpoints: list[Any]) -> None:
        with factory() as db, db.begin():
            store.registered(
                db,
                store.get_party(db, country_code, party_id),
                peer_token=theirs.token,
                versions_url=theirs.url,
                version=VERSION,
                endpoints=[e.model_dump(mode="json") for e in endpoints],
                roles=[r.model_dump(mode="json", exclude_none=True) for r in theirs.roles],
                now=now(),
            )

    versions_url, token_a = await asyncio.to_thread(read)  # the database on a thread, never on the event loop
    if versions_url is None or token_a is None:
        raise PeerError(f"party {country_code}-{party_id} has no versions URL and token: add it with --url and --token")
    us, to = config.us, (country_code, party_id)
    _, found = await version_details(client, versions_url, token_a, us, to)
    url = next((e.url for e in found.endpoints if e.identifier == "credentials"), None)
    if url is None:
        raise PeerError(f"{versions_url}: the partner lists no credentials endpoint")
    token_b = await asyncio.to_thread(issue_b, now())
    answer = await call(client, "POST", url, token_a, our_credentials(config, token_b), us=us, to=to)
    try:
        theirs = Credentials.model_validate(answer)
    except ValueError as exc:
        raise PeerError(f"{url}: its credentials are malformed: {exc}") from None
    # Its endpoints as token C sees them (a partner may offer more once registered).
    _, found = await version_details(client, theirs.url, theirs.token, us, to)
    await asyncio.to_thread(keep, theirs, found.endpoints)
    return theirs.model_dump(mode="json")
