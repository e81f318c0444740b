"""Sans-IO OCPP-J RPC endpoint: decodes and validates frames, answers protocol errors, correlates our calls.

Theory of operation
-------------------
One endpoint per connection and direction-agnostic: the CSMS session and the twin's charger both use it.

* :meth:`RpcEndpoint.receive_frame` takes one text frame and ``now``. A CALL the schema accepts becomes an
  :class:`IncomingCall` event for the owner to handle; a CALL the schema rejects is answered here with the
  version's CALLERROR and never reaches the owner. A CALLRESULT/CALLERROR that matches our outstanding call
  completes it (:class:`CallCompleted`); anything else is dropped and counted.
* :meth:`send_call` validates our payload first (raising :class:`LocalCallError`) and queues it. At most one
  of our CALLs is outstanding at a time (OCPP-J §4.1.1); the rest wait in FIFO order. Each sent call gets a
  deadline ``sent_at + timeout``; :meth:`next_deadline` tells the owner when to call :meth:`handle_timer`.
* OCPP-J 2.1 only: a SEND (message type 6) the schema accepts becomes an :class:`IncomingSend`; it is never
  answered, not even when it is invalid (then it is dropped and counted as rejected). A CALLRESULT to our
  call that breaks its schema is answered with a CALLRESULTERROR (type 5), and a CALLRESULTERROR from the
  peer (our CALLRESULT was not processed) becomes a :class:`ResultRefused`, never answered either.
  :meth:`send_unconfirmed` writes our own SEND. On 1.6 and 2.0.1 connections types 5 and 6 are answered
  MessageTypeNotSupported like any unknown type.
* Outgoing frames accumulate until the owner drains them with :meth:`frames_to_send`.

Time is a float (POSIX seconds) passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from csms.ocpp import framing, schemas
from csms.ocpp.errors import (
    KIND_BY_CODE,
    ErrorKind,
    FrameError,
    LocalCallError,
    OcppError,
    wire_code,
)
from csms.ocpp.framing import Call, CallError, CallResult, CallResultError, Send
from csms.ocpp.versions import OCPP21, Version

#: Message types beyond the three of OCPP-J 1.6/2.0.1, by version.
_MESSAGE_TYPES: dict[Version, frozenset[int]] = {OCPP21: framing.RPC_TYPES_21}


class Outcome(Enum):
    RESULT = "result"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A schema-valid CALL from the peer; answer it with :meth:`RpcEndpoint.reply` or ``reply_error``."""

    call: Call
    received_at: float


@dataclass(eq=False, slots=True)
class PendingCall:
    """One of our CALLs, from queueing until its result, error or timeout."""

    call: Call
    timeout_s: float
    queued_at: float
    sent_at: float | None = None
    outcome: Outcome | None = None
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None
    error_details: dict[str, Any] = field(default_factory=dict)
    completed_at: float | None = None
    #: The CALL as written when it was queued.
    frame: str = ""

    @property
    def deadline(self) -> float | None:
        return None if self.sent_at is None else self.sent_at + self.timeout_s

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary, as the API returns it."""
        body: dict[str, Any] = {"action": self.call.action, "message_id": self.call.unique_id}
        body["outcome"] = self.outcome.value if self.outcome else "pending"
        if self.outcome is Outcome.RESULT:
            body["payload"] = self.payload
        elif self.outcome is Outcome.ERROR:
            body["error"] = {
                "code": self.error_code,
                "description": self.error_description,
                "details": self.error_details,
            }
        return body


@dataclass(frozen=True, slots=True)
class IncomingSend:
    """A schema-valid SEND (OCPP-J 2.1) from the peer: take note, never answer."""

    send: Send
    received_at: float


@dataclass(frozen=True, slots=True)
class ResultRefused:
    """OCPP-J 2.1 CALLRESULTERROR: the peer could not process one of our CALLRESULTs."""

    error: CallResultError


@dataclass(frozen=True, slots=True)
class CallCompleted:
    pending: PendingCall


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame we answered with a CALLERROR (or dropped); kept for the message log and metrics."""

    frame: str
    kind: ErrorKind
    description: str
    #: The CALL's action, when the frame was readable enough to name one.
    action: str | None = None
    #: False for a SEND we dropped: nothing answers a SEND.
    answered: bool = True


RpcEvent = IncomingCall | IncomingSend | ResultRefused | CallCompleted | FrameRejected


