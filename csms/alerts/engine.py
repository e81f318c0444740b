"""The alert engine: station events and ``now`` in, alert raise/resolve effects (and OCPP calls) out.

Theory of operation
-------------------
Like the station session, the engine never reads a clock or touches a database. The shell feeds it events
(:meth:`AlertEngine.feed`) with the current time (POSIX seconds), applies the effects it returns (store an
alert, record a connectivity change, send a Reset), and arms one timer at :meth:`next_deadline`; when it
fires it calls :meth:`handle_timer`. In virtual time the same object runs under SimPy.

Rules (names are the ``rule`` of the stored alert):

* ``heartbeat_missed`` — a connected station sent nothing (no call, no answer to ours) by ``last_seen + interval ×
  factor + grace``
  (interval from its last BootNotification answer). The station is also declared offline *since
  last_seen* (:class:`ConnectivityChanged`), which the uptime history records.
* ``offline`` — offline (socket closed, or heartbeats missed) for ``offline_after_s``.
* ``faulted`` — a port (EVSE 0: the whole station) Faulted for ``faulted_after_s``.
* ``stuck_available`` — ``stuck_available_failures`` sessions in a row failed to deliver on a port.
* ``uptime_below_target`` — a port's trailing uptime is below ``uptime_target_pct``.
* ``meter_frozen`` — in a transaction, a port's Energy.Active.Import.Register stood still for
  ``meter_frozen_readings`` readings in a row and ``meter_frozen_after_s`` (reading timestamps) while energy
  flowed: power ≥ ``meter_frozen_min_power_w``, or without power the largest phase current ≥
  ``meter_frozen_min_current_a``, or with neither the port Charging (2.0.1 chargingState, else its state).
  Resolved when the register moves again or the transaction ends. Readings without a register, with power
  below the threshold (a full vehicle) or older than the last one (replays) never count.
* ``boot_rejected``, ``firmware_failed``, ``security_event`` — raised at once.
* ``remediation_exhausted`` — a fault persists and the auto-remediation used its daily budget.

Deduplication: at most one open alert per (rule, station, port); a second raise is dropped. Resolving is
automatic when the condition clears, except ``security_event`` (only an operator resolves it). When an
operator resolves an alert whose condition still holds, feed :class:`OperatorResolved`: the engine then
raises it again only after the condition cleared and came back.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from csms.alerts.meter import RegisterWatch
from csms.domain.events import PortState
from csms.ocpp import commands
from csms.ocpp.versions import OCPP16

HEARTBEAT_MISSED = "heartbeat_missed"
OFFLINE = "offline"
FAULTED = "faulted"
STUCK_AVAILABLE = "stuck_available"
UPTIME_BELOW_TARGET = "uptime_below_target"
BOOT_REJECTED = "boot_rejected"
FIRMWARE_FAILED = "firmware_failed"
SECURITY_EVENT = "security_event"
REMEDIATION_EXHAUSTED = "remediation_exhausted"
METER_FROZEN = "meter_frozen"
#: A 2.0.1 variable monitor the CSMS set is alerting (NotifyEvent trigger Alerting), until it reports it cleared.
MONITOR_ALERT = "monitor_alert"
#: Raised by the certificate manager (:mod:`csms.core.plugins.certificates`), not by this engine.
CERTIFICATE_EXPIRING = "certificate_expiring"
ALL_RULES = frozenset(
    {
        HEARTBEAT_MISSED,
        OFFLINE,
        FAULTED,
        STUCK_AVAILABLE,
        UPTIME_BELOW_TARGET,
        BOOT_REJECTED,
        FIRMWARE_FAILED,
        SECURITY_EVENT,
        REMEDIATION_EXHAUSTED,
        METER_FROZEN,
        MONITOR_ALERT,
    }
)
SEVERITY = {
    HEARTBEAT_MISSED: "warning",
    OFFLINE: "critical",
    FAULTED: "critical",
    STUCK_AVAILABLE: "warning",
    UPTIME_BELOW_TARGET: "warning",
    BOOT_REJECTED: "warning",
    FIRMWARE_FAILED: "critical",
    SECURITY_EVENT: "warning",
    REMEDIATION_EXHAUSTED: "critical",
    METER_FROZEN: "warning",
    MONITOR_ALERT: "warning",
    CERTIFICATE_EXPIRING: "warning",
}
#: FirmwareStatusNotification statuses (1.6 and 2.0.1) that end an update in failure.
FIRMWARE_FAILURES = frozenset(
    {
        "DownloadFailed",
        "InstallationFailed",
        "InstallVerificationFailed",
        "InvalidSignature",
        "SignatureVerificationFailed",
    }
)
DAY_S = 86_400.0


# ---- configuration ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertRules:
    heartbeat_interval_s: float = 300.0  # until a BootNotification answer tells us the station's interval
    heartbeat_factor: float = 2.0
    heartbeat_grace_s: float = 60.0
    offline_after_s: float = 600.0
    faulted_after_s: float = 300.0
    stuck_available_failures: int = 3
    uptime_target_pct: float = 97.0
    meter_frozen_after_s: float = 900.0
    meter_frozen_readings: int = 3
    meter_frozen_min_power_w: float = 1000.0
    meter_frozen_min_current_a: float = 2.0
    enabled: frozenset[str] = ALL_RULES
    severity: dict[str, str] = field(default_factory=lambda: dict(SEVERITY))

    def heartbeat_timeout(self, interval_s: float) -> float:
        return interval_s * self.heartbeat_factor + self.heartbeat_grace_s


@dataclass(frozen=True, slots=True)
class RemediationPolicy:
    """Soft reset a station after a port stayed Faulted ``after_s``, at most ``max_per_day`` times per
    station in any 24 h (rolling window); ``enabled`` False turns it off."""

    enabled: bool = True
    after_s: float = 600.0
    max_per_day: int = 2


# ---- events in ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Connected:
    station_id: str
    version: str = OCPP16


@dataclass(frozen=True, slots=True)
class Disconnected:
    station_id: str


@dataclass(frozen=True, slots=True)
class Seen:
    """Any message from the station (Heartbeat or other)."""

    station_id: str


@dataclass(frozen=True, slots=True)
class BootDecided:
    station_id: str
    status: str
    interval_s: float


@dataclass(frozen=True, slots=True)
class StatusChanged:
    station_id: str
    evse_id: int
    state: PortState
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class FirmwareStatus:
    station_id: str
    status: str


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    station_id: str
    kind: str
    tech_info: str | None = None


@dataclass(frozen=True, slots=True)
class MonitorAlert:
    """A station's variable monitor crossed its threshold (``cleared``: went back), from NotifyEvent."""

    station_id: str
    evse_id: int
    monitor_id: int
    cleared: bool
    component: str
    variable: str
    actual: str


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """A session (or a remote start) on the port delivered no energy."""

    station_id: str
    evse_id: int


