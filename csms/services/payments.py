"""Payment providers: how money that arrives outside the CSMS reaches the ledger.

A provider turns what it is told (a webhook, an operator's entry) into :class:`PaymentEvent` s; the ledger
records each once (:func:`apply`). The built-in provider is **manual / bank transfer**: an operator records a
payment (API, CLI), or the bank-statement importer posts it to ``POST /api/v1/payments/webhooks/bank_transfer``
signed with the provider's shared secret. No card is processed here; a card processor is an adapter with the
shape of :class:`CardProcessor` (authorise a pre-authorised amount, capture the final cost, void), whose
webhooks are verified the same way before anything is booked.

**Ad-hoc payment at the charger** (OCPP 2.0.1, docs/billing.md). A charger with
a payment terminal reads the driver's card, gets a card reference from the processor's terminal software (a
payment-method token, never the card number) and sends ``Authorize`` with an ``idToken`` of type ``Local`` it
made up for this one session and the card reference as ``additionalInfo`` of type ``PaymentCard``
(:data:`PAYMENT_CARD`). The CSMS pre-authorises ``CsmsConfig.adhoc_preauth`` in the tariff's currency on that
card through the configured :class:`CardProcessor` and records the hold (:class:`~csms.store.models.PaymentHold`);
the answer is Accepted with the amount in ``personalMessage``, or ``NoCredit`` (insufficient funds) / ``Invalid``
(any other decline). The session's token pays through the currency's ad-hoc account (``adhoc-card-EUR``, payment
method ``card``), so its CDR is debited with the card's processing fee as every other session is
(:func:`csms.services.billing.charge_session`); when the CDR is made, :func:`settle` captures that sum, at most
the hold, and the processor releases the rest. A session whose running cost reaches :attr:`PaymentHold.stop_at_minor`
is stopped by the CSMS (RequestStopTransaction, :mod:`csms.core.plugins.costs`): a 2.0.1 TransactionEventResponse
cannot stop a session, and 2.0.1 has no cost limit to give the charger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.domain import money
from csms.domain.events import PAYMENT_CARD as PAYMENT_CARD_INFO
from csms.domain.events import AuthorizationInfo
from csms.services import authorization, billing, tariffs
from csms.services.errors import Invalid, NotFound
from csms.store.models import IdToken, LedgerEntry, PaymentHold, Transaction

SIGNATURE_HEADER = "x-chargetwin-signature"


class InvalidSignature(Exception):
    """A webhook whose signature does not verify: nothing is booked, the request is refused (401)."""


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    account_id: str
    kind: str  # payment | top_up
    amount_minor: int
    currency: str
    reference: str
    at: datetime | None  # None: when it is booked


class PaymentProvider(Protocol):
    name: str

    def verify(self, body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        """The events of a webhook, after checking its signature (raises :class:`InvalidSignature`)."""
        ...


@dataclass(frozen=True, slots=True)
class Authorisation:
    reference: str
    amount_minor: int
    currency: str


class Declined(Exception):
    """The processor refused the pre-authorisation; ``reason`` is its decline code (``insufficient_funds``,
    ``card_declined``, ``expired_card`` …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CardProcessor(PaymentProvider, Protocol):
    """The shape of a card processor's adapter (ad-hoc payment at the charger): pre-authorise before the
    session, capture its final cost (at most the authorised amount; a partial capture releases the rest, as
    processors do), void a hold that is not used. ``reference`` is the CSMS's own (the session's id token): an
    adapter sends it as the processor's idempotency key, so a call repeated after a crash is harmless.

    Raises (``authorise``): :class:`Declined`."""

    def authorise(self, amount_minor: int, currency: str, reference: str, card: str) -> Authorisation: ...

    def capture(self, authorisation: Authorisation, amount_minor: int) -> None: ...

    def void(self, authorisation: Authorisation) -> None: ...


class BankTransfer:
    """Manual / bank-transfer payments. Webhook body: ``{"payments": [{"account_id", "amount", "currency",
    "reference", "kind"?, "at"?}]}`` with amounts in whole units as strings (``"12.50"``); header
    ``X-Chargetwin-Signature: sha256=<hex HMAC-SHA256 of the body with the provider's secret>``."""

    name = "bank_transfer"

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None

    def sign(self, body: bytes) -> str:
        assert self._secret is not None
        return "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def verify(self, body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        if self._secret is None:
            raise InvalidSignature("no secret is configured for bank_transfer webhooks")
        given = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.sign(body).encode()):
            raise InvalidSignature("signature mismatch")
        try:
            items = json.loads(body)["payments"]
            return [_event(item) for item in items]
        except KeyError as exc:
            raise Invalid(f"payments: missing field {exc}") from None
        except (ValueError, TypeError) as exc:
            raise Invalid(f"payments: {exc}") from None


