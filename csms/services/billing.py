"""Billing: accounts, the append-only ledger, payment fees and monthly invoices.

The ledger is written once per fact and never again: a wrong entry is undone by its reversal (the negated
amount, naming what it reverses), so every balance and every invoice can be recomputed from it. Amounts are
integers of the account's currency's minor unit; ``amount_minor`` > 0 is owed by the account, < 0 paid or
credited. A session is charged once (its transaction id is the entry's reference); the processing fee of the
account's payment method follows it as its own entry, so it shows as a line on every receipt and invoice.
A document billed as a whole (a multifamily unit's monthly statement) is posted under its reference: posted
again unchanged it stays as it is; changed, its standing lines are reversed and the new ones posted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from csms.domain import money
from csms.services import organisations, rows
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import AccountToken, BillingAccount, IdToken, Invoice, InvoiceItem, LedgerEntry, PaymentFee

KINDS = ("driver", "fleet", "property")
BILLING = ("postpaid", "prepaid")
METHODS = ("bank_transfer", "card", "direct_debit")
#: Entry kinds an operator may post by hand (charges and fees come from priced sessions).
CREDITS = ("payment", "top_up")
METHOD_NAMES = {"bank_transfer": "bank transfer", "card": "card", "direct_debit": "direct debit"}


# ---- accounts -------------------------------------------------------------------------------------------------
def create_account(  # noqa: PLR0913 - one keyword-only argument per field of the account
    db: Session,
    account_id: str,
    *,
    kind: str,
    name: str,
    billing: str,
    currency: str,
    now: datetime,
    email: str | None = None,
    payment_method: str = "bank_transfer",
    address: str | None = None,
    vat_id: str | None = None,
) -> BillingAccount:
    _one_of("kind", kind, KINDS)
    _one_of("billing", billing, BILLING)
    _one_of("payment_method", payment_method, METHODS)
    _currency(currency)
    if db.get(BillingAccount, account_id) is not None:
        raise Conflict(f"account {account_id!r} exists")
    account = BillingAccount(
        id=account_id,
        kind=kind,
        name=name,
        email=email,
        billing=billing,
        currency=currency,
        payment_method=payment_method,
        address=address,
        vat_id=vat_id,
        created_at=now,
    )
    db.add(account)
    db.flush()
    return account


def get_account(db: Session, account_id: str) -> BillingAccount:
    return rows.found(db, BillingAccount, account_id, "account")


def list_accounts(db: Session, organisation_id: int | None = None) -> list[BillingAccount]:
    """Every account (of one organisation, when given)."""
    query = select(BillingAccount).order_by(BillingAccount.id)
    if organisation_id is not None:
        query = query.where(BillingAccount.organisation_id == organisation_id)
    return list(db.scalars(query))


def link_token(db: Session, account_id: str, id_token: str) -> None:
    """The account pays for ``id_token``'s sessions from now on (a token belongs to one account)."""
    get_account(db, account_id)
    if db.get(IdToken, id_token) is None:
        raise NotFound(f"token {id_token!r} not found")
    link = db.get(AccountToken, id_token)
    if link is not None and link.account_id != account_id:
        raise Conflict(f"token {id_token!r} is paid for by account {link.account_id!r}")
    if link is None:
        db.add(AccountToken(id_token=id_token, account_id=account_id))
        db.flush()


def tokens_of(db: Session, account_id: str) -> list[str]:
    return list(
        db.scalars(
            select(AccountToken.id_token).where(AccountToken.account_id == account_id).order_by(AccountToken.id_token)
        )
    )


def account_of_token(db: Session, id_token: str) -> BillingAccount | None:
    link = db.get(AccountToken, id_token)
    return None if link is None else db.get(BillingAccount, link.account_id)


