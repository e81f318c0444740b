"""The charger firmware model: one :class:`Charger` per station, sans-IO, OCPP 1.6J or 2.0.1.

Theory of operation
-------------------
The owner (the SimPy twin, or a real-time shell) drives a charger in three steps, like aioquic:

* input, always with ``now`` (POSIX seconds): the link (:meth:`Charger.connected`,
  :meth:`~Charger.disconnected`, :meth:`~Charger.connection_failed`), frames (:meth:`~Charger.receive_frame`),
  timers (:meth:`~Charger.handle_timer`) and the physical world (:meth:`~Charger.plug_in`,
  :meth:`~Charger.unplug`, :meth:`~Charger.ev_suspended`, :meth:`~Charger.fault`, ...);
* output: :meth:`~Charger.frames_to_send`, :meth:`~Charger.next_deadline`, :meth:`~Charger.wants_connection`
  and :meth:`~Charger.close_requested` for the link, and :meth:`~Charger.is_energizing` /
  :meth:`~Charger.limit_w` / :meth:`~Charger.next_limit_change` for the twin's power model.

Everything version-neutral lives here: registration (boot, Pending/Rejected retry), heartbeats, connector
facts and statuses (:mod:`.connector`), authorization (:mod:`.auth`), transactions and their meter
values, the transaction-message queue (:mod:`.offline_queue`), resets, availability and reconnect
back-off. The version module (:mod:`.v16` or :mod:`.v201`, same method names) builds and reads payloads
and answers the CSMS's calls, calling back into the operations here.

Sending: transaction messages always pass through the queue and only its head is in flight, so they reach
the CSMS in order even across timeouts and disconnections; other messages go straight to the RPC endpoint
(one outstanding CALL, FIFO) when the link is up, and are dropped when it is down (statuses that changed
meanwhile are re-sent after reconnecting). Meter readings come from an injected :class:`MeterSource`;
randomness (message-id prefix, transaction ids, reconnect jitter) from an injected ``random.Random``.

Decisions the specs leave open (one place to look them up):

* A transaction starts when the cable is in *and* the driver is authorized (1.6 StartTransaction, 2.0.1
  TxStartPoint "EVConnected,Authorized"); it ends on unplug (EVDisconnected), remote stop, a local token,
  a reset, a fault (reason Other), :meth:`Charger.emergency_stop` or :meth:`Charger.power_loss`.
* The meter-value timer restarts at ``now + interval`` when the interval is changed.
* ``is_energizing`` is False while either the EV (full) or the EVSE (0 W limit, refused token) suspends.
* Reconnect back-off: ``base × 2^min(attempt, repeats) ± uniform(range)``; 1.6 has no standard keys for
  it, so it reads the vendor keys ``ReconnectBackOff*`` (2.0.1: ``OCPPCommCtrlr.RetryBackOff*``).
* A reset answers Accepted, stops transactions, goes down ``reset_delay_s`` later and reconnects after
  ``reboot_s``; Soft and Hard differ only in the stop reason.
* Statuses that changed while offline are sent after reconnecting; heartbeats and other non-transaction
  messages are not queued.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from csms.ocpp import schemas
from csms.ocpp.errors import ErrorKind, OcppError
from csms.ocpp.framing import Call
from csms.ocpp.rpc import CallCompleted, IncomingCall, Outcome, PendingCall, RpcEndpoint
from csms.ocpp.versions import OCPP16, Version
from simulator.station.auth import IdTokenInfo, LocalAuthorization
from simulator.station.config import Configuration
from simulator.station.connector import PREPARING, Connector, ConnectorError, ConnectorSpec
from simulator.station.offline_queue import OfflineQueue, QueuedMessage
from simulator.station.smart_charging import Firmware, ProfileStatus, ProfileStore, RateUnit, SetProfileOutcome

ENERGY_REGISTER = "Energy.Active.Import.Register"


class MeterSource(Protocol):
    """The twin's meter of each connector, read when the firmware samples."""

    def energy_wh(self, connector_id: int) -> float: ...
    def power_w(self, connector_id: int) -> float: ...
    def current_a(self, connector_id: int) -> tuple[float, ...]: ...
    def voltage_v(self, connector_id: int) -> float: ...
    def soc(self, connector_id: int) -> float | None: ...


class Registration(Enum):
    UNREGISTERED = "Unregistered"  # never booted, or rebooted: a BootNotification is due
    PENDING = "Pending"
    REJECTED = "Rejected"
    ACCEPTED = "Accepted"


@dataclass(frozen=True, slots=True)
class StationIdentity:
    vendor: str = "chargetwin"
    model: str = "twin-ac22"
    serial_number: str | None = None
    firmware_version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class Reading:
    """One sampled value; ``unit`` in 1.6 spelling (Wh, W, A, V, Percent)."""

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
    next_sample_at: float | None = None
    deauthorized: bool = False
    ended_at: float | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    remote_profile: dict[str, Any] | None = None
    trigger: str = "Authorized"
    # What the CSMS acknowledged (a CALLRESULT): for reports against a CSMS whose records we cannot read.
    start_acknowledged: bool = False
    end_acknowledged: bool = False
    acknowledged_wh: float | None = None  # energy register of the last acknowledged message that carried one