@dataclass(frozen=True, slots=True)
class SessionDelivered:
    station_id: str
    evse_id: int


@dataclass(frozen=True, slots=True)
class UptimeMeasured:
    station_id: str
    evse_id: int
    pct: float


@dataclass(frozen=True, slots=True)
class MeterRead:
    """One meter reading of a port in transaction ``transaction_id`` (``at``: the reading's own timestamp;
    None: not reported). ``evse_id`` None: the port the transaction was last read on. A 2.0.1 charging
    state change comes as a reading without values."""

    station_id: str
    evse_id: int | None
    transaction_id: str
    at: float
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None
    charging_state: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionClosed:
    station_id: str
    evse_id: int | None
    transaction_id: str


@dataclass(frozen=True, slots=True)
class OperatorResolved:
    rule: str
    station_id: str
    evse_id: int | None = None


Event = (
    Connected
    | Disconnected
    | Seen
    | BootDecided
    | StatusChanged
    | FirmwareStatus
    | SecurityEvent
    | MonitorAlert
    | SessionFailed
    | SessionDelivered
    | UptimeMeasured
    | MeterRead
    | TransactionClosed
    | OperatorResolved
)


# ---- effects out --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RaiseAlert:
    rule: str
    station_id: str
    evse_id: int | None
    severity: str
    at: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolveAlert:
    rule: str
    station_id: str
    evse_id: int | None
    at: float