@dataclass(slots=True)
class SandboxHold:
    card: str
    currency: str
    amount_minor: int
    captured_minor: int | None = None
    voided: bool = False


class SandboxCardProcessor:
    """The built-in card processor: a sandbox, as processors' test modes are (no money moves). Card references
    decide the outcome the way test cards do: one starting ``card_nofunds`` is declined ``insufficient_funds``,
    ``card_declined`` ``card_declined``, any other is approved. It keeps its own books (:attr:`holds`, what a
    real processor's dashboard would show), so a test or the twin can check what was captured against the CDR.
    Its webhooks are signed as the bank-transfer ones are; a sandbox confirms every call at once, so they carry
    no payment to book."""

    name = "sandbox_card"

    def __init__(self, secret: str | None = None) -> None:
        self._signature = BankTransfer(secret)
        self.holds: dict[str, SandboxHold] = {}
        self._references: dict[str, str] = {}

    def authorise(self, amount_minor: int, currency: str, reference: str, card: str) -> Authorisation:
        known = self._references.get(reference)
        if known is not None:  # the same request again (idempotency key)
            return Authorisation(known, self.holds[known].amount_minor, currency)
        for prefix, reason in (("card_nofunds", "insufficient_funds"), ("card_declined", "card_declined")):
            if card.startswith(prefix):
                raise Declined(reason)
        if amount_minor <= 0:
            raise Declined("invalid_amount")
        key = f"sbx_auth_{len(self.holds) + 1:06d}"
        self.holds[key] = SandboxHold(card, currency, amount_minor)
        self._references[reference] = key
        return Authorisation(key, amount_minor, currency)

    def capture(self, authorisation: Authorisation, amount_minor: int) -> None:
        hold = self.holds[authorisation.reference]
        if hold.voided or not 0 <= amount_minor <= hold.amount_minor:
            raise Invalid(f"capture of {amount_minor} on {authorisation.reference}: not within its hold")
        if hold.captured_minor is not None and hold.captured_minor != amount_minor:
            raise Invalid(f"{authorisation.reference} was captured already ({hold.captured_minor})")
        hold.captured_minor = amount_minor

    def void(self, authorisation: Authorisation) -> None:
        hold = self.holds[authorisation.reference]
        if hold.captured_minor is None:
            hold.voided = True

    def verify(self, body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        given = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER, "")
        if self._signature._secret is None or not hmac.compare_digest(
            given.encode(), self._signature.sign(body).encode()
        ):
            raise InvalidSignature("signature mismatch")
        return []


def _event(item: Mapping[str, Any]) -> PaymentEvent:
    currency = str(item["currency"])
    at = datetime.fromisoformat(str(item["at"]).replace("Z", "+00:00")) if item.get("at") else None
    return PaymentEvent(
        account_id=str(item["account_id"]),
        kind=str(item.get("kind", "payment")),
        amount_minor=money.to_minor(str(item["amount"]), currency),
        currency=currency,
        reference=str(item["reference"]),
        at=at if at is None or at.tzinfo else at.replace(tzinfo=UTC),
    )


def apply(db: Session, event: PaymentEvent, *, now: datetime, by: str) -> LedgerEntry:
    """Book a payment event once (its reference makes a repeated webhook harmless)."""
    account = billing.get_account(db, event.account_id)
    if event.currency != account.currency:
        raise Invalid(f"currency: account {account.id!r} is billed in {account.currency}, not {event.currency}")
    return billing.record_credit(
        db, event.account_id, kind=event.kind, amount_minor=event.amount_minor, reference=event.reference,
        at=event.at or now, now=now, by=by,
    )  # fmt: skip


