"""The CSMS host: everything between the sockets and the database that does not depend on the clock.

Theory of operation
-------------------
A shell (the asyncio gateway, or the twin's embedded CSMS in virtual time) owns the transport and the clock.
It builds one :class:`CsmsHost` with a :class:`~csms.core.scheduler.Scheduler` and drives it with four
inputs: a station is admitted (:meth:`admit`, blocking database work the shell may run on a thread), it
connects with a :class:`Transport` (:meth:`connect`), a frame arrives (:meth:`receive`), it disconnects
(:meth:`disconnect`). Time passes through the scheduler: each connection keeps one alarm at its session's
next deadline.

Around each :class:`~csms.core.session.StationSession` the host does, once for both clocks:

* the registry — a second connection of a station replaces the first, and every connection and
  disconnection is recorded (``connection_events``) in the order it happened;
* group commit — sessions with work are marked dirty; one job at a time takes the work of every dirty
  session to :class:`~csms.core.processor.BatchProcessor` through ``scheduler.run_db`` (a worker thread in
  real time, inline in virtual time), and only after that commit are the answers released and sent; work
  that arrives meanwhile waits for the next job;
* answers to the CSMS's calls as signs of life — noted (station, when) and written to ``stations.last_seen_at``
  by the next group commit, at most once per station per heartbeat interval; an answer due a write asks for
  a commit of its own;
* the fan-out after the commit to :class:`Plugin` s (load management, alerts): they hear connections,
  disconnections and the reports each committed batch handled;
* CSMS-initiated calls (:meth:`call`), validated by the session and completed by its answer, CALLERROR,
  timeout or the connection's end, with a callback;
* answers that wait for an outside lookup (Plug & Charge: OCSP, the contract-certificate provider): after
  the commit the host hands the session's lookups to the shell's :class:`~csms.pki.lookups.Lookups`, and
  the results back to the session with ``now``; the session answers when all are back or at its deadline.

Nothing here awaits, sleeps or reads a clock other than ``scheduler.now()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from csms.core.processor import BatchProcessor, release
from csms.core.scheduler import Alarm, Scheduler
from csms.core.session import Staged, StationSession, Work
from csms.core.traffic import Traffic
from csms.domain.events import Decision, StationReport
from csms.ocpp.convert import from_posix
from csms.ocpp.rpc import Outcome, PendingCall
from csms.ocpp.versions import Version
from csms.pki.lookups import Lookup, Lookups, Result
from csms.services import security_events, stations
from csms.services.admission import PLAIN, Admission, Admissions, Channel
from csms.services.config import CsmsConfig

log = logging.getLogger(__name__)

#: The outcomes of a CSMS call that the station itself gave (not a timeout, nor a call cancelled with the connection).
_ANSWERED = frozenset({Outcome.RESULT, Outcome.ERROR})

Reports = list[tuple[StationReport, Decision]]


class StationNotConnected(LookupError):
    pass


class Transport(Protocol):
    """The shell's side of one connection."""

    def send(self, frames: list[str]) -> None:
        """Send these frames, in order, after those sent before."""
        ...

    def close(self, reason: str) -> None:
        """The CSMS ends this connection (replaced by a newer one of the same station)."""
        ...


class Plugin(Protocol):
    """A part of the CSMS that follows the stations (load management, alerts).

    Told after the fact, on the scheduler's thread; database work goes through ``host.scheduler.run_db``.
    ``disconnected`` hears every station whose connection ended at once (one, or all of them when the shell
    stops); it is also told when a newer connection replaced the station's (``host.is_connected`` still
    answers True then).
    """

    def attach(self, host: CsmsHost) -> None: ...

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None: ...

    def disconnected(self, station_ids: Sequence[str], now: float) -> None: ...

    def committed(self, station_id: str, reports: Reports, now: float) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class SelectiveReports(Protocol):
    """A :class:`Plugin` that acts on committed reports of a few kinds only: the host tells it only of a station's
    committed reports that include one of them (most commits carry meter values and heartbeats, which most plugins
    do nothing with). Skipping a plugin changes nothing it would have done, so the order of every effect stays."""

    #: The classes of the reports it acts on (an empty set: none; its ``committed`` is never called).
    report_kinds: frozenset[type]


