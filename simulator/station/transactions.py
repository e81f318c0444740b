"""Transactions on the charger: authorization, start and stop, meter readings, and the message queue.

Theory of operation
-------------------
Each connector walks one lifecycle, :data:`LIFECYCLE` (state × event → state): a token is checked
(``ASK``: the CSMS is asked; ``GRANT``/``REFUSE``: the answer, or the local rules offline), an authorized
connector waits for the cable (``AUTHORIZED``, a connection timeout armed), and the transaction runs from
``START`` to ``STOP``. A move the table lacks is an :class:`IllegalTransactionEvent`, our own mistake.
The connector's ``authorized_waiting`` fact (1.6 Preparing) is the lifecycle being in :data:`WAITING`.

A transaction starts when the cable is in *and* the driver is authorized (1.6 StartTransaction, 2.0.1
TxStartPoint "EVConnected,Authorized"); it ends on unplug (EVDisconnected), remote stop, a local token, a
reset, a fault (reason Other), an emergency stop or a power loss. A late answer to an Authorize is still
honoured (``IDLE`` × ``GRANT``), and ``ACTIVE`` survives an unplug when StopTransactionOnEVSideDisconnect
is off.

Transaction messages always pass through the :class:`~.offline_queue.OfflineQueue` and only its head is in
flight, so they reach the CSMS in order even across timeouts and disconnections. An acknowledgement is
credited to its transaction (``start_acknowledged``, ``end_acknowledged``, ``acknowledged_wh``) for reports
against a CSMS whose records we cannot read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Protocol

from csms.ocpp.rpc import Outcome, PendingCall
from simulator.station.auth import IdTokenInfo, LocalAuthorization
from simulator.station.config import Configuration
from simulator.station.connector import Connector, ConnectorError, ConnectorSpec
from simulator.station.offline_queue import OfflineQueue, QueuedMessage
from simulator.station.reservations import Reservations
from simulator.station.smart_charging import Firmware, ProfileStore
from simulator.station.timers import Deadlines, Timer

ENERGY_REGISTER = "Energy.Active.Import.Register"
#: The configuration key of each context's measurands, and the phases a current is read on.
_MEASURANDS = {which: f"{which}_measurands" for which in ("sampled", "started", "ended", "aligned")}
_PHASES = ("L1", "L2", "L3")
# Read at every sample and pump: an enum member through its class costs ~5x a plain name on CPython 3.11.
_SAMPLE, _TX_RETRY, _ALIGNED = Timer.SAMPLE, Timer.TX_RETRY, Timer.ALIGNED
_DAY_S = 86400

#: Stop reasons a transaction can end with (1.6 spelling; :mod:`.v201` maps them).
STOP_REASONS = frozenset(
    {
        "EVDisconnected",
        "Remote",
        "Local",
        "PowerLoss",
        "Reboot",
        "HardReset",
        "SoftReset",
        "DeAuthorized",
        "EmergencyStop",
        "UnlockCommand",
        "Other",
    }
)


class MeterSource(Protocol):
    """The twin's meter of each connector, read when the firmware samples."""

    def energy_wh(self, connector_id: int) -> float: ...
    def power_w(self, connector_id: int) -> float: ...
    def current_a(self, connector_id: int) -> tuple[float, ...]: ...
    def voltage_v(self, connector_id: int) -> float: ...
    def soc(self, connector_id: int) -> float | None: ...


class Reading(NamedTuple):
    """One sampled value; ``unit`` in 1.6 spelling (Wh, W, A, V, Percent). A tuple: a few per sample, built
    at every meter value."""

    measurand: str
    value: float
    unit: str
    phase: str | None = None


