"""2.0.1 block B, Provisioning: booting, heartbeats, configuration, reports, reset (CSMS side).

Where OCTT asks a person to make the CSMS do something ("Manual Action: request the CSMS to …"), the case asks
the operator for exactly that call and checks what reaches the station; the station's answers are the ones OCTT
gives (the firmware's, or the case's own where the firmware does not model the action).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from csms.ocpp import framing
from csms.ocpp.framing import Call, CallError
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorJob, OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest
from simulator.station.operations import RESET_STOP_REASON

case = case_marker("2.0.1")

#: The EVSE the reset cases address (the station under test has one EVSE with one connector).
EVSE_ID = 1


def _ask(
    station: StationUnderTest, operator: OperatorThread, action: str, payload: dict[str, Any]
) -> tuple[Call, OperatorJob]:
    """The operator makes the CSMS send ``action``; returns the CALL as the station received it, and the job."""
    job = operator.request(station, action, payload)
    return station.wait_call(action), job


def _variables(items: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    return {(i["component"]["name"], i["variable"]["name"], i["variable"].get("instance")) for i in items}


def _check_get_items(call: Call, wanted: set[tuple[str, str, str | None]]) -> None:
    items = call.payload["getVariableData"]
    assert _variables(items) == wanted, f"GetVariables asks {sorted(map(str, _variables(items)))}, not {wanted}"
    for item in items:
        kind = item.get("attributeType", "Actual")
        assert kind in {"Actual", "Target", "MinSet", "MaxSet"}, f"attributeType {kind!r} in {item}"


def _check_set_items(call: Call, wanted: dict[tuple[str, str], str]) -> None:
    items = call.payload["setVariableData"]
    got = {(i["component"]["name"], i["variable"]["name"]): i["attributeValue"] for i in items}
    assert got == wanted, f"SetVariables sets {got}, the operator asked {wanted}"
    for item in items:
        assert item.get("attributeType", "Actual") == "Actual", f"attributeType {item.get('attributeType')!r}"


def _energy_transfer_started(station: StationUnderTest, tokens: Tokens) -> int | str:
    """OCTT's reusable state EnergyTransferStarted on EVSE 1: plugged, authorized, charging."""
    station.ready()
    station.plug_in(1, tokens.valid)
    tx_id = station.transaction_id(1)
    answer = station.wait_result("TransactionEvent")
    if "idTokenInfo" in answer:
        assert answer["idTokenInfo"]["status"] == "Accepted", f"valid token answered {answer['idTokenInfo']}"
    return tx_id


def _sent_calls(station: StationUnderTest, action: str) -> list[Call]:
    """Every CALL of ``action`` the station sent so far, oldest first."""
    calls = []
    for frame in station.log.frames:
        if frame.outgoing:
            message = framing.decode(frame.text)
            if isinstance(message, Call) and message.action == action:
                calls.append(message)
    return calls


def _answered(station: StationUnderTest, call: Call) -> None:
    answer = station.wait_frame(call.unique_id)
    if isinstance(answer, CallError):
        station.fail(f"the CSMS answered {call.action} with CALLERROR {answer.code}: {answer.description}")


def _sent_event(station: StationUnderTest, event_type: str) -> dict[str, Any]:
    """The station's TransactionEvent of ``event_type`` (waiting for it to go out), once the CSMS answered it."""

    def sent() -> Call | None:
        # the firmware queues the Ended event of an unplug or a reset and sends it only at its next timer; a real
        # station sends it at once
        station.act(station.charger.pump)
        found = [c for c in _sent_calls(station, "TransactionEvent") if c.payload["eventType"] == event_type]
        return found[0] if found else None

    call: Call = station.run_until(sent, f"waiting for the station to send TransactionEvent {event_type}")
    _answered(station, call)
    return call.payload


