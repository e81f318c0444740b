"""The alert monitor: the asyncio shell around :class:`csms.alerts.AlertEngine`.

It is the gateway's :class:`~csms.gateway.server.StationObserver`: connections and committed reports become
engine events; the engine's effects are applied here — alerts (and their webhook deliveries) and
connectivity changes written in one transaction on a worker thread, Reset calls sent through the gateway —
and one loop timer is armed at the engine's next deadline. Remediation calls and their outcome are kept as
``auto_remediation`` station events.

:class:`InlineMonitor` is the same engine with the same writes run inline under any clock (the simulator's
SimPy time); the steps both shells share are the module-level functions below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from csms.alerts import engine as al
from csms.alerts.meter import Reading, readings
from csms.domain import events as ev
from csms.ocpp.convert import from_posix
from csms.services import alerts
from csms.store.models import ConnectionEvent, StationEvent, Transaction

log = logging.getLogger(__name__)

#: A session "delivered" when it metered at least this much (below: it failed to start charging).
MIN_SESSION_WH = 1.0


class Monitor:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        engine: al.AlertEngine,
        *,
        call: Callable[[str, str, dict[str, Any]], Any] | None = None,
        on_committed: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session_factory = session_factory
        self.engine = engine
        self.call = call  # async (station_id, action, payload) -> PendingCall, e.g. Gateway.call
        self.on_committed = on_committed  # e.g. WebhookSender.wake
        self.clock = clock
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csms-alerts")
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        """Load the open alerts and the operator's rule settings from the store."""

        def load(db: Session) -> tuple[list[tuple[str, str, int | None]], al.AlertRules]:
            return alerts.open_keys(db), alerts.effective_rules(db, self.engine.rules)

        keys, rules = await self._in_db(load)
        self.engine.rules = rules
        self.engine.restore(keys)
        self._arm()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await asyncio.get_running_loop().run_in_executor(self._db, lambda: None)
        self._db.shutdown(wait=True)

    # ---- StationObserver ---------------------------------------------------------------------------------
    def connected(self, station_id: str, version: str, now: float) -> None:
        self.feed([al.Connected(station_id, version)], now)

    def disconnected(self, station_id: str, now: float) -> None:
        self.feed([al.Disconnected(station_id)], now)

    def committed(self, station_id: str, reports: list[tuple[ev.StationReport, ev.Decision]], now: float) -> None:
        events, ended = report_events(station_id, reports)
        self.feed(events, now)
        if ended:
            self._spawn(self._session_outcomes(station_id, ended))

    async def _session_outcomes(self, station_id: str, charger_tx_ids: list[str]) -> None:
        events = await self._in_db(lambda db: session_outcomes(db, station_id, charger_tx_ids))
        self.feed(events, self.clock())

    # ---- engine ------------------------------------------------------------------------------------------
    def feed(self, events: list[al.Event], now: float) -> None:
        effects: list[al.Effect] = []
        for event in events:
            effects += self.engine.feed(event, now)
        self._apply(effects)
        self._arm()

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.engine.handle_timer(self.clock()))
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.engine.next_deadline()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, deadline - self.clock()), self._on_timer)

    def _apply(self, effects: list[al.Effect]) -> None:
        stored = [e for e in effects if not isinstance(e, al.SendCall)]
        if stored:
            self._spawn(self._store(stored))
        for effect in effects:
            if isinstance(effect, al.SendCall):
                self._spawn(self._send(effect))

    async def _store(self, effects: list[al.Effect]) -> None:
        await self._in_db(lambda db: store_effects(db, effects))
        if self.on_committed is not None:
            self.on_committed()

    async def _send(self, effect: al.SendCall) -> None:
        outcome: dict[str, Any]
        if self.call is None:
            outcome = {"outcome": "not_sent"}
        else:
            try:
                pending = await self.call(effect.station_id, effect.action, effect.payload)
                outcome = pending.as_dict()
            except Exception as exc:  # not connected, invalid: recorded, not raised
                outcome = {"outcome": "not_sent", "error": f"{type(exc).__name__}: {exc}"}
        now = self.clock()
        await self._in_db(lambda db: record_remediation(db, effect, outcome, now))

    async def _in_db(self, work: Callable[[Session], Any]) -> Any:
        def run() -> Any:
            with self.session_factory() as db, db.begin():
                return work(db)

        return await asyncio.get_running_loop().run_in_executor(self._db, run)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("alert monitor task failed", exc_info=task.exception())

    async def idle(self) -> None:
        """Wait until every pending write and call finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


# ---- the shell-independent steps (shared by the asyncio Monitor and the inline one) ----------------------
def report_events(
    station_id: str, reports: list[tuple[ev.StationReport, ev.Decision]]
) -> tuple[list[al.Event], list[str]]:
    """Committed reports as engine events, and the charger ids of the transactions that ended."""
    events: list[al.Event] = [al.Seen(station_id)]
    ended: list[str] = []
    for report, decision in reports:
        match report:
            case ev.BootReported() if isinstance(decision, ev.BootDecision):
                events.append(al.BootDecided(station_id, decision.status, decision.interval_s))
            case ev.StatusReported():
                events.append(al.StatusChanged(station_id, report.evse_id, report.status, report.error_code))
            case ev.StationNotice(kind="firmware_status"):
                events.append(al.FirmwareStatus(station_id, str(report.data.get("status"))))
            case ev.StationNotice(kind="security_event"):
                kind = str(report.data.get("type"))
                events.append(al.SecurityEvent(station_id, kind, report.data.get("techInfo")))
            case ev.TransactionEnded():
                ended.append(report.charger_tx_id)
            case ev.TransactionStarted() | ev.TransactionUpdated() | ev.MeterValuesReported():
                events += meter_reads(station_id, report, decision)
    return events, ended


def meter_reads(
    station_id: str,
    report: ev.TransactionStarted | ev.TransactionUpdated | ev.MeterValuesReported,
    decision: ev.Decision,
) -> list[al.Event]:
    """A transaction's meter readings (the meter-frozen rule's input); readings outside a transaction are not."""
    tx_id = report.charger_tx_id
    if tx_id is None and isinstance(decision, ev.TransactionAck) and decision.transaction_id:
        tx_id = str(decision.transaction_id)  # 1.6 StartTransaction: the id we assigned
    if tx_id is None:
        return []
    reads = readings(report.samples)
    if isinstance(report, ev.TransactionStarted) and report.meter_start_wh is not None and not reads:
        reads = [Reading(report.timestamp.timestamp(), report.meter_start_wh, None, None)]
    state = report.charging_state if isinstance(report, ev.TransactionUpdated) else None
    if state is not None and not reads:  # a charging state change without values
        reads = [Reading(report.timestamp.timestamp(), None, None, None)]
    return [
        al.MeterRead(station_id, report.evse_id, tx_id, r.at, r.energy_wh, r.power_w, r.current_a, state) for r in reads
    ]


def session_outcomes(db: Session, station_id: str, charger_tx_ids: list[str]) -> list[al.Event]:
    """Ended transactions: TransactionClosed, and SessionDelivered / SessionFailed (the stuck-Available rule's
    input)."""
    rows = db.scalars(
        select(Transaction).where(Transaction.station_id == station_id, Transaction.charger_tx_id.in_(charger_tx_ids))
    )
    events: list[al.Event] = []
    for tx in rows:
        events.append(al.TransactionClosed(station_id, tx.evse_id, tx.charger_tx_id))
        if tx.evse_id is not None:
            delivered = tx.energy_wh >= MIN_SESSION_WH
            events.append((al.SessionDelivered if delivered else al.SessionFailed)(station_id, tx.evse_id))
    return events


def store_effects(db: Session, effects: list[al.Effect]) -> None:
    """Alerts raised/resolved and connectivity changes, in the caller's transaction (SendCall is skipped)."""
    for effect in effects:
        match effect:
            case al.RaiseAlert():
                alerts.raise_alert(
                    db,
                    effect.rule,
                    effect.station_id,
                    effect.evse_id,
                    effect.severity,
                    from_posix(effect.at),
                    effect.details,
                )
            case al.ResolveAlert():
                alerts.auto_resolve(db, effect.rule, effect.station_id, effect.evse_id, from_posix(effect.at))
            case al.ConnectivityChanged():
                kind = "hb_resumed" if effect.online else "hb_timeout"  # connection_events.kind is 16 chars
                db.add(
                    ConnectionEvent(
                        station_id=effect.station_id, kind=kind, at=from_posix(effect.at), detail=effect.reason
                    )
                )


