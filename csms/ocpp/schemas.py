"""Compiled validators for the ``ocpp`` package's JSON schemas, one per (version, action, direction).

Each schema is compiled once and cached, twice: jsonschema-rs (Rust) answers whether a payload is valid — the
question every frame asks, in about a tenth of the time of the Python validators — and, only for a payload it
refuses, the fastjsonschema code compiled from the same schema names the rule that failed, which decides the
CALLERROR's kind. Two deliberate deviations from the raw schema files:

* ``multipleOf: 0.1`` (1.6 charging limits) is dropped: binary floats such as 21.4 fail it although the
  spec means "one decimal"; we round such limits when we emit them instead.
* Integers without bounds get the 32-bit range of OCPP's ``integer`` type: a larger value would otherwise
  reach a 32-bit column (and fail a whole group commit) or a batch insert.
* Failures map to the spec's error kinds (table :data:`RULE_KINDS`), never to a Python exception.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import fastjsonschema
import jsonschema_rs
import ocpp

from csms.ocpp.errors import ErrorKind, OcppError
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, Version

Direction = Literal["request", "response"]
Validator = Callable[[dict[str, Any]], Any]

_SCHEMA_DIRS: dict[Version, Path] = {
    OCPP16: Path(ocpp.__file__).parent / "v16" / "schemas",
    OCPP201: Path(ocpp.__file__).parent / "v201" / "schemas",
    OCPP21: Path(ocpp.__file__).parent / "v21" / "schemas",
}

#: JSON-schema keyword that failed -> the CALLERROR kind that names the failure.
RULE_KINDS: dict[str, ErrorKind] = {
    "type": ErrorKind.TYPE_CONSTRAINT,
    "maxLength": ErrorKind.TYPE_CONSTRAINT,
    "minLength": ErrorKind.TYPE_CONSTRAINT,
    "required": ErrorKind.OCCURRENCE_CONSTRAINT,
    "minItems": ErrorKind.OCCURRENCE_CONSTRAINT,
    "maxItems": ErrorKind.OCCURRENCE_CONSTRAINT,
    "additionalProperties": ErrorKind.FORMAT_VIOLATION,
    "enum": ErrorKind.PROPERTY_CONSTRAINT,
    "const": ErrorKind.PROPERTY_CONSTRAINT,
    "minimum": ErrorKind.PROPERTY_CONSTRAINT,
    "maximum": ErrorKind.PROPERTY_CONSTRAINT,
    "exclusiveMinimum": ErrorKind.PROPERTY_CONSTRAINT,
    "exclusiveMaximum": ErrorKind.PROPERTY_CONSTRAINT,
    "format": ErrorKind.PROPERTY_CONSTRAINT,
    "pattern": ErrorKind.PROPERTY_CONSTRAINT,
}


def _schema_file(version: Version, action: str, direction: Direction) -> Path:
    if action in send_actions(version):
        name = action
    elif version == OCPP16:
        name = action if direction == "request" else f"{action}Response"
    else:
        name = f"{action}Request" if direction == "request" else f"{action}Response"
    return _SCHEMA_DIRS[version] / f"{name}.json"


#: OCPP integers are 32 bit (2.0.1 part 2 §2.1.1; our columns too): a larger one is a data type violation.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _prepare(node: Any) -> Any:
    """Drop ``multipleOf`` and bound every integer to 32 bits (see the module docstring)."""
    if isinstance(node, dict):
        out = {k: _prepare(v) for k, v in node.items() if k != "multipleOf"}
        if out.get("type") == "integer":
            out.setdefault("minimum", INT32_MIN)
            out.setdefault("maximum", INT32_MAX)
        return out
    if isinstance(node, list):
        return [_prepare(v) for v in node]
    return node


@functools.cache
def known_actions(version: Version) -> frozenset[str]:
    """Every action the version defines as a CALL (either direction)."""
    suffix = "Response"
    names = {p.stem for p in _SCHEMA_DIRS[version].glob("*.json")}
    if version == OCPP16:
        return frozenset(n for n in names if not n.endswith(suffix))
    return frozenset(n.removesuffix("Request") for n in names if n.endswith("Request"))


@functools.cache
def send_actions(version: Version) -> frozenset[str]:
    """The actions the version defines as unconfirmed SEND messages (OCPP-J 2.1 message type 6): the schema
    files named without a Request/Response suffix (2.1: NotifyPeriodicEventStream). None before 2.1."""
    if version == OCPP16:
        return frozenset()
    names = (p.stem for p in _SCHEMA_DIRS[version].glob("*.json"))
    return frozenset(n for n in names if not n.endswith(("Request", "Response")))


@functools.cache
def schema(version: Version, action: str, direction: Direction) -> dict[str, Any]:
    path = _schema_file(version, action, direction)
    prepared: dict[str, Any] = _prepare(json.loads(path.read_text(encoding="utf-8-sig")))
    return prepared


def _defines(version: Version, action: str, direction: Direction) -> bool:
    return action in known_actions(version) or (direction == "request" and action in send_actions(version))


@functools.cache
def validator(version: Version, action: str, direction: Direction) -> Validator:
    """The compiled validator; raises KeyError when the version does not define the action."""
    if not _defines(version, action, direction):
        raise KeyError(action)
    return fastjsonschema.compile(schema(version, action, direction))


@functools.cache
def acceptor(version: Version, action: str, direction: Direction) -> Callable[[Any], bool]:
    """Whether a payload is valid; raises KeyError when the version does not define the action."""
    if not _defines(version, action, direction):
        raise KeyError(action)
    return jsonschema_rs.validator_for(schema(version, action, direction), validate_formats=True).is_valid


#: The acceptor of each (version, action, direction) that :func:`validate` has seen a valid payload of: one dict
#: look-up per frame instead of two cached functions' argument hashing (every frame, both ways, is checked).
_CALL_ACCEPTORS: dict[tuple[Version, str, Direction], Callable[[Any], bool]] = {}


def validate(version: Version, action: str, direction: Direction, payload: dict[str, Any]) -> None:
    """Check a CALL's (or CALLRESULT's) payload against its schema.

    Raises:
        OcppError: NOT_IMPLEMENTED for an action the version does not define as a CALL, otherwise the kind
            that :data:`RULE_KINDS` assigns to the first violated rule.
    """
    key = (version, action, direction)
    accepts = _CALL_ACCEPTORS.get(key)
    if accepts is not None:  # a CALL of this version (not a SEND): only the payload is left to check
        try:
            if accepts(payload):
                return
        except (ValueError, TypeError, OverflowError):
            pass
        _check(version, action, direction, payload)  # names the broken rule
        return
    if action in send_actions(version):
        raise OcppError(ErrorKind.NOT_IMPLEMENTED, f"Action {action!r} is a SEND message in OCPP {version}, not a CALL")
    _check(version, action, direction, payload)
    _CALL_ACCEPTORS[key] = acceptor(version, action, direction)  # defined, since the payload passed


def validate_send(version: Version, action: str, payload: dict[str, Any]) -> None:
    """Check a SEND message's payload (OCPP-J 2.1 message type 6) against its schema.

    Raises:
        OcppError: NOT_IMPLEMENTED for an action the version does not define as a SEND message, otherwise the
            kind of the first violated rule (never answered on the wire: a SEND gets no answer).
    """
    if action not in send_actions(version):
        raise OcppError(ErrorKind.NOT_IMPLEMENTED, f"{action!r} is not a SEND message of OCPP {version}")
    _check(version, action, "request", payload)


def _check(version: Version, action: str, direction: Direction, payload: dict[str, Any]) -> None:
    try:
        accepts = acceptor(version, action, direction)
    except KeyError:
        raise OcppError(ErrorKind.NOT_IMPLEMENTED, f"Action {action!r} is not defined in OCPP {version}") from None
    try:
        if accepts(payload):
            return
    except (ValueError, TypeError, OverflowError):  # a value JSON allows and Rust cannot hold (a huge integer)
        pass
    try:
        validator(version, action, direction)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        kind = RULE_KINDS.get(exc.rule or "", ErrorKind.FORMAT_VIOLATION)
        if exc.rule == "type" and exc.path == ["data"]:
            kind = ErrorKind.FORMAT_VIOLATION
        elif exc.rule in ("minimum", "maximum") and exc.rule_definition in (INT32_MIN, INT32_MAX):
            kind = ErrorKind.TYPE_CONSTRAINT
        elif exc.rule == "required" and version == OCPP16:
            kind = ErrorKind.PROTOCOL  # 1.6 names a missing field "Payload for Action is incomplete"
        field = (exc.name or "").removeprefix("data").removeprefix(".") or "(payload)"
        raise OcppError(kind, exc.message.replace("data.", "", 1), {"field": field, "rule": exc.rule}) from None
    # Accepted by the rule-naming validator only: the validators disagree (tests/csms/test_schemas.py looks
    # for such payloads); refuse, as the stricter one does.
    raise OcppError(ErrorKind.FORMAT_VIOLATION, f"payload does not match the {action} schema")


def warm_up(version: Version, actions: list[str] | None = None) -> None:
    """Compile validators ahead of time (compiling all of a version takes a fraction of a second)."""
    for action in actions or sorted(known_actions(version)):
        for direction in ("request", "response"):
            acceptor(version, action, direction)
            validator(version, action, direction)
