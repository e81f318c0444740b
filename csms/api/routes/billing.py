"""Billing: accounts and the tokens they pay for, the ledger (payments, top-ups, reversals), payment fees,
monthly invoices (JSON, PDF, CSV) and payment providers' webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import Field

from csms.api.auth import Caller
from csms.api.deps import DbSession, in_transaction
from csms.api.schemas import Out, Strict, examples
from csms.domain import money
from csms.reports import invoices as documents
from csms.services import billing, payments
from csms.services.errors import Invalid
from csms.store.models import BillingAccount, Invoice, LedgerEntry

router = APIRouter(tags=["billing"])
#: Provider webhooks carry their own signature, not an API key.
public_router = APIRouter(tags=["billing"])

AccountId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern="^[A-Z]{3}$", description="ISO 4217")]


class AccountCreate(Strict):
    model_config = examples(
        {"id": "ACME-FLEET", "kind": "fleet", "name": "ACME Logistics", "billing": "postpaid", "currency": "EUR",
         "email": "ap@acme.example", "payment_method": "bank_transfer", "address": "Dock 4\n1000 AB Amsterdam",
         "vat_id": "NL001234567B01"}
    )  # fmt: skip

    id: str = Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")
    kind: Literal["driver", "fleet", "property"]
    name: str = Field(min_length=1, max_length=200)
    billing: Literal["postpaid", "prepaid"]
    currency: Currency
    email: str | None = Field(None, max_length=254)
    payment_method: Literal["bank_transfer", "card", "direct_debit"] = "bank_transfer"
    address: str | None = Field(None, max_length=500)
    vat_id: str | None = Field(None, max_length=40)


class AccountOut(Out):
    id: str
    kind: str
    name: str
    billing: str
    currency: str
    email: str | None
    payment_method: str
    address: str | None
    vat_id: str | None
    balance: str = Field(description="owed (> 0) or in credit (< 0), in whole units")
    tokens: list[str]


class TokenLink(Strict):
    model_config = examples({"id_token": "04A1B2C3"})
    id_token: str = Field(min_length=1, max_length=36)


class CreditIn(Strict):
    model_config = examples({"kind": "payment", "amount": "42.50", "reference": "bank 2026-12-01 #118"})
    kind: Literal["payment", "top_up"]
    amount: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description="whole units, e.g. 42.50")
    reference: str = Field(min_length=1, max_length=100)
    at: datetime | None = None


class ReversalIn(Strict):
    model_config = examples({"reason": "session charged twice by mistake"})
    reason: str = Field(min_length=1, max_length=200)


class EntryOut(Out):
    id: int
    account_id: str
    at: datetime
    kind: str
    amount: str
    vat: str
    currency: str
    description: str
    reference: str | None
    reverses_id: int | None
    recorded_by: str | None


class FeeIn(Strict):
    model_config = examples({"fixed": "0.25", "percent": "2.9"})
    fixed: str = Field("0", pattern=r"^[0-9]+(\.[0-9]+)?$")
    percent: str = Field("0", pattern=r"^[0-9]+(\.[0-9]+)?$")


class FeeOut(Out):
    method: str
    currency: str
    fixed: str
    percent: str
    disclosed: str


class InvoiceRun(Strict):
    model_config = examples({"month": "2026-11", "tz": "Europe/Amsterdam"})
    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$")
    tz: str = "UTC"


class InvoiceOut(Out):
    number: str
    account_id: str
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    currency: str
    net: str
    vat: str
    gross: str
    lines: list[dict[str, Any]]


def _account_out(db: Any, account: BillingAccount) -> dict[str, Any]:
    owed = billing.balance(db, account.id)
    return {
        **{c: getattr(account, c) for c in ("id", "kind", "name", "billing", "currency", "email", "payment_method")},
        "address": account.address,
        "vat_id": account.vat_id,
        "balance": str(money.from_minor(owed, account.currency)),
        "tokens": billing.tokens_of(db, account.id),
    }


def _entry_out(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "account_id": entry.account_id,
        "at": entry.at,
        "kind": entry.kind,
        "amount": str(money.from_minor(entry.amount_minor, entry.currency)),
        "vat": str(money.from_minor(entry.vat_minor, entry.currency)),
        "currency": entry.currency,
        "description": entry.description,
        "reference": entry.reference,
        "reverses_id": entry.reverses_id,
        "recorded_by": entry.recorded_by,
    }


def _invoice_out(invoice: Invoice) -> dict[str, Any]:
    def amount(minor: int) -> str:
        return str(money.from_minor(minor, invoice.currency))

    return {
        **{c: getattr(invoice, c) for c in ("number", "account_id", "period_start", "period_end", "issued_at")},
        "currency": invoice.currency,
        "net": amount(invoice.net_minor),
        "vat": amount(invoice.vat_minor),
        "gross": amount(invoice.gross_minor),
        "lines": invoice.lines,
    }


def _minor(text: str, currency: str) -> int:
    try:
        return money.to_minor(text, currency)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


# ---- accounts -------------------------------------------------------------------------------------------------
@router.post("/accounts", response_model=AccountOut, status_code=status.HTTP_201_CREATED)
def create_account(db: DbSession, body: AccountCreate, caller: Caller) -> dict[str, Any]:
    fields = body.model_dump()
    account = billing.create_account(db, fields.pop("id"), now=datetime.now(UTC), **fields)
    caller.adopt(account)
    return _account_out(db, account)


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(db: DbSession, caller: Caller) -> list[dict[str, Any]]:
    return [_account_out(db, a) for a in billing.list_accounts(db, caller.scope)]


@router.get("/accounts/{account_id}", response_model=AccountOut)
def get_account(db: DbSession, account_id: AccountId) -> dict[str, Any]:
    return _account_out(db, billing.get_account(db, account_id))


@router.post("/accounts/{account_id}/tokens", response_model=AccountOut)
def link_token(db: DbSession, account_id: AccountId, body: TokenLink) -> dict[str, Any]:
    """The account pays for the token's sessions from now on."""
    billing.link_token(db, account_id, body.id_token)
    return _account_out(db, billing.get_account(db, account_id))


