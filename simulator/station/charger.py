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

:class:`Charger` is the facade: it owns the link and its back-off, the RPC endpoint (dispatching the
CSMS's calls to the version module's handlers), the connector statuses and the deadlines
(:mod:`.timers`). The jobs live beside it, each with its own table: registration and heartbeats
(:mod:`.registration`), authorization, transactions, meter values and the transaction-message queue
(:mod:`.transactions`), reset, availability and unlock (:mod:`.operations`), firmware updates and log
uploads (:mod:`.maintenance`; their downloads and uploads are outputs too, :meth:`~Charger.transfers_to_start`,
whose results come back through :meth:`~Charger.transfer_done`). The version module
(:mod:`.v16` or :mod:`.v201`, same method names) builds and reads payloads and answers the CSMS's calls,
seeing the charger only through :class:`~.firmware.FirmwareCore`.

Sending: transaction messages always pass through the queue and only its head is in flight, so they reach
the CSMS in order even across timeouts and disconnections; other messages go straight to the RPC endpoint
(one outstanding CALL, FIFO) when the link is up, and are dropped when it is down (statuses that changed
meanwhile are re-sent after reconnecting). Meter readings come from an injected :class:`MeterSource`;
randomness (message-id prefix, transaction ids, reconnect jitter) from an injected ``random.Random``
(or :class:`~.draws.SeededDraws`, the same draws without holding the generator's state).

Decisions the specs leave open (one place to look them up; the jobs' modules explain their own):

* The meter-value timer restarts at ``now + interval`` when the interval is changed.
* Clock-aligned meter values count their intervals from UTC midnight (the twin keeps no local clock); they are
  read at the aligned instant and dated by it; a changed interval re-arms at its next aligned instant.
* ``is_energizing`` is False while either the EV (full) or the EVSE (0 W limit, refused token) suspends.
* Reconnect back-off: ``base × 2^min(attempt, repeats) ± uniform(range)``; 1.6 has no standard keys for
  it, so it reads the vendor keys ``ReconnectBackOff*`` (2.0.1: ``OCPPCommCtrlr.RetryBackOff*``).
* A reboot (reset or power loss) drops the link and reconnects after ``reboot_s``.
* Statuses that changed while offline are sent after reconnecting; heartbeats and other non-transaction
  messages are not queued.
* Heartbeats come after ``HeartbeatInterval`` of inactivity (the spec's definition; any exchange either way,
  dated by the frame the charger sends in it, restarts it) or every interval (``heartbeat="periodic"``, what
  many chargers do): :mod:`.registration`.
* Due deadlines are handled kind by kind, in this order: CALL timeouts, boot retry, heartbeat, meter
  samples, clock-aligned meter values, connection timeouts, limit changes, reboot, then the transaction-message queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from csms.ocpp import schemas
from csms.ocpp.errors import ErrorKind, OcppError
from csms.ocpp.framing import Call
from csms.ocpp.rpc import CallCompleted, IncomingCall, PendingCall, RpcEndpoint
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, Version
from simulator.station import v16, v201
from simulator.station.auth import IdTokenInfo, LocalAuthorization
from simulator.station.config import Configuration
from simulator.station.connector import FAULTED, UNAVAILABLE, Connector, ConnectorError, ConnectorSpec
from simulator.station.cost_display import CostDisplay
from simulator.station.display import Display
from simulator.station.draws import Draws
from simulator.station.firmware import FirmwareCore, Handler, VersionAdapter
from simulator.station.iso15118 import EvNeeds, needs_payload
from simulator.station.maintenance import Maintenance
from simulator.station.monitoring import Monitoring
from simulator.station.offline_queue import OfflineQueue, QueuedMessage
from simulator.station.operations import Operations
from simulator.station.payment_terminal import PaymentTerminal
from simulator.station.registration import INACTIVITY, SERVES_CALLS, Registrar, Registration, StationIdentity
from simulator.station.reservations import REJECTED, Reservations
from simulator.station.security import StationSecurity
from simulator.station.security_ops import SecurityOperations
from simulator.station.smart_charging import Firmware, ProfileStatus, ProfileStore, RateUnit, SetProfileOutcome
from simulator.station.timers import Deadlines, Timer
from simulator.station.transactions import MeterSource, Reading, Transaction, Transactions
from simulator.station.transfers import Transfer, TransferResult
from simulator.station.vendors import PROFILES, VendorFirmware, VendorProfile, config_entries

#: The charger's parts whose methods answer CSMS calls (``None``: the charger itself).
_HANDLER_OWNERS = (None, "protocol", "security_ops", "display", "costs", "monitoring", "maintenance")
#: One dispatch table per kind of charger (version, adapter, parts): a fleet of thousands shares a few.
_TABLES: dict[tuple[Any, ...], dict[str, tuple[str | None, Callable[..., Any]]]] = {}


def _dispatch_table(charger: Any, handlers: dict[str, Handler]) -> dict[str, tuple[str | None, Callable[..., Any]]]:
    """``action -> (owner, function)``: each handler as the function of the part of the charger it belongs to, so
    the table can be shared by every charger of its kind instead of holding bound methods per charger (owner ""
    is the charger). A handler that is no part's method (a closure) makes a table of this charger's own, each
    entry ``(None, handler)``."""
    owners = {id(charger if name is None else getattr(charger, name)): name for name in _HANDLER_OWNERS}
    rows: list[tuple[str, str | None, Callable[..., Any]]] = []
    for action, handler in handlers.items():
        bound = getattr(handler, "__self__", None)
        function = getattr(handler, "__func__", None)
        if bound is None or function is None or id(bound) not in owners:
            return {a: (None, h) for a, h in handlers.items()}
        rows.append((action, owners[id(bound)], function))
    key = tuple(rows)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = {action: (owner or "", function) for action, owner, function in rows}
    return table


__all__ = ["Charger", "Counters", "MeterSource", "Reading", "Registration", "StationIdentity", "Transaction"]

Callback = Callable[[PendingCall, float], None]

#: The version module of each OCPP version.
#: A 2.1 charger is the 2.0.1 firmware speaking ``ocpp2.1`` (the 2.1-only blocks are not simulated).
ADAPTERS: dict[Version, Callable[[FirmwareCore], VersionAdapter]] = {
    OCPP16: v16.Protocol,
    OCPP201: v201.Protocol,
    OCPP21: v201.Protocol,
}


@dataclass(slots=True)
class Counters:
    """What happened, for tests and the twin's report."""

    dropped_calls: list[str] = field(default_factory=list)  # non-transaction messages lost while offline
    internal_errors: list[str] = field(default_factory=list)  # our own bugs, answered InternalError


class Charger:
    """One charging station's firmware.

    Args:
        station_id: the identity the CSMS knows.
        version: ``OCPP16`` or ``OCPP201``.
        meter: the twin's meters.
        rng: the run's random generator (message-id prefix, 2.0.1 transaction ids, reconnect jitter).
        connectors: how many connectors (1.6) / EVSEs with one connector each (2.0.1), or their specs.
        config: overrides of configuration keys / device-model variables by wire name.
        queue_capacity: transaction messages kept while offline.
        reset_delay_s: from a Reset's answer to going down; ``reboot_s``: from going down to reconnecting.
        boot_retry_s: retry after a BootNotification failed, or was answered with interval 0.
        smart_charging: whether the firmware obeys charging profiles (``compliant``), answers them
            Rejected (``reject``) or accepts and ignores them (``ignore``).
        vendor: the vendor profile whose quirks the firmware has (:mod:`.vendors`; None: the spec's).
        install_s: how long installing a downloaded firmware image takes, before its reboot.
        log_bytes: how much of its recent frames (text) the charger keeps for GetDiagnostics/GetLog files.
        heartbeat: ``inactivity`` (the spec's: a Heartbeat after an interval without exchanges) or ``periodic``
            (one every interval); None: the vendor profile's, else ``inactivity``.
    """

    # A fleet holds thousands: attributes in slots, not an instance dict (the charger has more attributes than
    # CPython shares the keys of, so each charger's dict was a table of its own, 1.7 kB). ``__dict__`` stays for
    # what a test or shell sets on one charger (a spy in place of a method).
    __slots__ = (
        "__dict__", "_after", "_after_connect", "_attempt", "_callbacks", "_close_requested", "_dispatch",
        "_frames", "_handlers", "_ops", "_registrar", "_tx", "_vendor_data", "auth", "config", "connectors", "costs",
        "counters", "display", "ev_needs", "identity", "link_up", "maintenance", "meter", "monitoring", "on_reboot",
        "payment_terminal", "profiles", "protocol", "queue", "reboot_s", "reservations", "rng", "rpc", "security",
        "security_ops", "smart_charging", "station_id", "stuck", "timers", "vendor", "version",
    )  # fmt: skip

    def __init__(  # noqa: PLR0913, PLR0915 - one keyword-only option per firmware setting a scenario can give; one part each
        self,
        station_id: str,
        version: Version,
        *,
        meter: MeterSource,
        rng: Draws,
        connectors: int | Sequence[ConnectorSpec] = 1,
        config: Mapping[str, str] | None = None,
        identity: StationIdentity | None = None,
        queue_capacity: int = 1000,
        call_timeout_s: float = 30.0,
        reset_delay_s: float = 1.0,
        reboot_s: float = 10.0,
        boot_retry_s: float = 60.0,
        smart_charging: Firmware | str = Firmware.COMPLIANT,
        security: StationSecurity | None = None,
        vendor: VendorProfile | None = None,
        install_s: float = 20.0,
        log_bytes: int = 2048,
        payment_terminal: bool = False,
        heartbeat: str | None = None,
    ) -> None:
        specs = [ConnectorSpec() for _ in range(connectors)] if isinstance(connectors, int) else list(connectors)
        self.station_id = station_id
        self.version = version
        self.meter = meter
        self.rng = rng
        self.identity = identity or StationIdentity(serial_number=station_id)
        profile = vendor or PROFILES["spec"]
        overrides = {**profile.config_overrides(version), **(config or {})}
        self.config = Configuration(version, overrides, extra=config_entries(profile, version))
        self.config.set_setting("number_of_connectors", str(len(specs)))
        self.connectors: dict[int, Connector] = {
            i: Connector(i, version, spec) for i, spec in enumerate(specs, start=1)
        }
        self.auth = LocalAuthorization()
        self.profiles = ProfileStore(len(specs))
        self.smart_charging = Firmware(smart_charging)
        #: What the ISO 15118 EV on each connector asks for (2.0.1; see :mod:`.iso15118`).
        self.ev_needs: dict[int, EvNeeds] = {}
        self.queue = OfflineQueue(queue_capacity)
        self.counters = Counters()
        self.reboot_s = reboot_s
        self.timers = Deadlines()
        self.reservations = Reservations(self.connectors)

        self.protocol = ADAPTERS[version](self)
        self._handlers: dict[str, Handler] = self.protocol.handlers()
        self.rpc = RpcEndpoint(
            version,
            accepts=self._accepts,  # a bound method: lighter than a closure over the charger
            call_timeout_s=call_timeout_s,
            id_prefix=f"{rng.getrandbits(32):08x}-",
        )
        self._callbacks: dict[str, Callback] = {}
        self._after: list[Callable[[float], None]] = []
        self._after_connect: list[Callable[[float], None]] = []
        #: How the charger connects and what it holds for it (profile, password, key, certificates).
        self.security = security or StationSecurity(station_id)
        self.security_ops = SecurityOperations(self, self.security)
        self._handlers.update(self.security_ops.handlers())
        #: The messages the CSMS set on the display, and what it shows (:meth:`Display.shown`).
        self.display = Display(self)
        #: The prices and costs the CSMS sent for the driver, as the display showed them last.
        self.costs = CostDisplay(self)
        #: A payment terminal beside the RFID reader (2.0.1): guests pay by card.
        self.payment_terminal = PaymentTerminal(rng) if payment_terminal else None
        self._handlers.update(self.display.handlers() | self.costs.handlers())
        #: Variable monitors the CSMS set (2.0.1), evaluated whenever the firmware wakes.
        self.monitoring = Monitoring(self)
        if version != OCPP16:
            self._handlers.update(self.monitoring.handlers())
        if "DataTransfer" in self._handlers:
            self._vendor_data = self._handlers["DataTransfer"]
            self._handlers["DataTransfer"] = self._data_transfer
        #: What this charger's vendor does that the spec does not ask for (:mod:`.vendors`).
        self.vendor = VendorFirmware(profile, self)
        #: Firmware updates and log uploads; their transfers go out through :meth:`transfers_to_start`.
        self.maintenance = Maintenance(
            self, self.timers, install_s=install_s, reboot_delay_s=reset_delay_s, log_bytes=log_bytes
        )
        self._frames = self.maintenance.frames  # the frame log, told of every frame both ways
        self._handlers.update(self.maintenance.handlers())
        self._dispatch: dict[str, tuple[str | None, Callable[..., Any]]] = _dispatch_table(self, self._handlers)
        del self._handlers
        self._registrar = Registrar(
            self,
            messages=self.protocol,
            config=self.config,
            connectors=self.connectors,
            timers=self.timers,
            boot_retry_s=boot_retry_s,
            heartbeat_delay=self.vendor.heartbeat_delay,
            heartbeat=heartbeat or profile.quirks.heartbeat or INACTIVITY,
        )
        self._tx = Transactions(
            self,
            messages=self.protocol,
            config=self.config,
            connectors=self.connectors,
            meter=meter,
            auth=self.auth,
            profiles=self.profiles,
            smart_charging=self.smart_charging,
            queue=self.queue,
            timers=self.timers,
            reservations=self.reservations,
        )
        self._ops = Operations(
            self, version=version, connectors=self.connectors, timers=self.timers, reset_delay_s=reset_delay_s
        )

        self.link_up = False
        self._close_requested = False
        self._attempt = 0
        #: Connectors that report Available but never energize (the twin's ``stuck_available`` fault).
        self.stuck: set[int] = set()
        #: Called with ``now`` whenever the station goes down to reboot (reset or power loss).
        self.on_reboot: Callable[[float], None] | None = None

    # ==== the jobs' state, as the charger's users read it ==================================================
    @property
    def registration(self) -> Registration:
        return self._registrar.state

    @registration.setter
    def registration(self, state: Registration) -> None:
        self._registrar.state = state

    @property
    def boot_reason(self) -> str:
        return self._registrar.boot_reason

    @boot_reason.setter
    def boot_reason(self, reason: str) -> None:
        self._registrar.boot_reason = reason

    @property
    def registered(self) -> bool:
        return self._registrar.accepted

    @property
    def online(self) -> bool:
        return self.link_up and self._registrar.accepted

    @property
    def transactions(self) -> dict[int, Transaction]:
        """The running transactions by connector."""
        return self._tx.running

    @property
    def transaction_message_in_flight(self) -> bool:
        """A queued transaction message is on its way and not yet answered (the queue's head)."""
        return self._tx.in_flight

    @property
    def history(self) -> list[Transaction]:
        """Every transaction started: the twin's ground truth."""
        return self._tx.history

    @property
    def station_inoperative(self) -> bool:
        return self._ops.station_inoperative

    # ==== link =============================================================================================
    def connected(self, now: float) -> None:
        """The WebSocket is open: boot if we must, else resume (changed statuses, then the queue)."""
        self.link_up = True
        self._close_requested = False
        self.timers.cancel(Timer.RECONNECT)
        self._attempt = 0
        if self.timers.at(_ALIGNED) is None and self.config.integer("clock_aligned_interval") > 0:
            self._tx.aligned_interval_changed(now)  # an interval the factory set (or kept over a reboot)
        if not self._registrar.accepted:
            self.vendor.before_boot(now)
            self._registrar.send_boot(now)
            return
        for c in self.connectors.values():
            if c.status != c.reported_status:
                self.send_status(c, now)
        self._registrar.resumed(now)
        self.pump(now)

    def disconnected(self, now: float) -> None:
        """The link dropped: forget calls in flight, keep the queue, schedule a reconnect with back-off."""
        if not self.link_up:
            return
        self._link_down(now)
        self._schedule_reconnect(now)

    def connection_failed(self, now: float) -> None:
        """A connection attempt failed: try again after the next back-off (2.0.1: with the next network
        profile of the priority list, when it has more than one)."""
        self.security.next_priority()
        self._schedule_reconnect(now)

    def wants_connection(self, now: float) -> bool:
        """True when the link is down and the charger wants the shell to (re)connect now."""
        reconnect_at = self.timers.at(Timer.RECONNECT)
        return not self.link_up and (reconnect_at is None or now >= reconnect_at)

    @property
    def reconnect_at(self) -> float | None:
        return None if self.link_up else self.timers.at(Timer.RECONNECT)

    def reconnect(self, now: float) -> None:
        """Drop the link once the answer that asked for it is out (after ``reset_delay_s``), and connect
        again at once: new credentials take effect at a connect."""
        self.timers.arm(Timer.RELINK, now + self._ops.reset_delay_s)

    def _relink(self, now: float) -> None:
        if self.link_up:
            self._link_down(now)
            self._close_requested = True
        self._attempt = 0
        self.timers.arm(Timer.RECONNECT, now)

    def after_connect(self, action: Callable[[float], None]) -> None:
        """Run ``action`` once the charger is next connected and registered (a message about the change)."""
        self._after_connect.append(action)

    def close_requested(self) -> bool:
        """True once after the charger dropped the link itself (a reset): the shell closes the socket."""
        requested, self._close_requested = self._close_requested, False
        return requested

    def backoff_s(self, attempt: int) -> float:
        """Reconnect delay after ``attempt`` failures: base × 2^min(attempt, repeats) ± random range."""
        base = self.config.integer("backoff_min")
        doublings = min(attempt, self.config.integer("backoff_repeat_times"))
        spread = self.config.integer("backoff_random_range")
        return max(0.0, float(base * 2**doublings) + self.rng.uniform(-spread, spread))

    def _schedule_reconnect(self, now: float) -> None:
        self.timers.arm(Timer.RECONNECT, now + self.backoff_s(self._attempt))
        self._attempt += 1

    def _link_down(self, now: float) -> None:
        self.link_up = False
        self._registrar.link_down()
        for event in self.rpc.cancel_all(now):
            self._complete(event.pending, now)
        self.rpc.frames_to_send()  # nothing queued for a dead socket survives it
        self._tx.link_down()

    def _go_down(self, now: float) -> None:
        """Reboot: drop the link, forget registration and volatile state, come back after ``reboot_s``."""
        if self.link_up:
            self._link_down(now)
            self._close_requested = True
        self._registrar.rebooted()
        self._tx.rebooted()
        self.security_ops.rebooted(now)
        self.security.csms_url = self.vendor.csms_url_at_boot(self.config) or self.security.csms_url
        self.maintenance.rebooted(now)
        for c in self.connectors.values():
            c.reported_status = None
        self._attempt = 0
        self.timers.arm(Timer.RECONNECT, now + self.reboot_s)
        if self.on_reboot is not None:
            self.on_reboot(now)

    # ==== frames ===========================================================================================
    def receive_frame(self, text: str | bytes, now: float) -> None:
        """One frame from the CSMS. Every CALL gets exactly one answer (a CALLRESULT or a CALLERROR)."""
        if not self.link_up:
            return
        self._frames.received(text, now)
        for event in self.rpc.receive_frame(text, now):
            if isinstance(event, IncomingCall):
                self._serve(event.call, now)
            elif isinstance(event, CallCompleted):
                self._complete(event.pending, now)
        self._run_after(now)

    def _serve(self, call: Call, now: float) -> None:
        if self.registration not in SERVES_CALLS:
            self.rpc.reply_error(call, OcppError(ErrorKind.SECURITY, "the station is not registered"))
            return
        try:
            owner, handler = self._dispatch[call.action]
            if owner is None:
                payload = handler(call.payload, now)
            else:
                payload = handler(getattr(self, owner) if owner else self, call.payload, now)
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

    def _accepts(self, action: str) -> bool:
        """Whether the charger answers CSMS calls of ``action`` (the RPC endpoint refuses others)."""
        return action in self._dispatch

    def _data_transfer(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        """Our vendor's display messages and California Pricing (1.6), else what the firmware answers any
        DataTransfer."""
        answer = self.display.data_transfer(p, now)
        if answer is None:
            answer = self.costs.data_transfer(p, now)
        return answer if answer is not None else self._vendor_data(p, now)

    def power_w(self, connector_id: int) -> float:
        """What the EVSE draws now, as its meter measures it."""
        return self.meter.power_w(connector_id)

    def running_transaction_ids(self) -> set[str]:
        return {str(tx.transaction_id) for tx in self.transactions.values() if tx.transaction_id is not None}

    def shows_cost_and_price(self) -> bool:
        """1.6: whether it shows California Pricing messages (CustomDisplayCostAndPrice)."""
        return self.config.has("shows_cost") and self.config.flag("shows_cost")

    def display_state(self) -> str:
        """The state a display message may be bound to (2.0.1 MessageStateEnumType)."""
        if self.transactions:
            return "Charging"
        statuses = {c.status for c in self.connectors.values()}
        if "Faulted" in statuses:
            return "Faulted"
        return "Unavailable" if statuses == {"Unavailable"} else "Idle"

    def after_reply(self, action: Callable[[float], None]) -> None:
        """Run ``action`` once the current CALL has been answered (messages that must follow the answer)."""
        self._after.append(action)

    def _run_after(self, now: float) -> None:
        while self._after:
            try:
                self._after.pop(0)(now)
            except ConnectorError as exc:  # our state machine refused: a bug of ours, not the CSMS's
                self.counters.internal_errors.append(f"{type(exc).__name__}: {exc}")

    def send_security_event(self, kind: str, tech_info: str, now: float) -> None:
        self.security_ops.send_security_event(kind, tech_info, now)

    def send(self, action: str, payload: dict[str, Any], now: float, on_done: Callback | None = None) -> bool:
        """Send a non-transaction CALL; False (and dropped) when the link is down."""
        self._frames.told(now)
        if not self.link_up:
            self.counters.dropped_calls.append(action)
            return False
        pending = self.rpc.send_call(action, self.vendor.outgoing(action, payload, now), now)
        if on_done is not None:
            self._callbacks[pending.call.unique_id] = on_done
        return True

    def _complete(self, pending: PendingCall, now: float) -> None:
        self.costs.answered(pending)
        callback = self._callbacks.pop(pending.call.unique_id, None)
        if callback is not None:
            callback(pending, now)

    # ==== output ===========================================================================================
    def frames_to_send(self) -> list[str]:
        if not self.link_up:
            return []
        frames = self.rpc.frames_to_send()
        if frames:
            log = self._frames
            log.sent(frames)
            registrar = self._registrar
            if registrar.inactivity:  # an exchange: the heartbeat's interval of inactivity starts again
                registrar.exchanged(log.last_now)
        return frames

    def transfers_to_start(self) -> list[Transfer]:
        """Downloads and uploads the shell must carry out now; each ends with :meth:`transfer_done`."""
        return self.maintenance.transfers_to_start()

    def transfer_done(self, result: TransferResult, now: float) -> None:
        """A transfer asked for by :meth:`transfers_to_start` ended (the shell did it)."""
        self.maintenance.transfer_done(result, now)
        self._run_after(now)

    def next_deadline(self) -> float | None:
        """The earliest instant :meth:`handle_timer` has something to do (or the reconnect is due)."""
        earliest = self.timers.earliest()
        if earliest is None:
            own = None
        elif earliest[2][0] in _MAY_DOZE:  # the earliest may be dormant: ask past the dormant kinds
            own = self.timers.next_deadline(_DORMANT[self.link_up, self._tx.retry_waiting])
        else:
            own = earliest[0]
        call = self.rpc.next_deadline()
        if call is None or (own is not None and own < call):
            return own
        return call

    # ==== time =============================================================================================
    def handle_timer(self, now: float) -> None:
        self._frames.told(now)
        for event in self.rpc.handle_timer(now):
            if isinstance(event, CallCompleted):
                self._complete(event.pending, now)
        timers = self.timers
        if timers.pop_if_due(_BOOT, now):
            self._registrar.send_boot(now)
        if timers.pop_if_due(_HEARTBEAT, now):
            self._registrar.send_heartbeat(now)
        self._tx.sample_due(now)
        if timers.pop_if_due(_ALIGNED, now):
            self._tx.aligned_due(now)
        self.monitoring.check(now)
        for cid in timers.pop_due(_CONNECTION_TIMEOUT, now):
            self._tx.connection_timed_out(cid, now)
        for _ in timers.pop_due(_LIMIT_CHECK, now):
            self._tx.update_limits(now)
        self._expire_reservations(now)
        if timers.pop_if_due(_REBOOT, now):
            self._go_down(now)
        if timers.pop_if_due(_RELINK, now):
            self._relink(now)
        self.maintenance.handle_timer(now)
        self._tx.pump(now)
        self._run_after(now)

    # ==== registration and heartbeat =======================================================================
    def trigger_boot(self, now: float) -> None:
        self._registrar.trigger_boot(now)

    def send_heartbeat(self, now: float) -> None:
        self._registrar.send_heartbeat(now)

    def setting_changed(self, setting: str, now: float) -> None:
        """A configuration write took effect: re-arm what reads it."""
        if setting == "heartbeat_interval":
            self._registrar.heartbeat_interval_changed(now)
        elif setting == "sample_interval":
            self._tx.sample_interval_changed(now)
        elif setting == "clock_aligned_interval":
            self._tx.aligned_interval_changed(now)

    # ==== statuses =========================================================================================
    def send_status(self, c: Connector, now: float) -> None:
        if self.link_up and self._registrar.accepted:
            self.send("StatusNotification", self.protocol.status_payload(c, now), now)
            c.reported_status = c.status

    def refresh(self, c: Connector, now: float, *, quiet_charging_state: bool = False) -> None:
        """Re-derive the connector's status; notify the CSMS of a change (and 2.0.1 of a chargingState)."""
        status_changed, state_changed = c.refresh()
        if status_changed:
            self.send_status(c, now)
        if self._ops.apply_scheduled_availability(c):
            self.send_status(c, now)
        tx = self.transactions.get(c.connector_id)
        if state_changed and tx is not None and not quiet_charging_state:
            self.queue_message(self.protocol.tx_charging_state_changed(tx, now), now)
        held = self.reservations.on(c.connector_id) if c.status in (FAULTED, UNAVAILABLE) else None
        if held is not None:  # a faulted or unavailable connector cannot keep its reservation
            self._end_reservation(held.reservation_id, "Removed", now)

    # ==== physical events ==================================================================================
    def plug_in(
        self,
        connector_id: int,
        id_token: str | None,
        now: float,
        token_type: str = "ISO14443",
        contract: tuple[dict[str, str], ...] = (),
    ) -> None:
        """A vehicle plugs in; with ``id_token`` the driver presents it at once (else: wait for remote start).

        Raises:
            IllegalEvent: a cable is already plugged into this connector.
        """
        self._tx.plug_in(connector_id, id_token, now, token_type, contract)
        self._run_after(now)

    def present_token(self, connector_id: int, id_token: str, now: float, token_type: str = "ISO14443") -> None:
        """The driver presents a token: stops the connector's transaction if it is theirs, else authorizes."""
        self._tx.present_token(connector_id, id_token, now, token_type)

    def unplug(self, connector_id: int, now: float) -> None:
        """The vehicle leaves. A running transaction ends with EVDisconnected.

        Raises:
            IllegalEvent: nothing is plugged into this connector.
        """
        self.ev_needs.pop(connector_id, None)
        self._tx.unplug(connector_id, now)

    def ev_charging_needs(self, connector_id: int, needs: EvNeeds, now: float) -> bool:
        """The plugged EV tells its needs over ISO 15118 (again: it renegotiates); a 2.0.1 charger relays them
        (NotifyEVChargingNeeds). False when they could not be sent (1.6, or not registered with a CSMS)."""
        self.ev_needs[connector_id] = needs
        if self.version == OCPP16 or not (self.link_up and self._registrar.accepted):
            return False
        return self.send("NotifyEVChargingNeeds", needs_payload(connector_id, needs), now)

    def ev_suspended(self, connector_id: int, suspended: bool, now: float) -> None:
        """The vehicle stopped (True) or resumed (False) drawing power. An ISO 15118 EV that stops because its
        battery is full renegotiates: it needs no more energy (K18), so the CSMS can give its share to others."""
        c = self.connectors[connector_id]
        c.ev_suspended = suspended
        self.refresh(c, now)
        needs = self.ev_needs.get(connector_id)
        if suspended and needs is not None and needs.energy_wh > 0:
            self.ev_charging_needs(connector_id, replace(needs, energy_wh=0.0), now)

    def fault(self, connector_id: int, error_code: str, now: float) -> None:
        """A fault on the connector: a running transaction ends (reason Other), the status is Faulted."""
        c = self.connectors[connector_id]
        c.faulted, c.error_code = True, error_code
        tx = self.transactions.get(connector_id)
        if tx is not None:
            self.stop_transaction(tx, "Other", now)
        self.refresh(c, now)

    def clear_fault(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        c.faulted, c.error_code = False, "NoError"
        self.refresh(c, now)

    # ==== reservations =====================================================================================
    def reserve(
        self,
        reservation_id: int,
        connector_id: int | None,
        id_token: str,
        group_id: str | None,
        expires_at: float,
        now: float,
        wanted_type: str | None = None,
    ) -> str:
        """ReserveNow (:mod:`.reservations`): the status to answer. The connector reports Reserved after
        the answer; the reservation expires at ``expires_at``."""
        if expires_at <= now or not self.registered:
            return REJECTED
        replaced = self.reservations.on_id(reservation_id)
        status, held = self.reservations.reserve(
            reservation_id, connector_id, id_token, group_id, expires_at, wanted_type
        )
        if replaced is not None and (held is None or held.connector_id != replaced.connector_id):
            self.timers.cancel(Timer.RESERVATION, replaced.connector_id)
            self.after_reply(lambda when: self.refresh(self.connectors[replaced.connector_id], when))
        if held is not None:
            self.timers.arm(Timer.RESERVATION, expires_at, held.connector_id)
            self.after_reply(lambda when: self.refresh(self.connectors[held.connector_id], when))
        return status

    def cancel_reservation(self, reservation_id: int, now: float) -> bool:
        """CancelReservation: False (Rejected) when we hold no such reservation."""
        held = self.reservations.end(reservation_id)
        if held is None:
            return False
        self.timers.cancel(Timer.RESERVATION, held.connector_id)
        self.after_reply(lambda when: self.refresh(self.connectors[held.connector_id], when))
        return True

    def _expire_reservations(self, now: float) -> None:
        for cid in self.timers.pop_due(_RESERVATION, now):
            held = self.reservations.due(cid, now)
            if held is not None:
                self._end_reservation(held.reservation_id, "Expired", now)

    def _end_reservation(self, reservation_id: int, why: str, now: float) -> None:
        """The charger ends a reservation itself (``Expired``, ``Removed``): the connector is freed and 2.0.1
        tells the CSMS (ReservationStatusUpdate)."""
        held = self.reservations.end(reservation_id)
        if held is None:
            return
        self.timers.cancel(Timer.RESERVATION, held.connector_id)
        self.refresh(self.connectors[held.connector_id], now)
        self.protocol.reservation_ended(held, why, now)

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
            self.timers.arm(Timer.RECONNECT, now + duration_s)

    # ==== transactions (see .transactions) =================================================================
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
        return self._tx.remote_start(
            connector_id, token, token_type, now, remote_start_id=remote_start_id, profile=profile
        )

    def stop_transaction(self, tx: Transaction, reason: str, now: float, *, unplugging: bool = False) -> None:
        """End ``tx`` with ``reason`` (1.6 spelling, one of :data:`.transactions.STOP_REASONS`)."""
        self._tx.stop(tx, reason, now, unplugging=unplugging)

    def transaction_answered(self, tx_key: int, info: IdTokenInfo | None, now: float) -> None:
        """The CSMS answered a start/event carrying an id token: deauthorize a running tx it refuses."""
        self._tx.answered(tx_key, info, now)

    def transaction_by_id(self, transaction_id: int | str) -> Transaction | None:
        return self._tx.by_id(transaction_id)

    def remember(self, token: str | None, info: IdTokenInfo | None, now: float) -> None:
        """Cache what the CSMS said about a token (when the cache is on)."""
        self._tx.remember(token, info, now)

    def readings(self, connector_id: int, now: float, which: str = "sampled") -> list[Reading]:
        """Sample the twin's meter: the measurands configured for ``which`` (sampled/started/ended)."""
        return self._tx.readings(connector_id, now, which)

    def send_meter_values(self, connector_id: int, now: float) -> None:
        """Triggered meter values (not part of a transaction's queue)."""
        self.send(
            "MeterValues", self.protocol.meter_values_payload(connector_id, self.readings(connector_id, now), now), now
        )

    def queue_message(
        self, message: QueuedMessage | None, now: float, *, phase: str = "update", register_wh: float | None = None
    ) -> None:
        """Queue a transaction message (see :meth:`.transactions.Transactions.queue_message`)."""
        self._tx.queue_message(message, now, phase=phase, register_wh=register_wh)

    def pump(self, now: float) -> None:
        """Send what waited for a registered link: messages about a reconnect, then the head of the
        transaction-message queue if it may go now."""
        if self.link_up and self._registrar.accepted:
            waiting, self._after_connect = self._after_connect, []
            for action in waiting:
                action(now)
        self._tx.pump(now)

    # ==== operations (see .operations) =====================================================================
    def reset(self, kind: str, now: float) -> str:
        """Reset: ``kind`` Hard/Soft (1.6) or Immediate/OnIdle (2.0.1). Returns Accepted or Scheduled."""
        return self._ops.reset(kind, now)

    def reset_if_idle(self, now: float) -> None:
        self._ops.reset_if_idle(now)
        self.maintenance.idle(now)

    def change_availability(self, connector_ids: list[int], operative: bool, now: float) -> str:
        """Accepted (applied now), Scheduled (after running transactions), Rejected (unknown connector)."""
        return self._ops.change_availability(connector_ids, operative, now)

    def unlock(self, connector_id: int, now: float) -> str:
        """Unlock: Unlocked (stopping a running transaction, 1.6), OngoingAuthorizedTransaction (2.0.1)."""
        return self._ops.unlock(connector_id, now)

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
        if self.smart_charging is _IGNORE:
            return None
        spec = self.connectors[connector_id].spec
        limit = self.profiles.limit_at(
            connector_id, now, unit=_W, volts_per_phase=spec.voltage_v, phases=1 if spec.dc else spec.phases
        )
        return None if limit is None else limit.value

    def next_limit_change(self, connector_id: int, now: float) -> float | None:
        """When :meth:`limit_w` next changes (the twin re-evaluates power then)."""
        return self.profiles.next_change(connector_id, now)

    def profiles_changed(self, now: float) -> None:
        """The profiles changed: once the answer is out, re-apply the limits (a 0 W limit suspends)."""
        self.after_reply(self._tx.update_limits)

    # ==== the twin's view ==================================================================================
    def is_energizing(self, connector_id: int) -> bool:
        """True while a transaction runs on the connector and neither the EV nor the EVSE suspends it."""
        c = self.connectors[connector_id]
        if connector_id in self.stuck:
            return False
        return c.in_transaction and c.plugged and not (c.ev_suspended or c.evse_suspended or c.faulted)

    def status(self, connector_id: int) -> str:
        return self.connectors[connector_id].status


# Enum members read on every wake and sample, as plain names: reading a member through its class costs ~5x a
# plain attribute on CPython 3.11 (``EnumType`` routes class attribute lookups through a Python hook).
_BOOT, _HEARTBEAT, _REBOOT, _RELINK = Timer.BOOT, Timer.HEARTBEAT, Timer.REBOOT, Timer.RELINK
_CONNECTION_TIMEOUT, _LIMIT_CHECK, _RESERVATION = Timer.CONNECTION_TIMEOUT, Timer.LIMIT_CHECK, Timer.RESERVATION
_ALIGNED = Timer.ALIGNED
_IGNORE, _W = Firmware.IGNORE, RateUnit.W

#: Timers armed but waking no one, by (link up, the transaction queue waits for its retry time).
_DORMANT: dict[tuple[bool, bool], frozenset[Timer]] = {
    (True, True): frozenset({Timer.RECONNECT}),
    (True, False): frozenset({Timer.RECONNECT, Timer.TX_RETRY}),
    (False, True): frozenset(),
    (False, False): frozenset({Timer.TX_RETRY}),
}
#: Every kind :data:`_DORMANT` may leave out.
_MAY_DOZE: frozenset[Timer] = frozenset().union(*_DORMANT.values())
_FIRMWARE_REJECTS = SetProfileOutcome(ProfileStatus.REJECTED, None, "NotSupported", "smart charging is off")
