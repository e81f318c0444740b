"""OCPP-J framing: the RPC message types as frozen records, decoded from and encoded to JSON text.

Wire format (OCPP-J §4):  CALL ``[2, id, action, {payload}]``,  CALLRESULT ``[3, id, {payload}]``,
CALLERROR ``[4, id, code, description, {details}]``; OCPP-J 2.1 adds CALLRESULTERROR
``[5, id, code, description, {details}]`` (the receiver of a CALLRESULT could not process it; never answered)
and SEND ``[6, id, action, {payload}]`` (a message that gets no answer at all). :func:`decode` reads the types
it is told the connection's version has and never raises anything but :class:`FrameError`, whose
``unique_id`` is the message id when it could still be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from csms.ocpp.errors import ErrorKind, FrameError

CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND = 2, 3, 4, 5, 6
#: The message types of OCPP-J 1.6 and 2.0.1, and those of 2.1.
RPC_TYPES = frozenset({CALL, CALLRESULT, CALLERROR})
RPC_TYPES_21 = RPC_TYPES | {CALLRESULTERROR, SEND}
MAX_MESSAGE_ID_LENGTH = 36
#: Levels of arrays and objects a frame may nest, counting the frame itself ([2, id, action, {payload}] is 2).
MAX_NESTING_DEPTH = 32
#: Message id to answer with when the offending frame's id could not be read (OCPP 2.0.1 part 4 §4.2.3).
UNREADABLE_ID = "-1"


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResultError:
    """OCPP-J 2.1: the peer could not process our CALLRESULT with this id (it is never answered)."""

    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """OCPP-J 2.1: an unconfirmed message, neither CALLRESULT nor CALLERROR answers it."""

    unique_id: str
    action: str
    payload: dict[str, Any]


Message = Call | CallResult | CallError | CallResultError | Send


def decode(frame: str | bytes, types: frozenset[int] = RPC_TYPES) -> Message:
    """Parse one frame; ``types`` are the message types the connection's version has.

    Raises:
        FrameError: the frame is not valid OCPP-J; its kind says which CALLERROR answers it.
    """
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise FrameError(ErrorKind.FORMAT_VIOLATION, "Message is not valid JSON") from None
    if _brackets(frame) > MAX_NESTING_DEPTH and nests_deeper_than(data, MAX_NESTING_DEPTH):
        # What nests this deep cannot be written back (orjson stops at 254 levels, the log and the database
        # at their own limits): refused here, before it can fail in the batch it shares with other stations.
        raise FrameError(
            ErrorKind.FORMAT_VIOLATION, f"Message nests deeper than {MAX_NESTING_DEPTH} levels", _readable_id(data)
        )
    if not isinstance(data, list) or not data:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, "Message is not a JSON array")
    type_id = data[0]
    unique_id = data[1] if len(data) > 1 else None
    if not isinstance(unique_id, str) or not unique_id or len(unique_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, "Message id is missing or not a string of 1-36 characters")
    if type(type_id) is not int or type_id not in types:
        raise FrameError(ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED, f"Message type {type_id!r} is not supported", unique_id)
    if type_id == CALL:
        return _call(unique_id, data)
    if type_id == CALLRESULT:
        return _call_result(unique_id, data)
    if type_id == SEND:
        call = _call(unique_id, data, "A SEND")
        return Send(unique_id, call.action, call.payload)
    code, description, details = _error_parts(unique_id, data)
    if type_id == CALLRESULTERROR:
        return CallResultError(unique_id, code, description, details)
    return CallError(unique_id, code, description, details)


def _brackets(frame: str | bytes) -> int:
    """Opening brackets in the text, in C: a bound on the nesting depth (every level opens one), so the Python
    walk of :func:`nests_deeper_than` runs only for the few frames that could nest too deep."""
    if isinstance(frame, str):
        return frame.count("{") + frame.count("[")
    return frame.count(b"{") + frame.count(b"[")


def _readable_id(data: Any) -> str | None:
    unique_id = data[1] if isinstance(data, list) and len(data) > 1 else None
    return unique_id if isinstance(unique_id, str) and 0 < len(unique_id) <= MAX_MESSAGE_ID_LENGTH else None


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _call(unique_id: str, data: list[Any], name: str = "A CALL") -> Call:
    if len(data) != 4:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, f"{name} has exactly 4 elements", unique_id)
    action, payload = data[2], data[3]
    if not isinstance(action, str) or not action:
        raise FrameError(ErrorKind.RPC_FRAMEWORK, "Action is not a string", unique_id)
    if not isinstance(payload, dict):
        raise FrameError(ErrorKind.FORMAT_VIOLATION, "Payload is not a JSON object", unique_id)
    return Call(unique_id, action, payload)


def _call_result(unique_id: str, data: list[Any]) -> CallResult:
    if len(data) != 3 or not isinstance(data[2], dict):
        raise FrameError(ErrorKind.FORMAT_VIOLATION, "A CALLRESULT is [3, id, {payload}]", unique_id)
    return CallResult(unique_id, data[2])


def _error_parts(unique_id: str, data: list[Any]) -> tuple[str, str, dict[str, Any]]:
    """Code, description and details of a CALLERROR or CALLRESULTERROR (same shape, types 4 and 5)."""
    if len(data) < 4:
        name = "CALLRESULTERROR" if data[0] == CALLRESULTERROR else "CALLERROR"
        raise FrameError(
            ErrorKind.FORMAT_VIOLATION, f"A {name} is [{data[0]}, id, code, description, {{details}}]", unique_id
        )
    code, description = data[2], data[3]
    details = data[4] if len(data) > 4 and isinstance(data[4], dict) else {}
    return str(code), str(description), details


def try_encode(message: Message) -> tuple[str | None, Exception | None]:
    """The frame, or None and why it cannot be written (a value JSON has no form for, or nesting past orjson's
    254 levels)."""
    try:
        return encode(message), None
    except (TypeError, ValueError) as exc:
        return None, exc


def too_deep(frame: str | None, value: Any, limit: int) -> bool:
    """Whether ``value``, written as ``frame`` (None: it could not be), nests more than ``limit`` levels. The
    frame's brackets, counted in C, bound its depth, so the Python walk runs only for what could nest too deep."""
    return (frame is None or _brackets(frame) > limit) and nests_deeper_than(value, limit)


def encode(message: Message) -> str:
    if isinstance(message, Call):
        body: list[Any] = [CALL, message.unique_id, message.action, message.payload]
    elif isinstance(message, CallResult):
        body = [CALLRESULT, message.unique_id, message.payload]
    elif isinstance(message, Send):
        body = [SEND, message.unique_id, message.action, message.payload]
    else:
        type_id = CALLRESULTERROR if isinstance(message, CallResultError) else CALLERROR
        body = [type_id, message.unique_id, message.code, message.description, message.details]
    return orjson.dumps(body).decode()