# ---- fees -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fee:
    method: str
    currency: str
    fixed_minor: int
    percent: Decimal

    def on(self, gross_minor: int) -> int:
        """The fee on a payment of ``gross_minor``, rounded half up to the minor unit."""
        variable = (Decimal(gross_minor) * self.percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return self.fixed_minor + int(variable)

    def disclosed(self) -> str:
        parts = [money.format_amount(self.fixed_minor, self.currency)] if self.fixed_minor else []
        if self.percent:
            parts.append(f"{self.percent.normalize():f} %")
        return f"{METHOD_NAMES[self.method]} processing fee ({' + '.join(parts) or 'none'})"


def set_fee(db: Session, method: str, currency: str, *, fixed_minor: int, percent: str) -> Fee:
    _one_of("method", method, METHODS)
    _currency(currency)
    try:
        rate = Decimal(percent)
    except InvalidOperation:
        raise Invalid(f"percent: not a number: {percent!r}") from None
    if fixed_minor < 0 or not rate.is_finite() or not 0 <= rate <= 100:
        raise Invalid("a fee is a fixed amount ≥ 0 and a percentage between 0 and 100")
    row = db.get(PaymentFee, (method, currency))
    if row is None:
        db.add(PaymentFee(method=method, currency=currency, fixed_minor=fixed_minor, percent=str(rate)))
    else:
        row.fixed_minor, row.percent = fixed_minor, str(rate)
    db.flush()
    return Fee(method, currency, fixed_minor, rate)


def fee(db: Session, method: str, currency: str) -> Fee:
    row = db.get(PaymentFee, (method, currency))
    return (
        Fee(method, currency, 0, Decimal(0))
        if row is None
        else Fee(method, currency, row.fixed_minor, Decimal(row.percent))
    )


def fees(db: Session) -> list[Fee]:
    rows = db.scalars(select(PaymentFee).order_by(PaymentFee.method, PaymentFee.currency))
    return [Fee(r.method, r.currency, r.fixed_minor, Decimal(r.percent)) for r in rows]


# ---- the ledger -----------------------------------------------------------------------------------------------
def charge_session(  # noqa: PLR0913 - one keyword-only argument per fact of the priced session
    db: Session,
    id_token: str | None,
    *,
    transaction_id: str,
    gross_minor: int,
    vat_minor: int,
    currency: str,
    description: str,
    at: datetime,
    now: datetime,
) -> list[LedgerEntry]:
    """Debit the account that pays for ``id_token`` with a priced session, then its payment method's fee.
    Once per session: a second call returns the entries already posted. No account, no entries."""
    account = account_of_token(db, id_token) if id_token else None
    if account is None:
        return []
    reference = f"transaction:{transaction_id}"
    posted = list(
        db.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.reference == reference, LedgerEntry.account_id == account.id)
            .order_by(LedgerEntry.id)
        )
    )
    if posted:
        return posted
    if currency != account.currency:
        raise Invalid(f"the session is priced in {currency}, account {account.id!r} is billed in {account.currency}")
    entries = [_post(db, account, "charge", gross_minor, vat_minor, description, reference, at, now, None)]
    method = fee(db, account.payment_method, currency)
    amount = method.on(gross_minor)
    if amount:
        entries.append(_post(db, account, "fee", amount, 0, method.disclosed(), reference, at, now, None))
    return entries


def record_credit(
    db: Session,
    account_id: str,
    *,
    kind: str,
    amount_minor: int,
    reference: str,
    at: datetime,
    now: datetime,
    by: str | None = None,
) -> LedgerEntry:
    """A payment received (postpaid) or a top-up (prepaid), once per reference."""
    _one_of("kind", kind, CREDITS)
    account = get_account(db, account_id)
    if amount_minor <= 0:
        raise Invalid("amount_minor: a payment or top-up is a positive amount")
    if kind == "top_up" and account.billing != "prepaid":
        raise Invalid(f"account {account_id!r} is postpaid: record a payment, not a top-up")
    existing = db.scalar(
        select(LedgerEntry).where(
            LedgerEntry.account_id == account_id, LedgerEntry.reference == reference, LedgerEntry.kind == kind
        )
    )
    if existing is not None:
        if existing.amount_minor != -amount_minor:
            raise Conflict(f"reference {reference!r} was already recorded with another amount")
        return existing
    text = "payment received" if kind == "payment" else "prepaid top-up"
    return _post(db, account, kind, -amount_minor, 0, f"{text} ({reference})", reference, at, now, by)


