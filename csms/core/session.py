"""The CSMS side of one station's connection, sans-IO.

Theory of operation
-------------------
The shell (asyncio gateway, or the simulator's in-process link) owns the socket and the clock and drives
this object in three steps: feed a frame with ``now`` (:meth:`receive_frame`), hand the accumulated work to
the batch processor, then drain :meth:`frames_to_send` and arm one timer at :meth:`next_deadline`.

Incoming CALLs are not answered on receipt: schema-valid calls wait in the inbox until a
:class:`~csms.core.processor.BatchProcessor` runs them through the version adapter and the services inside a
database transaction, and their answers are released (:meth:`deliver`) only after that transaction
committed. So nothing we acknowledge to a charger can be lost by a crash.

Registration (OCPP 1.6 §4.2, 2.0.1 B02/B03): until the station's last BootNotification was Accepted, it may
only send BootNotification and the messages we asked for with TriggerMessage; anything else is answered
with a SecurityError CALLERROR. The tables, and which copy of the status is the truth, are in
:mod:`csms.core.registration`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from csms import log_context
from csms.core.registration import Registration, Verdict, admission, after_boot
from csms.core.traffic import CALL, CALLRESULT, CALLRESULTERROR, IN, MALFORMED, OUT, SEND, Traffic
from csms.domain import events as ev
from csms.ocpp import commands, schemas
from csms.ocpp.convert import from_posix
from csms.ocpp.errors import ErrorKind, OcppError, wire_code
from csms.ocpp.framing import Call
from csms.ocpp.rpc import (
    CallCompleted,
    FrameRejected,
    IncomingCall,
    IncomingSend,
    Outcome,
    PendingCall,
    ResultRefused,
    RpcEndpoint,
)
from csms.ocpp.v16 import adapter as v16
from csms.ocpp.v201 import adapter as v201
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, Version
from csms.pki.lookups import Lookup, Pending, Result
from csms.services import ev_charging, reports, security_events
from csms.services.config import CsmsConfig
from csms.services.uow import UnitOfWork

log = logging.getLogger(__name__)

#: 2.1 keeps every 2.0.1 message (its payload changes only widen them): the 2.0.1 adapter serves it.
ADAPTERS = {OCPP16: v16, OCPP201: v201, OCPP21: v201}
#: The triggered actions of a session that has none: one shared object (CPython makes a new empty frozenset each
#: time, 216 bytes a held connection).
_NO_TRIGGERS: frozenset[str] = frozenset()
#: A served call's debug line, by the start of its answer (CALLRESULT, CALLERROR, parked for a lookup).
_ANSWERED = {"[3": "call answered", "[4": "call refused (CALLERROR)", None: "call waits for a lookup"}
Write = Callable[[UnitOfWork], None]


@dataclass(slots=True)
class Work:
    """What one station needs from the next database transaction.

    ``calls`` and ``writes`` make a batch necessary; ``log_rows`` (the message log) only ride along.
    """

    calls: list[IncomingCall] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    log_rows: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.calls or self.writes)


@dataclass(slots=True)
class Staged:
    """Answers to :class:`Work`, to be released once its transaction committed."""

    frames: list[str] = field(default_factory=list)
    #: The action each of ``frames`` answers (for the traffic counts).
    actions: list[str] = field(default_factory=list)
    #: The registration once this batch committed, when it answered a BootNotification.
    registration: Registration | None = None
    #: The domain events this batch handled and the decisions taken, for observers after the commit
    #: (the alert engine). Calls that failed (CALLERROR) are not listed.
    reports: list[tuple[ev.StationReport, ev.Decision]] = field(default_factory=list)
    #: Actions admitted because we had triggered them: each trigger admits one, once this batch committed.
    triggers_used: set[str] = field(default_factory=set)
    #: Calls whose answer waits for an outside lookup (OCSP, the contract-certificate provider).
    parked: list[Parked] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Parked:
    """A call answered once its lookups are back, or at ``deadline`` with what came back by then."""

    call: Call
    pending: Pending
    deadline: float
    lookups: tuple[Lookup, ...]
    results: list[Result] = field(default_factory=list)
    missing: int = 0


class CallFailed(Exception):
    """A call failed after it touched the database in a batch run without savepoints (see ``handle``)."""


class StationSession:
    def __init__(
        self,
        station_id: str,
        version: Version,
        config: CsmsConfig,
        *,
        registration_status: str | None,
        id_prefix: str = "",
        traffic: Traffic | None = None,
    ) -> None:
        self.station_id = station_id
        #: Frame counts, shared by the host's sessions (a session of its own when none is given).
        self.traffic = traffic if traffic is not None else Traffic()
        self.version = version
        self.config = config
        self.adapter = ADAPTERS[version]
        self.rpc = RpcEndpoint(
            version,
            accepts=self.adapter.HANDLED_ACTIONS.__contains__,
            call_timeout_s=config.call_timeout_s,
            id_prefix=id_prefix,
        )
        #: A copy of the stored status (see :mod:`csms.core.registration`): moved only in :meth:`deliver`.
        self.registration = Registration.stored(registration_status)
        self._triggered = _NO_TRIGGERS  # most sessions never trigger
        self._work = Work()
        self._completed: list[PendingCall] = []
        #: Parked calls by a number of their own; lookups to hand to the shell, keyed (number, index).
        self._parked: dict[int, Parked] = {}
        self._parked_count = 0
        self._lookups: list[tuple[tuple[int, int], Lookup]] = []
        self._log_enabled = config.message_log_per_station > 0

    @property
    def registration_status(self) -> str | None:
        """The registration status as the station's row stores it (None: never answered)."""
        return self.registration.status

    # ---- step 1: input -----------------------------------------------------------------------------------
    def receive_frame(self, frame: str | bytes, now: float) -> None:
        for event in self.rpc.receive_frame(frame, now):
            if isinstance(event, IncomingCall):
                self.traffic.frame(IN, event.call.action, CALL)
                self._work.calls.append(event)
                if self._log_enabled:
                    self._log("in", event.call.action, frame, now)
            elif isinstance(event, CallCompleted):
                self._completed_call(event.pending, now)
                pending = event.pending
                self._count_answer_in(pending)
                if self._log_enabled:
                    hidden = commands.masked(self.version, pending.call.action, pending.payload or {})
                    # a station that reports its password back: that does not go into the log either
                    logged = frame if hidden is None else orjson.dumps([3, pending.call.unique_id, hidden])
                    self._log("in", pending.call.action, logged, now)
            elif isinstance(event, FrameRejected):
                self._rejected(event, now)
            else:
                self._unanswered(event, frame, now)

    def _rejected(self, event: FrameRejected, now: float) -> None:
        if event.answered:
            self.traffic.frame(IN, event.action, CALL if event.action else MALFORMED)
            self.traffic.error(OUT, event.action, wire_code(event.kind, self.version))
        else:
            self.traffic.frame(IN, event.action, SEND)
        self._log("in", None, event.frame, now)

    def _unanswered(self, event: IncomingSend | ResultRefused, frame: str | bytes, now: float) -> None:
        """OCPP 2.1's messages that get no answer: a SEND (no 2.1-only stream is served yet: it is logged and
        counted) and a CALLRESULTERROR (the station could not process one of our answers)."""
        if isinstance(event, IncomingSend):
            self.traffic.frame(IN, event.send.action, SEND)
            self._log("in", event.send.action, frame, now)
        else:
            log.warning(
                "station %s refused our answer %s: %s %s",
                self.station_id,
                event.error.unique_id,
                event.error.code,
                event.error.description,
            )
            self.traffic.frame(IN, None, CALLRESULTERROR)
            self._log("in", None, frame, now)

    def _count_answer_in(self, pending: PendingCall) -> None:
        """An answer to our call; one that broke its schema counts with the CALLERROR it was taken as."""
        if pending.outcome is Outcome.RESULT:
            self.traffic.frame(IN, pending.call.action, CALLRESULT)
        else:
            self.traffic.error(IN, pending.call.action, pending.error_code or "")

    def _completed_call(self, pending: PendingCall, now: float) -> None:
        self._completed.append(pending)
        call = pending.call
        if call.action == "SetChargingProfile" and pending.outcome is Outcome.RESULT:
            self._profile_answered(call.payload, pending.payload or {}, now)
        if (
            call.action in ("TriggerMessage", "ExtendedTriggerMessage")
            and pending.outcome is Outcome.RESULT
            and (pending.payload or {}).get("status") == "Accepted"
        ):
            requested = call.payload["requestedMessage"]
            self._triggered |= {_TRIGGER_ACTIONS.get(requested, requested)}

    def _profile_answered(self, request: dict[str, Any], answer: dict[str, Any], now: float) -> None:
        """A TxProfile the station accepted is what the EV's schedule is checked against (ISO 15118, K15)."""
        profile = request.get("chargingProfile")  # 2.0.1 and later; 1.6 has no EV schedule to check
        if answer.get("status") != "Accepted" or not profile or profile["chargingProfilePurpose"] != "TxProfile":
            return
        station_id, evse_id, when = self.station_id, request["evseId"], from_posix(now)
        self.record(lambda uow: ev_charging.profile_accepted(uow, station_id, evse_id, profile, when))

    def _log(self, direction: str, action: str | None, frame: str | bytes, now: float) -> None:
        if self._log_enabled:
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            self._work.log_rows.append(
                {
                    "station_id": self.station_id,
                    "direction": direction,
                    "action": action,
                    "frame": text[:8000],
                    "at": from_posix(now),
                }
            )

    def record(self, write: Write) -> None:
        """Queue a write for the next batch (e.g. a connection event)."""
        self._work.writes.append(write)

    # ---- step 2: the batch processor ---------------------------------------------------------------------
    def take_work(self) -> Work:
        work, self._work = self._work, Work()
        return work

    def has_work(self) -> bool:
        return bool(self._work)

    def handle(self, work: Work, uow: UnitOfWork, now: float, *, isolate: bool = True) -> Staged:
        """Run the work's calls through the adapter and services inside ``uow`` (not committed here).

        ``isolate``: each call runs in its own SAVEPOINT, so a call that fails is answered with a CALLERROR
        and rolls back only itself. Without it no savepoint is taken (they cost a statement each and force
        a flush per call); a call refused before it touched the database is still answered with its
        CALLERROR, but any later failure raises :class:`CallFailed` and the caller must roll the whole
        transaction back and run the batch again isolated.
        """
        uow.log_rows.extend(work.log_rows)
        for write in work.writes:
            write(uow)
        staged = Staged()
        when = from_posix(now)
        for incoming in work.calls:
            call = incoming.call
            with log_context.serving(self.station_id, call.action, call.unique_id):
                frame = self._handle_call(call, uow, when, staged, now, isolate=isolate)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(_ANSWERED.get(frame[:2] if frame else None, "call answered"))
            if frame is None:
                continue  # parked: answered when its lookups are back (logged then)
            staged.frames.append(frame)
            staged.actions.append(call.action)
            if self._log_enabled:
                uow.log_rows.append(
                    {
                        "station_id": self.station_id,
                        "direction": "out",
                        "action": call.action,
                        "frame": frame,
                        "at": when,
                    }
                )
        return staged

    def _handle_call(
        self, call: Call, uow: UnitOfWork, when: datetime, staged: Staged, now: float, *, isolate: bool
    ) -> str | None:
        """One call of :meth:`handle`: its answer frame, or None when it is parked."""
        try:
            report = self._admit(call.action, call.payload, staged)
        except OcppError as exc:
            return self.rpc.error_frame(call, exc)
        except Exception as exc:  # a bug in an adapter must not take the connection down
            log.exception("station %s: %s could not be translated", self.station_id, call.action)
            return self.rpc.error_frame(call, OcppError(ErrorKind.INTERNAL, type(exc).__name__))
        if isolate:
            return self._serve_isolated(call, report, uow, when, staged, now)
        try:
            answer = self._serve(call, report, uow, when, staged, now)
            # Writing the answer can fail too; then the batch must rerun isolated, not fail whole.
            return None if answer is None else self._result(call, answer)
        except Exception as exc:
            raise CallFailed(f"station {self.station_id}: {call.action} failed") from exc

    def _admit(self, action: str, payload: dict[str, Any], staged: Staged) -> ev.StationReport:
        """Checks that need no database: registration, and the payload's translation to a domain event.

        Raises:
            OcppError: the call is refused (SecurityError before acceptance, a value the CSMS cannot use).
        """
        triggered = action in self._triggered and action not in staged.triggers_used
        verdict = admission(self._registration_in(staged), action, triggered=triggered)
        if verdict is Verdict.REFUSE:
            raise OcppError(ErrorKind.SECURITY, f"{action} is not allowed before the station is accepted")
        if verdict is Verdict.SERVE_TRIGGERED:
            staged.triggers_used.add(action)
        event: ev.StationReport = self.adapter.to_event(action, payload)
        return event

    def _registration_in(self, staged: Staged) -> Registration:
        """The registration as this batch sees it: a BootNotification answered earlier in it counts."""
        return self.registration if staged.registration is None else staged.registration

    def _result(self, call: Call, payload: dict[str, Any]) -> str:
        schemas.validate(self.version, call.action, "response", payload)
        return self.rpc.result_frame(call, payload)

    def _serve_isolated(
        self, call: Call, report: ev.StationReport, uow: UnitOfWork, when: datetime, staged: Staged, now: float
    ) -> str | None:
        reported, registration, parked = len(staged.reports), staged.registration, len(staged.parked)
        try:
            with uow.savepoint():
                answer = self._serve(call, report, uow, when, staged, now)
                return None if answer is None else self._result(call, answer)
        except Exception as exc:  # a bug or a database error must not take the connection down either
            del staged.reports[reported:]
            del staged.parked[parked:]
            staged.registration = registration  # a boot answer rolled back with its row
            if isinstance(exc, OcppError):
                return self.rpc.error_frame(call, exc)
            log.exception("station %s: %s failed", self.station_id, call.action)
            return self.rpc.error_frame(call, OcppError(ErrorKind.INTERNAL, type(exc).__name__))

    def _serve(
        self, call: Call, report: ev.StationReport, uow: UnitOfWork, when: datetime, staged: Staged, now: float
    ) -> dict[str, Any] | None:
        """The answer's payload, or None when it waits for an outside lookup (parked in ``staged``)."""
        decision = reports.handle(
            uow, self.station_id, report, when, self.config, csms_assigns_tx_ids=self.version == OCPP16
        )
        if isinstance(decision, Pending):
            # The lookups are built here, in the batch: a request that cannot be built is this call's error.
            staged.parked.append(Parked(call, decision, now + self.config.lookup_timeout_s, decision.lookups))
            return None
        if isinstance(decision, ev.BootDecision):
            staged.registration = after_boot(self._registration_in(staged), decision.status)
        staged.reports.append((report, decision))
        payload: dict[str, Any] = self.adapter.to_payload(call.action, decision)
        return payload

    def deliver(self, staged: Staged) -> None:
        """The batch committed: release its answers."""
        if staged.registration is not None:
            self.registration = staged.registration
        if staged.triggers_used:
            self._triggered = (self._triggered - staged.triggers_used) or _NO_TRIGGERS
        for action, frame in zip(staged.actions, staged.frames, strict=True):
            self.traffic.answer_out(action, frame)
        self.rpc.push_frames(staged.frames)
        for parked in staged.parked:
            self._park(parked)

    # ---- answers that wait for a lookup ------------------------------------------------------------------
    def _park(self, parked: Parked) -> None:
        self._parked_count += 1
        number = self._parked_count
        lookups = parked.lookups
        parked.results = [None] * len(lookups)
        parked.missing = len(lookups)
        self._parked[number] = parked
        self._lookups.extend(((number, index), lookup) for index, lookup in enumerate(lookups))

    def take_lookups(self) -> list[tuple[tuple[int, int], Lookup]]:
        """Lookups for the shell to make, each with the key to hand back to :meth:`lookup_done`."""
        lookups, self._lookups = self._lookups, []
        return lookups

    def lookup_done(self, key: tuple[int, int], result: Result, now: float) -> None:
        """A lookup is back (``None``: it failed). Late ones (the call was answered at its deadline) are ignored."""
        number, index = key
        parked = self._parked.get(number)
        if parked is None:
            return
        parked.results[index] = result
        parked.missing -= 1
        if parked.missing == 0:
            self._answer_parked(number, now)

    def _answer_parked(self, number: int, now: float) -> None:
        parked = self._parked.pop(number)
        call = parked.call
        try:
            decision = parked.pending.finish(parked.results, from_posix(now))
            frame = self._result(call, self.adapter.to_payload(call.action, decision))
        except Exception as exc:  # a bug must not take the connection down
            log.exception("station %s: %s could not be answered", self.station_id, call.action)
            frame = self.rpc.error_frame(call, OcppError(ErrorKind.INTERNAL, type(exc).__name__))
        else:
            self._record_ocsp_failure(parked.pending.ocsp_failure(decision), now)
        self.traffic.answer_out(call.action, frame)
        self.rpc.push_frames([frame])
        self._log("out", call.action, frame, now)

    def _record_ocsp_failure(self, detail: dict[str, Any] | None, now: float) -> None:
        if detail is None:
            return
        station_id, at = self.station_id, from_posix(now)

        def write(uow: UnitOfWork) -> None:
            security_events.record(uow.session, type="ocsp_failed", at=at, station_id=station_id, detail=detail)

        self.record(write)

    def fail(self, work: Work, reason: str) -> None:
        """The batch could not be committed: answer every call with InternalError, so the station retries."""
        exc = OcppError(ErrorKind.INTERNAL, reason)
        code = wire_code(ErrorKind.INTERNAL, self.version)
        for incoming in work.calls:
            self.traffic.error(OUT, incoming.call.action, code)
        self.rpc.push_frames([self.rpc.error_frame(incoming.call, exc) for incoming in work.calls])

    # ---- calls to the station ----------------------------------------------------------------------------
    def send_call(
        self, action: str, payload: dict[str, Any], now: float, timeout_s: float | None = None
    ) -> PendingCall:
        """Queue a CSMS-initiated call (raises LocalCallError when it is not valid for this version)."""
        pending = self.rpc.send_call(action, payload, now, timeout_s)
        self.traffic.frame(OUT, action, CALL)
        if self._log_enabled:  # (the frame is written again for the log: with a station password masked)
            logged = commands.masked(self.version, action, payload) or payload
            self._log("out", action, orjson.dumps([2, pending.call.unique_id, action, logged]), now)
        return pending

    def completed_calls(self) -> list[PendingCall]:
        done = self._completed
        if done:  # else the empty list stays: no new one per frame
            self._completed = []
        return done

    # ---- step 3: output and time -------------------------------------------------------------------------
    def frames_to_send(self) -> list[str]:
        return self.rpc.frames_to_send()

    def next_deadline(self) -> float | None:
        if not self._parked:
            return self.rpc.next_deadline()
        deadlines = [parked.deadline for parked in self._parked.values()]
        rpc = self.rpc.next_deadline()
        if rpc is not None:
            deadlines.append(rpc)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        for event in self.rpc.handle_timer(now):
            if isinstance(event, CallCompleted):
                self._completed_call(event.pending, now)
        for number in [number for number, parked in self._parked.items() if parked.deadline <= now]:
            self._answer_parked(number, now)  # what came back by now; the rest counts as failed

    def close(self, now: float) -> None:
        for event in self.rpc.cancel_all(now):
            self._completed.append(event.pending)
        self._parked.clear()
        self._lookups.clear()


#: TriggerMessage's requestedMessage -> the action the station then sends.
_TRIGGER_ACTIONS = {
    "DiagnosticsStatusNotification": "DiagnosticsStatusNotification",
    "SignChargingStationCertificate": "SignCertificate",
    "SignChargePointCertificate": "SignCertificate",
    "SignV2GCertificate": "SignCertificate",
    "SignCombinedCertificate": "SignCertificate",
}
