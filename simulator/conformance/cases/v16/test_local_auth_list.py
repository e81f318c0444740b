"""1.6 Local Auth List Management profile (Central System side): GetLocalListVersion and SendLocalList."""

from __future__ import annotations

from simulator.conformance.cases.v16._steps import booted, expect_fields
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")


def _full_list(tokens: Tokens) -> dict[str, object]:
    """What the operator asks for: the entries. The listVersion is the Central System's to choose and keep."""
    entries = [
        {"idTag": tokens.valid, "idTagInfo": {"status": "Accepted"}},
        {"idTag": tokens.blocked, "idTagInfo": {"status": "Blocked"}},
    ]
    return {"updateType": "Full", "localAuthorizationList": entries}


@case("TC_042_1_CSMS", "Get Local List Version (not supported)", "local-auth-list")
def test_TC_042_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "GetLocalListVersion", {}, {"listVersion": -1})
    assert call.payload == {}, f"GetLocalListVersion carries {call.payload}: it has no fields"
    station.call("Heartbeat", {})  # a station without a local list is still served


@case("TC_042_2_CSMS", "Get Local List Version (empty)", "local-auth-list")
def test_TC_042_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    operator.command(station, "GetLocalListVersion", {}, {"listVersion": 0})
    station.call("Heartbeat", {})


@case("TC_043_1_CSMS", "Send Local Authorization List - NotSupported", "local-auth-list")
def test_TC_043_1_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    call = operator.command(station, "SendLocalList", _full_list(tokens), {"status": "NotSupported"})
    expect_fields(station, call, updateType="Full")
    station.call("Heartbeat", {})


@case("TC_043_3_CSMS", "Send Local Authorization List - Failed", "local-auth-list")
def test_TC_043_3_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    call = operator.command(station, "SendLocalList", _full_list(tokens), {"status": "Failed"})
    expect_fields(station, call, updateType="Full")
    station.call("Heartbeat", {})


@case("TC_043_4_CSMS", "Send Local Authorization List - Full", "local-auth-list")
def test_TC_043_4_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    call = operator.command(station, "SendLocalList", _full_list(tokens))
    expect_fields(station, call, updateType="Full")
    entries = call.payload.get("localAuthorizationList") or []
    assert entries, "a Full local list with no entry: the Central System must send the idTags it knows"
    missing = [e["idTag"] for e in entries if "idTagInfo" not in e]
    assert not missing, f"entries of a Full list without idTagInfo: {missing}"


@case("TC_043_5_CSMS", "Send Local Authorization List - Differential", "local-auth-list")
def test_TC_043_5_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    initial = operator.command(station, "SendLocalList", _full_list(tokens)).payload
    assert isinstance(initial.get("listVersion"), int) and initial["listVersion"] > 0, (
        f"a Full list's version: {initial}"
    )
    operator.command(station, "GetLocalListVersion", {})  # optional in the OCTT: the Central System may check
    added = {"idTag": tokens.expired, "idTagInfo": {"status": "Expired"}}  # an idTag not yet on the list
    update = {"updateType": "Differential", "localAuthorizationList": [added]}
    call = operator.command(station, "SendLocalList", update)
    expect_fields(station, call, updateType="Differential")
    entries = call.payload.get("localAuthorizationList") or []
    assert [e.get("idTag") for e in entries] == [tokens.expired], f"the update must carry only that idTag: {entries}"
    assert "idTagInfo" in entries[0], f"the added idTag comes without idTagInfo: {entries[0]}"
    assert call.payload["listVersion"] > initial["listVersion"], (
        f"listVersion {call.payload['listVersion']} must be greater than the initial {initial['listVersion']}"
    )
