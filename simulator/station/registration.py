"""Registration and heartbeat: the charger's BootNotification cycle as one table.

Theory of operation
-------------------
A station that is not Accepted sends a BootNotification as soon as its link is up. The answer (or its
absence: a CALLERROR or a timeout) moves :class:`Registration` along :data:`TRANSITIONS`, which also says
when the next BootNotification is due (:class:`Retry`). Accepted starts the heartbeats and the
StatusNotifications of every connector; a reboot (a reset or a power loss) forgets the registration.
Every state takes every answer (1.6 may be triggered to boot again while Accepted), so the only illegal
event is an answer the table does not know: :class:`IllegalRegistrationEvent`.

Until it is Pending or Accepted, the station answers the CSMS's calls with a SecurityError (1.6 §4.2,
2.0.1 B02/B03): :data:`SERVES_CALLS`.

Heartbeats follow the firmware's :data:`HEARTBEAT_MODES`. ``inactivity`` is the spec's definition (1.6
HeartbeatInterval, 2.0.1 OCPPCommCtrlr.HeartbeatInterval: "interval of inactivity (no OCPP exchanges) with
the central system after which the Charge Point should send a Heartbeat"): the interval restarts at every
exchange in either direction, a CSMS-initiated call included ("no OCPP exchanges" does not ask who began
it). An exchange is dated by the frame the charger sends in it, its own CALL or its answer to the CSMS's
(the charger tells :meth:`Registrar.exchanged` as frames leave), so an idle charger heartbeats at exactly
the interval and one that talks at least that often sends none. The deadline moves at every such frame (a
heap push); re-arming it lazily when it fell due instead woke a charging charger once per interval at an
instant of its own (the CSMS's calls are answered at any time), which cost the twin more than the pushes.
``periodic`` is what many chargers do instead: a Heartbeat every interval whatever else was said.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from csms.ocpp.rpc import Outcome, PendingCall
from simulator.station.config import Configuration
from simulator.station.connector import Connector
from simulator.station.timers import Deadlines, Timer


class Registration(Enum):
    UNREGISTERED = "Unregistered"  # never booted, or rebooted: a BootNotification is due
    PENDING = "Pending"
    REJECTED = "Rejected"
    ACCEPTED = "Accepted"


class RegistrationEvent(Enum):
    ACCEPTED = "Accepted"  # BootNotification answered Accepted
    PENDING = "Pending"
    REJECTED = "Rejected"
    FAILED = "Failed"  # no answer: a CALLERROR or a timeout
    REBOOTED = "Rebooted"  # a reset or a power loss took the station down


#: How the firmware times its heartbeats (see the module's docstring); ``inactivity`` is the spec's.
INACTIVITY, PERIODIC = "inactivity", "periodic"
HEARTBEAT_MODES = (INACTIVITY, PERIODIC)


class Retry(Enum):
    """When the next BootNotification goes out."""

    NONE = "none"
    INTERVAL = "interval"  # after the answer's interval (the default retry when it is 0)
    DEFAULT = "default"  # after the charger's boot_retry_s


_ANSWERS: dict[RegistrationEvent, tuple[Registration, Retry]] = {
    RegistrationEvent.ACCEPTED: (Registration.ACCEPTED, Retry.NONE),
    RegistrationEvent.PENDING: (Registration.PENDING, Retry.INTERVAL),
    RegistrationEvent.REJECTED: (Registration.REJECTED, Retry.INTERVAL),
    RegistrationEvent.REBOOTED: (Registration.UNREGISTERED, Retry.NONE),
}

#: state × event → (next state, when the next BootNotification is due). A failed boot keeps the state.
TRANSITIONS: dict[Registration, dict[RegistrationEvent, tuple[Registration, Retry]]] = {
    state: {**_ANSWERS, RegistrationEvent.FAILED: (state, Retry.DEFAULT)} for state in Registration
}

#: The states in which the station answers the CSMS's calls (the others answer SecurityError).
SERVES_CALLS = frozenset({Registration.PENDING, Registration.ACCEPTED})


class IllegalRegistrationEvent(Exception):
    """An event :data:`TRANSITIONS` has no move for (a boot status no version defines)."""

    def __init__(self, state: Registration, event: object) -> None:
        super().__init__(f"registration: can't handle {event!r} when {state.value}")
        self.state, self.event = state, event


def transition(state: Registration, event: RegistrationEvent) -> tuple[Registration, Retry]:
    """The move :data:`TRANSITIONS` allows.

    Raises:
        IllegalRegistrationEvent: the table has no such move.
    """
    move = TRANSITIONS[state].get(event)
    if move is None:
        raise IllegalRegistrationEvent(state, event)
    return move


#: The boot statuses a CSMS may answer, as events.
BOOT_ANSWERS = {e.value: e for e in (RegistrationEvent.ACCEPTED, RegistrationEvent.PENDING, RegistrationEvent.REJECTED)}


def answered(state: Registration, status: str) -> tuple[Registration, Retry]:
    """The move for a BootNotification answered with ``status``.

    Raises:
        IllegalRegistrationEvent: no version defines that status.
    """
    event = BOOT_ANSWERS.get(status)
    if event is None:
        raise IllegalRegistrationEvent(state, status)
    return transition(state, event)


@dataclass(frozen=True, slots=True)
class StationIdentity:
    vendor: str = "chargetwin"
    model: str = "twin-ac22"
    serial_number: str | None = None
    firmware_version: str = "1.0.0"


class BootMessages(Protocol):
    """What registration needs from the version module."""

    def boot_payload(self, reason: str) -> dict[str, Any]: ...
    def all_status_payloads(self, now: float) -> list[dict[str, Any]]: ...


class RegistrationHost(Protocol):
    """What registration needs from the charger."""

    @property
    def link_up(self) -> bool: ...

    def send(
        self,
        action: str,
        payload: dict[str, Any],
        now: float,
        on_done: Callable[[PendingCall, float], None] | None = None,
    ) -> bool: ...

    def pump(self, now: float) -> None: ...


class Registrar:
    """Boot, its retries, and the heartbeats of one charger."""

    __slots__ = (
        "_beat_from",
        "_boot_in_flight",
        "boot_reason",
        "boot_retry_s",
        "config",
        "connectors",
        "heartbeat_delay",
        "host",
        "inactivity",
        "messages",
        "state",
        "timers",
    )

    def __init__(
        self,
        host: RegistrationHost,
        *,
        messages: BootMessages,
        config: Configuration,
        connectors: Mapping[int, Connector],
        timers: Deadlines,
        boot_retry_s: float,
        heartbeat_delay: Callable[[int], float] = float,
        heartbeat: str = INACTIVITY,
    ) -> None:
        self.host, self.messages, self.config, self.connectors = host, messages, config, connectors
        self.timers, self.boot_retry_s = timers, boot_retry_s
        #: Seconds to the next heartbeat for an interval (a vendor's firmware may jitter it).
        self.heartbeat_delay = heartbeat_delay
        if heartbeat not in HEARTBEAT_MODES:
            raise ValueError(f"heartbeat: expected one of {', '.join(HEARTBEAT_MODES)}, got {heartbeat!r}")
        #: The spec's heartbeat (True) or a fixed period (False).
        self.inactivity = heartbeat == INACTIVITY
        #: The instant the armed heartbeat deadline counts from.
        self._beat_from = float("-inf")
        self.state = Registration.UNREGISTERED
        self.boot_reason = "PowerUp"
        self._boot_in_flight = False

    @property
    def accepted(self) -> bool:
        return self.state is Registration.ACCEPTED

    def send_boot(self, now: float) -> None:
        if self._boot_in_flight or not self.host.link_up:
            return
        self._boot_in_flight = True
        self.host.send("BootNotification", self.messages.boot_payload(self.boot_reason), now, self._boot_answered)

    def trigger_boot(self, now: float) -> None:
        self.timers.cancel(Timer.BOOT)
        self.send_boot(now)

    def _boot_answered(self, pending: PendingCall, now: float) -> None:
        self._boot_in_flight = False
        if pending.outcome is Outcome.CANCELLED:
            return
        interval = 0
        if pending.outcome is not Outcome.RESULT or pending.payload is None:
            self.state, retry = transition(self.state, RegistrationEvent.FAILED)
        else:
            interval = int(pending.payload["interval"])
            self.state, retry = answered(self.state, pending.payload["status"])
        if retry is Retry.DEFAULT:
            self.timers.arm(Timer.BOOT, now + self.boot_retry_s)
        elif retry is Retry.INTERVAL:
            self.timers.arm(Timer.BOOT, now + (interval if interval > 0 else self.boot_retry_s))
        else:
            self._accepted(interval, now)

    def _accepted(self, interval: int, now: float) -> None:
        self.boot_reason = "PowerUp"
        if interval > 0:
            self.config.set_setting("heartbeat_interval", str(interval))
        self._arm_heartbeat(now)
        for status_message in self.messages.all_status_payloads(now):
            self.host.send("StatusNotification", status_message, now)
        for c in self.connectors.values():
            c.reported_status = c.status
        self.host.pump(now)

    def _arm_heartbeat(self, now: float) -> None:
        self._beat_from = now
        self.timers.arm(Timer.HEARTBEAT, now + self.heartbeat_delay(self.config.integer("heartbeat_interval")))

    def exchanged(self, now: float) -> None:
        """The charger sent a frame (its CALL or its answer to the CSMS's): under ``inactivity`` the interval
        starts again, while heartbeats run (Accepted, link up, an interval above 0)."""
        if now > self._beat_from and self.timers.at(_HEARTBEAT) is not None:
            self._beat_from = now
            self.timers.arm(_HEARTBEAT, now + self.heartbeat_delay(self.config.integer("heartbeat_interval")))

    def send_heartbeat(self, now: float) -> None:
        interval = self.config.integer("heartbeat_interval")
        due = now + self.heartbeat_delay(interval) if interval > 0 and self.host.link_up else None
        self._beat_from = now
        self.timers.set(Timer.HEARTBEAT, due)
        self.host.send("Heartbeat", {}, now)

    def heartbeat_interval_changed(self, now: float) -> None:
        if self.accepted and self.host.link_up:
            interval = self.config.integer("heartbeat_interval")
            self._beat_from = now
            self.timers.set(Timer.HEARTBEAT, now + self.heartbeat_delay(interval) if interval > 0 else None)

    def resumed(self, now: float) -> None:
        """The link is back and we are still Accepted: heartbeats start again."""
        self._arm_heartbeat(now)

    def link_down(self) -> None:
        self._boot_in_flight = False
        self.timers.cancel(Timer.HEARTBEAT)
        self.timers.cancel(Timer.BOOT)

    def rebooted(self) -> None:
        self.state, _ = transition(self.state, RegistrationEvent.REBOOTED)
        self.boot_reason = "RemoteReset"


_HEARTBEAT = Timer.HEARTBEAT  # read at every frame sent (an enum member through its class costs ~5x a name)
