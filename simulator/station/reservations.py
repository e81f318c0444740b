"""Reservations on the charger: ReserveNow holds a connector for one token (or its group) until an expiry.

Theory of operation
-------------------
A reservation always holds one connector: one named by the CSMS, or — for "any" (1.6 connector 0, 2.0.1
without evseId) — the first free one of the wanted type, so a station with as many reservations as free
connectors shows them all Reserved. The answer follows the connector's state (:func:`refusal`):
Faulted, Unavailable, Occupied (a cable, a transaction, an authorized driver, another reservation), else
Accepted; Rejected for an unknown connector or when reservations are off. A ReserveNow with the id of a
reservation we hold replaces it (1.6 §5.13, 2.0.1 H01.FR.02).

A held connector's ``reserved`` fact makes it report Reserved; it refuses every token but the reserving one
and those of its group (:meth:`Reservations.lets`). The reservation ends when a transaction starts on it
with such a token (the start message carries its id), at its expiry (2.0.1 then sends
ReservationStatusUpdate Expired), when the CSMS cancels it, or when the connector faults or becomes
unavailable (2.0.1: ReservationStatusUpdate Removed). Expiries are charger deadlines (``Timer.RESERVATION``
per connector): no clock is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.station.connector import Connector

ACCEPTED, FAULTED, OCCUPIED, REJECTED, UNAVAILABLE = "Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: int
    connector_id: int
    id_token: str
    group_id: str | None
    expires_at: float


def connector_type(c: Connector) -> str:
    """The 2.0.1 ConnectorEnumType of the twin's connector: CCS2 for DC, a type 2 socket for AC."""
    return "cCCS2" if c.spec.dc else "cType2"


def refusal(c: Connector) -> str | None:
    """Why ``c`` cannot be reserved now (the ReserveNow status), None when it can."""
    if c.faulted:
        return FAULTED
    if c.inoperative:
        return UNAVAILABLE
    if c.plugged or c.in_transaction or c.authorized_waiting or c.reserved:
        return OCCUPIED
    return None


class Reservations:
    """The reservations the charger holds, by id and by connector."""

    __slots__ = ("by_id", "connectors")

    def __init__(self, connectors: Mapping[int, Connector]) -> None:
        self.connectors = connectors
        self.by_id: dict[int, Reservation] = {}

    def on_id(self, reservation_id: int) -> Reservation | None:
        return self.by_id.get(reservation_id)

    def on(self, connector_id: int) -> Reservation | None:
        return next((r for r in self.by_id.values() if r.connector_id == connector_id), None)

    def reserve(
        self,
        reservation_id: int,
        connector_id: int | None,
        id_token: str,
        group_id: str | None,
        expires_at: float,
        wanted_type: str | None = None,
    ) -> tuple[str, Reservation | None]:
        """The ReserveNow status, and the reservation held when Accepted (None otherwise). An earlier
        reservation with the same id is dropped first (call :meth:`release` on what it held)."""
        previous = self.by_id.pop(reservation_id, None)
        if previous is not None:
            self.connectors[previous.connector_id].reserved = False
        chosen, status = self._choose(connector_id, wanted_type)
        if chosen is None:
            return status, None
        reservation = Reservation(reservation_id, chosen.connector_id, id_token, group_id, expires_at)
        self.by_id[reservation_id] = reservation
        chosen.reserved = True
        return ACCEPTED, reservation

    def _choose(self, connector_id: int | None, wanted_type: str | None) -> tuple[Connector | None, str]:
        if connector_id is not None:
            c = self.connectors.get(connector_id)
            if c is None or (wanted_type is not None and connector_type(c) != wanted_type):
                return None, REJECTED
            why = refusal(c)
            return (c, ACCEPTED) if why is None else (None, why)
        candidates = [c for c in self.connectors.values() if wanted_type in (None, connector_type(c))]
        if not candidates:
            return None, REJECTED
        free = [c for c in candidates if refusal(c) is None]
        if free:
            return free[0], ACCEPTED
        reasons = {refusal(c) for c in candidates}
        return None, reasons.pop() if len(reasons) == 1 else OCCUPIED  # type: ignore[return-value]

    def end(self, reservation_id: int) -> Reservation | None:
        """Drop a reservation (cancelled, expired, removed, used); None when we hold no such one."""
        reservation = self.by_id.pop(reservation_id, None)
        if reservation is not None:
            self.connectors[reservation.connector_id].reserved = False
        return reservation

    def lets(self, connector_id: int, token: str, group_id: str | None) -> bool:
        """May ``token`` (of group ``group_id``) use the connector? Yes when it is not reserved, or reserved
        for that token or group."""
        held = self.on(connector_id)
        if held is None:
            return True
        return token == held.id_token or (held.group_id is not None and group_id == held.group_id)

    def due(self, connector_id: int, now: float) -> Reservation | None:
        """The connector's reservation when its expiry has come."""
        held = self.on(connector_id)
        return held if held is not None and held.expires_at <= now else None
