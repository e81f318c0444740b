"""Connector state: what is physically and logically true of a port, and the status that follows from it.

Theory of operation
-------------------
A :class:`Connector` holds facts (plugged, a transaction running, the EV or the EVSE suspending, faulted,
made unavailable, waiting for a plug after an authorization). Its status is *derived* from those facts by
one function per version, and every change of status is checked against that version's single table of
legal transitions (:data:`V16_TRANSITIONS`, OCPP 1.6 §4.9 table; :data:`V201_TRANSITIONS`, 2.0.1 connector
status; :data:`CHARGING_STATE_TRANSITIONS`, the transaction's chargingState). A change the table lacks is
an :class:`IllegalTransition`; a physical event that cannot happen in the current facts (a second plug-in,
an unplug of an empty socket) is an :class:`IllegalEvent`. Both are :class:`ConnectorError`, our own
mistake or the twin's, never the CSMS's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csms.ocpp.versions import OCPP16, Version

AVAILABLE, PREPARING, CHARGING = "Available", "Preparing", "Charging"
SUSPENDED_EV, SUSPENDED_EVSE, FINISHING = "SuspendedEV", "SuspendedEVSE", "Finishing"
RESERVED, UNAVAILABLE, FAULTED, OCCUPIED = "Reserved", "Unavailable", "Faulted", "Occupied"
EV_CONNECTED, IDLE = "EVConnected", "Idle"

V16_TRANSITIONS: dict[str, frozenset[str]] = {
    AVAILABLE: frozenset({PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, RESERVED, UNAVAILABLE, FAULTED}),
    # Preparing -> Reserved: a reserved connector whose driver left before starting keeps its reservation.
    PREPARING: frozenset({AVAILABLE, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, FAULTED, RESERVED}),
    CHARGING: frozenset({AVAILABLE, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, UNAVAILABLE, FAULTED}),
    SUSPENDED_EV: frozenset({AVAILABLE, CHARGING, SUSPENDED_EVSE, FINISHING, UNAVAILABLE, FAULTED}),
    SUSPENDED_EVSE: frozenset({AVAILABLE, CHARGING, SUSPENDED_EV, FINISHING, UNAVAILABLE, FAULTED}),
    FINISHING: frozenset({AVAILABLE, PREPARING, UNAVAILABLE, FAULTED}),
    RESERVED: frozenset({AVAILABLE, PREPARING, UNAVAILABLE, FAULTED}),
    UNAVAILABLE: frozenset({AVAILABLE, PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FAULTED}),
    FAULTED: frozenset(
        {AVAILABLE, PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, RESERVED, UNAVAILABLE}
    ),
}

V201_TRANSITIONS: dict[str, frozenset[str]] = {
    AVAILABLE: frozenset({OCCUPIED, RESERVED, UNAVAILABLE, FAULTED}),
    OCCUPIED: frozenset({AVAILABLE, UNAVAILABLE, FAULTED, RESERVED}),  # Reserved: as 1.6 Preparing -> Reserved
    RESERVED: frozenset({AVAILABLE, OCCUPIED, UNAVAILABLE, FAULTED}),
    UNAVAILABLE: frozenset({AVAILABLE, OCCUPIED, FAULTED}),
    FAULTED: frozenset({AVAILABLE, OCCUPIED, RESERVED, UNAVAILABLE}),
}

#: 2.0.1 chargingState of a transaction (None: no transaction).
CHARGING_STATE_TRANSITIONS: dict[str | None, frozenset[str | None]] = {
    None: frozenset({EV_CONNECTED, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, IDLE}),
    EV_CONNECTED: frozenset({CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, IDLE, None}),
    CHARGING: frozenset({EV_CONNECTED, SUSPENDED_EV, SUSPENDED_EVSE, IDLE, None}),
    SUSPENDED_EV: frozenset({EV_CONNECTED, CHARGING, SUSPENDED_EVSE, IDLE, None}),
    SUSPENDED_EVSE: frozenset({EV_CONNECTED, CHARGING, SUSPENDED_EV, IDLE, None}),
    IDLE: frozenset({EV_CONNECTED, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, None}),
}


class ConnectorError(Exception):
    """The connector was driven in a way its state machine does not allow."""


class IllegalTransition(ConnectorError):
    def __init__(self, version: Version, old: str | None, new: str | None) -> None:
        super().__init__(f"OCPP {version}: no transition {old} -> {new}")
        self.old, self.new = old, new


class IllegalEvent(ConnectorError):
    def __init__(self, connector_id: int, event: str, why: str) -> None:
        super().__init__(f"connector {connector_id}: can't handle {event} when {why}")


@dataclass(slots=True)
class ConnectorSpec:
    """Electrical facts the firmware needs: A<->W conversion and which measurands exist."""

    voltage_v: float = 230.0
    phases: int = 3
    dc: bool = False
    max_current_a: float = 32.0

    @property
    def max_power_w(self) -> float:
        return self.voltage_v * self.max_current_a * (1 if self.dc else self.phases)


@dataclass(slots=True)
class Connector:
    connector_id: int
    version: Version
    spec: ConnectorSpec = field(default_factory=ConnectorSpec)
    plugged: bool = False
    in_transaction: bool = False
    authorized_waiting: bool = False  # authorized (or remote start) but no transaction yet
    ev_suspended: bool = False
    evse_suspended: bool = False
    finishing: bool = False  # 1.6: a transaction ended and the cable is still in
    faulted: bool = False
    error_code: str = "NoError"
    inoperative: bool = False
    pending_inoperative: bool | None = None  # ChangeAvailability Scheduled: applied when the transaction ends
    reserved: bool = False  # held for a reservation (:mod:`.reservations`)
    status: str = AVAILABLE
    charging_state: str | None = None
    reported_status: str | None = None  # last status the CSMS acknowledged or we sent

    # ---- derivation ------------------------------------------------------------------------------
    def derive(self) -> tuple[str, str | None]:
        if self.version == OCPP16:
            return self._derive_v16(), None
        return self._derive_v201(), self._charging_state()

    def _derive_v16(self) -> str:
        if self.faulted:
            return FAULTED
        if self.in_transaction:
            if self.evse_suspended:
                return SUSPENDED_EVSE
            return SUSPENDED_EV if self.ev_suspended else CHARGING
        if self.inoperative:
            return UNAVAILABLE
        if self.finishing and self.plugged:
            return FINISHING
        if self.plugged or self.authorized_waiting:
            return PREPARING
        return RESERVED if self.reserved else AVAILABLE

    def _derive_v201(self) -> str:
        if self.faulted:
            return FAULTED
        if self.inoperative and not self.in_transaction:
            return UNAVAILABLE
        if self.plugged:
            return OCCUPIED
        return RESERVED if self.reserved else AVAILABLE

    def _charging_state(self) -> str | None:
        if not self.in_transaction:
            return None
        if not self.plugged:
            return IDLE
        if self.evse_suspended or self.faulted:
            return SUSPENDED_EVSE
        return SUSPENDED_EV if self.ev_suspended else CHARGING

    def refresh(self) -> tuple[bool, bool]:
        """Re-derive; returns (status changed, chargingState changed).

        Raises:
            IllegalTransition: the facts moved the connector along a transition its version forbids.
        """
        status, charging_state = self.derive()
        table = V16_TRANSITIONS if self.version == OCPP16 else V201_TRANSITIONS
        status_changed = status != self.status
        if status_changed and status not in table[self.status]:
            raise IllegalTransition(self.version, self.status, status)
        state_changed = charging_state != self.charging_state
        if state_changed and charging_state not in CHARGING_STATE_TRANSITIONS[self.charging_state]:
            raise IllegalTransition(self.version, self.charging_state, charging_state)
        self.status, self.charging_state = status, charging_state
        return status_changed, state_changed

    # ---- physical events -------------------------------------------------------------------------
    def plug(self) -> None:
        if self.plugged:
            raise IllegalEvent(self.connector_id, "plug_in", "a cable is already plugged")
        self.plugged = True

    def unplug(self) -> None:
        if not self.plugged:
            raise IllegalEvent(self.connector_id, "unplug", "nothing is plugged")
        self.plugged = False
        self.finishing = False
        self.ev_suspended = False

    @property
    def can_start(self) -> bool:
        return not (self.faulted or self.inoperative or self.in_transaction)
