"""Tokens receiver: an eMSP pushes its drivers' tokens (``PUT``, ``PATCH``) and reads back what we hold (``GET``)
at ``tokens/{country_code}/{party_id}/{uid}[?type=RFID]``. A party writes and reads only tokens under its own
country code and party id (or one of the roles its credentials listed). The CSMS authorises with them
(:func:`csms.services.ocpi.whitelisted`, :func:`csms.services.ocpi.realtime`)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from csms.ocpi import envelope as env
from csms.ocpi.client import PeerError, auth
from csms.ocpi.deps import Caller, RegisteredCaller, in_db
from csms.ocpi.envelope import Us
from csms.ocpi.models import Token, TokenPatch
from csms.services import ocpi as store
from csms.store.models import OcpiParty, OcpiToken

router = APIRouter(prefix="/2.2.1/tokens")
TYPES = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")


def _type(request: Request) -> str:
    kind = request.query_params.get("type", "RFID")
    if kind not in TYPES:
        raise env.OcpiError(env.INVALID_PARAMETERS, f"type: one of {', '.join(TYPES)}, got {kind!r}")
    return kind


def speaks_for(db: Session, caller: Caller, country_code: str, party_id: str) -> OcpiParty:
    """The caller's party row, when it speaks for ``country_code``/``party_id``."""
    party = db.get(OcpiParty, caller.id)
    assert party is not None
    if not store.speaks_for(party, country_code, party_id):
        raise env.OcpiError(env.CLIENT_ERROR, f"{country_code}-{party_id} is not a party these credentials speak for",
                            403)  # fmt: skip
    return party


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise env.OcpiError(env.INVALID_PARAMETERS, "body: not JSON") from None


def _refusal(exc: ValidationError) -> env.OcpiError:
    first = exc.errors(include_url=False)[0]
    return env.OcpiError(env.INVALID_PARAMETERS, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")


def _found(db: Session, country_code: str, party_id: str, uid: str, kind: str) -> OcpiToken:
    row = store.find_token(db, country_code, party_id, uid, kind)
    if row is None:
        raise env.OcpiError(env.UNKNOWN_TOKEN, f"unknown token {uid!r} ({kind})", 404)
    return row


# ---- pulling an eMSP's tokens -----------------------------------------------------------------------------------
async def pull(
    factory: sessionmaker[Session],
    country_code: str,
    party_id: str,
    client: httpx.AsyncClient,
    us: Us | None = None,
    date_from: datetime | None = None,
) -> tuple[int, list[str]]:
    """GET every token of the registered party's tokens sender (following its ``Link`` pages; with ``date_from``
    only those changed since) and keep them as if pushed; returns how many were kept and why the others were not
    (a malformed token, another party's codes).

    Raises:
        PeerError: the party is not registered, lists no tokens sender, or answered an error.
    """
    # The database is worked on a thread, never on the event loop: a transaction the API holds open until its audit
    # entry commits needs the loop to finish, so a loop blocked on SQLite's write lock would wait for itself.
    status, url, token, pid = await asyncio.to_thread(_sender_of, factory, country_code, party_id)
    if status != store.REGISTERED or token is None or url is None:
        raise PeerError(f"party {country_code}-{party_id} is not registered or offers no tokens sender")
    kept, refused = 0, []
    next_url: str | None = url
    params = None if date_from is None else {"date_from": env.iso(date_from)}
    while next_url is not None:
        try:
            response = await client.get(next_url, params=params, headers=auth(token, us, (country_code, party_id)))
            params = None  # the next page's link carries the query
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PeerError(f"GET {next_url}: {exc}") from None
        if not response.is_success or answer.get("status_code") != env.SUCCESS:
            raise PeerError(f"GET {next_url}: HTTP {response.status_code}, OCPI {answer.get('status_code')}")
        good: list[Token] = []
        for index, item in enumerate(answer.get("data") or []):
            try:
                good.append(Token.model_validate(item))
            except ValidationError as exc:
                refused.append(f"item {index}: {_refusal(exc).message}")

        others = await asyncio.to_thread(_keep, factory, pid, good)
        kept += len(good) - len(others)
        refused += others
        next_url = _next(response.headers.get("link"))
    return kept, refused


def _sender_of(
    factory: sessionmaker[Session], country_code: str, party_id: str
) -> tuple[str, str | None, str | None, int]:
    """The party's status, tokens sender URL, token to call it with, and row id."""
    with factory() as db:
        party = store.get_party(db, country_code, party_id)
        return party.status, store.endpoint_url(party, "tokens", "SENDER"), party.peer_token, party.id


def _keep(factory: sessionmaker[Session], party: int, tokens: list[Token]) -> list[str]:
    """Keep the pulled tokens as if pushed, in one transaction; returns why those not kept were not."""
    with factory() as db, db.begin():
        row = db.get(OcpiParty, party)
        assert row is not None
        others = []
        for one in tokens:
            if not store.speaks_for(row, one.country_code, one.party_id):
                others.append(f"{one.uid}: {one.country_code}-{one.party_id} is another party's")
                continue
            body = one.model_dump(mode="json", exclude_none=True)
            body["last_updated"] = env.iso(one.last_updated)
            store.put_token(db, row, body, one.last_updated)
        return others


def _next(link: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header."""
    for part in (link or "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().strip("<>")
    return None


@router.get("/{country_code}/{party_id}/{uid}")
async def get_token(
    request: Request, country_code: str, party_id: str, uid: str, caller: RegisteredCaller
) -> JSONResponse:
    kind = _type(request)

    def read(db: Session) -> dict[str, Any]:
        speaks_for(db, caller, country_code, party_id)
        return _found(db, country_code, party_id, uid, kind).body

    return env.ok(await in_db(request, read))


@router.put("/{country_code}/{party_id}/{uid}")
async def put_token(
    request: Request, country_code: str, party_id: str, uid: str, caller: RegisteredCaller
) -> JSONResponse:
    kind = _type(request)
    try:
        token = Token.model_validate(await _json(request))
    except ValidationError as exc:
        raise _refusal(exc) from None
    if (token.country_code, token.party_id, token.uid, token.type) != (country_code, party_id, uid, kind):
        raise env.OcpiError(env.INVALID_PARAMETERS, "country_code, party_id, uid and type must match the URL")
    body = token.model_dump(mode="json", exclude_none=True)
    body["last_updated"] = env.iso(token.last_updated)

    def write(db: Session) -> None:
        store.put_token(db, speaks_for(db, caller, country_code, party_id), body, token.last_updated)

    await in_db(request, write)
    return env.ok()


@router.patch("/{country_code}/{party_id}/{uid}")
async def patch_token(
    request: Request, country_code: str, party_id: str, uid: str, caller: RegisteredCaller
) -> JSONResponse:
    kind = _type(request)
    raw = await _json(request)
    try:
        patch = TokenPatch.model_validate(raw)
    except ValidationError as exc:
        raise _refusal(exc) from None
    changes = {k: v for k, v in patch.model_dump(mode="json", exclude_unset=True).items() if k in raw}
    changes["last_updated"] = env.iso(patch.last_updated)

    def write(db: Session) -> None:
        party = speaks_for(db, caller, country_code, party_id)
        row = _found(db, country_code, party_id, uid, kind)
        merged = {**row.body, **changes}
        try:
            Token.model_validate(merged)
        except ValidationError as exc:
            raise _refusal(exc) from None
        store.put_token(db, party, merged, patch.last_updated)

    await in_db(request, write)
    return env.ok()
