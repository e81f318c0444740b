"""Multifamily garages: properties, units, invitations (redeemed without an API key: the code is the
credential), access passes, statements per unit and the owner's reconciliation."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import Field

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import Out, Strict, examples
from csms.domain import money
from csms.services import multifamily

router = APIRouter(tags=["multifamily"])
#: Redeeming an invitation needs no API key: the invitation's code is the credential.
public_router = APIRouter(tags=["multifamily"])

Id = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")]
Month = Annotated[str, Query(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-11"])]
Decimalish = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]


class PropertyIn(Strict):
    model_config = examples(
        {"id": "harbour-view", "name": "Harbour View", "site_id": "hv-garage", "currency": "EUR",
         "billing_mode": "cost_recovery", "utility_rate": "0.2450", "margin_pct": "10", "vat_pct": "21",
         "tz": "Europe/Amsterdam"}
    )  # fmt: skip
    id: str = Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")
    name: str = Field(min_length=1, max_length=200)
    site_id: str | None = Field(None, max_length=36, description="the garage's load-management site")
    currency: str = Field(pattern="^[A-Z]{3}$")
    billing_mode: Literal["cost_recovery", "flat_fee"]
    utility_rate: Decimalish = Field(description="what the property pays per kWh")
    margin_pct: Decimalish = "0"
    flat_fee: Decimalish = Field("0", description="flat_fee mode: per unit and month")
    allowance_kwh: Decimalish = Field("0", description="flat_fee mode: kWh included")
    vat_pct: Decimalish = "0"
    tz: str = Field("UTC", max_length=40)


class UnitIn(Strict):
    model_config = examples({"name": "4B"})
    name: str = Field(min_length=1, max_length=40)


class InvitationIn(Strict):
    model_config = examples({"kind": "resident", "unit": "4B", "valid_days": 14})
    kind: Literal["resident", "visitor", "staff"]
    unit: str | None = Field(None, max_length=40)
    valid_days: int = Field(14, ge=1, le=90, description="how long the invitation can be redeemed")
    pass_days: int | None = Field(None, ge=1, le=3650, description="how long the pass lasts (visitors: 1)")
    max_kwh: float | None = Field(None, gt=0, le=10_000, description="energy the pass allows")


class InvitationOut(Out):
    code: str = Field(description="shown once: give it to the person (only its hash is kept)")
    redeem_url: str
    kind: str
    expires_at: datetime


class RedeemIn(Strict):
    model_config = examples({"holder": "Ana Silva", "hours": None})
    holder: str = Field(min_length=1, max_length=200)
    id_token: str | None = Field(None, min_length=1, max_length=36, description="the person's own RFID card")
    hours: str | None = Field(None, pattern=r"^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$", description="local HH:MM-HH:MM")


class PassOut(Out):
    id: int
    id_token: str
    kind: str
    holder: str
    unit_id: int | None
    valid_from: datetime
    valid_to: datetime | None
    hours: str | None
    max_kwh: float | None


def _pass_out(p: Any) -> dict[str, Any]:
    return {c: getattr(p, c) for c in PassOut.model_fields}


@router.post("/properties", status_code=status.HTTP_201_CREATED)
def create_property(db: DbSession, body: PropertyIn, caller: Caller) -> dict[str, Any]:
    fields = body.model_dump()
    prop = multifamily.create_property(db, fields.pop("id"), now=datetime.now(UTC), **fields)
    caller.adopt(prop)
    return {"id": prop.id, "name": prop.name, "site_id": prop.site_id, "billing_mode": prop.billing_mode}


@router.post("/properties/{property_id}/units", status_code=status.HTTP_201_CREATED)
def add_unit(db: DbSession, property_id: Id, body: UnitIn) -> dict[str, Any]:
    unit = multifamily.add_unit(db, property_id, body.name, now=datetime.now(UTC))
    return {"id": unit.id, "name": unit.name, "account_id": unit.account_id}


@router.post("/properties/{property_id}/invitations", status_code=status.HTTP_201_CREATED, response_model=InvitationOut)
def invite(db: DbSession, property_id: Id, body: InvitationIn) -> dict[str, Any]:
    """An invitation code for a resident of a unit, a visitor or staff: shown once, redeemable once."""
    code = secrets.token_urlsafe(12)
    row = multifamily.invite(db, property_id, code, kind=body.kind, now=datetime.now(UTC), unit=body.unit,
                             valid_days=body.valid_days, pass_days=body.pass_days, max_kwh=body.max_kwh)  # fmt: skip
    return {"code": code, "redeem_url": f"/api/v1/invitations/{code}/redeem", "kind": row.kind,
            "expires_at": row.expires_at}  # fmt: skip


@public_router.post("/invitations/{code}/redeem", status_code=status.HTTP_201_CREATED, response_model=PassOut)
def redeem(db: DbSession, code: Annotated[str, Path(min_length=8, max_length=64)], body: RedeemIn) -> dict[str, Any]:
    """Redeem an invitation: the person's token (their own card, or a new one) and access pass."""
    new_token = "MF" + secrets.token_hex(8).upper()
    granted = multifamily.redeem(db, code, holder=body.holder, now=datetime.now(UTC), id_token=body.id_token,
                                 new_token=new_token, hours=body.hours)  # fmt: skip
    return _pass_out(granted)


