"""What every frame from the CSMS must satisfy, whatever the case: OCPP-J framing, the ``ocpp`` package's schema
of its action, answers to our own message ids only and in time, one CALL of its own at a time, error codes of
the version, and no command before the station is accepted. A case adds its own expectations on top; a
violation here fails the case with the offending frame."""

from __future__ import annotations

from dataclasses import dataclass, field

from csms.ocpp import framing, schemas
from csms.ocpp.errors import WIRE_CODES, FrameError, OcppError
from csms.ocpp.framing import Call, CallError, CallResult, Message
from csms.ocpp.versions import OCPP16, Version

#: CALLs a CSMS must not send before it has accepted the station's BootNotification (1.6 §4.2, 2.0.1 B02.FR.05):
#: starting or stopping a transaction needs an accepted station; a rejected one gets no command at all.
NOT_WHILE_PENDING = frozenset(
    {"RemoteStartTransaction", "RemoteStopTransaction", "RequestStartTransaction", "RequestStopTransaction"}
)


@dataclass(frozen=True, slots=True)
class Violation:
    at: float
    frame: str
    rule: str

    def __str__(self) -> str:
        return f"{self.rule}\n    frame: {self.frame}"


@dataclass(slots=True)
class _Ours:
    action: str
    sent_at: float


@dataclass(slots=True)
class FrameChecker:
    """Follows both directions of one connection and records what the CSMS got wrong."""

    version: Version
    reply_timeout_s: float
    violations: list[Violation] = field(default_factory=list)
    boot_status: str | None = None  # the last BootNotification answer: Accepted, Pending, Rejected
    _ours: dict[str, _Ours] = field(default_factory=dict)  # our CALLs awaiting the CSMS's answer
    _theirs: dict[str, str] = field(default_factory=dict)  # the CSMS's CALLs awaiting our answer

    def station_sent(self, text: str, at: float) -> None:
        message = framing.decode(text)
        if isinstance(message, Call):
            self._ours[message.unique_id] = _Ours(message.action, at)
        else:
            self._theirs.pop(message.unique_id, None)

    def link_closed(self) -> None:
        self._ours.clear()
        self._theirs.clear()

    def csms_sent(self, text: str, at: float) -> tuple[Message | None, str | None]:
        """Check one frame from the CSMS; returns it decoded and, for an answer, the action it answers."""
        try:
            message = framing.decode(text)
        except FrameError as exc:
            self._violate(at, text, f"not an OCPP-J frame: {exc.description}")
            return None, None
        if isinstance(message, Call):
            self._check_call(message, text, at)
            return message, None
        if isinstance(message, CallResult | CallError):
            return message, self._check_answer(message, text, at)
        return message, None  # OCPP-J 2.1's types, which decode() reads only when asked to

    # ---- the CSMS's own calls -----------------------------------------------------------------------------
    def _check_call(self, call: Call, text: str, at: float) -> None:
        if call.action not in schemas.known_actions(self.version):
            self._violate(at, text, f"{call.action!r} is not an OCPP {self.version} action")
            return
        self._schema(call.action, "request", call.payload, text, at)
        if self._theirs:
            pending = ", ".join(f"{action} ({uid})" for uid, action in self._theirs.items())
            self._violate(at, text, f"a second CALL while the station has not yet answered {pending}")
        self._theirs[call.unique_id] = call.action
        if self.boot_status == "Rejected" or (self.boot_status != "Accepted" and call.action in NOT_WHILE_PENDING):
            state = self.boot_status or "not yet booted"
            self._violate(at, text, f"{call.action} sent to a station whose registration is {state}")

    # ---- the CSMS's answers to ours --------------------------------------------------------------------------
    def _check_answer(self, message: CallResult | CallError, text: str, at: float) -> str | None:
        ours = self._ours.pop(message.unique_id, None)
        if ours is None:
            self._violate(at, text, f"an answer to message id {message.unique_id!r}, which the station never sent")
            return None
        late = at - ours.sent_at
        if late > self.reply_timeout_s:
            self._violate(
                at, text, f"{ours.action} answered after {late:.1f} s (the station waits {self.reply_timeout_s:g} s)"
            )
        if isinstance(message, CallResult):
            self._schema(ours.action, "response", message.payload, text, at)
            if ours.action == "BootNotification":
                self.boot_status = str(message.payload.get("status"))
        elif message.code not in WIRE_CODES[self.version].values():
            self._violate(at, text, f"CALLERROR code {message.code!r} is not one of OCPP {self.version}'s")
        return ours.action

    def _schema(
        self, action: str, direction: schemas.Direction, payload: dict[str, object], text: str, at: float
    ) -> None:
        try:
            schemas.validate(self.version, action, direction, payload)
        except OcppError as exc:
            what = "request" if direction == "request" else "answer"
            suffix = "Response" if direction == "response" else ("" if self.version == OCPP16 else "Request")
            spelled = action + suffix
            self._violate(at, text, f"{action} {what} breaks the {spelled} schema: {exc.description}")

    def _violate(self, at: float, frame: str, rule: str) -> None:
        self.violations.append(Violation(at, frame, rule))
