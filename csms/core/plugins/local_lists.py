"""Local authorization lists kept in step with the tokens, as a host plugin (both shells: the asyncio server
and the twin's embedded CSMS in virtual time).

One sync reads the station's list limits when they are not known yet (1.6 GetConfiguration, 2.0.1
GetVariables), prepares the SendLocalList calls in one transaction (:mod:`csms.services.local_lists`),
sends them one after the other (each recorded with the station's answer before the next goes out), and
stops at the first answer that is not Accepted. A VersionMismatch is answered once with the Full list.
Syncs of one station run one at a time, in the order asked, so its versions stay in order.

Started by an operator (:meth:`LocalListSync.sync`, the API's ``POST /stations/{id}/local-list``), by token
changes (:meth:`LocalListSync.tokens_changed`), and when a station whose list fell behind is back (a
reconnection of a registered station, or an accepted boot). A station that is not connected stays marked
out of step until then.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from csms.domain import events as ev
from csms.ocpp import local_list
from csms.ocpp.convert import from_posix
from csms.ocpp.errors import LocalCallError
from csms.ocpp.local_list import Changes, ListMessage, UpdateType
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import Version
from csms.services import local_lists, stations
from csms.services.errors import Conflict, DomainError, Invalid

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)

#: A sync's end: the calls sent and their answers (as the API returns them), or why it could not run.
Finished = Callable[[dict[str, Any] | Exception], None]
#: How a call reaches a station: ``send(station_id, action, payload, timeout_s, answered)``, ``answered`` with
#: the outcome as :meth:`PendingCall.as_dict` gives it. Raises when the station is not connected.
Send = Callable[[str, str, dict[str, Any], float | None, Callable[[dict[str, Any]], None]], None]


@dataclass(eq=False)
class _Job:
    station_id: str
    update_type: UpdateType
    explicit: Changes | None
    timeout: float | None
    read_limits: bool
    finished: Finished
    version: str = ""
    messages: deque[ListMessage] = field(default_factory=deque)
    last_index: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    retried: bool = False


class LocalListSync:
    #: :meth:`committed` acts on an Accepted :class:`~csms.domain.events.BootDecision`, the answer to a boot
    #: (:class:`~csms.core.host.SelectiveReports`).
    report_kinds: frozenset[type] = frozenset({ev.BootReported})

    def __init__(self, send: Send | None = None) -> None:
        self._send = send
        self._host: CsmsHost | None = None
        self._queues: dict[str, deque[_Job]] = {}
        #: Stations that asked for a catch-up while a check was running: the next check's.
        self._due: list[str] = []
        self._checking = False

    # ---- plugin ------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        self._host = host

    @property
    def host(self) -> CsmsHost:
        assert self._host is not None, "attach the plugin to a host first"
        return self._host

    def stop(self) -> None:
        self._host = None
        self._queues.clear()
        self._due.clear()
        self._checking = False

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        if registered:
            self.catch_up(station_id)

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        pass

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        if any(isinstance(decision, ev.BootDecision) and decision.status == "Accepted" for _, decision in reports):
            self.catch_up(station_id)

    # ---- what starts a sync ------------------------------------------------------------------------------
    def sync(
        self,
        station_id: str,
        finished: Finished,
        *,
        update_type: UpdateType = "Differential",
        explicit: Changes | None = None,
        timeout: float | None = None,
        read_limits: bool = False,
    ) -> None:
        """Send the station what its list lacks (or ``explicit`` changes); ``finished`` with the calls and
        their answers, or NotFound (no such station), Conflict (not connected), Invalid (too large for it)."""
        job = _Job(station_id, update_type, explicit, timeout, read_limits, finished)
        queue = self._queues.setdefault(station_id, deque())
        queue.append(job)
        if len(queue) == 1:
            self._start(job)

    def catch_up(self, station_id: str) -> None:
        """Sync a station whose list fell behind (token changes while it was away, or a lost list).

        Stations that ask while a check runs are checked together in the next one: a reconnect storm makes
        a few database jobs, not one per station queued between the group commits."""
        self._due.append(station_id)
        if not self._checking:
            self._check_due()

    def _check_due(self) -> None:
        station_ids, self._due = self._due, []
        self._checking = True

        def then(behind: list[str] | None) -> None:
            self._checking = False
            if behind:
                self.tokens_changed(behind)
            if self._due and self._host is not None:
                self._check_due()

        self._db(None, lambda db: local_lists.behind_among(db, station_ids), then)

    def tokens_changed(self, station_ids: list[str]) -> None:
        """Background syncs after a token change: a station not connected, or refusing, stays out of step."""
        for station_id in station_ids:
            self.sync(station_id, lambda result, station_id=station_id: _quiet(station_id, result))  # type: ignore[misc]

    # ---- one sync, step by step --------------------------------------------------------------------------
    def _start(self, job: _Job) -> None:
        def known(db: Any) -> tuple[str, bool]:
            row = local_lists.state(db, job.station_id)
            return stations.get(db, job.station_id).ocpp_version, row.capabilities_read_at is not None

        self._db(job, known, lambda found: self._limits(job, *found))

    def _limits(self, job: _Job, version: str, read: bool) -> None:
        job.version = version
        if read and not job.read_limits:
            self._prepare(job, job.update_type)
            return
        action, payload = local_list.capability_request(version)
        self._call(job, action, payload, lambda outcome: self._limits_answered(job, outcome))

    def _limits_answered(self, job: _Job, outcome: dict[str, Any]) -> None:
        if outcome["outcome"] == "timeout":
            self._prepare(job, job.update_type)  # ask again next time
            return
        result = outcome.get("payload") or {}
        found = local_list.limits_from(job.version, result) if outcome["outcome"] == "result" else None
        at = self._now()
        self._db(
            job,
            lambda db: local_lists.record_limits(db, job.station_id, found, at),
            lambda _: self._prepare(job, job.update_type),
        )

    def _prepare(self, job: _Job, update_type: UpdateType) -> None:
        at = self._now()

        def prepare(db: Any) -> local_lists.Prepared:
            return local_lists.prepare(db, job.station_id, at, update_type=update_type, explicit=job.explicit)

        self._db(job, prepare, lambda prepared: self._prepared(job, prepared))

    def _prepared(self, job: _Job, prepared: local_lists.Prepared) -> None:
        if prepared.refused is not None:
            self._finish(job, Invalid(prepared.refused))
            return
        job.messages = deque(prepared.messages)
        self._next_message(job)

    def _next_message(self, job: _Job) -> None:
        if not job.messages:
            self._round_done(job)
            return
        message = job.messages.popleft()
        action, payload = message.call(job.version)
        self._call(job, action, payload, lambda outcome: self._answered(job, message, outcome))

    def _answered(self, job: _Job, message: ListMessage, outcome: dict[str, Any]) -> None:
        status = _status(outcome)
        last, at = not job.messages, self._now()

        def record(db: Any) -> None:
            local_lists.record_answer(db, station_id=job.station_id, message=message, status=status, now=at, last=last)

        def recorded(_: Any) -> None:
            job.sent.append(
                {
                    "update_type": message.update_type,
                    "version": message.version,
                    "entries": len(message.changes),
                    "status": status,
                    **outcome,
                }
            )
            if status == "Accepted":
                self._next_message(job)
            else:
                self._round_done(job)

        self._db(job, record, recorded)

    def _round_done(self, job: _Job) -> None:
        if job.sent and job.sent[-1]["status"] == "VersionMismatch" and not job.retried:
            job.retried = True  # now marked needs_full: the whole list goes
            self._prepare(job, "Differential")
            return

        def result(db: Any) -> dict[str, Any]:
            row = local_lists.state(db, job.station_id)
            return {
                "station_id": job.station_id,
                "version": row.version,
                "status": job.sent[-1]["status"] if job.sent else "in step",
                "calls": job.sent,
            }

        self._db(job, result, lambda body: self._finish(job, body))

    def _finish(self, job: _Job, result: dict[str, Any] | Exception) -> None:
        try:
            job.finished(result)
        except Exception:
            log.exception("local list sync of %s: its caller failed", job.station_id)
        queue = self._queues.get(job.station_id)
        if queue and queue[0] is job:
            queue.popleft()
            if queue:
                self._start(queue[0])
            else:
                del self._queues[job.station_id]

    # ---- the host's services -----------------------------------------------------------------------------
    def _call(
        self, job: _Job, action: str, payload: dict[str, Any], answered: Callable[[dict[str, Any]], None]
    ) -> None:
        def back(outcome: dict[str, Any]) -> None:
            if self._host is not None:
                answered(outcome)

        try:
            if self._send is not None:
                self._send(job.station_id, action, payload, job.timeout, back)
            else:
                self.host.call(job.station_id, action, payload, job.timeout, on_done=_as_dict(back))
        except LookupError:  # the host's StationNotConnected, or the gateway's
            self._finish(job, Conflict(f"station {job.station_id!r} is not connected"))
        except LocalCallError as exc:
            self._finish(job, Invalid(exc.description))

    def _db(self, job: _Job | None, work: Callable[[Any], Any], then: Callable[[Any], Any]) -> None:
        """``work`` in a transaction, then ``then(result)``; an error ends the job (NotFound for an unknown
        station) instead of stalling the station's queue."""
        factory = self.host.session_factory

        def run() -> tuple[Any, Exception | None]:
            try:
                with factory() as db, db.begin():
                    return work(db), None
            except Exception as exc:
                return None, exc

        def back(done: tuple[Any, Exception | None]) -> None:
            if self._host is None:
                return
            value, error = done
            if error is None:
                then(value)
            elif job is not None:
                if not isinstance(error, DomainError):
                    log.error("local list sync of %s failed", job.station_id, exc_info=error)
                self._finish(job, error)
            else:  # a check of who is behind: they stay marked out of step and are checked on their next return
                log.error("local list check failed", exc_info=error)
                then(None)

        self.host.scheduler.run_db(run, back)

    def _now(self) -> Any:
        return from_posix(self.host.scheduler.now())


def _as_dict(answered: Callable[[dict[str, Any]], None]) -> Callable[[PendingCall], None]:
    return lambda pending: answered(pending.as_dict())


def _quiet(station_id: str, result: dict[str, Any] | Exception) -> None:
    if isinstance(result, Exception) and not isinstance(result, Conflict):  # not connected: synced on return
        log.warning("local list of %s not synced: %s", station_id, result)


def _status(outcome: dict[str, Any]) -> str:
    if outcome["outcome"] == "result":
        return local_list.update_status(outcome.get("payload") or {}) or "no status"
    if outcome["outcome"] == "error":
        error = outcome.get("error") or {}
        return f"CALLERROR {error.get('code')}"
    return str(outcome["outcome"])
