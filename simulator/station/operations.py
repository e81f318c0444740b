"""The operator's commands on the charger: reset, availability and unlock.

* A reset answers Accepted, stops the transactions once the answer is out, and arms the reboot
  ``reset_delay_s`` later (the charger goes down then and reconnects after its ``reboot_s``); Soft and Hard
  differ only in the stop reason. 2.0.1 OnIdle with transactions running answers Scheduled and reboots
  when the last one ends.
* An availability change on a busy connector (a transaction runs, or 1.6 Preparing, which has no direct
  transition to Unavailable) answers Scheduled and is applied when the connector is free
  (:meth:`Operations.apply_scheduled_availability`); connector 0 / the station also flips the station's
  own availability.
* Unlock stops a running transaction in 1.6 (UnlockCommand); 2.0.1 refuses it
  (OngoingAuthorizedTransaction).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Protocol

from csms.ocpp.versions import OCPP16, Version
from simulator.station.connector import PREPARING, Connector
from simulator.station.timers import Deadlines, Timer
from simulator.station.transactions import Transaction

#: Reset type (1.6 Hard/Soft, 2.0.1 Immediate/OnIdle) -> the reason the transactions stop with.
RESET_STOP_REASON = {"Hard": "HardReset", "Soft": "SoftReset", "Immediate": "HardReset", "OnIdle": "HardReset"}


class OperationsHost(Protocol):
    """What the operations need from the charger."""

    @property
    def transactions(self) -> Mapping[int, Transaction]: ...

    def stop_transaction(self, tx: Transaction, reason: str, now: float, *, unplugging: bool = False) -> None: ...
    def after_reply(self, action: Callable[[float], None]) -> None: ...
    def refresh(self, c: Connector, now: float, *, quiet_charging_state: bool = False) -> None: ...


class Operations:
    __slots__ = ("_reset_when_idle", "connectors", "host", "reset_delay_s", "station_inoperative", "timers", "version")

    def __init__(
        self,
        host: OperationsHost,
        *,
        version: Version,
        connectors: Mapping[int, Connector],
        timers: Deadlines,
        reset_delay_s: float,
    ) -> None:
        self.host, self.version, self.connectors, self.timers = host, version, connectors, timers
        self.reset_delay_s = reset_delay_s
        self.station_inoperative = False
        self._reset_when_idle = False

    # ==== reset ============================================================================================
    def reset(self, kind: str, now: float) -> str:
        """Reset: ``kind`` Hard/Soft (1.6) or Immediate/OnIdle (2.0.1). Returns Accepted or Scheduled."""
        if kind == "OnIdle" and self.host.transactions:
            self._reset_when_idle = True
            return "Scheduled"
        reason = RESET_STOP_REASON[kind]

        def stop_all(when: float) -> None:
            for tx in list(self.host.transactions.values()):
                self.host.stop_transaction(tx, reason, when)
            self.timers.arm(Timer.REBOOT, when + self.reset_delay_s)

        self.host.after_reply(stop_all)
        return "Accepted"

    def reset_if_idle(self, now: float) -> None:
        """A scheduled (OnIdle) reset goes ahead once no transaction runs."""
        if self._reset_when_idle and not self.host.transactions:
            self._reset_when_idle = False
            self.timers.arm(Timer.REBOOT, now + self.reset_delay_s)

    # ==== availability =====================================================================================
    def change_availability(self, connector_ids: list[int], operative: bool, now: float) -> str:
        """Accepted (applied now), Scheduled (after running transactions), Rejected (unknown connector)."""
        if any(cid not in self.connectors and cid != 0 for cid in connector_ids):
            return "Rejected"
        targets = list(self.connectors) if 0 in connector_ids else connector_ids
        if 0 in connector_ids:
            self.station_inoperative = not operative
        scheduled = False
        for cid in targets:
            c = self.connectors[cid]
            if self.busy(c) and c.inoperative != (not operative):
                c.pending_inoperative = not operative
                scheduled = True
            else:
                c.inoperative, c.pending_inoperative = not operative, None
                self.host.after_reply(functools.partial(self._refresh, c))
        return "Scheduled" if scheduled else "Accepted"

    def _refresh(self, c: Connector, now: float) -> None:
        self.host.refresh(c, now)

    def busy(self, c: Connector) -> bool:
        """Availability changes wait: a transaction runs, or (1.6) Preparing cannot go Unavailable directly."""
        return c.in_transaction or (self.version == OCPP16 and c.derive()[0] == PREPARING)

    def apply_scheduled_availability(self, c: Connector) -> bool:
        """Apply a Scheduled availability change once ``c`` is free; True when its status changed.

        A second step of its own: 1.6 has e.g. Preparing -> Available -> Unavailable but no
        Preparing -> Unavailable.
        """
        if c.pending_inoperative is None or self.busy(c):
            return False
        c.inoperative, c.pending_inoperative = c.pending_inoperative, None
        return c.refresh()[0]

    # ==== unlock ===========================================================================================
    def unlock(self, connector_id: int, now: float) -> str:
        """Unlock: Unlocked (stopping a running transaction, 1.6), OngoingAuthorizedTransaction (2.0.1)."""
        if connector_id not in self.connectors:
            return "UnknownConnector"
        tx = self.host.transactions.get(connector_id)
        if tx is not None:
            if self.version != OCPP16:
                return "OngoingAuthorizedTransaction"
            self.host.after_reply(lambda when: self.host.stop_transaction(tx, "UnlockCommand", when))
        return "Unlocked"
