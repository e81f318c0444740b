"""The two compiled forms of each schema give the same verdict: jsonschema-rs decides whether a frame is
valid, fastjsonschema names the rule a refused one broke. A payload on which they disagree would be
accepted where the spec refuses it, or refused without its proper CALLERROR."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.ocpp import schemas
from csms.ocpp.errors import ErrorKind, OcppError
from tests.csms.test_fuzz_frames import json_values, mutated_call, valid_calls

VERSIONS = ["1.6", "2.0.1"]


def python_verdict(version: Any, action: str, direction: Any, payload: Any) -> bool:
    try:
        schemas.validator(version, action, direction)(payload)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def rust_verdict(version: Any, action: str, direction: Any, payload: Any) -> bool:
    try:
        return schemas.acceptor(version, action, direction)(payload)
    except (ValueError, TypeError, OverflowError):
        return False


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_both_validators_agree_on_mutated_valid_calls(version, data):
    action, payload, _code = data.draw(mutated_call(version))
    assert rust_verdict(version, action, "request", payload) == python_verdict(version, action, "request", payload)


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_both_validators_agree_on_arbitrary_payloads(version, data):
    action = data.draw(st.sampled_from(sorted(schemas.known_actions(version))))
    direction = data.draw(st.sampled_from(["request", "response"]))
    payload = data.draw(st.dictionaries(st.text(max_size=12), json_values, max_size=5) | json_values)
    assert rust_verdict(version, action, direction, payload) == python_verdict(version, action, direction, payload)


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_calls_pass_both(version):
    for action, payload in valid_calls(version):
        assert rust_verdict(version, action, "request", payload), action
        assert python_verdict(version, action, "request", payload), action


@pytest.mark.parametrize(
    ("timestamp", "valid"),
    [
        ("2026-01-15T22:00:00Z", True),
        ("2026-01-15T22:00:00.123+01:00", True),
        ("2026-01-15 22:00", False),
        ("yesterday", False),
    ],
)
def test_a_date_time_is_judged_alike(timestamp, valid):
    payload = {"connectorId": 1, "status": "Available", "errorCode": "NoError", "timestamp": timestamp}
    assert rust_verdict("1.6", "StatusNotification", "request", payload) is valid
    assert python_verdict("1.6", "StatusNotification", "request", payload) is valid
    if not valid:
        with pytest.raises(OcppError) as refused:
            schemas.validate("1.6", "StatusNotification", "request", payload)
        assert refused.value.kind is ErrorKind.PROPERTY_CONSTRAINT
