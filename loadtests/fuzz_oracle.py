"""What the CSMS must answer to any frame, decided without the CSMS's own code (OCPP-J §4, 2.0.1 part 4 §4.2.3).

The fuzzer (``fuzz_frames.py``) asks :func:`expect` about every frame it sends and checks the answer against
it. Nothing here imports ``csms``: the JSON is read with the standard library (the CSMS uses orjson), the
schemas are the ``ocpp`` package's own files checked with ``jsonschema`` (the CSMS uses jsonschema-rs and
fastjsonschema), and the limits are the documented ones (docs/security.md).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import ocpp

MAX_FRAME_BYTES = 256 * 1024
MAX_NESTING_DEPTH = 32
#: Deeper than this the CSMS's JSON reader (orjson) stops reading: no message id can be read then. Python's
#: reader stops near 1,000 (its recursion limit), so the fuzzers draw no depth between 900 and 1,100.
READABLE_DEPTH = 1024
MAX_ID_LENGTH = 36
UNREADABLE = "-1"
#: Close codes: message too big, invalid UTF-8 in a text frame (RFC 6455 §7.4.1), flood (policy violation).
TOO_BIG, BAD_UTF8, POLICY = 1009, 1007, 1008

#: The wire names of each refusal, per version (1.6 has no RpcFrameworkError nor MessageTypeNotSupported).
WIRE: dict[str, dict[str, str]] = {
    "1.6": {
        "format": "FormationViolation",
        "rpc": "FormationViolation",
        "message_type": "ProtocolError",
        "not_implemented": "NotImplemented",
        "security": "SecurityError",
    },
    "2.0.1": {
        "format": "FormatViolation",
        "rpc": "RpcFrameworkError",
        "message_type": "MessageTypeNotSupported",
        "not_implemented": "NotImplemented",
        "security": "SecurityError",
    },
}
#: Codes that refuse a payload its schema does not allow.
SCHEMA_CODES: dict[str, frozenset[str]] = {
    "1.6": frozenset(
        {
            "FormationViolation",
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "TypeConstraintViolation",
            "ProtocolError",
        }
    ),
    "2.0.1": frozenset(
        {
            "FormatViolation",
            "PropertyConstraintViolation",
            "OccurrenceConstraintViolation",
            "TypeConstraintViolation",
        }
    ),
}
#: Every code either version defines (an answer outside these is wrong).
ALL_CODES: dict[str, frozenset[str]] = {
    version: SCHEMA_CODES[version]
    | frozenset(WIRE[version].values())
    | {"GenericError", "InternalError", "NotSupported", "SecurityError"}
    for version in WIRE
}


@dataclass(frozen=True, slots=True)
class Expect:
    """``error``: a CALLERROR with one of ``codes`` for ``unique_id``; ``answer``: a CALLRESULT, or a CALLERROR
    that is not InternalError (a valid call the CSMS may still refuse by its rules); ``none``: nothing;
    ``close``: the connection is closed with ``close_code``."""

    kind: str
    unique_id: str | None = None
    codes: frozenset[str] = frozenset()
    close_code: int = 0
    action: str | None = None

    def accepts(self, version: str, message_type: int, code: str | None) -> bool:
        if self.kind == "error":
            return message_type == 4 and code in self.codes
        if self.kind == "answer":
            return message_type == 3 or (code in ALL_CODES[version] and code != "InternalError")
        return False


class _Invalid(Exception):
    """Not JSON as RFC 8259 has it (the standard library is laxer: NaN, 1e400, lone surrogates)."""


def _reject_constant(name: str) -> Any:
    raise _Invalid(name)


def _depth_and_check(value: Any) -> int:
    """The nesting depth of ``value`` (the frame itself is 1); raises _Invalid for what RFC 8259 JSON cannot hold."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise _Invalid("a number beyond a double")
    return deepest


def _check_text(text: str) -> None:
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise _Invalid("lone surrogate")


def _readable_id(data: Any) -> str | None:
    unique_id = data[1] if isinstance(data, list) and len(data) > 1 else None
    return unique_id if isinstance(unique_id, str) and 0 < len(unique_id) <= MAX_ID_LENGTH else None