@runtime_checkable
class AnswerObserver(Protocol):
    """A :class:`Plugin` that hears when a station answered one of the CSMS's calls (a CALLRESULT or CALLERROR):
    a sign of life like any frame. A charger heartbeats only after an interval without any exchange (OCPP 1.6
    HeartbeatInterval, 2.0.1 OCPPCommCtrlr.HeartbeatInterval), answers to the CSMS's calls included, so one the
    CSMS keeps calling may send nothing else."""

    def answered(self, station_id: str, now: float) -> None: ...


@runtime_checkable
class CommitEnd(Protocol):
    """A :class:`Plugin` told once a group commit's reports were all told (``committed`` for each of its stations):
    what they change together is acted on once (load management plans each site they changed once)."""

    def commit_ended(self, now: float) -> None: ...


class CommitObserver(Protocol):
    """Told after every group commit, on the scheduler's thread (a shell's metrics)."""

    def batch_committed(self, stations: int, calls: int, seconds: float, failed: bool) -> None:
        """``seconds``: from the batch handed to ``run_db`` to its answers back, on the scheduler's clock."""
        ...


class Connection(Alarm):
    """One station's connection, and the alarm at its session's next deadline (calls the host's timer).

    Tens of thousands are held at once: one slotted object per connection, no closure for the alarm, and the
    map of completion callbacks only while calls are outstanding."""

    __slots__ = ("client_serial", "closed", "host", "security_profile", "session", "station_id", "transport",
                 "version", "waiting")  # fmt: skip

    def __init__(
        self, host: CsmsHost, station_id: str, version: Version, session: StationSession, transport: Transport
    ) -> None:
        super().__init__(host.scheduler)
        self.host = host
        self.station_id = station_id
        self.version = version
        self.session = session
        self.transport = transport
        self.closed = False
        #: The serial of the client certificate it was admitted with (TLS, security profile 3).
        self.client_serial: str | None = None
        #: The security profile it was admitted at (None: the embedded CSMS, which knows no transport).
        self.security_profile: int | None = None
        #: Completion callbacks of calls sent on this connection, by ``id(pending)`` (None: none outstanding).
        self.waiting: dict[int, Callable[[PendingCall], None]] | None = None

    def fire(self) -> None:
        self.host._on_timer(self)


class NoLookups:
    """A shell without outside lookups: each fails at once, so its answer is the fallback one."""

    def run(self, lookup: Lookup, then: Callable[[Result], None]) -> None:
        then(None)