@dataclass(eq=False, slots=True)
class Transaction:
    """The charger's view of one transaction. ``key`` is ours; ``transaction_id`` the protocol's
    (1.6: assigned by the CSMS, None until StartTransaction is answered; 2.0.1: ours, from the RNG)."""

    key: int
    connector_id: int
    id_token: str | None
    token_type: str
    started_at: float
    meter_start_wh: float
    transaction_id: int | str | None = None
    remote_start_id: int | None = None
    seq_no: int = 0
    deauthorized: bool = False
    ended_at: float | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    remote_profile: dict[str, Any] | None = None
    trigger: str = "Authorized"
    reservation_id: int | None = None  # the reservation this transaction used up
    # What the CSMS acknowledged (a CALLRESULT): for reports against a CSMS whose records we cannot read.
    start_acknowledged: bool = False
    end_acknowledged: bool = False
    acknowledged_wh: float | None = None  # energy register of the last acknowledged message that carried one


# ==== the lifecycle table =================================================================================
class TxState(Enum):
    IDLE = "Idle"  # no transaction, nobody authorized
    AUTHORIZING = "Authorizing"  # an Authorize is in flight
    AUTHORIZED = "Authorized"  # authorized, waiting for the cable (connection timeout armed)
    ACTIVE = "Active"  # a transaction runs


class TxEvent(Enum):
    ASK = "Ask"  # an Authorize goes to the CSMS
    GRANT = "Grant"  # the token is good and the connector can start
    REFUSE = "Refuse"  # the token is not good, or the connector can no longer start
    START = "Start"  # the cable is in and the driver authorized
    TIMEOUT = "Timeout"  # no cable within the connection timeout
    STOP = "Stop"
    UNPLUG = "Unplug"
    REBOOT = "Reboot"  # the station went down: what was only authorized is forgotten


IDLE, AUTHORIZING, AUTHORIZED, ACTIVE = TxState.IDLE, TxState.AUTHORIZING, TxState.AUTHORIZED, TxState.ACTIVE

#: state × event → state for one connector.
LIFECYCLE: dict[TxState, dict[TxEvent, TxState]] = {
    IDLE: {
        TxEvent.ASK: AUTHORIZING,
        TxEvent.GRANT: AUTHORIZED,
        TxEvent.REFUSE: IDLE,
        TxEvent.UNPLUG: IDLE,
        TxEvent.REBOOT: IDLE,
    },
    AUTHORIZING: {
        TxEvent.ASK: AUTHORIZING,  # a second token before the first is answered
        TxEvent.GRANT: AUTHORIZED,
        TxEvent.REFUSE: IDLE,
        TxEvent.TIMEOUT: IDLE,  # the timeout of an earlier authorization that was refused
        TxEvent.UNPLUG: IDLE,
        TxEvent.REBOOT: IDLE,
    },
    AUTHORIZED: {
        TxEvent.ASK: AUTHORIZED,
        TxEvent.GRANT: AUTHORIZED,
        TxEvent.REFUSE: IDLE,
        TxEvent.START: ACTIVE,
        TxEvent.TIMEOUT: IDLE,
        TxEvent.UNPLUG: IDLE,
        TxEvent.REBOOT: IDLE,
    },
    ACTIVE: {
        TxEvent.REFUSE: ACTIVE,  # a late Authorize answer for a connector that started meanwhile
        TxEvent.STOP: IDLE,
        TxEvent.UNPLUG: ACTIVE,  # StopTransactionOnEVSideDisconnect off: the transaction runs on
        TxEvent.REBOOT: ACTIVE,  # started between a reset's answer and the reboot
    },
}

#: The states in which the connector is authorized (or being authorized) without a transaction.
WAITING = frozenset({AUTHORIZING, AUTHORIZED})


class IllegalTransactionEvent(ConnectorError):
    """The charger drove a connector's transaction lifecycle along a move :data:`LIFECYCLE` lacks."""

    def __init__(self, connector_id: int, state: TxState, event: TxEvent) -> None:
        super().__init__(f"connector {connector_id}: can't handle {event.value} when {state.value}")
        self.state, self.event = state, event


def transition(connector_id: int, state: TxState, event: TxEvent) -> TxState:
    """The state :data:`LIFECYCLE` moves to.

    Raises:
        IllegalTransactionEvent: the table has no such move.
    """
    new = LIFECYCLE[state].get(event)
    if new is None:
        raise IllegalTransactionEvent(connector_id, state, event)
    return new


