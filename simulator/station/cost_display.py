"""What the charger's display shows of prices and costs, as the CSMS sent them:

* the tariff's text for a driver: 2.0.1 ``idTokenInfo.personalMessage`` in an Authorize or TransactionEvent
  answer; 1.6 California Pricing DataTransfer ``SetUserPrice``;
* a session's running cost: 2.0.1 ``totalCost`` in the answer to a TransactionEvent Started/Updated, or a
  ``CostUpdated``; 1.6 DataTransfer ``RunningCost``;
* a session's final cost: 2.0.1 ``totalCost`` in the answer to TransactionEvent Ended; 1.6 DataTransfer
  ``FinalCost``.

It keeps the last of each (per transaction for the costs), so a run can compare what the driver saw with the
CSMS's CDR. A 1.6 charger takes California Pricing messages only when its ``CustomDisplayCostAndPrice`` key is
true (a twin charger's default); otherwise they are ``Rejected``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from csms.ocpp.rpc import Outcome, PendingCall
from csms.ocpp.versions import OCPP16

_RESULT = Outcome.RESULT  # read at every answer: a plain name costs a fifth of an enum member (CPython 3.11)

#: The OCA's California Pricing extension of OCPP 1.6.
COST_VENDOR = "org.openchargealliance.costmsg"
COST_MESSAGES = ("RunningCost", "FinalCost", "SetUserPrice")


class CostHost(Protocol):
    @property
    def version(self) -> str: ...
    def shows_cost_and_price(self) -> bool: ...


@dataclass(slots=True)
class SessionCostShown:
    """The costs one session's display showed last (incl. VAT, the tariff's currency)."""

    running: Decimal | None = None
    final: Decimal | None = None
    #: 1.6 FinalCost's priceText (the receipt line), when one came.
    final_text: str | None = None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class CostDisplay:
    __slots__ = ("host", "price_text", "received", "sessions")

    def __init__(self, host: CostHost) -> None:
        self.host = host
        #: The tariff text shown last (2.0.1 personalMessage content, 1.6 SetUserPrice priceText).
        self.price_text: str | None = None
        #: By transaction id as the CSMS knows it (2.0.1 the charger's transactionId, 1.6 the CSMS's id as text).
        self.sessions: dict[str, SessionCostShown] = {}
        #: How many cost messages (CostUpdated, California Pricing DataTransfers) it took.
        self.received = 0

    def handlers(self) -> dict[str, Any]:
        return {} if self.host.version == OCPP16 else {"CostUpdated": self.cost_updated}

    def session(self, transaction_id: str) -> SessionCostShown:
        return self.sessions.setdefault(transaction_id, SessionCostShown())

    # ---- the CSMS's calls ---------------------------------------------------------------------------------
    def cost_updated(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        cost = _decimal(p["totalCost"])
        if cost is not None:
            self.session(p["transactionId"]).running = cost
            self.received += 1
        return {}

    def data_transfer(self, p: dict[str, Any], now: float) -> dict[str, Any] | None:
        """1.6 California Pricing; None: not one of its messages."""
        if p.get("vendorId") != COST_VENDOR or p.get("messageId") not in COST_MESSAGES:
            return None
        if not self.host.shows_cost_and_price():
            return {"status": "Rejected"}
        try:
            data = json.loads(p.get("data") or "")
            self._california(p["messageId"], data)
        except (ValueError, KeyError, TypeError):
            return {"status": "Rejected"}
        self.received += 1
        return {"status": "Accepted"}

    def _california(self, message_id: str, data: dict[str, Any]) -> None:
        if message_id == "SetUserPrice":
            self.price_text = str(data["priceText"])
            return
        cost = _decimal(data["cost"])
        if cost is None:
            raise ValueError("cost is not a number")
        shown = self.session(str(data["transactionId"]))
        if message_id == "RunningCost":
            shown.running = cost
        else:
            shown.final, shown.final_text = cost, data.get("priceText")

    # ---- answers to our calls -----------------------------------------------------------------------------
    def answered(self, pending: PendingCall) -> None:
        """A CALLRESULT: what it carries for the display (2.0.1 totalCost and personalMessage)."""
        if pending.outcome is not _RESULT or pending.payload is None:
            return
        action, request, answer = pending.call.action, pending.call.payload, pending.payload
        message = (answer.get("idTokenInfo") or {}).get("personalMessage")
        if action in ("Authorize", "TransactionEvent") and message and message.get("content"):
            self.price_text = str(message["content"])
        if action != "TransactionEvent" or "totalCost" not in answer:
            return
        cost = _decimal(answer["totalCost"])
        if cost is None:
            return
        shown = self.session(request["transactionInfo"]["transactionId"])
        if request["eventType"] == "Ended":
            shown.final = cost
        else:
            shown.running = cost
