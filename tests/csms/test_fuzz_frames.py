"""Any frame gets the right CALLERROR (or, for answers, nothing), never an exception, never a bad row.

Three sources of frames, for both versions: arbitrary text and bytes, arbitrary JSON, and valid calls with
one mutation each (drop a required field, change a type, add a field, overlong string, bad enum, bad
date-time) whose CALLERROR code is known in advance. Each test drives one station through the fake link.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from csms.ocpp import framing, schemas
from csms.ocpp.errors import WIRE_CODES, FrameError
from csms.ocpp.framing import Call, CallError, CallResult
from csms.services import transactions
from csms.store import models
from tests.csms.helpers import StationPair, ts

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VERSIONS = ["1.6", "2.0.1"]
#: Tables a rejected frame must not touch (the message log may grow).
DATA_TABLES = [
    models.Station,
    models.Connector,
    models.StatusChange,
    models.Transaction,
    models.TransactionEvent,
    models.MeterSample,
    models.StationEvent,
    models.StationVariable,
    models.IdToken,
]


def valid_calls(version: str) -> list[tuple[str, dict[str, Any]]]:
    if version == "1.6":
        sample = {"value": "1200", "measurand": "Energy.Active.Import.Register", "unit": "Wh", "phase": "L1"}
        return [
            ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.0"}),
            ("Heartbeat", {}),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": ts()}),
            ("Authorize", {"idTag": "TAG"}),
            ("StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 100, "timestamp": ts(1)}),
            (
                "MeterValues",
                {"connectorId": 1, "transactionId": 1, "meterValue": [{"timestamp": ts(2), "sampledValue": [sample]}]},
            ),
            ("StopTransaction", {"transactionId": 1, "meterStop": 900, "timestamp": ts(3), "reason": "Local"}),
            ("DataTransfer", {"vendorId": "com.acme", "messageId": "m", "data": "d"}),
            ("FirmwareStatusNotification", {"status": "Installing"}),
            ("DiagnosticsStatusNotification", {"status": "Uploading"}),
            ("SecurityEventNotification", {"type": "FirmwareUpdated", "timestamp": ts(4)}),
        ]
    sample = {
        "value": 1.2,
        "measurand": "Energy.Active.Import.Register",
        "phase": "L1",
        "unitOfMeasure": {"unit": "kWh", "multiplier": 0},
    }
    meter = [{"timestamp": ts(2), "sampledValue": [sample]}]
    return [
        (
            "BootNotification",
            {"chargingStation": {"vendorName": "V", "model": "M", "serialNumber": "S"}, "reason": "PowerUp"},
        ),
        ("Heartbeat", {}),
        ("StatusNotification", {"timestamp": ts(), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
        ("Authorize", {"idToken": {"idToken": "TAG", "type": "ISO14443"}}),
        (
            "TransactionEvent",
            {
                "eventType": "Updated",
                "timestamp": ts(1),
                "triggerReason": "MeterValuePeriodic",
                "seqNo": 1,
                "transactionInfo": {"transactionId": "T1", "chargingState": "Charging"},
                "evse": {"id": 1, "connectorId": 1},
                "idToken": {"idToken": "TAG", "type": "ISO14443"},
                "meterValue": meter,
            },
        ),
        ("MeterValues", {"evseId": 1, "meterValue": meter}),
        ("DataTransfer", {"vendorId": "com.acme", "messageId": "m", "data": {"k": [1, 2]}}),
        ("FirmwareStatusNotification", {"status": "Installing", "requestId": 3}),
        ("LogStatusNotification", {"status": "Uploading", "requestId": 4}),
        ("SecurityEventNotification", {"type": "FirmwareUpdated", "timestamp": ts(4), "techInfo": "x"}),
        (
            "NotifyEvent",
            {
                "generatedAt": ts(5),
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": 1,
                        "timestamp": ts(5),
                        "trigger": "Alerting",
                        "actualValue": "1",
                        "eventNotificationType": "CustomMonitor",
                        "component": {"name": "C"},
                        "variable": {"name": "V"},
                    }
                ],
            },
        ),
        (
            "NotifyReport",
            {
                "requestId": 1,
                "generatedAt": ts(6),
                "seqNo": 0,
                "reportData": [
                    {
                        "component": {"name": "C", "evse": {"id": 1}},
                        "variable": {"name": "V"},
                        "variableAttribute": [{"value": "v"}],
                    }
                ],
            },
        ),
    ]


# ---- mutations with a known answer -----------------------------------------------------------------------
def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def mutation_sites(root: dict[str, Any], node: dict[str, Any], value: Any, path: tuple[Any, ...] = ()):
    """(kind, path) for every mutation of ``value`` whose first violation is that mutation."""
    node = _resolve(root, node)
    kind = node.get("type")
    if kind == "object" and isinstance(value, dict):
        yield ("add", path)
        for key in node.get("required", []):
            yield ("drop", (*path, key))
        for key, sub in node.get("properties", {}).items():
            if key in value:
                yield from mutation_sites(root, sub, value[key], (*path, key))
    elif kind == "array" and isinstance(value, list) and value:
        yield from mutation_sites(root, node["items"], value[0], (*path, 0))
    if path and "type" in node:
        yield ("type", path)
    if "maxLength" in node:
        yield ("overlong", path)
    if "enum" in node:
        yield ("enum", path)
    if node.get("format") == "date-time":
        yield ("datetime", path)


def mutate(payload: Any, kind: str, path: tuple[Any, ...], maxlen: int = 0) -> Any:
    copy = orjson.loads(orjson.dumps(payload))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1] if path else None
    if kind == "add":
        (parent[last] if path else copy)["zzUnexpected"] = 1
    elif kind == "drop":
        del parent[last]
    elif kind == "type":
        parent[last] = 12345 if isinstance(parent[last], str | dict | list) else "not a number"
    elif kind == "overlong":
        parent[last] = "x" * (maxlen + 1)
    elif kind == "enum":
        parent[last] = "NoSuchValue"
    elif kind == "datetime":
        parent[last] = "yesterday at noon"
    return copy


def expected_code(version: str, kind: str) -> str:
    return {
        "add": "FormationViolation" if version == "1.6" else "FormatViolation",
        "drop": "ProtocolError" if version == "1.6" else "OccurrenceConstraintViolation",
        "type": "TypeConstraintViolation",
        "overlong": "TypeConstraintViolation",
        "enum": "PropertyConstraintViolation",
        "datetime": "PropertyConstraintViolation",
    }[kind]


def _node_at(root: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    node = _resolve(root, root)
    for step in path:
        node = _resolve(root, node["items"] if isinstance(step, int) else node["properties"][step])
    return node


@st.composite
def mutated_call(draw: st.DrawFn, version: str) -> tuple[str, dict[str, Any], str]:
    action, payload = draw(st.sampled_from(valid_calls(version)))
    root = schemas.schema(version, action, "request")  # type: ignore[arg-type]
    sites = sorted(set(mutation_sites(root, root, payload)), key=repr)
    kind, path = draw(st.sampled_from(sites))
    maxlen = _node_at(root, path).get("maxLength", 0) if kind == "overlong" else 0
    return action, mutate(payload, kind, path, maxlen), expected_code(version, kind)


# ---- the checks ------------------------------------------------------------------------------------------
def counts(pair: StationPair) -> dict[str, int]:
    with pair.session_factory() as db:
        return {m.__tablename__: db.scalar(select(func.count()).select_from(m)) or 0 for m in DATA_TABLES}


def check_store(pair: StationPair) -> None:
    """Invariants no frame may break."""
    with pair.session_factory() as db:
        for tx in db.scalars(select(models.Transaction)):
            summary = transactions.summary(tx)
            assert summary["energy_wh"] >= 0 and summary["energy_wh"] == summary["energy_wh"]  # not NaN
            assert tx.status in ("active", "completed") and tx.station_id == pair.station_id
        orphans = db.scalar(
            text(
                "SELECT count(*) FROM meter_samples s WHERE s.transaction_id IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = s.transaction_id)"
            )
        )
        assert orphans == 0
        assert (
            db.scalar(
                text(
                    "SELECT count(*) FROM transaction_events e LEFT JOIN transactions t "
                    "ON t.id = e.transaction_id WHERE t.id IS NULL"
                )
            )
            == 0
        )
        assert db.scalar(text("SELECT count(*) FROM meter_samples WHERE station_id <> :s"), {"s": pair.station_id}) == 0


def answers(pair: StationPair, frame: str | bytes) -> list[framing.Message]:
    out = pair.send(frame)
    decoded = [framing.decode(f) for f in out]
    codes = set(WIRE_CODES[pair.version].values())  # type: ignore[index]
    for message in decoded:
        assert isinstance(message, CallResult | CallError)
        if isinstance(message, CallError):
            assert message.code in codes, message
            assert message.code != "InternalError", message  # an exception in the server, not the frame's fault
    return decoded


def check_any_frame(pair: StationPair, frame: str | bytes) -> None:
    before = counts(pair)
    try:
        parsed: framing.Message | FrameError = framing.decode(frame)
    except FrameError as exc:
        parsed = exc
    decoded = answers(pair, frame)
    if isinstance(parsed, FrameError):
        (error,) = decoded
        assert isinstance(error, CallError)
        assert error.unique_id == (parsed.unique_id or framing.UNREADABLE_ID)
        assert counts(pair) == before
    elif isinstance(parsed, Call):
        (answer,) = decoded
        assert answer.unique_id == parsed.unique_id
        if isinstance(answer, CallError):
            assert counts(pair) == before
    else:
        assert decoded == []  # nothing of ours is outstanding: an answer is dropped, never answered
        assert counts(pair) == before
    check_store(pair)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def frame_shapes(version: str) -> st.SearchStrategy[str]:
    actions = st.sampled_from([a for a, _ in valid_calls(version)] + ["Reset", "Nope", ""]) | st.text(max_size=12)
    ids = st.text(min_size=0, max_size=40) | st.integers() | st.none()
    shaped = st.tuples(st.sampled_from([2, 3, 4, 5, 2.0, "2"]), ids, actions, json_values).map(list)
    payloads = st.tuples(
        st.just(2),
        st.text(min_size=1, max_size=36),
        actions,
        st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    ).map(list)
    return (shaped | payloads | json_values).map(json.dumps)  # stdlib: any int, even beyond 64 bits


# ---- the tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_arbitrary_text_and_bytes(sqlite_factory, version, data):
    pair = _pair(sqlite_factory, version)
    frame = data.draw(st.text(max_size=200) | st.binary(max_size=200))
    check_any_frame(pair, frame)


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_arbitrary_json_frames(sqlite_factory, version, data):
    pair = _pair(sqlite_factory, version)
    check_any_frame(pair, data.draw(frame_shapes(version)))


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_mutated_valid_calls(sqlite_factory, version, data):
    pair = _pair(sqlite_factory, version)
    action, payload, code = data.draw(mutated_call(version))
    before = counts(pair)
    (error,) = answers(pair, orjson.dumps([2, "fuzz-1", action, payload]))
    assert isinstance(error, CallError), (action, payload)
    assert (error.unique_id, error.code) == ("fuzz-1", code), (action, payload, error)
    assert counts(pair) == before
    check_store(pair)


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_calls_are_accepted(sqlite_factory, version):
    """The mutation bases themselves are valid (else the mutation tests would prove nothing)."""
    pair = StationPair(sqlite_factory, version)
    for action, payload in valid_calls(version):
        pair.ok(action, payload)
    check_store(pair)


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_valid_calls_in_any_order_keep_the_store_consistent(sqlite_factory, version, data):
    """Valid but arbitrary sequences (replays, stops before starts, other values) never break invariants."""
    pair = _pair(sqlite_factory, version)
    calls = data.draw(st.lists(st.sampled_from(valid_calls(version)), min_size=1, max_size=8))
    for action, payload in calls:
        if action in ("StopTransaction", "MeterValues") and version == "1.6":
            payload = {**payload, "transactionId": data.draw(st.integers(-3, 5))}
        if action == "TransactionEvent":
            payload = {
                **payload,
                "eventType": data.draw(st.sampled_from(["Started", "Updated", "Ended"])),
                "seqNo": data.draw(st.integers(0, 4)),
                "offline": data.draw(st.booleans()),
            }
        (answer,) = answers(pair, orjson.dumps([2, "v", action, payload]))
        assert isinstance(answer, CallResult), (action, payload, answer)
    check_store(pair)


_PAIRS: dict[tuple[int, str], StationPair] = {}


def _pair(factory, version: str) -> StationPair:
    """One station per test (hypothesis runs the body many times with the same fixture)."""
    key = (id(factory), version)
    if key not in _PAIRS:
        _PAIRS.clear()
        _PAIRS[key] = StationPair(factory, version)
    return _PAIRS[key]
