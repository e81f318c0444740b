"""The real CSMS core inside the simulation process: the same sessions, batch processor, services and
database as ``csms serve``, driven inline in virtual time instead of by the asyncio gateway.

Nothing here re-implements CSMS behaviour: frames go through :class:`csms.core.session.StationSession` and
every call is committed by :class:`csms.core.processor.BatchProcessor` before its answer is released.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from csms.alerts import AlertEngine, AlertRules, RemediationPolicy
from csms.core.processor import BatchProcessor, release
from csms.core.session import StationSession
from csms.loadmgmt.manager import LoadManager, call_status
from csms.loadmgmt.planner import Command
from csms.ocpp.convert import from_posix
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import Version
from csms.runtime.monitor import InlineMonitor
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.services.load_memory import read_memory
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Station


class Refused(Exception):
    """The CSMS refused the connection at the handshake (unknown station)."""


class EmbeddedCsms:
    def __init__(self, session_factory: sessionmaker[Session], config: CsmsConfig) -> None:
        self.session_factory = session_factory
        self.config = config
        self.processor = BatchProcessor(session_factory, config)
        self.sessions: dict[str, StationSession] = {}
        self._connections = 0
        self.frames_in = 0
        self.frames_out = 0
        self.monitor: InlineMonitor | None = None
        #: Where CSMS-initiated frames go (station id, frames): set by the owner of the links.
        self.outbound: Callable[[str, list[str]], None] | None = None
        self.crashes = 0
        self.up = True  # False between a crash and its restart: connection attempts are refused
        self._alert_config: tuple[Any, ...] | None = None
        #: Load management (``enable_load_management``): the same manager the gateway runs.
        self.load: LoadManager | None = None  # None while the process is down
        self._load_enabled = False
        self._outgoing: Callable[[str], None] = lambda _station_id: None
        self._arm: Callable[[float | None], None] = lambda _deadline: None
        self._lm_calls: dict[int, Command] = {}
        self.lm_sent = 0
        self.lm_failed = 0
        #: Runs a callback later at the same virtual instant, after the deliveries already due then (set by the
        #: owner of the clock); None: every delivery is committed on its own.
        self.defer: Callable[[Callable[[], None]], None] | None = None
        self._waiting: dict[StationSession, Callable[[list[str]], None]] = {}

    # ---- alerts in virtual time ----------------------------------------------------------------------------
    def enable_monitor(
        self,
        rules: AlertRules | None = None,
        remediation: RemediationPolicy | None = None,
        on_deadline: Callable[[float | None], None] | None = None,
    ) -> InlineMonitor:
        """Run the alert engine inline: fed on connect/disconnect/commit with virtual ``now``; the owner arms
        an alarm at ``on_deadline`` and calls ``monitor.handle_timer``. Remediation calls go out through
        :attr:`outbound`."""
        self._alert_config = (rules, remediation, on_deadline)
        self.monitor = InlineMonitor(
            self.session_factory, AlertEngine(rules, remediation), call=self._monitor_call, on_deadline=on_deadline
        )
        self.monitor.start()
        return self.monitor

    def _monitor_call(self, station_id: str, action: str, payload: dict[str, Any], now: float) -> dict[str, Any]:
        _, frames = self.send_call(station_id, action, payload, now)
        if self.outbound is not None:
            self.outbound(station_id, frames)
        return {"outcome": "sent"}

    def crash(self) -> list[str]:
        """The process dies: in-memory state (sessions, their pending calls, the monitor, the load manager's
        plan) is gone; nothing is written (a killed process writes nothing). Returns the station ids whose
        links must be dropped."""
        dropped = list(self.sessions)
        self.sessions.clear()
        self._waiting.clear()
        self.processor = BatchProcessor(self.session_factory, self.config)
        self.crashes += 1
        if self.monitor is not None:
            if self.monitor.on_deadline is not None:
                self.monitor.on_deadline(None)
            self.monitor = None
        if self.load is not None:
            self._arm(None)
            self._lm_calls.clear()
            self.load = None
        self.up = False
        return dropped

    def restart(self, now: float) -> None:
        """Start again on the same database: alerts reloaded from the store, and a new load manager that
        knows what the store does (sites, running transactions, recent meter readings) and nothing else."""
        self.up = True
        if self._alert_config is not None:
            self.enable_monitor(*self._alert_config)
        if self._load_enabled:
            self.load = LoadManager()
            with self.session_factory() as db:
                memory = read_memory(db, now)
            self.load_commands(self.load.resume(memory, now), now)

    def enable_load_management(
        self, manager: LoadManager, outgoing: Callable[[str], None], arm: Callable[[float | None], None]
    ) -> None:
        """Run ``manager`` inline: ``outgoing(station_id)`` is told that a session has calls to send (the
        link drains them), ``arm(deadline)`` keeps one alarm at the manager's next deadline."""
        self.load, self._outgoing, self._arm = manager, outgoing, arm
        self._load_enabled = True

    def load_commands(self, commands: list[Command], now: float) -> None:
        """Send the manager's commands through the stations' sessions (offline stations: dropped, their
        disconnect already re-planned with the fallback)."""
        if self.load is None:
            return
        for command in commands:
            session = self.sessions.get(command.station_id)
            if session is None:
                continue
            pending = session.send_call(command.action, command.payload, now)
            self._lm_calls[id(pending)] = command
            self.lm_sent += 1
            self._outgoing(command.station_id)
        self._arm(self.load.next_deadline())

    def load_timer(self, now: float) -> None:
        if self.load is not None:
            self.load_commands(self.load.handle_timer(now), now)

    def _completed(self, session: StationSession, now: float) -> None:
        for pending in session.completed_calls():
            command = self._lm_calls.pop(id(pending), None)
            if command is None or self.load is None:
                continue
            status = call_status(pending.outcome.value if pending.outcome else "cancelled", pending.payload)
            before = self.load.failed_profiles
            commands = self.load.call_result(command, status, now)
            self.lm_failed += self.load.failed_profiles - before
            self.load_commands(commands, now)

    @classmethod
    def create(cls, database_url: str = "sqlite://", config: CsmsConfig | None = None) -> EmbeddedCsms:
        """A CSMS on a fresh (default: in-memory SQLite) database, migrated like ``csms db upgrade``."""
        engine: Engine = make_engine(database_url)
        migrate.upgrade(engine)
        return cls(make_session_factory(engine), config or CsmsConfig(message_log_per_station=0))

    # ---- connections -------------------------------------------------------------------------------------
    def connect(self, station_id: str, now: float, offered: Version | None = None) -> StationSession:
        """The handshake: the station must be provisioned (or auto-registration on)."""
        if not self.up:
            raise Refused("the CSMS is down")
        with self.session_factory() as db:
            row = db.get(Station, station_id)
            if row is None:
                if not self.config.auto_register:
                    raise Refused(f"unknown station {station_id!r}")
                stations.auto_register(db, station_id, offered or "1.6", None, from_posix(now))
                db.commit()
                row = db.get(Station, station_id)
                assert row is not None
            version: Version = row.ocpp_version  # type: ignore[assignment]
            registration = row.registration_status
        previous = self.sessions.pop(station_id, None)
        if previous is not None:
            self.disconnect(previous, now, "replaced by a new connection")
        self._connections += 1
        session = StationSession(
            station_id, version, self.config, registration_status=registration, id_prefix=f"{self._connections:x}-"
        )
        session.record(lambda uow: stations.connection_changed(uow, station_id, "connected", from_posix(now)))
        self.sessions[station_id] = session
        self._commit([session], now)
        if self.monitor is not None:
            self.monitor.connected(station_id, version, now)
        if self.load is not None:
            commands = self.load.connected(station_id, version, now, registered=registration == "Accepted")
            self.load_commands(commands, now)
        return session

    def disconnect(self, session: StationSession, now: float, detail: str = "link down") -> None:
        if self.sessions.get(session.station_id) is session:
            del self.sessions[session.station_id]
        session.close(now)
        for pending in session.completed_calls():  # cancelled with the connection: it re-plans as offline
            self._lm_calls.pop(id(pending), None)
        session.record(
            lambda uow: stations.connection_changed(uow, session.station_id, "disconnected", from_posix(now), detail)
        )
        self._commit([session], now)
        if self.monitor is not None:
            self.monitor.disconnected(session.station_id, now)
        if self.load is not None and session.station_id not in self.sessions:
            self.load_commands(self.load.disconnected(session.station_id, now), now)

    # ---- the three shell steps, inline ---------------------------------------------------------------------
    def deliver(self, session: StationSession, frame: str, now: float, send: Callable[[list[str]], None]) -> None:
        """Feed one frame; ``send`` gets what the CSMS answers once the frame's work is committed.

        With :attr:`defer` set, the work of every frame that arrives at the same virtual instant is committed
        as one batch, like the gateway's group commit; otherwise each frame is its own batch.
        """
        self.frames_in += 1
        session.receive_frame(frame, now)
        self._completed(session, now)
        if self.defer is None:
            self._commit([session], now)
            self._send(session, send)
            return
        if not self._waiting:
            self.defer(lambda: self._commit_instant(now))
        self._waiting.setdefault(session, send)

    def _commit_instant(self, now: float) -> None:
        waiting, self._waiting = self._waiting, {}
        self._commit(list(waiting), now)
        for session, send in waiting.items():
            self._send(session, send)

    def _send(self, session: StationSession, send: Callable[[list[str]], None]) -> None:
        out = session.frames_to_send()
        self.frames_out += len(out)
        send(out)

    def handle_timer(self, session: StationSession, now: float) -> list[str]:
        session.handle_timer(now)
        self._completed(session, now)
        out = session.frames_to_send()
        self.frames_out += len(out)
        return out

    def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], now: float
    ) -> tuple[PendingCall, list[str]]:
        """An operator's call to a connected station (raises KeyError when it is not connected)."""
        session = self.sessions[station_id]
        pending = session.send_call(action, payload, now)
        return pending, session.frames_to_send()

    def _commit(self, sessions: Iterable[StationSession], now: float) -> None:
        batch = [(s, s.take_work()) for s in sessions]
        batch = [(s, w) for s, w in batch if w or w.log_rows]
        if batch:
            results = self.processor.process(batch, now)
            release(results, batch)
            if self.monitor is not None:  # after the commit, like the gateway's observer
                for session, staged in results:
                    if staged is not None and staged.reports:
                        self.monitor.committed(session.station_id, staged.reports, now)
            if self.load is not None:  # after the commit, like the gateway's observers
                for s, staged in results:
                    if staged is not None and staged.reports:
                        self.load_commands(self.load.committed(s.station_id, staged.reports, now), now)