def reverse(
    db: Session, entry_id: int, *, reason: str, now: datetime, by: str | None = None, at: datetime | None = None
) -> LedgerEntry:
    """Undo an entry by its negation, dated ``at`` (default now); an entry is reversed at most once and a reversal
    is never reversed."""
    entry = db.get(LedgerEntry, entry_id)
    if entry is None:
        raise NotFound(f"ledger entry {entry_id} not found")
    if entry.kind == "reversal":
        raise Conflict(f"entry {entry_id} is itself a reversal")
    if db.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == entry_id)) is not None:
        raise Conflict(f"entry {entry_id} is already reversed")
    account = get_account(db, entry.account_id)
    text = f"reversal of #{entry_id}: {reason}"
    reversal = _post(
        db, account, "reversal", -entry.amount_minor, -entry.vat_minor, text, entry.reference, at or now, now, by
    )
    reversal.reverses_id = entry_id
    db.flush()
    return reversal


@dataclass(frozen=True, slots=True)
class Posting:
    """What posting a document did: its standing entries, those it posted now and the reversals it made."""

    entries: list[LedgerEntry]
    posted: list[LedgerEntry]
    reversals: list[LedgerEntry]

    @property
    def total_minor(self) -> int:
        return sum(e.amount_minor for e in self.entries)


def post_document(
    db: Session,
    account_id: str,
    *,
    kind: str,
    reference: str,
    lines: Sequence[tuple[str, int, int]],
    at: datetime,
    now: datetime,
    by: str | None = None,
) -> Posting:
    """Debit ``account_id`` with a document's ``lines`` (description, amount_minor, vat_minor), once per
    ``reference``: when the lines standing under it (posted, not reversed) are the same, nothing is posted; when
    they differ (a corrected document), each is reversed and the new lines are posted, all dated ``at`` (the
    document's period, so its invoice nets them out). Lines of 0 are left out."""
    account = get_account(db, account_id)
    wanted = [(text[:300], amount, vat) for text, amount, vat in lines if amount]
    standing = _standing(db, account_id, kind, reference)
    if sorted((e.description, e.amount_minor, e.vat_minor) for e in standing) == sorted(wanted):
        return Posting(standing, [], [])
    why = f"{reference} corrected"
    reversals = [reverse(db, e.id, reason=why, now=now, by=by, at=at) for e in standing]
    posted = [_post(db, account, kind, amount, vat, text, reference, at, now, by) for text, amount, vat in wanted]
    return Posting(posted, posted, reversals)


def _standing(db: Session, account_id: str, kind: str, reference: str) -> list[LedgerEntry]:
    reversed_ids = select(LedgerEntry.reverses_id).where(LedgerEntry.reverses_id.is_not(None))
    return list(
        db.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account_id, LedgerEntry.reference == reference)
            .where(LedgerEntry.kind == kind, LedgerEntry.id.not_in(reversed_ids))
            .order_by(LedgerEntry.id)
        )
    )


def _post(  # noqa: PLR0913 - the fields of one entry
    db: Session,
    account: BillingAccount,
    kind: str,
    amount_minor: int,
    vat_minor: int,
    description: str,
    reference: str | None,
    at: datetime,
    now: datetime,
    by: str | None,
) -> LedgerEntry:
    entry = LedgerEntry(
        account_id=account.id,
        at=at,
        kind=kind,
        amount_minor=amount_minor,
        vat_minor=vat_minor,
        currency=account.currency,
        description=description[:300],
        reference=reference,
        recorded_at=now,
        recorded_by=by,
    )
    db.add(entry)
    db.flush()
    return entry


def ledger(db: Session, account_id: str) -> list[LedgerEntry]:
    get_account(db, account_id)
    return list(
        db.scalars(
            select(LedgerEntry).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.at, LedgerEntry.id)
        )
    )