@router.get("/accounts/{account_id}/ledger", response_model=list[EntryOut])
def get_ledger(db: DbSession, account_id: AccountId) -> list[dict[str, Any]]:
    return [_entry_out(e) for e in billing.ledger(db, account_id)]


@router.post("/accounts/{account_id}/credits", response_model=EntryOut, status_code=status.HTTP_201_CREATED)
def record_credit(db: DbSession, request: Request, account_id: AccountId, body: CreditIn) -> dict[str, Any]:
    """A payment received or a prepaid top-up, booked once per reference (recording it again changes nothing)."""
    account = billing.get_account(db, account_id)
    now = datetime.now(UTC)
    entry = billing.record_credit(
        db, account_id, kind=body.kind, amount_minor=_minor(body.amount, account.currency), reference=body.reference,
        at=body.at or now, now=now, by=_who(request),
    )  # fmt: skip
    return _entry_out(entry)


@router.post("/ledger/{entry_id}/reversal", response_model=EntryOut, status_code=status.HTTP_201_CREATED)
def reverse_entry(
    db: DbSession, request: Request, entry_id: Annotated[int, Path(ge=1)], body: ReversalIn
) -> dict[str, Any]:
    """Undo a ledger entry by its negation (entries are never edited)."""
    return _entry_out(billing.reverse(db, entry_id, reason=body.reason, now=datetime.now(UTC), by=_who(request)))


def _who(request: Request) -> str:
    return f"api:{request.headers.get('x-request-id', '-')}"


# ---- fees -----------------------------------------------------------------------------------------------------
@router.put("/payment-fees/{method}/{currency}", response_model=FeeOut)
def set_fee(
    db: DbSession,
    method: Literal["bank_transfer", "card", "direct_debit"],
    currency: Annotated[str, Path(pattern="^[A-Z]{3}$")],
    body: FeeIn,
) -> dict[str, Any]:
    """The processing fee of a payment method, shown on every receipt and invoice of accounts paying by it."""
    fee = billing.set_fee(db, method, currency, fixed_minor=_minor(body.fixed, currency), percent=body.percent)
    return _fee_out(fee)


@router.get("/payment-fees", response_model=list[FeeOut])
def list_fees(db: DbSession) -> list[dict[str, Any]]:
    return [_fee_out(f) for f in billing.fees(db)]


def _fee_out(fee: billing.Fee) -> dict[str, Any]:
    fixed = str(money.from_minor(fee.fixed_minor, fee.currency))
    return {"method": fee.method, "currency": fee.currency, "fixed": fixed, "percent": str(fee.percent),
            "disclosed": fee.disclosed()}  # fmt: skip