def expect(data: bytes, binary: bool, version: str, booted: bool = True) -> Expect:
    """What the CSMS must do with this frame on a connection of ``version`` (``booted``: its boot was accepted)."""
    wire = WIRE[version]
    if len(data) > MAX_FRAME_BYTES:
        return Expect("close", close_code=TOO_BIG)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if binary:
            return Expect("error", UNREADABLE, frozenset({wire["format"]}))
        return Expect("close", close_code=BAD_UTF8)
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
        depth = _depth_and_check(parsed)
    except (ValueError, _Invalid, RecursionError):
        return Expect("error", UNREADABLE, frozenset({wire["format"]}))
    if depth > READABLE_DEPTH:
        return Expect("error", UNREADABLE, frozenset({wire["format"]}))
    if depth > MAX_NESTING_DEPTH:
        return Expect("error", _readable_id(parsed) or UNREADABLE, frozenset({wire["format"]}))
    return _expect_message(parsed, version, booted)


def _expect_message(parsed: Any, version: str, booted: bool) -> Expect:
    """What answers a frame that is JSON within the nesting limit."""
    wire = WIRE[version]
    if not isinstance(parsed, list) or not parsed:
        return Expect("error", UNREADABLE, frozenset({wire["rpc"]}))
    unique_id = _readable_id(parsed)
    if unique_id is None:
        return Expect("error", UNREADABLE, frozenset({wire["rpc"]}))
    message_type = parsed[0]
    if type(message_type) is not int or message_type not in (2, 3, 4):
        return Expect("error", unique_id, frozenset({wire["message_type"]}))
    if message_type == 3:
        well_formed = len(parsed) == 3 and isinstance(parsed[2], dict)
        return Expect("none") if well_formed else Expect("error", unique_id, frozenset({wire["format"]}))
    if message_type == 4:
        return Expect("none") if len(parsed) >= 4 else Expect("error", unique_id, frozenset({wire["format"]}))
    return _expect_call(parsed, unique_id, version, booted)


def _expect_call(parsed: list[Any], unique_id: str, version: str, booted: bool) -> Expect:
    wire = WIRE[version]
    if len(parsed) != 4 or not isinstance(parsed[2], str) or not parsed[2]:
        return Expect("error", unique_id, frozenset({wire["rpc"]}))
    action, payload = parsed[2], parsed[3]
    if not isinstance(payload, dict):
        return Expect("error", unique_id, frozenset({wire["format"]}))
    validator = request_validator(version, action)
    if validator is None:
        return Expect("error", unique_id, frozenset({wire["not_implemented"]}), action=action)
    if not validator.is_valid(payload):
        return Expect("error", unique_id, SCHEMA_CODES[version], action=action)
    if not booted and action != "BootNotification":
        # NotSupported: an action only the CSMS sends, refused before the registration is looked at; and what
        # the CSMS checks and this oracle's validator does not: date-times (PropertyConstraintViolation), the
        # 32-bit range of OCPP integers (TypeConstraintViolation).
        refusals = frozenset(
            {wire["security"], "NotSupported", "PropertyConstraintViolation", "TypeConstraintViolation"}
        )
        return Expect("error", unique_id, refusals, action=action)
    return Expect("answer", unique_id, action=action)


_SCHEMAS = Path(ocpp.__file__).parent


@functools.cache
def request_validator(version: str, action: str) -> Any:
    """The ``ocpp`` package's request schema of ``action`` as a jsonschema validator (None: not an action)."""
    if not action.isascii() or not action.isalnum():
        return None
    path = _SCHEMAS / "v16" / "schemas" / f"{action}.json"
    if version == "2.0.1":
        path = _SCHEMAS / "v201" / "schemas" / f"{action}Request.json"
    if not path.is_file() or action.endswith("Response"):
        return None
    schema = json.loads(path.read_text(encoding="utf-8-sig"))
    return jsonschema.validators.validator_for(schema)(schema)