def payment_providers(
    bank_transfer_secret: str | None, card_processor: CardProcessor | None = None
) -> dict[str, PaymentProvider]:
    """The providers a server runs with, by the name in their webhook URL."""
    providers: dict[str, PaymentProvider] = {"bank_transfer": BankTransfer(bank_transfer_secret)}
    if card_processor is not None:
        providers[card_processor.name] = card_processor
    return providers


# ---- ad-hoc payment at the charger -----------------------------------------------------------------------------
PAYMENT_CARD = PAYMENT_CARD_INFO
#: Share of the hold kept free for what is delivered between the stop threshold and the session's actual end.
STOP_HEADROOM = Decimal("0.05")
#: The processor's decline codes answered NoCredit; any other decline is Invalid.
NO_CREDIT = frozenset({"insufficient_funds"})


def adhoc_account_id(currency: str) -> str:
    return f"adhoc-card-{currency}"


def _adhoc_account(db: Session, currency: str, now: datetime) -> str:
    account_id = adhoc_account_id(currency)
    try:
        billing.get_account(db, account_id)
    except NotFound:
        billing.create_account(
            db, account_id, kind="driver", name=f"Ad-hoc card payments at chargers ({currency})", billing="prepaid",
            currency=currency, now=now, payment_method="card",
        )  # fmt: skip
    return account_id


def stop_at_minor(db: Session, hold_minor: int, currency: str) -> int:
    """The running cost (incl. VAT) at which a session is stopped: it and the card's fee on it stay inside the
    hold less :data:`STOP_HEADROOM`."""
    fee = billing.fee(db, "card", currency)
    room = Decimal(hold_minor) * (1 - STOP_HEADROOM) - fee.fixed_minor
    return max(0, int((room / (1 + fee.percent / 100)).to_integral_value(ROUND_FLOOR)))


def hold_of(db: Session, id_token: str | None) -> PaymentHold | None:
    return None if not id_token else db.scalar(select(PaymentHold).where(PaymentHold.id_token == id_token))


def _answer(hold: PaymentHold) -> AuthorizationInfo:
    if hold.status == "declined":
        return AuthorizationInfo("NoCredit" if hold.decline_reason in NO_CREDIT else "Invalid")
    if hold.status != "held":
        return AuthorizationInfo("Invalid")  # the session it paid for is over: a card pays for one session
    amount = money.format_amount(hold.amount_minor, hold.currency)
    return AuthorizationInfo("Accepted", price_text=f"{amount} pre-authorised on your card.")


@dataclass(frozen=True, slots=True)
class AdHoc:
    """How ad-hoc payments are taken (``CsmsConfig``'s card_processor, adhoc_preauth, adhoc_group_id)."""

    processor: CardProcessor | None
    preauth: Decimal
    group_id: str | None


def preauthorise(
    db: Session, id_token: str, card: str, station_id: str, now: datetime, config: AdHoc
) -> AuthorizationInfo:
    """The answer to a payment terminal's Authorize: the hold made now (or the one made at a repeated Authorize).
    Where nothing is priced, the session is free: Accepted without a hold."""
    hold = hold_of(db, id_token)
    if hold is not None:
        return _answer(hold)
    processor = config.processor
    if processor is None:
        return AuthorizationInfo("Invalid")  # no processor: no card is accepted
    tariff = tariffs.resolve(db, station_id, 1, config.group_id)
    if tariff is None:
        return AuthorizationInfo("Accepted", group_id=config.group_id)
    currency = tariff.currency
    amount = money.to_minor(config.preauth, currency)
    hold = PaymentHold(
        id_token=id_token, station_id=station_id, processor=processor.name, card_reference=card[:36],
        authorisation="", currency=currency, amount_minor=amount, stop_at_minor=stop_at_minor(db, amount, currency),
        status="held", created_at=now, captured_minor=0, over_minor=0,
    )  # fmt: skip
    try:
        hold.authorisation = processor.authorise(amount, currency, id_token, card).reference
    except Declined as exc:
        hold.status, hold.decline_reason = "declined", exc.reason[:100]
    db.add(hold)
    db.flush()
    if hold.status == "held":
        authorization.create(db, id_token, now, token_type="Local", group_id=config.group_id, upsert=True)
        billing.link_token(db, _adhoc_account(db, currency, now), id_token)
    return _answer(hold)


