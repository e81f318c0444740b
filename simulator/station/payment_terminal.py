"""A payment terminal built into a 2.0.1 charger: a guest pays by card instead of an RFID token.

The terminal reads the card and gets the card's reference from the processor's terminal software (a
payment-method token, never the card number); the charger makes up an id token of type ``Local`` for this one
session and sends both in ``Authorize``: the card's reference as ``additionalInfo`` of type ``PaymentCard``
(docs/billing.md, "Ad-hoc payment at the charger"). The CSMS pre-authorises an amount on the card and answers;
the rest of the session is an ordinary one of that token.
"""

from __future__ import annotations

from typing import Any

from simulator.station.draws import Draws

#: The additionalInfo type of the card's reference (the CSMS's ``csms.domain.events.PAYMENT_CARD``).
PAYMENT_CARD = "PaymentCard"


class PaymentTerminal:
    def __init__(self, rng: Draws) -> None:
        self._rng = rng
        #: session token -> the card's reference, for every card presented here
        self._cards: dict[str, str] = {}

    def present_card(self, card: str) -> str:
        """A driver presents a card: the session's id token (``PT-`` and 12 hex digits, drawn from the
        charger's seeded generator, so unique across reboots and stations and the same in every run)."""
        token = f"PT-{self._rng.getrandbits(48):012x}"
        self._cards[token] = card
        return token

    def card_of(self, token: str) -> str | None:
        return self._cards.get(token)

    def additional_info(self, token: str) -> list[dict[str, Any]]:
        """The idToken's ``additionalInfo`` for an Authorize of ``token`` (empty: not a card's session)."""
        card = self._cards.get(token)
        return [] if card is None else [{"additionalIdToken": card[:36], "type": PAYMENT_CARD}]