def _notify_connector(station: StationUnderTest, status: str) -> None:
    station.call(
        "StatusNotification",
        {"timestamp": _now(), "connectorStatus": status, "evseId": EVSE_ID, "connectorId": 1},
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ==== booting ==================================================================================================
@case("TC_B_01_CSMS", "Cold Boot Charging Station - Accepted")
def test_TC_B_01_CSMS(station: StationUnderTest) -> None:
    answer = station.boot()
    assert answer["interval"] > 0, f"BootNotification interval {answer['interval']}: a heartbeat interval must be > 0"
    sent = datetime.fromisoformat(answer["currentTime"].replace("Z", "+00:00"))
    assert sent.tzinfo is not None, "currentTime must carry its UTC offset"
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 60, (
        f"currentTime {answer['currentTime']} is off by over a minute"
    )
    station.wait_result("StatusNotification")
    station.call("Heartbeat", {})


@case("TC_B_02_CSMS", "Cold Boot Charging Station - Pending")
def test_TC_B_02_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    operator.configure(station, "boot_answer", status="Pending")
    station.boot(expect="Pending")
    station.idle(1.0)
    if not station.connected:  # B02.FR.06
        station.fail("the CSMS closed the connection of a station it answered Pending")
    operator.configure(station, "boot_answer", status="Accepted")
    station.act(station.charger.trigger_boot)
    answer = station.wait_result("BootNotification")
    assert answer["status"] == "Accepted", f"the second BootNotification answered {answer['status']!r}, not Accepted"
    station.wait_result("StatusNotification")


@case("TC_B_30_CSMS", "Cold Boot Charging Station - Pending/Rejected - SecurityError")
def test_TC_B_30_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    operator.configure(station, "boot_answer", status="Pending")
    station.boot(expect="Pending")
    unique_id = "b30-status"
    payload = {"timestamp": _now(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    station.send_frame(f'[2,"{unique_id}","StatusNotification",{json.dumps(payload)}]')
    answer = station.wait_frame(unique_id)
    if not isinstance(answer, CallError):
        station.fail("the CSMS served a StatusNotification from a station it has not accepted (B02.FR.09)")
    assert isinstance(answer, CallError)
    assert answer.code == "SecurityError", f"CALLERROR {answer.code}, B02.FR.09 requires SecurityError"


@case("TC_B_31_CSMS", "Cold Boot Charging Station - Pending/Rejected - TriggerMessage")
def test_TC_B_31_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    operator.configure(station, "boot_answer", status="Pending")
    station.boot(expect="Pending")
    operator.configure(station, "boot_answer", status="Accepted")
    call, job = _ask(station, operator, "TriggerMessage", {"requestedMessage": "BootNotification"})
    assert call.payload["requestedMessage"] == "BootNotification", f"TriggerMessage asks {call.payload}"
    assert "evse" not in call.payload, f"a BootNotification trigger names no EVSE: {call.payload}"
    job.outcome(station)
    answer = station.wait_result("BootNotification")
    assert answer["status"] == "Accepted", f"the triggered BootNotification answered {answer['status']!r}"
    station.wait_result("StatusNotification")


@case("TC_B_58_CSMS", "WebSocket Subprotocol validation")
def test_TC_B_58_CSMS(station: StationUnderTest) -> None:
    # OCPP-J (Part 4 §3.1.2): no version the CSMS agrees to -> refuse the upgrade, or complete it without a
    # Sec-WebSocket-Protocol header and close at once.
    refused = station.try_connect(subprotocols=["ocpp0.1"])
    if refused is None:
        agreed = station.ws.subprotocol if station.ws is not None else None
        if agreed is not None:
            station.fail(f"the CSMS agreed to subprotocol {agreed!r} when only ocpp0.1 was offered")
        station.wait_closed(timeout=2.0)
    refused = station.try_connect(subprotocols=["ocpp0.1", "ocpp2.0.1"])
    if refused is not None:
        station.fail(f"the CSMS refused a connection offering ocpp0.1 and ocpp2.0.1: {refused}")
    assert station.ws is not None
    assert station.ws.subprotocol == "ocpp2.0.1", f"Sec-WebSocket-Protocol {station.ws.subprotocol!r}, not ocpp2.0.1"
    station.auto_reconnect = True
    station.boot()


# ==== variables ================================================================================================
@case("TC_B_06_CSMS", "Get Variables - single value")
def test_TC_B_06_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    item = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}
    call, job = _ask(station, operator, "GetVariables", {"getVariableData": [item]})
    _check_get_items(call, {("OCPPCommCtrlr", "OfflineThreshold", None)})
    job.outcome(station)


@case("TC_B_07_CSMS", "Get Variables - multiple values")
def test_TC_B_07_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    items = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}},
        {"component": {"name": "AuthCtrlr"}, "variable": {"name": "AuthorizeRemoteStart"}},
    ]
    call, job = _ask(station, operator, "GetVariables", {"getVariableData": items})
    _check_get_items(call, {("OCPPCommCtrlr", "OfflineThreshold", None), ("AuthCtrlr", "AuthorizeRemoteStart", None)})
    job.outcome(station)