def cost_limit(db: Session, id_token: str | None) -> Decimal | None:
    """A held session's stop threshold in whole units, or None (not an ad-hoc session, or settled)."""
    hold = hold_of(db, id_token)
    if hold is None or hold.status != "held":
        return None
    return money.from_minor(hold.stop_at_minor, hold.currency)


def settle(db: Session, tx: Transaction, now: datetime, processor: CardProcessor | None) -> str | None:
    """Capture what the session's ledger entries on the ad-hoc account come to (its CDR incl. VAT and the card's
    fee), at most the hold, and book the payment; the processor releases the rest. A session that cost nothing
    voids its hold. Once per hold: called again (a CDR rebuilt), it only says why a person must look.

    Returns: the reason the CDR needs a review, or None."""
    hold = hold_of(db, tx.id_token)
    if hold is None or hold.status == "declined":
        return None
    account_id = adhoc_account_id(hold.currency)
    reference = f"transaction:{tx.id}"
    owed = int(
        sum(
            e.amount_minor
            for e in db.scalars(
                select(LedgerEntry).where(LedgerEntry.account_id == account_id, LedgerEntry.reference == reference)
            )
        )
    )
    if hold.status != "held":
        settled = hold.captured_minor + hold.over_minor
        if settled != owed:
            taken = money.format_amount(hold.captured_minor, hold.currency)
            return f"the card was captured {taken} before this CDR changed"
        return None
    if processor is None or processor.name != hold.processor:
        return f"hold {hold.id} not captured: its processor {hold.processor} is not configured"
    authorised = Authorisation(hold.authorisation, hold.amount_minor, hold.currency)
    captured = max(0, min(owed, hold.amount_minor))
    if captured:
        processor.capture(authorised, captured)
        billing.record_credit(
            db, account_id, kind="payment", amount_minor=captured, reference=f"card:{hold.authorisation}",
            at=tx.stopped_at or now, now=now,
        )  # fmt: skip
    else:
        processor.void(authorised)
    hold.status = "captured" if captured else "released"
    hold.captured_minor, hold.over_minor = captured, max(0, owed - hold.amount_minor)
    hold.transaction_id, hold.settled_at = tx.id, now
    token = db.get(IdToken, hold.id_token)
    if token is not None:  # the card paid for this one session
        token.status, token.updated_at = "Invalid", now
    db.flush()
    if hold.over_minor:
        over = money.format_amount(hold.over_minor, hold.currency)
        return f"the session cost {over} more than the card's hold: not captured"
    return None


@dataclass(frozen=True, slots=True)
class HoldRow:
    """A hold with the transaction its token started: station, the charger's id (None: none started), whether it
    ended and why."""

    hold: PaymentHold
    station_id: str | None
    charger_tx_id: str | None
    ended: bool
    stop_reason: str | None


def listed_holds(db: Session) -> list[HoldRow]:
    """Every hold, oldest first, with the transaction its token started."""
    rows = db.execute(
        select(
            PaymentHold,
            Transaction.station_id,
            Transaction.charger_tx_id,
            Transaction.stopped_at,
            Transaction.stop_reason,
        )
        .outerjoin(Transaction, Transaction.id_token == PaymentHold.id_token)
        .order_by(PaymentHold.id)
    ).all()
    return [
        HoldRow(hold, station_id, key, stopped is not None, reason) for hold, station_id, key, stopped, reason in rows
    ]


def release_unused(db: Session, processor: CardProcessor | None, before: datetime, now: datetime) -> int:
    """Void the holds made before ``before`` whose session token started no transaction (the driver paid and
    never charged); their tokens pay for nothing more. Returns how many were released."""
    if processor is None:
        return 0
    started = select(Transaction.id).where(Transaction.id_token == PaymentHold.id_token).exists()
    unused = db.scalars(
        select(PaymentHold).where(
            PaymentHold.status == "held",
            PaymentHold.created_at < before,
            PaymentHold.processor == processor.name,
            ~started,
        )
    ).all()
    for hold in unused:
        processor.void(Authorisation(hold.authorisation, hold.amount_minor, hold.currency))
        hold.status, hold.settled_at = "released", now
        token = db.get(IdToken, hold.id_token)
        if token is not None:
            token.status, token.updated_at = "Invalid", now
    db.flush()
    return len(unused)