@router.get("/properties/{property_id}/passes", response_model=list[PassOut])
def list_passes(db: DbSession, property_id: Id) -> list[dict[str, Any]]:
    return [_pass_out(p) for p in multifamily.passes(db, property_id)]


@router.get("/properties/{property_id}/units/{unit}/statement")
def unit_statement(
    db: DbSession, property_id: Id, unit: Annotated[str, Path(max_length=40)], month: Month
) -> dict[str, Any]:
    """The unit's charging in a local month and what it costs."""
    year, number = (int(part) for part in month.split("-"))
    found = multifamily.statement(db, property_id, unit, year, number)
    out = asdict(found)
    out["lines"] = [
        {**line, "amount": str(money.from_minor(line["amount_minor"], found.currency))} for line in found.lines
    ]
    out["total"] = str(money.from_minor(found.total_minor, found.currency))
    out["vat_included"] = str(money.from_minor(found.vat_minor, found.currency))
    out["energy_kwh"] = round(found.energy_wh / 1000, 3)
    return out


@router.post("/properties/{property_id}/units/{unit}/statement/posting")
def post_unit_statement(
    db: DbSession, request: Request, property_id: Id, unit: Annotated[str, Path(max_length=40)], month: Month
) -> dict[str, Any]:
    """Debit the unit's billing account with its statement of the month. Posting it again changes nothing; a
    corrected statement (a late session) reverses the lines it posted before and posts the new ones."""
    year, number = (int(part) for part in month.split("-"))
    by = f"api:{request.headers.get('x-request-id', '-')}"
    found, posting = multifamily.post_statement(db, property_id, unit, year, number, now=datetime.now(UTC), by=by)
    return {
        "property_id": found.property_id,
        "unit": found.unit,
        "month": found.month,
        "reference": multifamily.statement_reference(found),
        "statement_total": str(money.from_minor(found.total_minor, found.currency)),
        "ledger_total": str(money.from_minor(posting.total_minor, found.currency)),
        "currency": found.currency,
        "changed": bool(posting.posted or posting.reversals),
        "posted_entry_ids": [e.id for e in posting.posted],
        "reversed_entry_ids": [r.reverses_id for r in posting.reversals],
    }


@router.get("/properties/{property_id}/reconciliation")
def reconciliation(db: DbSession, property_id: Id, month: Month) -> dict[str, Any]:
    """Energy billed to units, visitors and staff against the site meter's; the rest is the common area's."""
    year, number = (int(part) for part in month.split("-"))
    return multifamily.reconciliation(db, property_id, year, number)