@dataclass(frozen=True, slots=True)
class ConnectivityChanged:
    """The engine decided a station is offline (missed heartbeats, ``at`` = last seen) or back online."""

    station_id: str
    online: bool
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class SendCall:
    station_id: str
    action: str
    payload: dict[str, Any]
    reason: str


Effect = RaiseAlert | ResolveAlert | ConnectivityChanged | SendCall
Key = tuple[str, str, int | None]


@dataclass(slots=True, eq=False)
class _Station:
    """A station's state; also the key of its heartbeat deadline (one per connected station: a key tuple per
    re-arm cost ~80 bytes a connection held)."""

    station_id: str
    version: str = OCPP16
    connected: bool = False
    last_seen: float | None = None
    interval_s: float | None = None
    offline_since: float | None = None
    heartbeat_lost: bool = False
    resets: list[float] | None = None  # soft resets sent in the last 24 h (None: none yet)


#: Stale heap entries tolerated beyond one per live deadline before the heap is rebuilt (amortised O(1) per arm).
COMPACT_SLACK = 64


@dataclass(slots=True)
class _Port:
    """A port with something to follow beyond its state (a fault, failed sessions, a transaction's register).
    Every other port is only its :class:`PortState` in the engine's map: most of the ports of a fleet."""

    state: PortState | None = None
    faulted_since: float | None = None
    failures: int = 0
    error_code: str | None = None
    register: RegisterWatch | None = None
    charging_state: str | None = None