class RpcEndpoint:
    def __init__(
        self,
        version: Version,
        *,
        accepts: Callable[[str], bool],
        call_timeout_s: float = 30.0,
        id_prefix: str = "",
        validate_results: bool = True,
    ) -> None:
        """
        Args:
            version: the OCPP version negotiated for this connection.
            accepts: which actions this side handles; a CALL of a defined action we do not handle is
                answered NotSupported, an undefined one NotImplemented.
            call_timeout_s: how long our CALL waits for its answer once sent.
            id_prefix: prefix of our message ids (ids are ``prefix + counter``: unique per connection and
                deterministic, as virtual time needs).
        """
        self.version = version
        self._types = _MESSAGE_TYPES.get(version, framing.RPC_TYPES)
        self._accepts = accepts
        self.call_timeout_s = call_timeout_s
        self._id_prefix = id_prefix
        self._validate_results = validate_results
        self._next_id = 1
        self._outbox: list[str] = []
        # A list, not a deque: it rarely holds more than one call, and an empty deque costs 600 bytes
        # (one block) on every connection.
        self._queue: list[PendingCall] = []
        self._outstanding: PendingCall | None = None
        self.frames_received = 0
        self.frames_rejected = 0

    # ---- input -------------------------------------------------------------------------------------------
    def receive_frame(self, frame: str | bytes, now: float) -> list[RpcEvent]:
        self.frames_received += 1
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        try:
            message = framing.decode(frame, self._types)
        except FrameError as exc:
            return [self._reject(text, exc, exc.unique_id or framing.UNREADABLE_ID)]
        if isinstance(message, Call):
            return self._receive_call(text, message, now)
        if isinstance(message, Send):
            return self._receive_send(text, message, now)
        if isinstance(message, CallResultError):
            return [ResultRefused(message)]
        return self._receive_answer(message, now)

    def _receive_call(self, text: str, call: Call, now: float) -> list[RpcEvent]:
        try:
            schemas.validate(self.version, call.action, "request", call.payload)
        except OcppError as exc:
            return [self._reject(text, exc, call.unique_id, call.action)]
        if not self._accepts(call.action):
            refusal = OcppError(ErrorKind.NOT_SUPPORTED, f"{call.action} is not supported by this endpoint")
            return [self._reject(text, refusal, call.unique_id, call.action)]
        return [IncomingCall(call, now)]

    def _receive_send(self, text: str, send: Send, now: float) -> list[RpcEvent]:
        try:
            schemas.validate_send(self.version, send.action, send.payload)
            if not self._accepts(send.action):
                raise OcppError(ErrorKind.NOT_SUPPORTED, f"{send.action} is not supported by this endpoint")
        except OcppError as exc:
            self.frames_rejected += 1  # dropped: nothing answers a SEND, not even a bad one
            return [FrameRejected(text, exc.kind, exc.description, send.action, answered=False)]
        return [IncomingSend(send, now)]

    def _reject(self, text: str, exc: OcppError, unique_id: str, action: str | None = None) -> FrameRejected:
        self.frames_rejected += 1
        self._outbox.append(self._error_frame(unique_id, exc))
        return FrameRejected(text, exc.kind, exc.description, action)

    def _error_frame(self, unique_id: str, exc: OcppError) -> str:
        code = wire_code(exc.kind, self.version)
        return framing.encode(CallError(unique_id, code, exc.description, exc.details))

    def _receive_answer(self, message: CallResult | CallError, now: float) -> list[RpcEvent]:
        pending = self._outstanding
        if pending is None or pending.call.unique_id != message.unique_id:
            # Late (after its timeout) or unknown: nothing waits for it any more.
            self.frames_rejected += 1
            return []
        self._outstanding = None
        if isinstance(message, CallResult):
            try:
                if self._validate_results:
                    schemas.validate(self.version, pending.call.action, "response", message.payload)
            except OcppError as exc:
                self._complete_error(pending, wire_code(exc.kind, self.version), exc.description, exc.details, now)
                if framing.CALLRESULTERROR in self._types:
                    refusal = CallResultError(message.unique_id, pending.error_code or "", exc.description, exc.details)
                    self._outbox.append(framing.encode(refusal))
            else:
                pending.outcome = Outcome.RESULT
                pending.payload = message.payload
                pending.completed_at = now
        else:
            code = message.code if message.code in KIND_BY_CODE else wire_code(ErrorKind.GENERIC, self.version)
            self._complete_error(pending, code, message.description, message.details, now)
        self._send_next(now)
        return [CallCompleted(pending)]

    @staticmethod
    def _complete_error(pending: PendingCall, code: str, description: str, details: dict[str, Any], now: float) -> None:
        pending.outcome = Outcome.ERROR
        pending.error_code = code
        pending.error_description = description
        pending.error_details = details
        pending.completed_at = now

    # ---- answering the peer ------------------------------------------------------------------------------
    def reply(self, call: Call, payload: dict[str, Any]) -> None:
        self._outbox.append(framing.encode(CallResult(call.unique_id, payload)))

    def reply_error(self, call: Call, exc: OcppError) -> None:
        self._outbox.append(self._error_frame(call.unique_id, exc))

    def result_frame(self, call: Call, payload: dict[str, Any]) -> str:
        """The CALLRESULT text without queueing it (for owners that stage replies until a commit)."""
        return framing.encode(CallResult(call.unique_id, payload))

    def error_frame(self, call: Call, exc: OcppError) -> str:
        return self._error_frame(call.unique_id, exc)

    def push_frames(self, frames: list[str]) -> None:
        self._outbox.extend(frames)

    # ---- our calls ---------------------------------------------------------------------------------------
    def send_call(
        self, action: str, payload: dict[str, Any], now: float, timeout_s: float | None = None
    ) -> PendingCall:
        """Queue a CALL; it is sent at once unless another of ours is outstanding.

        Raises:
            LocalCallError: the action is not defined for this version or the payload breaks its schema.
        """
        call = Call(f"{self._id_prefix}{self._next_id}", action, payload)
        # Written now, not when it is sent: a call that cannot be written must not become the outstanding one,
        # or every later call to the station would wait behind it until it times out. Written first because
        # the text bounds the nesting in C (see framing.too_deep): the Python walk runs only when it could bind.
        frame, unwritable = framing.try_encode(call)
        if framing.too_deep(frame, payload, framing.MAX_NESTING_DEPTH - 1):  # the frame adds one level
            raise LocalCallError(
                ErrorKind.FORMAT_VIOLATION,
                f"{action}: the payload nests deeper than {framing.MAX_NESTING_DEPTH} levels",
            )
        try:
            schemas.validate(self.version, action, "request", payload)
        except OcppError as exc:
            raise LocalCallError(exc.kind, f"{action}: {exc.description}") from None
        if frame is None:
            raise LocalCallError(ErrorKind.FORMAT_VIOLATION, f"{action}: the payload cannot be written: {unwritable}")
        self._next_id += 1
        pending = PendingCall(call, self.call_timeout_s if timeout_s is None else timeout_s, queued_at=now, frame=frame)
        self._queue.append(pending)
        if self._outstanding is None:
            self._send_next(now)
        return pending

    def send_unconfirmed(self, action: str, payload: dict[str, Any]) -> str:
        """Write a SEND (OCPP-J 2.1): out at once, even while a CALL of ours is outstanding, and never answered.
        Returns its message id.

        Raises:
            LocalCallError: the version has no such SEND message or the payload breaks its schema.
        """
        try:
            schemas.validate_send(self.version, action, payload)
        except OcppError as exc:
            raise LocalCallError(exc.kind, f"{action}: {exc.description}") from None
        unique_id = f"{self._id_prefix}{self._next_id}"
        self._next_id += 1
        self._outbox.append(framing.encode(Send(unique_id, action, payload)))
        return unique_id

    def _send_next(self, now: float) -> None:
        if self._queue and self._outstanding is None:
            pending = self._queue.pop(0)
            pending.sent_at = now
            self._outstanding = pending
            self._outbox.append(pending.frame or framing.encode(pending.call))

    @property
    def outstanding(self) -> PendingCall | None:
        return self._outstanding

    @property
    def queued(self) -> int:
        return len(self._queue)

    def cancel_all(self, now: float) -> list[CallCompleted]:
        """The connection is gone: every call still waiting completes as cancelled."""
        cancelled = [*([self._outstanding] if self._outstanding else []), *self._queue]
        self._outstanding = None
        self._queue.clear()
        for pending in cancelled:
            pending.outcome = Outcome.CANCELLED
            pending.completed_at = now
        return [CallCompleted(p) for p in cancelled]

    # ---- time --------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self._outstanding.deadline if self._outstanding else None

    def handle_timer(self, now: float) -> list[RpcEvent]:
        pending = self._outstanding
        if pending is None or pending.deadline is None or now < pending.deadline:
            return []
        self._outstanding = None
        pending.outcome = Outcome.TIMEOUT
        pending.completed_at = now
        self._send_next(now)
        return [CallCompleted(pending)]

    # ---- output ------------------------------------------------------------------------------------------
    def frames_to_send(self) -> list[str]:
        frames, self._outbox = self._outbox, []
        return frames
