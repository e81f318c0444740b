"""Tokens receiver: an eMSP pushes its drivers' tokens (``PUT``, ``PATCH``) and reads back what we hold (``GET``)
at ``tokens/{country_code}/{party_id}/{uid}[?type=RFID]``. A party writes and reads only tokens under its own
country code and party id (or one of the roles its credentials listed). The CSMS authorises with them
(:func:`csms.services.ocpi.whitelisted`, :func:`csms.services.ocpi.realtime`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from csms.ocpi import envelope as env
from csms.ocpi.deps import Caller, RegisteredCaller, in_db
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
    codes = {(party.country_code, party.party_id)} | {(r.get("country_code"), r.get("party_id")) for r in party.roles}
    if (country_code, party_id) not in codes:
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
