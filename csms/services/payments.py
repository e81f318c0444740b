"""Payment providers: how money that arrives outside the CSMS reaches the ledger.

A provider turns what it is told (a webhook, an operator's entry) into :class:`PaymentEvent` s; the ledger
records each once (:func:`apply`). The built-in provider is **manual / bank transfer**: an operator records a
payment (API, CLI), or the bank-statement importer posts it to ``POST /api/v1/payments/webhooks/bank_transfer``
signed with the provider's shared secret. No card is processed here; a card processor is an adapter with the
shape of :class:`CardProcessor` (authorise a pre-authorised amount, capture the final cost, void), whose
webhooks are verified the same way before anything is booked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from csms.domain import money
from csms.services import billing
from csms.services.errors import Invalid
from csms.store.models import LedgerEntry

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


class CardProcessor(PaymentProvider, Protocol):
    """The shape of a card processor's adapter (ad-hoc payment at the charger): pre-authorise before the
    session, capture its final cost (at most the authorised amount), void what is not used."""

    def authorise(self, amount_minor: int, currency: str, reference: str) -> Authorisation: ...

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


def payment_providers(bank_transfer_secret: str | None) -> dict[str, PaymentProvider]:
    """The providers a server runs with, by the name in their webhook URL."""
    return {"bank_transfer": BankTransfer(bank_transfer_secret)}