# ---- invoices -------------------------------------------------------------------------------------------------
@router.post("/invoices", response_model=list[InvoiceOut], status_code=status.HTTP_201_CREATED)
def issue_invoices(db: DbSession, body: InvoiceRun, caller: Caller) -> list[dict[str, Any]]:
    """Invoice every postpaid account (of the caller's organisation) for a month that has ended (what is not
    invoiced yet)."""
    try:
        tz = ZoneInfo(body.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"tz: unknown time zone {body.tz!r}") from None
    year, month = (int(part) for part in body.month.split("-"))
    issued = billing.issue_invoices(db, year, month, tz=tz, now=datetime.now(UTC), organisation_id=caller.scope)
    return [_invoice_out(i) for i in issued]


@router.get("/invoices", response_model=list[InvoiceOut])
def list_invoices(
    db: DbSession, caller: Caller, account_id: Annotated[str | None, Query()] = None
) -> list[dict[str, Any]]:
    return [_invoice_out(i) for i in billing.list_invoices(db, account_id, caller.scope)]


InvoiceNumber = Annotated[str, Path(pattern=r"^INV-[0-9]{4}-[0-9]{6}$")]


@router.get("/invoices/{number}", response_model=InvoiceOut)
def get_invoice(db: DbSession, number: InvoiceNumber) -> dict[str, Any]:
    return _invoice_out(billing.get_invoice(db, number))


@router.get("/invoices/{number}/document", response_class=Response)
def invoice_document(
    db: DbSession, request: Request, number: InvoiceNumber, format: Literal["pdf", "csv"] = "pdf"
) -> Response:
    """The invoice as a PDF (or CSV) document."""
    invoice = billing.get_invoice(db, number)
    document = _document(invoice, billing.get_account(db, invoice.account_id), request)
    name = {"Content-Disposition": f'attachment; filename="{number}.{format}"'}
    if format == "csv":
        return Response("".join(documents.csv_document(document)), media_type="text/csv", headers=name)
    return Response(documents.pdf_document(document), media_type="application/pdf", headers=name)


def _document(invoice: Invoice, account: BillingAccount, request: Request) -> documents.InvoiceDocument:
    seller = getattr(request.app.state, "seller", None) or documents.Party("chargetwin operator")
    buyer = documents.Party(account.name, account.address or "", account.vat_id or "", account.email or "")
    return documents.InvoiceDocument(
        invoice.number, invoice.issued_at, invoice.period_start, invoice.period_end, invoice.currency,
        invoice.net_minor, invoice.vat_minor, invoice.gross_minor, invoice.lines, seller, buyer,
    )  # fmt: skip


# ---- provider webhooks ----------------------------------------------------------------------------------------
_WEBHOOK_EXAMPLE = {
    "payments": [
        {"account_id": "ACME-FLEET", "kind": "payment", "amount": "42.50", "currency": "EUR", "reference": "stmt-118"}
    ]
}
_WEBHOOK_BODY = {
    "required": True,
    "description": "signed with `X-Chargetwin-Signature: sha256=<hex HMAC-SHA256 of the raw body>`",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["payments"],
                "properties": {
                    "payments": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["account_id", "amount", "currency", "reference"],
                            "properties": {
                                "account_id": {"type": "string"},
                                "kind": {"type": "string", "enum": ["payment", "top_up"]},
                                "amount": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
                                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                "reference": {"type": "string"},
                                "at": {"type": "string", "format": "date-time"},
                            },
                        },
                    }
                },
            },
            "example": _WEBHOOK_EXAMPLE,
        }
    },
}


@public_router.post(
    "/payments/webhooks/{provider}", response_model=list[EntryOut], openapi_extra={"requestBody": _WEBHOOK_BODY}
)
async def payment_webhook(request: Request, provider: str) -> list[dict[str, Any]]:
    """A payment provider's notification, verified by its signature before anything is booked (401 if not)."""
    known: dict[str, payments.PaymentProvider] = request.app.state.payment_providers
    if provider not in known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no payment provider {provider!r}")
    body = await request.body()
    try:
        events = known[provider].verify(body, request.headers)
    except payments.InvalidSignature as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the webhook's signature does not verify") from exc

    def book(db: Any) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [_entry_out(payments.apply(db, e, now=now, by=f"webhook:{provider}")) for e in events]

    return await in_transaction(request, book)