class CsmsHost:
    def __init__(
        self, session_factory: Any, config: CsmsConfig, scheduler: Scheduler, lookups: Lookups | None = None
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.lookups: Lookups = lookups or NoLookups()
        self.session_factory = session_factory
        self.admissions = Admissions(session_factory, config)
        self.processor = BatchProcessor(session_factory, config)
        self.connections: dict[str, Connection] = {}
        self.plugins: list[Plugin] = []
        #: Each plugin with the report kinds it acts on (None: every report), in the order added.
        self._report_plugins: list[tuple[Plugin, frozenset[type] | None]] = []
        self._answer_plugins: list[AnswerObserver] = []
        self._commit_end_plugins: list[CommitEnd] = []
        self.frames_in = 0
        self.frames_out = 0
        #: Frames by direction, action and type, CALLERRORs by code (read by a shell's metrics).
        self.traffic = Traffic()
        self.commit_observer: CommitObserver | None = None
        self.running = True
        self._opened = 0
        self._dirty: dict[Connection, None] = {}
        #: Stations that answered a CSMS call since the last commit took them, with when the last answer came.
        self._answered: dict[str, float] = {}
        #: One of them is due a ``last_seen_at`` write: a commit is needed even without a session's work.
        self._answer_due = False
        self._commit_due = False
        self._committing = False

    def add_plugin(self, plugin: Plugin) -> None:
        plugin.attach(self)
        self.plugins.append(plugin)
        kinds = plugin.report_kinds if isinstance(plugin, SelectiveReports) else None
        self._report_plugins.append((plugin, kinds))
        if isinstance(plugin, AnswerObserver):
            self._answer_plugins.append(plugin)
        if isinstance(plugin, CommitEnd):
            self._commit_end_plugins.append(plugin)

    def stop(self) -> None:
        """The process ends (or dies, in the twin): timers stop, nothing more is committed or sent."""
        self.running = False
        for connection in self.connections.values():
            connection.disarm()
        for plugin in self.plugins:
            plugin.stop()

    @property
    def idle(self) -> bool:
        """No work waits for a commit and none is being committed."""
        return not self._dirty and not self._commit_due and not self._committing

    def _tell(self, event: str, *args: Any) -> None:
        """Each plugin in the order added; one that raises is logged and does not keep the others from
        hearing, nor the station from being served."""
        for plugin in self.plugins:
            try:
                getattr(plugin, event)(*args)
            except Exception:
                log.exception("plugin %r failed in %s", plugin, event)

    def _tell_committed(self, station_id: str, reports: Reports, now: float) -> None:
        """:meth:`_tell` of ``committed``, called by name: it is told after every committed call; a plugin of
        :class:`SelectiveReports` only when one of the reports is of a kind it acts on."""
        kind = type(reports[0][0]) if len(reports) == 1 else None  # (most often one report: its class)
        several: list[type] | None = None
        for plugin, kinds in self._report_plugins:
            if kinds is not None:
                if kind is not None:
                    if kind not in kinds:
                        continue
                else:
                    if several is None:
                        several = [type(report) for report, _ in reports]
                    if kinds.isdisjoint(several):
                        continue
            try:
                plugin.committed(station_id, reports, now)
            except Exception:
                log.exception("plugin %r failed in committed", plugin)

    # ---- connections -------------------------------------------------------------------------------------
    def admit(
        self, station_id: str, authorization: str | None, offered: Version | None, channel: Channel = PLAIN
    ) -> Admission:
        """Blocking (database, password hash): the shell decides on which thread. ``channel``: what the
        transport proved (TLS, a verified client certificate), checked against the station's security profile."""
        return self.admissions.admit(station_id, authorization, offered, self.scheduler.now(), channel)

    def refuse_early(self, channel: Channel) -> bool:
        """Cheap, on the shell's own thread: is this peer's address throttled (refuse without :meth:`admit`)?"""
        return self.admissions.source_blocked(channel.source, self.scheduler.now())

    def connect(self, admission: Admission, version: Version, transport: Transport) -> Connection:
        station_id = admission.station_id
        self._opened += 1
        session = StationSession(
            station_id,
            version,
            self.config,
            registration_status=admission.registration_status,
            id_prefix=f"{self._opened:x}-",
            traffic=self.traffic,
        )
        connection = Connection(self, station_id, version, session, transport)
        connection.client_serial = admission.client_serial
        connection.security_profile = admission.security_profile
        previous = self.connections.get(station_id)
        self.connections[station_id] = connection
        self.processor.live.forget_station(station_id)  # another process may have served it meanwhile
        if previous is not None:
            self.disconnect(previous, "replaced by a new connection")  # the map holds the new one already
            previous.transport.close("replaced by a new connection")
        now = self.scheduler.now()  # after the old connection's end, so the history reads in order
        session.record(lambda uow: stations.connection_changed(uow, station_id, "connected", from_posix(now)))
        self._mark(connection)
        registered = admission.registration_status == "Accepted"
        self._tell("connected", station_id, version, registered, now)
        return connection

    def disconnect(self, connection: Connection, detail: str) -> None:
        self.disconnect_all([(connection, detail)])

    def disconnect_all(self, ended: Sequence[tuple[Connection, str]]) -> None:
        """Connections that ended, each with why: as :meth:`disconnect` one by one, but their connection
        events are one write (with the last one's work, so a batch of 10,000 disconnections is not 10,000
        sessions' work) and the plugins are told once (the shell stops)."""
        now = self.scheduler.now()
        gone: list[tuple[str, str]] = []
        last: Connection | None = None
        for connection, detail in ended:
            if self.connections.get(connection.station_id) is connection:
                del self.connections[connection.station_id]
            if self._end(connection, now):
                gone.append((connection.station_id, detail))
                last = connection
        if last is None:
            return
        at = from_posix(now)

        def record(uow: Any) -> None:
            for station_id, detail in gone:
                stations.connection_changed(uow, station_id, "disconnected", at, detail)

        last.session.record(record)
        self._mark(last)
        self._tell("disconnected", [station_id for station_id, _ in gone], now)

    def _end(self, connection: Connection, now: float) -> bool:
        """The connection ends: its calls cancelled, its timer off; False if it had ended already."""
        if connection.closed:
            return False
        connection.closed = True
        connection.session.close(now)
        self._resolve(connection)
        connection.disarm()
        if connection.session.has_work():
            self._mark(connection)
        return True

    def is_connected(self, station_id: str) -> bool:
        return station_id in self.connections

    def drop_certificate(self, serials: set[str], reason: str = "client certificate revoked") -> list[str]:
        """Close the connections admitted with a client certificate of these serials; their stations."""
        dropped = [c for c in self.connections.values() if c.client_serial in serials]
        for connection in dropped:
            connection.transport.close(reason)
        return [connection.station_id for connection in dropped]

    def security_event(self, connection: Connection, type_: str, detail: dict[str, Any], source: str | None) -> None:
        """Record what the shell detected on this connection (e.g. a flood) with the connection's next batch."""
        at = from_posix(self.scheduler.now())
        station_id = connection.station_id

        def write(uow: Any) -> None:
            security_events.record(uow.session, type=type_, at=at, station_id=station_id, source=source, detail=detail)

        connection.session.record(write)
        self._mark(connection)

    # ---- frames and time ---------------------------------------------------------------------------------
    def receive(self, connection: Connection, frame: str | bytes) -> None:
        if connection.closed:
            return
        self.frames_in += 1
        connection.session.receive_frame(frame, self.scheduler.now())
        self._resolve(connection)
        if connection.session.has_work():
            self._mark(connection)
        self._flush(connection)

    def _on_timer(self, connection: Connection) -> None:
        if connection.closed or not self.running:
            return
        connection.session.handle_timer(self.scheduler.now())
        self._resolve(connection)
        if connection.session.has_work():
            self._mark(connection)  # a lookup answered at its deadline left a security event to store
        self._flush(connection)

    def _flush(self, connection: Connection) -> None:
        frames = connection.session.frames_to_send()
        if connection.closed:
            return  # no frame, no timer any more (an answer committed after the end goes nowhere)
        if frames:
            self.frames_out += len(frames)
            connection.transport.send(frames)
        connection.arm(connection.session.next_deadline())

    def _resolve(self, connection: Connection) -> None:
        for pending in connection.session.completed_calls():
            if pending.outcome in _ANSWERED:
                self._note_answer(connection.station_id)
                if self._answer_plugins:
                    now = self.scheduler.now()
                    for plugin in self._answer_plugins:
                        try:
                            plugin.answered(connection.station_id, now)
                        except Exception:
                            log.exception("plugin %r failed in answered", plugin)
            waiting = connection.waiting
            done = waiting.pop(id(pending), None) if waiting else None
            if done is not None:
                if not waiting:
                    connection.waiting = None
                done(pending)

    def _note_answer(self, station_id: str) -> None:
        """The station answered a call: its ``last_seen_at`` goes with the next commit (the throttle of
        :func:`csms.services.reports.answered` decides there). Most answers are not due a write (SetChargingProfile
        renewals, many per interval): they only ride along, and a commit is asked for only for one that is."""
        now = self.scheduler.now()
        self._answered[station_id] = now
        # Read while a commit's thread may write it: a value older than the one being written asks for a commit
        # that then writes nothing; one a failed commit forgets asks for none, and the answer waits for the next.
        if not self._answer_due and self.processor.live.seen_due(station_id, now, self.config.heartbeat_interval_s):
            self._answer_due = True
            self._schedule_commit()

    # ---- answers that wait for a lookup ------------------------------------------------------------------
    def _start_lookups(self, connection: Connection) -> None:
        for key, lookup in connection.session.take_lookups():
            self.lookups.run(lookup, lambda result, key=key: self._looked_up(connection, key, result))  # type: ignore[misc]

    def _looked_up(self, connection: Connection, key: tuple[int, int], result: Result) -> None:
        if connection.closed or not self.running:
            return
        connection.session.lookup_done(key, result, self.scheduler.now())
        if connection.session.has_work() or self.config.message_log_per_station > 0:
            self._mark(connection)  # a security event to store, the answer's message log row
        self._flush(connection)

    # ---- calls to stations -------------------------------------------------------------------------------
    def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout_s: float | None = None,
        on_done: Callable[[PendingCall], None] | None = None,
    ) -> PendingCall:
        """Send a CSMS-initiated call; ``on_done(pending)`` when it completed (result, CALLERROR, timeout, or
        cancelled with the connection).

        Raises:
            StationNotConnected: no live connection.  LocalCallError: invalid for the station's version.
        """
        connection = self.connections.get(station_id)
        if connection is None or not self.running:
            raise StationNotConnected(station_id)
        pending = connection.session.send_call(action, payload, self.scheduler.now(), timeout_s)
        if on_done is not None:
            if connection.waiting is None:
                connection.waiting = {}
            connection.waiting[id(pending)] = on_done
        self._flush(connection)
        if self.config.message_log_per_station > 0:
            self._mark(connection)  # the message log row
        return pending

    # ---- group commit ------------------------------------------------------------------------------------
    def _mark(self, connection: Connection) -> None:
        self._dirty[connection] = None
        self._schedule_commit()

    def _schedule_commit(self) -> None:
        if (self._dirty or self._answer_due) and not self._commit_due and not self._committing and self.running:
            self._commit_due = True
            self.scheduler.call_at(self.scheduler.now(), self._commit)

    def _commit(self) -> None:
        self._commit_due = False
        if not self.running:
            return
        connections, self._dirty = list(self._dirty), {}
        batch: list[tuple[StationSession, Work]] = []
        batched: list[Connection] = []
        for connection in connections:
            work = connection.session.take_work()
            if work or work.log_rows:
                batch.append((connection.session, work))
                batched.append(connection)
        if not batch and not self._answer_due:
            return  # the answers noted (none due a write) wait for the next commit
        answered = self._answered
        if answered:
            self._answered, self._answer_due = {}, False
        self._committing = True
        now = self.scheduler.now()
        self.scheduler.run_db(
            lambda: self.processor.process(batch, now, answered),
            lambda results: self._committed(batch, batched, results, now),
        )

    def _committed(
        self,
        batch: Sequence[tuple[StationSession, Work]],
        connections: list[Connection],
        results: list[tuple[StationSession, Staged | None]],
        now: float,
    ) -> None:
        self._committing = False
        if not self.running:
            return  # the process died before the commit returned: nothing is answered
        if self.commit_observer is not None:
            calls = sum(len(work.calls) for _, work in batch)
            failed = any(staged is None for _, staged in results)
            self.commit_observer.batch_committed(len(batch), calls, self.scheduler.now() - now, failed)
        release(results, batch)
        for connection in connections:
            self._start_lookups(connection)
        for session, staged in results:  # after the commit: plugins only see what was stored
            if staged is not None and staged.reports:
                self._tell_committed(session.station_id, staged.reports, now)
        for plugin in self._commit_end_plugins:
            try:
                plugin.commit_ended(now)
            except Exception:
                log.exception("plugin %r failed in commit_ended", plugin)
        for connection in connections:
            self._flush(connection)
        self._schedule_commit()