def record_remediation(db: Session, effect: al.SendCall, outcome: dict[str, Any], now: float) -> None:
    data = {"action": effect.action, "payload": effect.payload, "reason": effect.reason, **outcome}
    db.add(StationEvent(station_id=effect.station_id, kind="auto_remediation", timestamp=from_posix(now), data=data))


class InlineMonitor:
    """The same engine and the same writes, run inline under any clock (the simulator's SimPy time).

    The owner reports connections and commits with its ``now``, re-arms one alarm at :meth:`next_deadline`
    (``on_deadline`` is called whenever it may have moved) and calls :meth:`handle_timer` when it rings.
    ``call(station_id, action, payload, now)`` sends a CSMS-initiated call (auto-remediation) and returns a
    dict outcome (it cannot wait for the answer inline: ``{"outcome": "sent"}``).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        engine: al.AlertEngine,
        *,
        call: Callable[[str, str, dict[str, Any], float], dict[str, Any]] | None = None,
        on_deadline: Callable[[float | None], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.engine = engine
        self.call = call
        self.on_deadline = on_deadline
        self.effects: list[al.Effect] = []  # every effect applied, in order (reports and tests)

    def start(self) -> None:
        with self.session_factory() as db:
            keys, rules = alerts.open_keys(db), alerts.effective_rules(db, self.engine.rules)
        self.engine.rules = rules
        self.engine.restore(keys)
        self._arm()

    def connected(self, station_id: str, version: str, now: float) -> None:
        self.feed([al.Connected(station_id, version)], now)

    def disconnected(self, station_id: str, now: float) -> None:
        self.feed([al.Disconnected(station_id)], now)

    def committed(self, station_id: str, reports: list[tuple[ev.StationReport, ev.Decision]], now: float) -> None:
        events, ended = report_events(station_id, reports)
        if ended:
            with self.session_factory() as db:
                events += session_outcomes(db, station_id, ended)
        self.feed(events, now)

    def feed(self, events: list[al.Event], now: float) -> None:
        effects: list[al.Effect] = []
        for event in events:
            effects += self.engine.feed(event, now)
        self._apply(effects, now)
        self._arm()

    def next_deadline(self) -> float | None:
        return self.engine.next_deadline()

    def handle_timer(self, now: float) -> None:
        self._apply(self.engine.handle_timer(now), now)
        self._arm()

    def _arm(self) -> None:
        if self.on_deadline is not None:
            self.on_deadline(self.engine.next_deadline())

    def _apply(self, effects: list[al.Effect], now: float) -> None:
        if not effects:
            return
        self.effects += effects
        stored = [e for e in effects if not isinstance(e, al.SendCall)]
        if stored:
            with self.session_factory() as db, db.begin():
                store_effects(db, stored)
        for effect in effects:
            if isinstance(effect, al.SendCall):
                try:
                    outcome = (
                        {"outcome": "not_sent"}
                        if self.call is None
                        else self.call(effect.station_id, effect.action, effect.payload, now)
                    )
                except Exception as exc:  # not connected: recorded, not raised
                    outcome = {"outcome": "not_sent", "error": f"{type(exc).__name__}: {exc}"}
                with self.session_factory() as db, db.begin():
                    record_remediation(db, effect, outcome, now)