# ==== what this job needs from the others ==================================================================
class TransactionMessages(Protocol):
    """What transactions need from the version module."""

    def authorize_payload(
        self, token: str, token_type: str, contract: tuple[dict[str, str], ...] = ()
    ) -> dict[str, Any]: ...
    def parse_id_info(self, payload: dict[str, Any]) -> IdTokenInfo: ...
    def new_transaction_id(self) -> int | str | None: ...
    def tx_started(self, tx: Transaction, readings: list[Reading], now: float) -> QueuedMessage: ...
    def tx_meter_values(
        self, tx: Transaction, readings: list[Reading], now: float, *, clock: bool = False
    ) -> QueuedMessage: ...
    def meter_values_payload(
        self, connector_id: int, readings: list[Reading], now: float, context: str = "Trigger"
    ) -> dict[str, Any]: ...
    def tx_ended(self, tx: Transaction, readings: list[Reading], now: float) -> QueuedMessage: ...
    def prepare(self, message: QueuedMessage) -> dict[str, Any] | None: ...
    def tx_answered(self, message: QueuedMessage, payload: dict[str, Any], now: float) -> None: ...
    def install_remote_profile(self, tx: Transaction, profile: dict[str, Any], now: float) -> None: ...


class TransactionHost(Protocol):
    """What transactions need from the charger."""

    @property
    def online(self) -> bool: ...

    @property
    def registered(self) -> bool: ...

    @property
    def station_inoperative(self) -> bool: ...

    def send(
        self,
        action: str,
        payload: dict[str, Any],
        now: float,
        on_done: Callable[[PendingCall, float], None] | None = None,
    ) -> bool: ...

    def after_reply(self, action: Callable[[float], None]) -> None: ...
    def refresh(self, c: Connector, now: float, *, quiet_charging_state: bool = False) -> None: ...
    def send_status(self, c: Connector, now: float) -> None: ...
    def limit_w(self, connector_id: int, now: float) -> float | None: ...
    def next_limit_change(self, connector_id: int, now: float) -> float | None: ...
    def reset_if_idle(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class _PendingStart:
    token: str
    token_type: str
    remote_start_id: int | None
    profile: dict[str, Any] | None
    trigger: str


class Transactions:
    """The transactions of one charger: ``running`` by connector, ``history`` every one ever started."""

    __slots__ = (
        "_counter",
        "_inflight",
        "_pending_starts",
        "auth",
        "config",
        "connectors",
        "history",
        "host",
        "messages",
        "meter",
        "profiles",
        "queue",
        "reservations",
        "running",
        "smart_charging",
        "states",
        "timers",
    )

    def __init__(  # noqa: PLR0913 - the charger's parts this job uses, each named (a bag object would hide them)
        self,
        host: TransactionHost,
        *,
        messages: TransactionMessages,
        config: Configuration,
        connectors: Mapping[int, Connector],
        meter: MeterSource,
        auth: LocalAuthorization,
        profiles: ProfileStore,
        smart_charging: Firmware,
        queue: OfflineQueue,
        timers: Deadlines,
        reservations: Reservations,
    ) -> None:
        self.host, self.messages, self.config, self.connectors = host, messages, config, connectors
        self.reservations = reservations
        self.meter, self.auth, self.profiles, self.smart_charging = meter, auth, profiles, smart_charging
        self.queue, self.timers = queue, timers
        self.running: dict[int, Transaction] = {}  # by connector
        self.history: list[Transaction] = []  # every transaction started: the twin's ground truth
        self.states: dict[int, TxState] = dict.fromkeys(connectors, IDLE)
        self._pending_starts: dict[int, _PendingStart] = {}
        self._counter = 0
        self._inflight: QueuedMessage | None = None

    def _move(self, c: Connector, event: TxEvent) -> None:
        state = transition(c.connector_id, self.states[c.connector_id], event)
        self.states[c.connector_id] = state
        c.authorized_waiting = state in WAITING

    # ==== physical events ==================================================================================
    def plug_in(
        self,
        connector_id: int,
        id_token: str | None,
        now: float,
        token_type: str,
        contract: tuple[dict[str, str], ...] = (),
    ) -> None:
        """``contract``: ISO 15118 Plug & Charge, the OCSP data of the vehicle's contract certificate (2.0.1
        sends it in Authorize as iso15118CertificateHashData; ``id_token`` is then the contract's eMAID)."""
        c = self.connectors[connector_id]
        c.plug()
        c.finishing = False
        self.timers.cancel(Timer.CONNECTION_TIMEOUT, connector_id)
        self.host.refresh(c, now)
        if c.authorized_waiting and connector_id in self._pending_starts:
            self._start(c, now)
        elif id_token is not None:
            self.present_token(connector_id, id_token, now, token_type, contract)

    def present_token(
        self, connector_id: int, id_token: str, now: float, token_type: str, contract: tuple[dict[str, str], ...] = ()
    ) -> None:
        c = self.connectors[connector_id]
        tx = self.running.get(connector_id)
        if tx is not None:
            if tx.id_token == id_token:
                self.stop(tx, "Local", now)
            return
        if c.can_start:
            self._authorize(c, id_token, token_type, now, remote_start_id=None, contract=contract)

    def unplug(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        tx = self.running.get(connector_id)
        if not c.plugged:
            c.unplug()  # raises IllegalEvent
        if tx is not None and self.config.flag("stop_on_ev_side_disconnect"):
            self.stop(tx, "EVDisconnected", now, unplugging=True)
        c.unplug()
        self._move(c, TxEvent.UNPLUG)
        self._pending_starts.pop(connector_id, None)
        self.host.refresh(c, now)
        self.host.reset_if_idle(now)

    def rebooted(self) -> None:
        """The station went down: authorizations without a transaction are forgotten."""
        self.timers.cancel(Timer.TX_RETRY)
        for c in self.connectors.values():
            self._move(c, TxEvent.REBOOT)
        self._pending_starts.clear()
        self.timers.cancel_all(Timer.CONNECTION_TIMEOUT)

    # ==== authorization ====================================================================================
    def local_lookup(self, token: str, now: float) -> IdTokenInfo | None:
        return self.auth.lookup(
            token,
            now,
            use_list=self.config.flag("local_list_enabled"),
            use_cache=self.config.flag("auth_cache_enabled"),
            cache_lifetime_s=self._cache_lifetime(),
        )

    def _cache_lifetime(self) -> float | None:
        """2.0.1 AuthCacheCtrlr.LifeTime; a 1.6 cache keeps its entries until they expire or are cleared."""
        return self.config.integer("auth_cache_lifetime") if self.config.has("auth_cache_lifetime") else None

    def remember(self, token: str | None, info: IdTokenInfo | None, now: float) -> None:
        """Cache what the CSMS said about a token (when the cache is on)."""
        if token and info is not None and self.config.flag("auth_cache_enabled"):
            self.auth.cache.update(token, info, now)

    def remote_start(
        self,
        connector_id: int | None,
        token: str,
        token_type: str,
        now: float,
        *,
        remote_start_id: int | None = None,
        profile: dict[str, Any] | None = None,
    ) -> bool:
        """A remote start: False (Rejected) when no connector can take it."""
        if not self.host.registered or self.host.station_inoperative:
            return False
        chosen: Connector | None
        if connector_id is None:
            free = [
                c
                for c in self.connectors.values()
                if c.can_start and not c.authorized_waiting and self.reservations.lets(c.connector_id, token, None)
            ]
            plugged = [c for c in free if c.plugged]
            candidates = plugged or free
            chosen = candidates[0] if candidates else None
        else:
            chosen = self.connectors.get(connector_id)
        if chosen is None or not chosen.can_start or chosen.authorized_waiting or self._held_for_other(chosen, token):
            return False
        target = chosen
        self.host.after_reply(
            lambda when: self._authorize(
                target, token, token_type, when, remote_start_id=remote_start_id, remote=True, profile=profile
            )
        )
        return True

    def _authorize(
        self,
        c: Connector,
        token: str,
        token_type: str,
        now: float,
        *,
        remote_start_id: int | None,
        remote: bool = False,
        profile: dict[str, Any] | None = None,
        contract: tuple[dict[str, str], ...] = (),
    ) -> None:
        start = _PendingStart(token, token_type, remote_start_id, profile, "RemoteStart" if remote else "Authorized")
        if self._held_for_other(c, token):
            self._not_authorized(c, now)
            return
        local = self.local_lookup(token, now)
        if remote and not self.config.flag("authorize_remote"):
            self._authorized(c, start, now)
        elif self.host.online and not (
            self.config.flag("local_pre_authorize") and local is not None and local.accepted
        ):

            def answered(pending: PendingCall, when: float) -> None:
                if pending.outcome is Outcome.RESULT and pending.payload is not None:
                    info = self.messages.parse_id_info(pending.payload)
                    self.remember(token, info, when)
                    if info.accepted:
                        self._authorized(c, start, when, info.group_id)
                    else:
                        self._not_authorized(c, when)
                else:
                    self._offline_authorize(c, start, local, when)

            self._move(c, TxEvent.ASK)  # 1.6: Preparing while we ask
            self.host.refresh(c, now)
            self.host.send("Authorize", self.messages.authorize_payload(token, token_type, contract), now, answered)
        elif self.host.online:
            self._authorized(c, start, now, local.group_id if local is not None else None)
        else:
            self._offline_authorize(c, start, local, now)

    def _held_for_other(self, c: Connector, token: str) -> bool:
        """Reserved for another token and no group could make this one its holder's: refused at once."""
        held = self.reservations.on(c.connector_id)
        return held is not None and held.id_token != token and held.group_id is None

    def _offline_authorize(self, c: Connector, start: _PendingStart, local: IdTokenInfo | None, now: float) -> None:
        known_ok = local is not None and local.accepted and self.config.flag("local_authorize_offline")
        unknown_ok = local is None and self.config.flag("allow_offline_unknown")
        if known_ok or unknown_ok:
            self._authorized(c, start, now, local.group_id if local is not None else None)
        else:
            self._not_authorized(c, now)

    def _not_authorized(self, c: Connector, now: float) -> None:
        self._move(c, TxEvent.REFUSE)
        self._pending_starts.pop(c.connector_id, None)
        self.host.refresh(c, now)

    def _authorized(self, c: Connector, start: _PendingStart, now: float, group_id: str | None = None) -> None:
        if not c.can_start or not self.reservations.lets(c.connector_id, start.token, group_id):
            self._not_authorized(c, now)
            return
        self._move(c, TxEvent.GRANT)
        self._pending_starts[c.connector_id] = start
        if c.plugged:
            self._start(c, now)
        else:
            self.timers.arm(Timer.CONNECTION_TIMEOUT, now + self.config.integer("connection_timeout"), c.connector_id)
            self.host.refresh(c, now)

    def connection_timed_out(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        if c.authorized_waiting and not c.plugged:
            self._move(c, TxEvent.TIMEOUT)
            self._pending_starts.pop(c.connector_id, None)
            self.host.refresh(c, now)

    # ==== start and stop ===================================================================================
    def _start(self, c: Connector, now: float) -> None:
        if c.finishing:  # 1.6: Finishing -> Preparing -> Charging (no direct transition)
            c.finishing = False
            self.host.refresh(c, now)
        start = self._pending_starts.pop(c.connector_id)
        self.timers.cancel(Timer.CONNECTION_TIMEOUT, c.connector_id)
        self._counter += 1
        tx = Transaction(
            key=self._counter,
            connector_id=c.connector_id,
            id_token=start.token,
            token_type=start.token_type,
            started_at=now,
            meter_start_wh=self.meter.energy_wh(c.connector_id),
            remote_start_id=start.remote_start_id,
            remote_profile=start.profile,
            trigger=start.trigger,
        )
        held = self.reservations.on(c.connector_id)
        if held is not None:  # only its holder got this far (_authorized): the reservation is used up
            self.reservations.end(held.reservation_id)
            self.timers.cancel(Timer.RESERVATION, c.connector_id)
            tx.reservation_id = held.reservation_id
        tx.transaction_id = self.messages.new_transaction_id()
        self.running[c.connector_id] = tx
        self.history.append(tx)
        self._move(c, TxEvent.START)
        c.in_transaction = True
        c.finishing = False
        c.evse_suspended = False
        self.profiles.start_transaction(c.connector_id, tx.transaction_id or f"pending-{tx.key}", now)
        if start.profile is not None and self.smart_charging is not Firmware.REJECT:
            self.messages.install_remote_profile(tx, start.profile, now)
        interval = self.config.integer("sample_interval")
        self.timers.set(Timer.SAMPLE, now + interval if interval > 0 else None, c.connector_id)
        # The start message carries the new chargingState; the StatusNotification follows it.
        status_changed, _ = c.refresh()
        self.queue_message(
            self.messages.tx_started(tx, self.readings(c.connector_id, now, "started"), now),
            now,
            phase="start",
            register_wh=tx.meter_start_wh,
        )
        if status_changed:
            self.host.send_status(c, now)
        self.update_limits(now)

    def stop(self, tx: Transaction, reason: str, now: float, *, unplugging: bool = False) -> None:
        """End ``tx`` with ``reason`` (1.6 spelling, one of :data:`STOP_REASONS`)."""
        assert reason in STOP_REASONS, reason
        c = self.connectors[tx.connector_id]
        self._move(c, TxEvent.STOP)
        tx.ended_at, tx.stop_reason = now, reason
        tx.meter_stop_wh = self.meter.energy_wh(tx.connector_id)
        self.timers.cancel(Timer.SAMPLE, tx.connector_id)
        del self.running[tx.connector_id]
        self.queue_message(
            self.messages.tx_ended(tx, self.readings(tx.connector_id, now, "ended"), now),
            now,
            phase="end",
            register_wh=tx.meter_stop_wh,
        )
        self.profiles.end_transaction(tx.connector_id)
        self.timers.cancel(Timer.LIMIT_CHECK, tx.connector_id)
        c.in_transaction = False
        c.evse_suspended = False
        c.finishing = c.plugged and not unplugging
        if not unplugging:
            self.host.refresh(c, now, quiet_charging_state=True)
            self.host.reset_if_idle(now)

    def answered(self, tx_key: int, info: IdTokenInfo | None, now: float) -> None:
        """The CSMS answered a start/event carrying an id token: deauthorize a running tx it refuses."""
        tx = next((t for t in self.running.values() if t.key == tx_key), None)
        if tx is None or info is None:
            return
        self.remember(tx.id_token, info, now)
        if info.accepted or tx.deauthorized:
            return
        tx.deauthorized = True
        if self.config.flag("stop_on_invalid_id"):
            self.stop(tx, "DeAuthorized", now)
        else:
            self.connectors[tx.connector_id].evse_suspended = True
            self.host.refresh(self.connectors[tx.connector_id], now)

    def by_id(self, transaction_id: int | str) -> Transaction | None:
        return next((t for t in self.running.values() if str(t.transaction_id) == str(transaction_id)), None)

    # ==== charging-profile limits ==========================================================================
    def update_limits(self, now: float) -> None:
        """A limit of 0 W suspends the EVSE (SuspendedEVSE); re-check when the composite next changes."""
        for cid, c in self.connectors.items():
            tx = self.running.get(cid)
            if tx is None:
                self.timers.cancel(Timer.LIMIT_CHECK, cid)
                continue
            limit = self.host.limit_w(cid, now)
            c.evse_suspended = tx.deauthorized or (limit is not None and limit <= 0)
            self.host.refresh(c, now)
            self.timers.set(Timer.LIMIT_CHECK, self.host.next_limit_change(cid, now), cid)

    # ==== meter values =====================================================================================
    def readings(self, connector_id: int, now: float, which: str = "sampled") -> list[Reading]:
        """Sample the twin's meter: the measurands configured for ``which`` (sampled/started/ended)."""
        out: list[Reading] = []
        spec = self.connectors[connector_id].spec
        for m in self.config.members(_MEASURANDS[which]):
            self._measure(out, m, connector_id, now, spec)
        return out

    def _measure(self, out: list[Reading], m: str, connector_id: int, now: float, spec: ConnectorSpec) -> None:
        """Append the readings of measurand ``m`` (none for one the connector does not measure)."""
        if m == ENERGY_REGISTER:
            out.append(Reading(m, self.meter.energy_wh(connector_id), "Wh"))
        elif m == "Power.Active.Import":
            out.append(Reading(m, self.meter.power_w(connector_id), "W"))
        elif m == "Power.Offered":
            limit = self.host.limit_w(connector_id, now)
            out.append(Reading(m, spec.max_power_w if limit is None else min(limit, spec.max_power_w), "W"))
        elif m == "Current.Import":
            currents = self.meter.current_a(connector_id)
            if spec.dc:
                out.append(Reading(m, sum(currents), "A"))
            else:
                out += [Reading(m, i, "A", p) for i, p in zip(currents, _PHASES[: spec.phases], strict=False)]
        elif m == "Current.Offered":
            out.append(Reading(m, spec.max_current_a, "A"))
        elif m == "Voltage":
            out.append(Reading(m, self.meter.voltage_v(connector_id), "V"))
        elif m == "SoC" and spec.dc:
            soc = self.meter.soc(connector_id)
            if soc is not None:
                out.append(Reading(m, soc, "Percent"))

    def sample_due(self, now: float) -> None:
        """Periodic meter values of every running transaction whose sample is due (one per due instant:
        samples missed while the timer was late are skipped)."""
        for tx in list(self.running.values()):
            at = self.timers.at(_SAMPLE, tx.connector_id)
            if at is None or now < at:
                continue
            interval = self.config.integer("sample_interval")
            following: float | None = at
            while following is not None and following <= now:
                following = following + interval if interval > 0 else None
            self.timers.set(_SAMPLE, following, tx.connector_id)
            self._queue_meter_values(tx, self.readings(tx.connector_id, now), now)

    def sample_interval_changed(self, now: float) -> None:
        """The meter-value timer restarts at ``now + interval``."""
        interval = self.config.integer("sample_interval")
        for tx in self.running.values():
            self.timers.set(Timer.SAMPLE, now + interval if interval > 0 else None, tx.connector_id)

    # ==== clock-aligned meter values =======================================================================
    def aligned_interval_changed(self, now: float) -> None:
        """(Re-)arm the clock-aligned deadline at the first aligned instant after ``now`` (none: 0 turns it
        off). Also when the charger connects, so an interval the factory configured takes effect."""
        self.timers.set(_ALIGNED, next_aligned(now, self.config.integer("clock_aligned_interval")))

    def aligned_due(self, now: float) -> None:
        """The clock-aligned deadline fell due (the charger popped it): the aligned measurands of every
        connector (OCPP 1.6 ClockAlignedDataInterval / MeterValuesAlignedData, 2.0.1 AlignedDataCtrlr), read at
        that instant and dated by it. A running transaction's go through its message queue (1.6 MeterValues with its
        transactionId, 2.0.1 TransactionEvent Updated, MeterValueClock); an idle connector's are a MeterValues
        sent if online (1.6 always; 2.0.1 only when AlignedDataCtrlr.SendDuringIdle). Instants missed while
        the timer was late are skipped, like periodic samples."""
        self.aligned_interval_changed(now)
        idle = not self.config.has("aligned_when_idle") or self.config.flag("aligned_when_idle")
        for cid in self.connectors:
            readings = self.readings(cid, now, "aligned")
            if not readings:
                continue
            tx = self.running.get(cid)
            if tx is not None:
                self._queue_meter_values(tx, readings, now, clock=True)
            elif idle and self.host.online:
                payload = self.messages.meter_values_payload(cid, readings, now, "Sample.Clock")
                self.host.send("MeterValues", payload, now)

    def _queue_meter_values(self, tx: Transaction, readings: list[Reading], now: float, *, clock: bool = False) -> None:
        """A running transaction's meter values (periodic, or clock-aligned), queued with the register they carry."""
        register = next((r.value for r in readings if r.measurand == ENERGY_REGISTER), None)
        self.queue_message(self.messages.tx_meter_values(tx, readings, now, clock=clock), now, register_wh=register)

    # ==== the transaction-message queue ====================================================================
    @property
    def in_flight(self) -> bool:
        """A transaction message was sent and its answer has not come yet."""
        return self._inflight is not None

    @property
    def retry_waiting(self) -> bool:
        """True when the queue's head waits only for its retry time (the retry deadline is live)."""
        return self._inflight is None and self.queue.head() is not None and self.host.online  # cheapest test first

    def queue_message(
        self, message: QueuedMessage | None, now: float, *, phase: str = "update", register_wh: float | None = None
    ) -> None:
        """Queue a transaction message; ``phase`` (start/update/end) and the energy register it carries are
        remembered so an acknowledgement can be credited to the transaction (:meth:`_acknowledged`)."""
        if message is None:
            return
        message.created_at = now
        message.phase, message.register_wh = phase, register_wh
        self.queue.push(message)
        self.pump(now)

    def pump(self, now: float) -> None:
        """Send the queue's head when nothing is in flight, we are online and its retry time has come."""
        if not self.host.online or self._inflight is not None:
            return
        retry_at = self.timers.at(_TX_RETRY)
        if retry_at is not None and now < retry_at:
            return
        while (head := self.queue.head()) is not None:
            payload = self.messages.prepare(head)
            if payload is None:  # it refers to a transaction whose start was never acknowledged
                self.queue.discard(head)
                continue
            self._inflight = head
            self.timers.cancel(_TX_RETRY)
            message = head

            def done(pending: PendingCall, when: float, message: QueuedMessage = message) -> None:
                self._done(message, pending, when)

            self.host.send(head.action, payload, now, done)
            return

    def link_down(self) -> None:
        self._inflight = None

    def _done(self, message: QueuedMessage, pending: PendingCall, now: float) -> None:
        self._inflight = None
        if pending.outcome is Outcome.CANCELLED:
            return
        if pending.outcome is Outcome.RESULT and pending.payload is not None:
            self.queue.pop()
            self._acknowledged(message)
            self.messages.tx_answered(message, pending.payload, now)
        else:
            message.attempts += 1
            if message.attempts >= max(1, self.config.integer("tx_message_attempts")):
                self.queue.discard(message)
            else:
                self.timers.arm(
                    Timer.TX_RETRY, now + self.config.integer("tx_message_retry_interval") * message.attempts
                )
                return
        self.pump(now)

    def _acknowledged(self, message: QueuedMessage) -> None:
        tx = next((t for t in reversed(self.history) if t.key == message.tx_key), None)
        if tx is None:
            return
        if message.phase == "start":
            tx.start_acknowledged = True
        elif message.phase == "end":
            tx.end_acknowledged = True
        if message.register_wh is not None:
            tx.acknowledged_wh = message.register_wh


def next_aligned(now: float, interval: int) -> float | None:
    """The first clock-aligned instant after ``now`` (POSIX s): a multiple of ``interval`` counted from the UTC
    midnight before it (the spec's evenly spaced intervals per day starting at 00:00:00; an interval that does not
    divide a day ends its day with a shorter one), None when ``interval`` is 0 (no clock-aligned data)."""
    if interval <= 0:
        return None
    midnight = now // _DAY_S * _DAY_S
    following = midnight + (int((now - midnight) // interval) + 1) * interval
    return min(following, midnight + _DAY_S)