class AlertEngine:
    def __init__(self, rules: AlertRules | None = None, remediation: RemediationPolicy | None = None) -> None:
        self.rules = rules or AlertRules()
        self.remediation = remediation or RemediationPolicy(enabled=False)
        self.open: set[Key] = set()
        self._stations: dict[str, _Station] = {}
        self._ports: dict[tuple[str, int], _Port | PortState] = {}
        self._tx_ports: dict[tuple[str, str], int] = {}  # (station, transaction) -> EVSE, while it is read
        #: Deadlines by key: a station's heartbeat deadline by its :class:`_Station`, the others by a tuple
        #: (kind, station_id[, evse_id]).
        self._timers: dict[Any, float] = {}
        self._alerting: dict[tuple[str, int], set[int]] = {}  # (station, EVSE) -> monitors alerting there
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()

    # ---- state restored from the store -------------------------------------------------------------------
    def restore(self, open_alerts: list[Key]) -> None:
        """Alerts already open in the store (at start): they are not raised twice."""
        self.open.update(open_alerts)

    # ---- input -------------------------------------------------------------------------------------------
    def feed(self, event: Event, now: float) -> list[Effect]:  # noqa: C901, PLR0912, PLR0915 - one case per event
        out: list[Effect] = []
        match event:
            case Connected(station_id, version):
                station = self._station(station_id)
                station.version, station.connected = version, True
                self._alive(station_id, station, now, out, reconnect=True)
            case Disconnected(station_id):
                station = self._station(station_id)
                station.connected = False
                self._cancel(station)
                if station.offline_since is None:
                    station.offline_since = now
                self._arm(("offline", station_id), station.offline_since + self.rules.offline_after_s)
            case Seen(station_id):
                self.seen(station_id, now, out)
            case BootDecided(station_id, status, interval_s):
                station = self._station(station_id)
                station.interval_s = interval_s
                self._alive(station_id, station, now, out, reconnect=False)
                if status == "Rejected":
                    self._raise(out, BOOT_REJECTED, station_id, None, now, {"status": status})
                elif status == "Accepted":
                    self._resolve(out, BOOT_REJECTED, station_id, None, now)
            case StatusChanged(station_id, evse_id, state, error_code):
                self._status(station_id, evse_id, state, error_code, now, out)
            case FirmwareStatus(station_id, status):
                if status in FIRMWARE_FAILURES:
                    self._raise(out, FIRMWARE_FAILED, station_id, None, now, {"status": status})
                elif status == "Installed":
                    self._resolve(out, FIRMWARE_FAILED, station_id, None, now)
            case SecurityEvent(station_id, kind, tech_info):
                self._raise(out, SECURITY_EVENT, station_id, None, now, {"type": kind, "techInfo": tech_info})
            case MonitorAlert():
                self._monitor_alert(out, event, now)
            case SessionFailed(station_id, evse_id):
                port = self._port(station_id, evse_id)
                port.failures += 1
                if port.failures >= self.rules.stuck_available_failures:
                    details: dict[str, Any] = {"failed_sessions": port.failures, "status": port.state}
                    self._raise(out, STUCK_AVAILABLE, station_id, evse_id, now, details)
            case SessionDelivered(station_id, evse_id):
                if isinstance(held := self._ports.get((station_id, evse_id)), _Port):
                    held.failures = 0
                    self._settle(station_id, evse_id, held)
                self._resolve(out, STUCK_AVAILABLE, station_id, evse_id, now)
            case UptimeMeasured(station_id, evse_id, pct):
                if pct < self.rules.uptime_target_pct:
                    details = {"uptime_pct": pct, "target_pct": self.rules.uptime_target_pct}
                    self._raise(out, UPTIME_BELOW_TARGET, station_id, evse_id, now, details)
                else:
                    self._resolve(out, UPTIME_BELOW_TARGET, station_id, evse_id, now)
            case MeterRead():
                self.meter_read(
                    event.station_id, event.evse_id, event.transaction_id, event.at, event.energy_wh, event.power_w,
                    event.current_a, event.charging_state, now, out,
                )  # fmt: skip
            case TransactionClosed(station_id, evse_id, transaction_id):
                self._closed(station_id, evse_id, transaction_id, now, out)
            case OperatorResolved(rule, station_id, evse_id):
                self.open.discard((rule, station_id, evse_id))
        return out

    def seen(self, station_id: str, now: float, out: list[Effect]) -> None:
        """:meth:`feed` of :class:`Seen` without the event: its effects appended to ``out`` (called for every
        committed report)."""
        station = self._stations.get(station_id)
        if station is None:
            station = self._station(station_id)
        station.connected = True
        self._alive(station_id, station, now, out, reconnect=False)

    def _alive(self, station_id: str, station: _Station, now: float, out: list[Effect], *, reconnect: bool) -> None:
        station.last_seen = now
        interval = station.interval_s or self.rules.heartbeat_interval_s
        self._arm(station, now + self.rules.heartbeat_timeout(interval))
        if station.heartbeat_lost:
            station.heartbeat_lost = False
            if not reconnect:  # a (re)connection is recorded by the gateway itself
                out.append(ConnectivityChanged(station_id, True, now, "heard from again"))
            self._resolve(out, HEARTBEAT_MISSED, station_id, None, now)
        if station.offline_since is not None:
            station.offline_since = None
            self._cancel(("offline", station_id))
            self._resolve(out, OFFLINE, station_id, None, now)

    def _status(
        self, station_id: str, evse_id: int, state: PortState, error_code: str | None, now: float, out: list[Effect]
    ) -> None:
        held = self._ports.get((station_id, evse_id))
        if not isinstance(held, _Port) and state != PortState.FAULTED:
            self._ports[station_id, evse_id] = state
            return
        port = self._port(station_id, evse_id)
        port.state = state
        if state == PortState.FAULTED:
            if port.faulted_since is None:
                port.faulted_since = now
                self._arm(("fault", station_id, evse_id), now + self.rules.faulted_after_s)
                if self.remediation.enabled:
                    self._arm(("remedy", station_id, evse_id), now + self.remediation.after_s)
            port.error_code = error_code
            return
        if port.faulted_since is not None:
            port.faulted_since = None
            self._cancel(("fault", station_id, evse_id))
            self._cancel(("remedy", station_id, evse_id))
            self._resolve(out, FAULTED, station_id, evse_id, now)
            self._resolve(out, REMEDIATION_EXHAUSTED, station_id, evse_id, now)
        self._settle(station_id, evse_id, port)

    def meter_read(  # noqa: PLR0913 - a MeterRead's fields, without making one (one per meter reading)
        self,
        station_id: str,
        evse_id: int | None,
        transaction_id: str,
        at: float,
        energy_wh: float | None,
        power_w: float | None,
        current_a: float | None,
        charging_state: str | None,
        now: float,
        out: list[Effect],
    ) -> None:
        """:meth:`feed` of a :class:`MeterRead` of these fields, its effects appended to ``out``."""
        if evse_id is None:
            evse_id = self._tx_ports.get((station_id, transaction_id))
        if evse_id is None:
            return  # an update without EVSE for a transaction we never saw start (e.g. after a restart)
        held = self._ports.get((station_id, evse_id))
        port = held if isinstance(held, _Port) else self._port(station_id, evse_id)
        watch = port.register
        if watch is None or watch.transaction_id != transaction_id:
            if watch is not None:  # the previous transaction is over (None: none yet, or an alert restored)
                self._resolve(out, METER_FROZEN, station_id, evse_id, now)
                self._tx_ports.pop((station_id, watch.transaction_id), None)
            watch = port.register = RegisterWatch(transaction_id)
            self._tx_ports[station_id, transaction_id] = evse_id
            port.charging_state = None
        if charging_state is not None:
            port.charging_state = charging_state
        rules = self.rules
        if power_w is not None:
            flowing = power_w >= rules.meter_frozen_min_power_w
        elif current_a is not None:
            flowing = current_a >= rules.meter_frozen_min_current_a
        else:
            # 2.0.1 tells charging by the transaction's chargingState, 1.6 by the port's status
            flowing = port.charging_state == "Charging" if port.charging_state else port.state == PortState.CHARGING
        moved = watch.observe(at, energy_wh, flowing)
        if moved:
            self._resolve(out, METER_FROZEN, station_id, evse_id, now)
        elif (
            moved is False
            and watch.stalled >= rules.meter_frozen_readings
            and watch.stalled_for() >= rules.meter_frozen_after_s
        ):
            details = {
                "transaction_id": transaction_id,
                "register_wh": watch.register_wh,
                "since": watch.since,
                "stalled_readings": watch.stalled,
                "power_w": power_w,
                "current_a": current_a,
            }
            self._raise(out, METER_FROZEN, station_id, evse_id, now, details)

    def _closed(self, station_id: str, evse_id: int | None, transaction_id: str, now: float, out: list[Effect]) -> None:
        known = self._tx_ports.pop((station_id, transaction_id), None)
        evse_id = known if evse_id is None else evse_id
        if evse_id is None:
            return
        port = self._port(station_id, evse_id)
        if port.register is not None and port.register.transaction_id != transaction_id:
            return  # a later transaction is already being read on this port
        port.register, port.charging_state = None, None
        self._resolve(out, METER_FROZEN, station_id, evse_id, now)
        self._settle(station_id, evse_id, port)

    # ---- time --------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._timers.get(key) == when:
                return when
            heapq.heappop(self._heap)  # cancelled or re-armed
        return None

    def handle_timer(self, now: float) -> list[Effect]:
        """Fire every deadline at or before ``now`` (in deadline order)."""
        out: list[Effect] = []
        while (when := self.next_deadline()) is not None and when <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._timers[key]
            self._fire(key, when, now, out)
        return out

    def _fire(self, key: Any, when: float, now: float, out: list[Effect]) -> None:
        if isinstance(key, _Station):
            station, kind, station_id = key, "hb", key.station_id
        else:
            kind, station_id = key[0], key[1]
            station = self._station(station_id)
        if kind == "hb":
            station.heartbeat_lost = True
            last_seen = station.last_seen if station.last_seen is not None else when
            out.append(ConnectivityChanged(station_id, False, last_seen, "heartbeats missed"))
            details: dict[str, Any] = {"last_seen": last_seen, "deadline": when}
            self._raise(out, HEARTBEAT_MISSED, station_id, None, now, details)
            if station.offline_since is None:
                station.offline_since = last_seen
                self._arm(("offline", station_id), last_seen + self.rules.offline_after_s)
        elif kind == "offline":
            details = {"offline_since": station.offline_since, "threshold_s": self.rules.offline_after_s}
            self._raise(out, OFFLINE, station_id, None, now, details)
        elif kind == "fault":
            evse_id = key[2]
            port = self._port(station_id, evse_id)
            details = {"faulted_since": port.faulted_since, "error_code": port.error_code}
            self._raise(out, FAULTED, station_id, evse_id, now, details)
        elif kind == "remedy":
            self._remedy(station_id, key[2], station, now, out)

    def _remedy(self, station_id: str, evse_id: int, station: _Station, now: float, out: list[Effect]) -> None:
        policy = self.remediation
        resets = station.resets = [t for t in station.resets or () if t > now - DAY_S]
        if len(resets) < policy.max_per_day:
            resets.append(now)
            action, payload = commands.reset(station.version, "soft")
            out.append(SendCall(station_id, action, payload, f"port {evse_id} Faulted for {policy.after_s:g} s"))
            self._arm(("remedy", station_id, evse_id), now + policy.after_s)
            return
        details = {"resets_in_24h": len(resets), "max_per_day": policy.max_per_day}
        self._raise(out, REMEDIATION_EXHAUSTED, station_id, evse_id, now, details)
        # Try again once the oldest reset leaves the 24 h window.
        self._arm(("remedy", station_id, evse_id), max(now + policy.after_s, resets[0] + DAY_S))

    # ---- helpers -----------------------------------------------------------------------------------------
    def _station(self, station_id: str) -> _Station:
        station = self._stations.get(station_id)
        if station is None:
            station = self._stations[station_id] = _Station(station_id)
        return station

    def _port(self, station_id: str, evse_id: int) -> _Port:
        """The port's object, made from its bare state if it had none."""
        held = self._ports.get((station_id, evse_id))
        if isinstance(held, _Port):
            return held
        port = self._ports[station_id, evse_id] = _Port(held)
        return port

    def _settle(self, station_id: str, evse_id: int, port: _Port) -> None:
        """Back to the bare state once nothing but the state is left to follow (the error code of a fault
        that ended is not: the next Faulted status sets it)."""
        if port.faulted_since is None and not port.failures and port.register is None and port.state is not None:
            self._ports[station_id, evse_id] = port.state

    def _arm(self, key: Any, when: float) -> None:
        self._timers[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 2 * len(self._timers) + COMPACT_SLACK:
            self._compact()

    def _compact(self) -> None:
        """Drop the heap's stale entries. Every report re-arms its station's heartbeat deadline, so a connected
        station left ~10 superseded entries in the heap until their time came (~1 kB per connection held). The
        entry kept for a key is the one :meth:`next_deadline` would have found first (its deadline, the lowest
        sequence number), so deadlines fire in the same order as before."""
        live: dict[Any, tuple[float, int, Any]] = {}
        for entry in self._heap:
            when, seq, key = entry
            if self._timers.get(key) == when:
                kept = live.get(key)
                if kept is None or seq < kept[1]:
                    live[key] = entry
        self._heap = list(live.values())
        heapq.heapify(self._heap)

    def _cancel(self, key: Any) -> None:
        self._timers.pop(key, None)

    def _raise(
        self, out: list[Effect], rule: str, station_id: str, evse_id: int | None, now: float, details: dict[str, Any]
    ) -> None:
        key = (rule, station_id, evse_id)
        if rule not in self.rules.enabled or key in self.open:
            return
        self.open.add(key)
        out.append(RaiseAlert(rule, station_id, evse_id, self.rules.severity.get(rule, "warning"), now, details))

    def _monitor_alert(self, out: list[Effect], event: MonitorAlert, now: float) -> None:
        """One alert per EVSE while any of its monitors alerts (the details name the one that raised it)."""
        alerting = self._alerting.setdefault((event.station_id, event.evse_id), set())
        if event.cleared:
            alerting.discard(event.monitor_id)
            if not alerting:
                self._resolve(out, MONITOR_ALERT, event.station_id, event.evse_id, now)
            return
        alerting.add(event.monitor_id)
        details = {"monitor_id": event.monitor_id, "component": event.component, "variable": event.variable,
                   "actual": event.actual}  # fmt: skip
        self._raise(out, MONITOR_ALERT, event.station_id, event.evse_id, now, details)

    def _resolve(self, out: list[Effect], rule: str, station_id: str, evse_id: int | None, now: float) -> None:
        key = (rule, station_id, evse_id)
        if key in self.open:
            self.open.discard(key)
            out.append(ResolveAlert(rule, station_id, evse_id, now))
