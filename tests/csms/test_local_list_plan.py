"""The CSMS's local-list planning on its own: differences, versions, splitting to the station's limits, and
refusals, with every call valid against the version's schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from csms.ocpp import schemas
from csms.ocpp.local_list import (
    FRAME_OVERHEAD_BYTES,
    Limits,
    ListEntry,
    ListTooLarge,
    differences,
    fitting,
    limits_from,
    plan,
)

OK, BLOCKED = ListEntry("Accepted"), ListEntry("Blocked", datetime(2027, 1, 1, tzinfo=UTC), "fleet")


def test_differences_add_change_and_remove_in_token_order():
    held = {"A": OK, "B": OK, "C": OK}
    wanted = {"A": OK, "B": BLOCKED, "D": OK}
    assert differences(held, wanted) == {"B": BLOCKED, "C": None, "D": OK}
    assert differences(wanted, wanted) == {}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_full_list_is_cut_into_a_full_call_and_differential_calls_numbered_after_the_last(version):
    wanted = {f"T{i}": BLOCKED if i % 2 else OK for i in range(5)}
    messages = plan(version, "Full", wanted, held={}, after_version=7, limits=Limits(items_per_message=2))
    assert [(m.update_type, m.version, len(m.changes)) for m in messages] == [
        ("Full", 8, 2),
        ("Differential", 9, 2),
        ("Differential", 10, 1),
    ]
    for message in messages:
        action, payload = message.call(version)
        schemas.validate(version, action, "request", payload)  # raises when the payload is not valid


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_calls_stay_within_the_bytes_per_message_and_an_empty_full_list_is_one_call(version):
    wanted = {f"TOKEN-{i:03d}": BLOCKED for i in range(20)}
    messages = plan(version, "Full", wanted, held={}, after_version=0, limits=Limits(bytes_per_message=600))
    assert len(messages) > 1 and sum(len(m.changes) for m in messages) == 20
    for message in messages:
        size = len(json.dumps(message.call(version)[1], separators=(",", ":"))) + FRAME_OVERHEAD_BYTES
        assert size <= 600
    [empty] = plan(version, "Full", {}, held={"A": OK}, after_version=3, limits=Limits())
    assert empty.call(version)[1] == {
        ("listVersion" if version == "1.6" else "versionNumber"): 4,
        "updateType": "Full",
    }
    assert plan(version, "Differential", {}, held={"A": OK}, after_version=3, limits=Limits()) == []


def test_lists_the_station_cannot_take_are_refused_with_the_reason():
    with pytest.raises(ListTooLarge, match="at most 2"):
        plan("1.6", "Differential", {"C": OK}, held={"A": OK, "B": OK}, after_version=1, limits=Limits(max_entries=2))
    with pytest.raises(ListTooLarge, match="alone exceeds"):
        plan("2.0.1", "Full", {"A": BLOCKED}, held={}, after_version=0, limits=Limits(bytes_per_message=100))
    with pytest.raises(ListTooLarge, match="cannot remove"):
        plan("2.0.1", "Full", {"A": None}, held={}, after_version=0, limits=Limits())
    # a removal makes room: the result counts, not the call
    assert plan("1.6", "Differential", {"A": None, "C": OK}, held={"A": OK, "B": OK}, after_version=1,
                limits=Limits(max_entries=2))  # fmt: skip


def test_limits_are_read_from_either_version_and_1_6_lists_skip_tokens_it_cannot_carry():
    keys = [
        {"key": "LocalAuthListMaxLength", "readonly": True, "value": "50"},
        {"key": "SendLocalListMaxLength", "readonly": True, "value": "not a number"},
    ]
    v16 = {"configurationKey": keys}
    assert limits_from("1.6", v16) == Limits(50, None, None)
    v201 = {"getVariableResult": [
        {"attributeStatus": "Accepted", "attributeValue": "25", "variable": {"name": "ItemsPerMessage"}},
        {"attributeStatus": "UnknownVariable", "variable": {"name": "BytesPerMessage"}},
    ]}  # fmt: skip
    assert limits_from("2.0.1", v201) == Limits(None, 25, None)
    long_token = "X" * 21
    assert set(fitting("1.6", {long_token: OK, "SHORT": OK})) == {"SHORT"}
    assert set(fitting("2.0.1", {long_token: OK})) == {long_token}