def balance(db: Session, account_id: str) -> int:
    """What the account owes (> 0) or has in credit (< 0), in minor units."""
    get_account(db, account_id)
    return int(
        db.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(LedgerEntry.account_id == account_id)
        )
        or 0
    )


# ---- invoices -------------------------------------------------------------------------------------------------
def issue_invoices(
    db: Session, year: int, month: int, *, tz: tzinfo, now: datetime, organisation_id: int | None = None
) -> list[Invoice]:
    """One invoice per postpaid account (of one organisation, when given) with ledger entries of the local month
    ``year-month`` (or earlier) not yet invoiced; numbered INV-YEAR-NNNNNN without gaps. Issuing the month again
    invoices only what came since."""
    if not 1 <= month <= 12:
        raise Invalid("month: 1 to 12")
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    if end > now:
        raise Invalid(f"{year}-{month:02d} has not ended yet")
    invoiced = select(InvoiceItem.entry_id)
    issued = []
    accounts = select(BillingAccount).where(BillingAccount.billing == "postpaid").order_by(BillingAccount.id)
    if organisation_id is not None:
        accounts = accounts.where(BillingAccount.organisation_id == organisation_id)
    for account in db.scalars(accounts):
        entries = list(
            db.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.account_id == account.id, LedgerEntry.at < end, LedgerEntry.id.not_in(invoiced))
                .where(LedgerEntry.kind.in_(("charge", "fee", "statement", "reversal", "adjustment")))
                .order_by(LedgerEntry.at, LedgerEntry.id)
            )
        )
        if entries:
            issued.append(_invoice(db, account, entries, start, end, now))
    return issued


def _invoice(
    db: Session, account: BillingAccount, entries: Sequence[LedgerEntry], start: datetime, end: datetime, now: datetime
) -> Invoice:
    year = start.year
    prefix = f"INV-{year}-"
    count = db.scalar(select(func.count()).select_from(Invoice).where(Invoice.number.like(f"{prefix}%"))) or 0
    number = f"{prefix}{count + 1:06d}"
    lines = [_line(e) for e in entries]
    gross = sum(line["gross_minor"] for line in lines)
    vat = sum(line["vat_minor"] for line in lines)
    invoice = Invoice(
        number=number,
        account_id=account.id,
        period_start=start,
        period_end=end,
        issued_at=now,
        currency=account.currency,
        net_minor=gross - vat,
        vat_minor=vat,
        gross_minor=gross,
        lines=lines,
    )
    db.add(invoice)
    db.flush()
    db.add_all(InvoiceItem(entry_id=e.id, invoice_number=number) for e in entries)
    db.flush()
    return invoice


def _line(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.id,
        "date": entry.at.isoformat(),
        "kind": entry.kind,
        "description": entry.description,
        "reference": entry.reference,
        "net_minor": entry.amount_minor - entry.vat_minor,
        "vat_minor": entry.vat_minor,
        "gross_minor": entry.amount_minor,
    }


def get_invoice(db: Session, number: str) -> Invoice:
    return rows.found(db, Invoice, number, "invoice")


def list_invoices(db: Session, account_id: str | None = None, organisation_id: int | None = None) -> list[Invoice]:
    """Every invoice (of one account's, of one organisation's accounts, when given)."""
    stmt = select(Invoice).order_by(Invoice.number)
    if account_id is not None:
        stmt = stmt.where(Invoice.account_id == account_id)
    if organisation_id is not None:
        stmt = stmt.where(Invoice.account_id.in_(organisations.account_ids(organisation_id)))
    return list(db.scalars(stmt))


# ---- checks ---------------------------------------------------------------------------------------------------
def _one_of(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise Invalid(f"{field}: {value!r} is not one of {', '.join(allowed)}")


def _currency(currency: str) -> None:
    try:
        money.minor_units(currency)
    except money.UnknownCurrency as exc:
        raise Invalid(f"currency: {exc}") from None