#: TC_B_08: the station reports DeviceDataCtrlr.ItemsPerMessage[GetVariables] = 4; the operator asks for five.
ITEMS_PER_MESSAGE = 4
FIVE_VARIABLES = [
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"),
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetReport"),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"),
    ("AuthCtrlr", "AuthorizeRemoteStart", None),
]
DEVICE_DATA = {"ItemsPerMessage": str(ITEMS_PER_MESSAGE), "BytesPerMessage": "8192", "AuthorizeRemoteStart": "false"}


def _device_data_answer(call: Call) -> dict[str, Any]:
    results = []
    for item in call.payload["getVariableData"]:
        name = item["variable"]["name"]
        known = name in DEVICE_DATA and len(call.payload["getVariableData"]) <= ITEMS_PER_MESSAGE
        result = {
            "attributeStatus": "Accepted" if known else "Rejected",
            "component": item["component"],
            "variable": item["variable"],
        }
        if known:
            result["attributeValue"] = DEVICE_DATA[name]
        results.append(result)
    return {"getVariableResult": results}


def _item(component: str, variable: str, instance: str | None) -> dict[str, Any]:
    named: dict[str, Any] = {"name": variable}
    if instance is not None:
        named["instance"] = instance
    return {"component": {"name": component}, "variable": named}


@case("TC_B_08_CSMS", "Get Variables - limit to maximum number of values")
def test_TC_B_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.answer("GetVariables", _device_data_answer)
    limit = _item("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables")
    _, job = _ask(station, operator, "GetVariables", {"getVariableData": [limit]})
    job.outcome(station)
    job = operator.request(station, "GetVariables", {"getVariableData": [_item(*v) for v in FIVE_VARIABLES]})
    asked: set[tuple[str, str, str | None]] = set()
    while asked != set(FIVE_VARIABLES):
        call = station.wait_call("GetVariables")
        items = call.payload["getVariableData"]
        assert len(items) <= ITEMS_PER_MESSAGE, (
            f"GetVariables with {len(items)} items; the station reported ItemsPerMessageGetVariables "
            f"{ITEMS_PER_MESSAGE} (B06.FR.05)"
        )
        asked |= _variables(items)
    job.outcome(station)


@case("TC_B_09_CSMS", "Set Variables - single value")
def test_TC_B_09_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    item = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}, "attributeValue": "123"}
    call, job = _ask(station, operator, "SetVariables", {"setVariableData": [item]})
    _check_set_items(call, {("OCPPCommCtrlr", "OfflineThreshold"): "123"})
    job.outcome(station)


@case("TC_B_10_CSMS", "Set Variables - multiple values")
def test_TC_B_10_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    items = [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}, "attributeValue": "123"},
        {"component": {"name": "AuthCtrlr"}, "variable": {"name": "AuthorizeRemoteStart"}, "attributeValue": "false"},
    ]
    call, job = _ask(station, operator, "SetVariables", {"setVariableData": items})
    _check_set_items(
        call, {("OCPPCommCtrlr", "OfflineThreshold"): "123", ("AuthCtrlr", "AuthorizeRemoteStart"): "false"}
    )
    job.outcome(station)