@dataclass(slots=True)
class Counters:
    """What happened, for tests and the twin's report."""

    dropped_calls: list[str] = field(default_factory=list)  # non-transaction messages lost while offline
    internal_errors: list[str] = field(default_factory=list)  # our own bugs, answered InternalError


Handler = Callable[[dict[str, Any], float], dict[str, Any]]
Callback = Callable[[PendingCall, float], None]

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


class Charger:
    """One charging station's firmware.

    Args:
        station_id: the identity the CSMS knows.
        version: "1.6" or "2.0.1".
        meter: the twin's meters.
        rng: the run's random generator (message-id prefix, 2.0.1 transaction ids, reconnect jitter).
        connectors: how many connectors (1.6) / EVSEs with one connector each (2.0.1), or their specs.
        config: overrides of configuration keys / device-model variables by wire name.
        queue_capacity: transaction messages kept while offline.
        reset_delay_s: from a Reset's answer to going down; ``reboot_s``: from going down to reconnecting.
        boot_retry_s: retry after a BootNotification failed, or was answered with interval 0.
        smart_charging: whether the firmware obeys charging profiles (``compliant``), answers them
            Rejected (``reject``) or accepts and ignores them (``ignore``).
    """

    def __init__(
        self,
        station_id: str,
        version: Version,
        *,
        meter: MeterSource,
        rng: random.Random,
        connectors: int | Sequence[ConnectorSpec] = 1,
        config: Mapping[str, str] | None = None,
        identity: StationIdentity | None = None,
        queue_capacity: int = 1000,
        call_timeout_s: float = 30.0,
        reset_delay_s: float = 1.0,
        reboot_s: float = 10.0,
        boot_retry_s: float = 60.0,
        smart_charging: Firmware | str = Firmware.COMPLIANT,
    ) -> None:
        specs = [ConnectorSpec() for _ in range(connectors)] if isinstance(connectors, int) else list(connectors)
        self.station_id = station_id
        self.version = version
        self.meter = meter
        self.rng = rng
        self.identity = identity or StationIdentity(serial_number=station_id)
        self.config = Configuration(version, config)
        self.config.set_setting("number_of_connectors", str(len(specs)))
        self.connectors: dict[int, Connector] = {
            i: Connector(i, version, spec) for i, spec in enumerate(specs, start=1)
        }
        self.auth = LocalAuthorization()
        self.auth.local_list.max_length = self.config.integer("local_list_max")
        self.profiles = ProfileStore(len(specs))
        self.smart_charging = Firmware(smart_charging)
        self.queue = OfflineQueue(queue_capacity)
        self.transactions: dict[int, Transaction] = {}  # by connector
        self.history: list[Transaction] = []  # every transaction started: the twin's ground truth
        self.counters = Counters()
        self.reset_delay_s, self.reboot_s, self.boot_retry_s = reset_delay_s, reboot_s, boot_retry_s

        if version == OCPP16:
            from simulator.station import v16 as protocol_module
        else:
            from simulator.station import v201 as protocol_module  # type: ignore[no-redef]
        self.protocol = protocol_module.Protocol(self)
        self._handlers: dict[str, Handler] = self.protocol.handlers()
        self.rpc = RpcEndpoint(
            version,
            accepts=self._handlers.__contains__,
            call_timeout_s=call_timeout_s,
            id_prefix=f"{rng.getrandbits(32):08x}-",
        )
        self._callbacks: dict[str, Callback] = {}
        self._after: list[Callable[[float], None]] = []

        self.registration = Registration.UNREGISTERED
        self.boot_reason = "PowerUp"
        self.link_up = False
        self._close_requested = False
        self._reconnect_at: float | None = None
        self._attempt = 0
        self._boot_in_flight = False
        self._boot_at: float | None = None
        self._heartbeat_at: float | None = None
        self._tx_inflight: QueuedMessage | None = None
        self._tx_retry_at: float | None = None
        self._reboot_at: float | None = None
        self._reboot_kind: str | None = None
        self._reset_when_idle: str | None = None
        self._connection_timeout_at: dict[int, float] = {}
        self._limit_check_at: dict[int, float] = {}
        self._tx_counter = 0
        self._pending_starts: dict[int, _PendingStart] = {}
        self.station_inoperative = False
        #: Connectors that report Available but never energize (the twin's ``stuck_available`` fault).
        self.stuck: set[int] = set()
        #: Called with ``now`` whenever the station goes down to reboot (reset or power loss).
        self.on_reboot: Callable[[float], None] | None = None

    # ==== link =============================================================================================
    def connected(self, now: float) -> None:
        """The WebSocket is open: boot if we must, else resume (changed statuses, then the queue)."""
        self.link_up = True
        self._close_requested = False
        self._reconnect_at = None
        self._attempt = 0
        if self.registration is not Registration.ACCEPTED:
            self._send_boot(now)
            return
        for c in self.connectors.values():
            if c.status != c.reported_status:
                self.send_status(c, now)
        self._heartbeat_at = now + self.config.integer("heartbeat_interval")
        self._pump(now)

    def disconnected(self, now: float) -> None:
        """The link dropped: forget calls in flight, keep the queue, schedule a reconnect with back-off."""
        if not self.link_up:
            return
        self._link_down(now)
        self._schedule_reconnect(now)

    def connection_failed(self, now: float) -> None:
        """A connection attempt failed: try again after the next back-off."""
        self._schedule_reconnect(now)

    def wants_connection(self, now: float) -> bool:
        """True when the link is down and the charger wants the shell to (re)connect now."""
        return not self.link_up and (self._reconnect_at is None or now >= self._reconnect_at)

    @property
    def reconnect_at(self) -> float | None:
        return None if self.link_up else self._reconnect_at

    def close_requested(self) -> bool:
        """True once after the charger dropped the link itself (a reset): the shell closes the socket."""
        requested, self._close_requested = self._close_requested, False
        return requested

    def backoff_s(self, attempt: int) -> float:
        """Reconnect delay after ``attempt`` failures: base × 2^min(attempt, repeats) ± random range."""
        base = self.config.integer("backoff_min")
        doublings = min(attempt, self.config.integer("backoff_repeat_times"))
        spread = self.config.integer("backoff_random_range")
        return max(0.0, base * 2**doublings + self.rng.uniform(-spread, spread))

    def _schedule_reconnect(self, now: float) -> None:
        self._reconnect_at = now + self.backoff_s(self._attempt)
        self._attempt += 1

    def _link_down(self, now: float) -> None:
        self.link_up = False
        self._boot_in_flight = False
        self._heartbeat_at = None
        self._boot_at = None
        for event in self.rpc.cancel_all(now):
            self._complete(event.pending, now)
        self.rpc.frames_to_send()  # nothing queued for a dead socket survives it
        self._tx_inflight = None

    # ==== frames ===========================================================================================
    def receive_frame(self, text: str | bytes, now: float) -> None:
        """One frame from the CSMS. Every CALL gets exactly one answer (a CALLRESULT or a CALLERROR)."""
        if not self.link_up:
            return
        for event in self.rpc.receive_frame(text, now):
            if isinstance(event, IncomingCall):
                self._serve(event.call, now)
            elif isinstance(event, CallCompleted):
                self._complete(event.pending, now)
        self._run_after(now)

    def _serve(self, call: Call, now: float) -> None:
        if self.registration in (Registration.UNREGISTERED, Registration.REJECTED):
            # Not (yet) registered: the CSMS may not send us anything (1.6 §4.2, 2.0.1 B02/B03).
            self.rpc.reply_error(call, OcppError(ErrorKind.SECURITY, "the station is not registered"))
            return
        try:
            payload = self._handlers[call.action](call.payload, now)
        except OcppError as exc:
            self._after.clear()
            self.rpc.reply_error(call, exc)
            return
        except Exception as exc:  # a bug of ours must not take the station down; tests check the counter
            self._after.clear()
            self.counters.internal_errors.append(f"{call.action}: {type(exc).__name__}: {exc}")
            self.rpc.reply_error(call, OcppError(ErrorKind.INTERNAL, type(exc).__name__))
            return
        try:
            schemas.validate(self.version, call.action, "response", payload)
        except OcppError as exc:  # our own answer broke the schema: a bug of ours
            self._after.clear()
            self.counters.internal_errors.append(f"{call.action} answer: {exc.description}")
            self.rpc.reply_error(call, OcppError(ErrorKind.INTERNAL, "the station could not answer"))
            return
        self.rpc.reply(call, payload)

    def after_reply(self, action: Callable[[float], None]) -> None:
        """Run ``action`` once the current CALL has been answered (messages that must follow the answer)."""
        self._after.append(action)

    def _run_after(self, now: float) -> None:
        while self._after:
            try:
                self._after.pop(0)(now)
            except ConnectorError as exc:  # our state machine refused: a bug of ours, not the CSMS's
                self.counters.internal_errors.append(f"{type(exc).__name__}: {exc}")

    def send(self, action: str, payload: dict[str, Any], now: float, on_done: Callback | None = None) -> bool:
        """Send a non-transaction CALL; False (and dropped) when the link is down."""
        if not self.link_up:
            self.counters.dropped_calls.append(action)
            return False
        pending = self.rpc.send_call(action, payload, now)
        if on_done is not None:
            self._callbacks[pending.call.unique_id] = on_done
        return True

    def _complete(self, pending: PendingCall, now: float) -> None:
        callback = self._callbacks.pop(pending.call.unique_id, None)
        if callback is not None:
            callback(pending, now)

    # ==== output ===========================================================================================
    def frames_to_send(self) -> list[str]:
        return self.rpc.frames_to_send() if self.link_up else []

    def next_deadline(self) -> float | None:
        """The earliest instant :meth:`handle_timer` has something to do (or the reconnect is due)."""
        times = [
            self.rpc.next_deadline(),
            self._boot_at,
            self._heartbeat_at,
            self._reboot_at,
            None if self.link_up else self._reconnect_at,
            self._tx_retry_at if self.queue.head() is not None and self.online and self._tx_inflight is None else None,
            *(tx.next_sample_at for tx in self.transactions.values()),
            *self._connection_timeout_at.values(),
            *self._limit_check_at.values(),
        ]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    # ==== time =============================================================================================
    def handle_timer(self, now: float) -> None:
        for event in self.rpc.handle_timer(now):
            if isinstance(event, CallCompleted):
                self._complete(event.pending, now)
        if self._boot_at is not None and now >= self._boot_at:
            self._boot_at = None
            self._send_boot(now)
        if self._heartbeat_at is not None and now >= self._heartbeat_at:
            self.send_heartbeat(now)
        for tx in list(self.transactions.values()):
            if tx.next_sample_at is not None and now >= tx.next_sample_at:
                interval = self.config.integer("sample_interval")
                while tx.next_sample_at is not None and tx.next_sample_at <= now:
                    tx.next_sample_at = tx.next_sample_at + interval if interval > 0 else None
                readings = self.readings(tx.connector_id, now)
                register = next((r.value for r in readings if r.measurand == ENERGY_REGISTER), None)
                self.queue_message(self.protocol.tx_meter_values(tx, readings, now), now, register_wh=register)
        for cid, deadline in list(self._connection_timeout_at.items()):
            if now >= deadline:
                del self._connection_timeout_at[cid]
                self._connection_timed_out(self.connectors[cid], now)
        for cid, deadline in list(self._limit_check_at.items()):
            if now >= deadline:
                del self._limit_check_at[cid]
                self._update_limits(now)
        if self._reboot_at is not None and now >= self._reboot_at:
            self._reboot_at = None
            self._go_down(now)
        self._pump(now)
        self._run_after(now)

    # ==== registration and heartbeat =======================================================================
    def _send_boot(self, now: float) -> None:
        if self._boot_in_flight or not self.link_up:
            return
        self._boot_in_flight = True
        self.send("BootNotification", self.protocol.boot_payload(self.boot_reason), now, self._boot_answered)

    def trigger_boot(self, now: float) -> None:
        self._boot_at = None
        self._send_boot(now)

    def _boot_answered(self, pending: PendingCall, now: float) -> None:
        self._boot_in_flight = False
        if pending.outcome is Outcome.CANCELLED:
            return
        if pending.outcome is not Outcome.RESULT or pending.payload is None:
            self._boot_at = now + self.boot_retry_s
            return
        status, interval = pending.payload["status"], int(pending.payload["interval"])
        if status != "Accepted":
            self.registration = Registration(status)
            self._boot_at = now + (interval if interval > 0 else self.boot_retry_s)
            return
        self.registration = Registration.ACCEPTED
        self.boot_reason = "PowerUp"
        if interval > 0:
            self.config.set_setting("heartbeat_interval", str(interval))
        self._heartbeat_at = now + self.config.integer("heartbeat_interval")
        for status_message in self.protocol.all_status_payloads(now):
            self.send("StatusNotification", status_message, now)
        for c in self.connectors.values():
            c.reported_status = c.status
        self._pump(now)

    def send_heartbeat(self, now: float) -> None:
        interval = self.config.integer("heartbeat_interval")
        self._heartbeat_at = now + interval if interval > 0 and self.link_up else None
        self.send("Heartbeat", {}, now)

    def setting_changed(self, setting: str, now: float) -> None:
        """A configuration write took effect: re-arm what reads it."""
        if setting == "heartbeat_interval" and self.registration is Registration.ACCEPTED and self.link_up:
            interval = self.config.integer("heartbeat_interval")
            self._heartbeat_at = now + interval if interval > 0 else None
        elif setting == "sample_interval":
            interval = self.config.integer("sample_interval")
            for tx in self.transactions.values():
                tx.next_sample_at = now + interval if interval > 0 else None
        elif setting == "local_list_max":
            self.auth.local_list.max_length = self.config.integer("local_list_max")

    # ==== statuses =========================================================================================
    def send_status(self, c: Connector, now: float) -> None:
        if self.link_up and self.registration is Registration.ACCEPTED:
            self.send("StatusNotification", self.protocol.status_payload(c, now), now)
            c.reported_status = c.status

    def refresh(self, c: Connector, now: float, *, quiet_charging_state: bool = False) -> None:
        """Re-derive the connector's status; notify the CSMS of a change (and 2.0.1 of a chargingState)."""
        status_changed, state_changed = c.refresh()
        if status_changed:
            self.send_status(c, now)
        if c.pending_inoperative is not None and not self._busy(c):
            # A scheduled availability change, applied once the connector is free (as a second step:
            # 1.6 has e.g. Preparing -> Available -> Unavailable but no Preparing -> Unavailable).
            c.inoperative, c.pending_inoperative = c.pending_inoperative, None
            if c.refresh()[0]:
                self.send_status(c, now)
        tx = self.transactions.get(c.connector_id)
        if state_changed and tx is not None and not quiet_charging_state:
            self.queue_message(self.protocol.tx_charging_state_changed(tx, now), now)

    def _busy(self, c: Connector) -> bool:
        """Availability changes wait: a transaction runs, or (1.6) Preparing cannot go Unavailable directly."""
        return c.in_transaction or (self.version == OCPP16 and c.derive()[0] == PREPARING)

    # ==== physical events ==================================================================================
    def plug_in(self, connector_id: int, id_token: str | None, now: float, token_type: str = "ISO14443") -> None:
        """A vehicle plugs in; with ``id_token`` the driver presents it at once (else: wait for remote start).

        Raises:
            IllegalEvent: a cable is already plugged into this connector.
        """
        c = self.connectors[connector_id]
        c.plug()
        c.finishing = False
        self._connection_timeout_at.pop(connector_id, None)
        self.refresh(c, now)
        if c.authorized_waiting and connector_id in self._pending_starts:
            self._start_transaction(c, now)
        elif id_token is not None:
            self.present_token(connector_id, id_token, now, token_type)
        self._run_after(now)

    def present_token(self, connector_id: int, id_token: str, now: float, token_type: str = "ISO14443") -> None:
        """The driver presents a token: stops the connector's transaction if it is theirs, else authorizes."""
        c = self.connectors[connector_id]
        tx = self.transactions.get(connector_id)
        if tx is not None:
            if tx.id_token == id_token:
                self.stop_transaction(tx, "Local", now)
            return
        if c.can_start:
            self._authorize(c, id_token, token_type, now, remote_start_id=None)

    def unplug(self, connector_id: int, now: float) -> None:
        """The vehicle leaves. A running transaction ends with EVDisconnected.

        Raises:
            IllegalEvent: nothing is plugged into this connector.
        """
        c = self.connectors[connector_id]
        tx = self.transactions.get(connector_id)
        if not c.plugged:
            c.unplug()  # raises IllegalEvent
        if tx is not None and self.config.flag("stop_on_ev_side_disconnect"):
            self.stop_transaction(tx, "EVDisconnected", now, unplugging=True)
        c.unplug()
        c.authorized_waiting = False
        self._pending_starts.pop(connector_id, None)
        self.refresh(c, now)
        self._reset_if_idle(now)

    def ev_suspended(self, connector_id: int, suspended: bool, now: float) -> None:
        """The vehicle stopped (True) or resumed (False) drawing power."""
        c = self.connectors[connector_id]
        c.ev_suspended = suspended
        self.refresh(c, now)

    def fault(self, connector_id: int, error_code: str, now: float) -> None:
        """A fault on the connector: a running transaction ends (reason Other), the status is Faulted."""
        c = self.connectors[connector_id]
        c.faulted, c.error_code = True, error_code
        tx = self.transactions.get(connector_id)
        if tx is not None:
            self.stop_transaction(tx, "Other", now)
        self.refresh(c, now)

    def emergency_stop(self, connector_id: int, now: float) -> None:
        """The emergency button: the connector's transaction ends with EmergencyStop."""
        tx = self.transactions.get(connector_id)
        if tx is not None:
            self.stop_transaction(tx, "EmergencyStop", now)

    def power_loss(self, now: float, duration_s: float | None = None) -> None:
        """The station loses power: transactions end with PowerLoss, the link drops, it boots when back
        (after ``duration_s``, default ``reboot_s``)."""
        for tx in list(self.transactions.values()):
            self.stop_transaction(tx, "PowerLoss", now)
        self._go_down(now)
        self.boot_reason = "PowerUp"
        if duration_s is not None:
            self._reconnect_at = now + duration_s

    def clear_fault(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        c.faulted, c.error_code = False, "NoError"
        self.refresh(c, now)

    # ==== authorization and transactions ===================================================================
    @property
    def online(self) -> bool:
        return self.link_up and self.registration is Registration.ACCEPTED

    def local_lookup(self, token: str, now: float) -> IdTokenInfo | None:
        return self.auth.lookup(
            token,
            now,
            use_list=self.config.flag("local_list_enabled"),
            use_cache=self.config.flag("auth_cache_enabled"),
        )

    def remember(self, token: str | None, info: IdTokenInfo | None) -> None:
        """Cache what the CSMS said about a token (when the cache is on)."""
        if token and info is not None and self.config.flag("auth_cache_enabled"):
            self.auth.cache.update(token, info)

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
    ) -> None:
        start = _PendingStart(token, token_type, remote_start_id, profile, "RemoteStart" if remote else "Authorized")
        local = self.local_lookup(token, now)
        if remote and not self.config.flag("authorize_remote"):
            self._authorized(c, start, now)
        elif self.online and not (self.config.flag("local_pre_authorize") and local is not None and local.accepted):

            def answered(pending: PendingCall, when: float) -> None:
                if pending.outcome is Outcome.RESULT and pending.payload is not None:
                    info = self.protocol.parse_id_info(pending.payload)
                    self.remember(token, info)
                    if info.accepted:
                        self._authorized(c, start, when)
                    else:
                        self._not_authorized(c, when)
                else:
                    self._offline_authorize(c, start, local, when)

            c.authorized_waiting = True  # 1.6: Preparing while we ask
            self.refresh(c, now)
            self.send("Authorize", self.protocol.authorize_payload(token, token_type), now, answered)
        elif self.online:
            self._authorized(c, start, now)
        else:
            self._offline_authorize(c, start, local, now)

    def _offline_authorize(self, c: Connector, start: _PendingStart, local: IdTokenInfo | None, now: float) -> None:
        known_ok = local is not None and local.accepted and self.config.flag("local_authorize_offline")
        unknown_ok = local is None and self.config.flag("allow_offline_unknown")
        if known_ok or unknown_ok:
            self._authorized(c, start, now)
        else:
            self._not_authorized(c, now)

    def _not_authorized(self, c: Connector, now: float) -> None:
        c.authorized_waiting = False
        self._pending_starts.pop(c.connector_id, None)
        self.refresh(c, now)

    def _authorized(self, c: Connector, start: _PendingStart, now: float) -> None:
        if not c.can_start:
            self._not_authorized(c, now)
            return
        c.authorized_waiting = True
        self._pending_starts[c.connector_id] = start
        if c.plugged:
            self._start_transaction(c, now)
        else:
            self._connection_timeout_at[c.connector_id] = now + self.config.integer("connection_timeout")
            self.refresh(c, now)

    def _connection_timed_out(self, c: Connector, now: float) -> None:
        if c.authorized_waiting and not c.plugged:
            self._not_authorized(c, now)

    def _start_transaction(self, c: Connector, now: float) -> None:
        if c.finishing:  # 1.6: Finishing -> Preparing -> Charging (no direct transition)
            c.finishing = False
            self.refresh(c, now)
        start = self._pending_starts.pop(c.connector_id)
        self._connection_timeout_at.pop(c.connector_id, None)
        self._tx_counter += 1
        tx = Transaction(
            key=self._tx_counter,
            connector_id=c.connector_id,
            id_token=start.token,
            token_type=start.token_type,
            started_at=now,
            meter_start_wh=self.meter.energy_wh(c.connector_id),
            remote_start_id=start.remote_start_id,
            remote_profile=start.profile,
            trigger=start.trigger,
        )
        tx.transaction_id = self.protocol.new_transaction_id()
        self.transactions[c.connector_id] = tx
        self.history.append(tx)
        c.authorized_waiting = False
        c.in_transaction = True
        c.finishing = False
        c.evse_suspended = False
        self.profiles.start_transaction(c.connector_id, tx.transaction_id or f"pending-{tx.key}", now)
        if start.profile is not None and self.smart_charging is not Firmware.REJECT:
            self.protocol.install_remote_profile(tx, start.profile, now)
        interval = self.config.integer("sample_interval")
        tx.next_sample_at = now + interval if interval > 0 else None
        # The start message carries the new chargingState; the StatusNotification follows it.
        status_changed, _ = c.refresh()
        self.queue_message(
            self.protocol.tx_started(tx, self.readings(c.connector_id, now, "started"), now),
            now,
            phase="start",
            register_wh=tx.meter_start_wh,
        )
        if status_changed:
            self.send_status(c, now)
        self._update_limits(now)

    def stop_transaction(self, tx: Transaction, reason: str, now: float, *, unplugging: bool = False) -> None:
        """End ``tx`` with ``reason`` (1.6 spelling, one of :data:`STOP_REASONS`)."""
        assert reason in STOP_REASONS, reason
        c = self.connectors[tx.connector_id]
        tx.ended_at, tx.stop_reason = now, reason
        tx.meter_stop_wh = self.meter.energy_wh(tx.connector_id)
        tx.next_sample_at = None
        del self.transactions[tx.connector_id]
        self.queue_message(
            self.protocol.tx_ended(tx, self.readings(tx.connector_id, now, "ended"), now),
            now,
            phase="end",
            register_wh=tx.meter_stop_wh,
        )
        self.profiles.end_transaction(tx.connector_id)
        self._limit_check_at.pop(tx.connector_id, None)
        c.in_transaction = False
        c.evse_suspended = False
        c.finishing = c.plugged and not unplugging
        if not unplugging:
            self.refresh(c, now, quiet_charging_state=True)
            self._reset_if_idle(now)

    def transaction_answered(self, tx_key: int, info: IdTokenInfo | None, now: float) -> None:
        """The CSMS answered a start/event carrying an id token: deauthorize a running tx it refuses."""
        tx = next((t for t in self.transactions.values() if t.key == tx_key), None)
        if tx is None or info is None:
            return
        self.remember(tx.id_token, info)
        if info.accepted or tx.deauthorized:
            return
        tx.deauthorized = True
        if self.config.flag("stop_on_invalid_id"):
            self.stop_transaction(tx, "DeAuthorized", now)
        else:
            self.connectors[tx.connector_id].evse_suspended = True
            self.refresh(self.connectors[tx.connector_id], now)

    def transaction_by_id(self, transaction_id: int | str) -> Transaction | None:
        return next((t for t in self.transactions.values() if str(t.transaction_id) == str(transaction_id)), None)

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
        if self.registration is not Registration.ACCEPTED or self.station_inoperative:
            return False
        if connector_id is None:
            free = [c for c in self.connectors.values() if c.can_start and not c.authorized_waiting]
            plugged = [c for c in free if c.plugged]
            chosen = (plugged or free or [None])[0]
        else:
            chosen = self.connectors.get(connector_id)
        if chosen is None or not chosen.can_start or chosen.authorized_waiting:
            return False
        target = chosen
        self.after_reply(
            lambda when: self._authorize(
                target, token, token_type, when, remote_start_id=remote_start_id, remote=True, profile=profile
            )
        )
        return True

    # ==== meter values =====================================================================================
    def readings(self, connector_id: int, now: float, which: str = "sampled") -> list[Reading]:
        """Sample the twin's meter: the measurands configured for ``which`` (sampled/started/ended)."""
        measurands = self.config.members(f"{which}_measurands")
        spec = self.connectors[connector_id].spec
        out: list[Reading] = []
        for m in measurands:
            if m == ENERGY_REGISTER:
                out.append(Reading(m, self.meter.energy_wh(connector_id), "Wh"))
            elif m == "Power.Active.Import":
                out.append(Reading(m, self.meter.power_w(connector_id), "W"))
            elif m == "Power.Offered":
                limit = self.limit_w(connector_id, now)
                out.append(Reading(m, spec.max_power_w if limit is None else min(limit, spec.max_power_w), "W"))
            elif m == "Current.Import":
                currents = self.meter.current_a(connector_id)
                if spec.dc:
                    out.append(Reading(m, sum(currents), "A"))
                else:
                    phases = ("L1", "L2", "L3")[: spec.phases]
                    out.extend(Reading(m, i, "A", p) for i, p in zip(currents, phases, strict=False))
            elif m == "Current.Offered":
                out.append(Reading(m, spec.max_current_a, "A"))
            elif m == "Voltage":
                out.append(Reading(m, self.meter.voltage_v(connector_id), "V"))
            elif m == "SoC" and spec.dc:
                soc = self.meter.soc(connector_id)
                if soc is not None:
                    out.append(Reading(m, soc, "Percent"))
        return out

    def send_meter_values(self, connector_id: int, now: float) -> None:
        """Triggered meter values (not part of a transaction's queue)."""
        self.send(
            "MeterValues", self.protocol.meter_values_payload(connector_id, self.readings(connector_id, now), now), now
        )

    # ==== the transaction-message queue ====================================================================
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
        self._pump(now)

    def _pump(self, now: float) -> None:
        if not self.online or self._tx_inflight is not None:
            return
        if self._tx_retry_at is not None and now < self._tx_retry_at:
            return
        while (head := self.queue.head()) is not None:
            payload = self.protocol.prepare(head)
            if payload is None:  # it refers to a transaction whose start was never acknowledged
                self.queue.discard(head)
                continue
            self._tx_inflight = head
            self._tx_retry_at = None
            message = head

            def done(pending: PendingCall, when: float, message: QueuedMessage = message) -> None:
                self._tx_done(message, pending, when)

            self.send(head.action, payload, now, done)
            return

    def _tx_done(self, message: QueuedMessage, pending: PendingCall, now: float) -> None:
        self._tx_inflight = None
        if pending.outcome is Outcome.CANCELLED:
            return
        if pending.outcome is Outcome.RESULT and pending.payload is not None:
            self.queue.pop()
            self._acknowledged(message)
            self.protocol.tx_answered(message, pending.payload, now)
        else:
            message.attempts += 1
            if message.attempts >= max(1, self.config.integer("tx_message_attempts")):
                self.queue.discard(message)
            else:
                self._tx_retry_at = now + self.config.integer("tx_message_retry_interval") * message.attempts
                return
        self._pump(now)

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

    # ==== reset and availability ===========================================================================
    def reset(self, kind: str, now: float) -> str:
        """Reset: ``kind`` Hard/Soft (1.6) or Immediate/OnIdle (2.0.1). Returns Accepted or Scheduled."""
        if kind == "OnIdle" and self.transactions:
            self._reset_when_idle = kind
            return "Scheduled"
        reason = {"Hard": "HardReset", "Soft": "SoftReset", "Immediate": "HardReset", "OnIdle": "HardReset"}[kind]

        def stop_all(when: float) -> None:
            for tx in list(self.transactions.values()):
                self.stop_transaction(tx, reason, when)
            self._reboot_at = when + self.reset_delay_s

        self.after_reply(stop_all)
        return "Accepted"

    def _reset_if_idle(self, now: float) -> None:
        if self._reset_when_idle is not None and not self.transactions:
            self._reset_when_idle = None
            self._reboot_at = now + self.reset_delay_s

    def _go_down(self, now: float) -> None:
        """Reboot: drop the link, forget registration and volatile state, come back after ``reboot_s``."""
        if self.link_up:
            self._link_down(now)
            self._close_requested = True
        self.registration = Registration.UNREGISTERED
        self.boot_reason = "RemoteReset"
        self._tx_retry_at = None
        for c in self.connectors.values():
            c.authorized_waiting = False
            c.reported_status = None
        self._pending_starts.clear()
        self._connection_timeout_at.clear()
        self._attempt = 0
        self._reconnect_at = now + self.reboot_s
        if self.on_reboot is not None:
            self.on_reboot(now)

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
            if self._busy(c) and c.inoperative != (not operative):
                c.pending_inoperative = not operative
                scheduled = True
            else:
                c.inoperative, c.pending_inoperative = not operative, None
                self.after_reply(lambda when, c=c: self.refresh(c, when))
        return "Scheduled" if scheduled else "Accepted"

    def unlock(self, connector_id: int, now: float) -> str:
        """Unlock: Unlocked (stopping a running transaction, 1.6), OngoingAuthorizedTransaction (2.0.1)."""
        if connector_id not in self.connectors:
            return "UnknownConnector"
        tx = self.transactions.get(connector_id)
        if tx is not None:
            if self.version != OCPP16:
                return "OngoingAuthorizedTransaction"
            self.after_reply(lambda when: self.stop_transaction(tx, "UnlockCommand", when))
        return "Unlocked"

    # ==== smart charging ===================================================================================
    def set_charging_profile(self, install: Callable[[], SetProfileOutcome], now: float) -> SetProfileOutcome:
        """Run the version's ``install`` of a SetChargingProfile, unless the firmware rejects them all."""
        if self.smart_charging is Firmware.REJECT:
            return _FIRMWARE_REJECTS
        outcome = install()
        self.profiles_changed(now)
        return outcome

    def limit_w(self, connector_id: int, now: float) -> float | None:
        """The charging-profile limit in force on the connector [W], None when no profile limits it (or the
        firmware ignores profiles)."""
        if self.smart_charging is Firmware.IGNORE:
            return None
        spec = self.connectors[connector_id].spec
        limit = self.profiles.limit_at(
            connector_id, now, unit=RateUnit.W, volts_per_phase=spec.voltage_v, phases=1 if spec.dc else spec.phases
        )
        return None if limit is None else limit.value

    def next_limit_change(self, connector_id: int, now: float) -> float | None:
        """When :meth:`limit_w` next changes (the twin re-evaluates power then)."""
        return self.profiles.next_change(connector_id, now)

    def profiles_changed(self, now: float) -> None:
        self.after_reply(self._update_limits)

    def _update_limits(self, now: float) -> None:
        """A limit of 0 W suspends the EVSE (SuspendedEVSE); re-check when the composite next changes."""
        for cid, c in self.connectors.items():
            tx = self.transactions.get(cid)
            if tx is None:
                self._limit_check_at.pop(cid, None)
                continue
            limit = self.limit_w(cid, now)
            c.evse_suspended = tx.deauthorized or (limit is not None and limit <= 0)
            self.refresh(c, now)
            change = self.next_limit_change(cid, now)
            if change is None:
                self._limit_check_at.pop(cid, None)
            else:
                self._limit_check_at[cid] = change

    # ==== the twin's view ==================================================================================
    def is_energizing(self, connector_id: int) -> bool:
        """True while a transaction runs on the connector and neither the EV nor the EVSE suspends it."""
        c = self.connectors[connector_id]
        if connector_id in self.stuck:
            return False
        return c.in_transaction and c.plugged and not (c.ev_suspended or c.evse_suspended or c.faulted)

    def status(self, connector_id: int) -> str:
        return self.connectors[connector_id].status


_FIRMWARE_REJECTS = SetProfileOutcome(ProfileStatus.REJECTED, None, "NotSupported", "smart charging is off")


@dataclass(frozen=True, slots=True)
class _PendingStart:
    token: str
    token_type: str
    remote_start_id: int | None
    profile: dict[str, Any] | None
    trigger: str
