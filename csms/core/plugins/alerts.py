"""The alert monitor as a host plugin: :class:`~csms.alerts.engine.AlertEngine` fed with connections and
committed reports; its effects applied — alerts (and their webhook deliveries) and connectivity changes
stored through ``scheduler.run_db``, remediation Resets sent as CSMS calls whose outcome is kept as an
``auto_remediation`` station event — and one alarm at the engine's next deadline.

In a cluster the engine runs on one node only, the holder of the ``alerts`` lease (:mod:`csms.runtime.leases`):
the shell sets :attr:`AlertMonitor.active` and, on the other nodes, a ``relay`` that carries their stations'
events to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from csms.alerts import engine as al
from csms.alerts.feed import ends_transaction, feed_reports, report_events
from csms.core.scheduler import Alarm
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import Version
from csms.services import alerts

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports


class Router(Protocol):
    """The shell's way to a station connected to another node of a cluster."""

    def remediate(
        self, station_id: str, action: str, payload: dict[str, Any], answered: Callable[[dict[str, Any]], None]
    ) -> None: ...


class AlertMonitor:
    def __init__(
        self,
        engine: al.AlertEngine,
        *,
        on_stored: Callable[[], None] | None = None,
        on_effects: Callable[[list[al.Effect]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_stored = on_stored  # e.g. the webhook sender's wake-up: new deliveries may be queued
        self.on_effects = on_effects  # every effect as it is applied (the twin's report)
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None
        #: False on a cluster node that does not hold the alerts lease: its events go to ``relay``.
        self.active = True
        self.relay: Callable[[list[al.Event]], None] | None = None
        #: How a remediation reaches a station connected to another node (None: a single process).
        self.router: Router | None = None

    # ---- plugin ------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        self._host = host
        self._alarm = Alarm(host.scheduler, self._on_timer)

    @property
    def host(self) -> CsmsHost:
        assert self._host is not None, "attach the plugin to a host first"
        return self._host

    def start(self) -> None:
        """Load the open alerts and the operator's rule settings from the store."""
        self._in_db(lambda db: (alerts.open_keys(db), alerts.effective_rules(db, self.engine.rules)), self._restore)

    def _restore(self, loaded: tuple[list[tuple[str, str, int | None]], al.AlertRules]) -> None:
        keys, rules = loaded
        self.engine.rules = rules
        self.engine.restore(keys)
        self._arm()

    def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.disarm()
        self._host = None

    def activate(self, active: bool, online: Sequence[tuple[str, str]] = ()) -> None:
        """This node took (True) or lost (False) the alerts lease. Taking it starts the engine afresh from the
        store (open alerts, rules) and the stations ``online`` anywhere (id, version)."""
        if active == self.active or self._host is None:
            return
        self.active = active
        self.engine = al.AlertEngine(self.engine.rules, self.engine.remediation)
        if self._alarm is not None:
            self._alarm.disarm()
        if active:
            self.start()
            self.feed([al.Connected(station_id, version) for station_id, version in online], self.host.scheduler.now())

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        self.feed([al.Connected(station_id, version)], now)

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        self.feed([al.Disconnected(station_id) for station_id in station_ids], now)

    def answered(self, station_id: str, now: float) -> None:
        """The station answered one of our calls: seen, as by any report (its heartbeat deadline moves)."""
        if self.active and self._host is not None:
            effects: list[al.Effect] = []
            self.engine.seen(station_id, now, effects)
            self._apply(effects, now)
            self._arm()
            return
        self.feed([al.Seen(station_id)], now)  # relayed to the lease holder on another node

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        if self.active and self._host is not None and not ends_transaction(reports):
            # (every committed report: the engine hears them without the events made of them first)
            self._apply(feed_reports(self.engine, station_id, reports, now), now)
            self._arm()
            return
        events, ended = report_events(station_id, reports)
        if not ended:
            self.feed(events, now)
            return
        self._in_db(
            lambda db: alerts.session_outcomes(db, station_id, ended),
            lambda outcomes: self.feed(events + outcomes, now),
        )

    # ---- engine ------------------------------------------------------------------------------------------
    def feed(self, events: list[al.Event], now: float) -> None:
        if self._host is None:
            return
        if not self.active:
            if self.relay is not None and events:
                self.relay(events)
            return
        effects: list[al.Effect] = []
        for event in events:
            effects += self.engine.feed(event, now)
        self._apply(effects, now)
        self._arm()

    def _on_timer(self) -> None:
        if self._host is None or not self.active:
            return
        now = self.host.scheduler.now()
        self._apply(self.engine.handle_timer(now), now)
        self._arm()

    def _arm(self) -> None:
        if self._alarm is not None:
            self._alarm.arm(self.engine.next_deadline())

    def _apply(self, effects: list[al.Effect], now: float) -> None:
        if not effects:
            return
        if self.on_effects is not None:
            self.on_effects(effects)
        stored: list[al.Effect] = [e for e in effects if not isinstance(e, al.SendCall)]
        if stored:
            self._in_db(lambda db: alerts.store_effects(db, stored), lambda _: self._stored())
        for effect in effects:
            if isinstance(effect, al.SendCall):
                self._remediate(effect)

    def _stored(self) -> None:
        if self.on_stored is not None:
            self.on_stored()

    def _remediate(self, effect: al.SendCall) -> None:
        def record(outcome: dict[str, Any]) -> None:
            if self._host is None:
                return
            now = self.host.scheduler.now()
            self._in_db(lambda db: alerts.record_remediation(db, effect, outcome, now), lambda _: None)

        def answered(pending: PendingCall) -> None:
            record(pending.as_dict())

        try:
            self.host.call(effect.station_id, effect.action, effect.payload, on_done=answered)
        except LookupError as exc:  # not connected here: another node's, if any
            if self.router is None:
                record({"outcome": "not_sent", "error": f"{type(exc).__name__}: {exc}"})
            else:
                self.router.remediate(effect.station_id, effect.action, effect.payload, record)
        except Exception as exc:  # invalid: recorded, not raised
            record({"outcome": "not_sent", "error": f"{type(exc).__name__}: {exc}"})

    def _in_db(self, work: Callable[[Any], Any], then: Callable[[Any], None]) -> None:
        factory = self.host.session_factory

        def run() -> Any:
            with factory() as db, db.begin():
                return work(db)

        self.host.scheduler.run_db(run, then)