# ==== reports ==================================================================================================
def _base_report(station: StationUnderTest, operator: OperatorThread, report_base: str) -> None:
    station.ready()
    call, job = _ask(station, operator, "GetBaseReport", {"requestId": 1201, "reportBase": report_base})
    assert call.payload["reportBase"] == report_base, f"reportBase {call.payload['reportBase']!r}, not {report_base}"
    job.outcome(station)

    def last_part() -> list[Call] | None:
        parts = [c for c in _sent_calls(station, "NotifyReport") if c.payload["requestId"] == call.payload["requestId"]]
        return parts if parts and not parts[-1].payload.get("tbc", False) else None

    for part in station.run_until(last_part, "waiting for the station's report"):
        _answered(station, part)  # the CSMS must answer every part of the report


@case("TC_B_12_CSMS", "Get Base Report - ConfigurationInventory")
def test_TC_B_12_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _base_report(station, operator, "ConfigurationInventory")


@case("TC_B_13_CSMS", "Get Base Report - FullInventory")
def test_TC_B_13_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _base_report(station, operator, "FullInventory")


@case("TC_B_14_CSMS", "Get Base Report - SummaryInventory")
def test_TC_B_14_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    _base_report(station, operator, "SummaryInventory")


def _custom_report_answer(call: Call) -> dict[str, Any]:
    return {"status": "EmptyResultSet" if "Problem" in call.payload.get("componentCriteria", []) else "Accepted"}


@case("TC_B_18_CSMS", "Get Custom Report - with component criteria")
def test_TC_B_18_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.answer("GetReport", _custom_report_answer)
    for criterion, request_id in (("Problem", 1801), ("Available", 1802)):
        call, job = _ask(station, operator, "GetReport", {"requestId": request_id, "componentCriteria": [criterion]})
        assert call.payload.get("componentCriteria") == [criterion], (
            f"componentCriteria {call.payload.get('componentCriteria')}, the operator asked [{criterion}]"
        )
        job.outcome(station)
    station.call(
        "NotifyReport",
        {
            "requestId": call.payload["requestId"],
            "generatedAt": _now(),
            "seqNo": 0,
            "tbc": False,
            "reportData": [
                {
                    "component": {"name": "EVSE", "evse": {"id": EVSE_ID}},
                    "variable": {"name": "Available"},
                    "variableAttribute": [{"type": "Actual", "value": "true", "mutability": "ReadOnly"}],
                }
            ],
        },
    )


# ==== reset ====================================================================================================
@case("TC_B_20_CSMS", "Reset Charging Station - Without ongoing transaction - OnIdle")
def test_TC_B_20_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    job = operator.request(station, "Reset", {"type": "OnIdle"})
    call = station.wait_call("Reset")
    assert call.payload["type"] == "OnIdle", f"Reset type {call.payload['type']!r}, the operator asked OnIdle"
    assert "evseId" not in call.payload, f"a station reset names no EVSE: {call.payload}"
    job.outcome(station)
    station.boot(timeout=station.target.wait_s)


@case("TC_B_21_CSMS", "Reset Charging Station - With Ongoing Transaction - OnIdle")
def test_TC_B_21_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    _energy_transfer_started(station, tokens)
    call, job = _ask(station, operator, "Reset", {"type": "OnIdle"})
    assert call.payload["type"] == "OnIdle", f"Reset type {call.payload['type']!r}, the operator asked OnIdle"
    assert "evseId" not in call.payload, f"a station reset names no EVSE: {call.payload}"
    job.outcome(station)
    station.unplug(1)  # the transaction ends normally; then the scheduled reset goes ahead
    _sent_event(station, "Ended")
    station.boot(timeout=station.target.wait_s)


@case("TC_B_22_CSMS", "Reset Charging Station - With Ongoing Transaction - Immediate")
def test_TC_B_22_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    _energy_transfer_started(station, tokens)
    call, job = _ask(station, operator, "Reset", {"type": "Immediate"})
    assert call.payload["type"] == "Immediate", f"Reset type {call.payload['type']!r}, the operator asked Immediate"
    assert "evseId" not in call.payload, f"a station reset names no EVSE: {call.payload}"
    job.outcome(station)
    _sent_event(station, "Ended")
    station.boot(timeout=station.target.wait_s)


def _evse_reset(station: StationUnderTest, operator: OperatorThread, kind: str, status: str) -> None:
    station.answer("Reset", {"status": status})
    call, job = _ask(station, operator, "Reset", {"type": kind, "evseId": EVSE_ID})
    assert call.payload["type"] == kind, f"Reset type {call.payload['type']!r}, the operator asked {kind}"
    assert call.payload.get("evseId") == EVSE_ID, f"Reset evseId {call.payload.get('evseId')!r}, not {EVSE_ID}"
    job.outcome(station)


@case("TC_B_25_CSMS", "Reset EVSE - Without ongoing transaction")
def test_TC_B_25_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _evse_reset(station, operator, "OnIdle", "Accepted")
    _notify_connector(station, "Unavailable")
    _notify_connector(station, "Available")


@case("TC_B_26_CSMS", "Reset EVSE - With Ongoing Transaction - OnIdle")
def test_TC_B_26_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    _energy_transfer_started(station, tokens)
    _evse_reset(station, operator, "OnIdle", "Scheduled")
    station.unplug(1)
    _sent_event(station, "Ended")


@case("TC_B_27_CSMS", "Reset EVSE - With Ongoing Transaction - Immediate")
def test_TC_B_27_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    _energy_transfer_started(station, tokens)
    _evse_reset(station, operator, "Immediate", "Accepted")
    tx = station.charger.transactions[1]
    station.act(lambda now: station.charger.stop_transaction(tx, RESET_STOP_REASON["Immediate"], now))
    _sent_event(station, "Ended")
    _notify_connector(station, "Unavailable")
    _notify_connector(station, "Occupied")


# ==== network profiles =========================================================================================
NETWORK_PROFILE_SLOT = 1


def _network_profile(station: StationUnderTest) -> dict[str, Any]:
    return {
        "configurationSlot": NETWORK_PROFILE_SLOT,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": station.target.url,
            "messageTimeout": 30,
            "securityProfile": 1,
            "ocppInterface": "Wired0",
        },
    }


def _check_network_profile(call: Call, wanted: dict[str, Any]) -> None:
    assert call.payload["configurationSlot"] == wanted["configurationSlot"], f"configurationSlot in {call.payload}"
    data = call.payload["connectionData"]
    assert data["ocppTransport"] == "JSON", f"ocppTransport {data['ocppTransport']!r}, OCPP-J is JSON"
    assert data["ocppVersion"] == "OCPP20", f"ocppVersion {data['ocppVersion']!r}, 2.0.1 is OCPP20"
    for key in ("ocppCsmsUrl", "messageTimeout", "securityProfile", "ocppInterface"):
        assert data[key] == wanted["connectionData"][key], f"connectionData.{key} {data[key]!r}, not as configured"


@case("TC_B_42_CSMS", "Set new NetworkConnectionProfile - Accepted")
def test_TC_B_42_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.answer("SetNetworkProfile", {"status": "Accepted"})
    wanted = _network_profile(station)
    call, job = _ask(station, operator, "SetNetworkProfile", wanted)
    _check_network_profile(call, wanted)
    job.outcome(station)


@case("TC_B_44_CSMS", "Set new NetworkConnectionProfile - Failed")
def test_TC_B_44_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.answer("SetNetworkProfile", {"status": "Failed"})
    wanted = _network_profile(station)
    call, job = _ask(station, operator, "SetNetworkProfile", wanted)
    _check_network_profile(call, wanted)
    outcome = job.outcome(station)
    if outcome.response is not None:
        assert outcome.response.get("status") == "Failed", f"the CSMS reported {outcome.response}, the station Failed"
    station.call("Heartbeat", {})  # the CSMS carries on with the station on its current profile
