"""2.0.1 block N, Diagnostics: logs, monitoring (reports, base, level, variable monitors, clearing), events,
customer information (CSMS side).

The CSMS must send what the operator configured and answer every notification the station sends in return
(LogStatusNotification, NotifyMonitoringReport, NotifyEvent, NotifyCustomerInformation) with a valid answer.
"""

from __future__ import annotations

from typing import Any

from simulator.conformance.cases.v201._csms_commands import iso
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

LOG_SERVER = "https://logs.example.com/upload"
STATION: dict[str, Any] = {"name": "ChargingStation"}
EVSE_1: dict[str, Any] = {"name": "EVSE", "evse": {"id": 1}}
AVAILABILITY: dict[str, Any] = {"name": "AvailabilityState"}
POWER: dict[str, Any] = {"name": "Power"}


# ==== N01 Retrieve log information ==============================================================================
def get_log(station: StationUnderTest, operator: OperatorThread, log_type: str, request_id: int, reply: str) -> int:
    """The CSMS asks for a log of ``log_type``; the station answers ``reply``. Returns the requestId sent."""
    payload = {"logType": log_type, "requestId": request_id, "log": {"remoteLocation": LOG_SERVER}}
    answer = {"status": reply, "filename": f"{log_type}.log"} if reply != "Rejected" else {"status": reply}
    request = operator.command(station, "GetLog", payload, answer).payload
    assert request["logType"] == log_type, f"logType {request['logType']!r}, the case configured {log_type!r}"
    assert request["log"]["remoteLocation"], "GetLog without a remoteLocation"
    return int(request["requestId"])


def upload(station: StationUnderTest, request_id: int, *statuses: str) -> None:
    for status in statuses:
        station.call("LogStatusNotification", {"status": status, "requestId": request_id})


@case("TC_N_25_CSMS", "Retrieve Log Information - Diagnostics Log - Success", "core")
def test_TC_N_25_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = get_log(station, operator, "DiagnosticsLog", 25, "Accepted")
    upload(station, request_id, "Uploading", "Uploaded")


@case("TC_N_34_CSMS", "Retrieve Log Information - Rejected", "core")
def test_TC_N_34_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_log(station, operator, "DiagnosticsLog", 34, "Rejected")
    station.expect_no_call(1, "GetLog")


@case("TC_N_35_CSMS", "Retrieve Log Information - Security Log - Success", "advanced-security")
def test_TC_N_35_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = get_log(station, operator, "SecurityLog", 35, "Accepted")
    upload(station, request_id, "Uploading", "Uploaded")


@case("TC_N_36_CSMS", "Retrieve Log Information - Second Request", "core")
def test_TC_N_36_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    first = get_log(station, operator, "DiagnosticsLog", 361, "Accepted")
    upload(station, first, "Uploading")
    second = get_log(station, operator, "DiagnosticsLog", 362, "AcceptedCanceled")
    assert second != first, f"the second GetLog reuses requestId {first}: each request has its own id"
    upload(station, first, "AcceptedCanceled")
    upload(station, second, "Uploading", "Uploaded")


# ==== N02 Get monitoring report =================================================================================
def _monitor(component: dict[str, Any], variable: dict[str, Any], kind: str) -> dict[str, Any]:
    monitoring = {"id": 1, "transaction": False, "value": 1, "type": kind, "severity": 8}
    return {"component": component, "variable": variable, "variableMonitoring": [monitoring]}


def monitoring_report(
    station: StationUnderTest,
    operator: OperatorThread,
    criteria: list[str] | None,
    targets: list[dict[str, Any]] | None,
    reply: str,
) -> None:
    """The CSMS asks for a monitoring report by ``criteria`` / ``targets``; on Accepted the station reports."""
    payload: dict[str, Any] = {"requestId": 2}
    if criteria is not None:
        payload["monitoringCriteria"] = criteria
    if targets is not None:
        payload["componentVariable"] = targets
    request = operator.command(station, "GetMonitoringReport", payload, {"status": reply}).payload
    assert request.get("monitoringCriteria") == criteria, (
        f"monitoringCriteria {request.get('monitoringCriteria')}, the case configured {criteria}"
    )
    assert request.get("componentVariable") == targets, (
        f"componentVariable {request.get('componentVariable')}, the case configured {targets}"
    )
    if reply == "Accepted":
        first = (targets or [{"component": STATION, "variable": POWER}])[0]
        kind = "UpperThreshold" if criteria == ["ThresholdMonitoring"] else "Delta"
        report = {
            "requestId": request["requestId"],
            "seqNo": 0,
            "generatedAt": iso(),
            "monitor": [_monitor(first["component"], first["variable"], kind)],
        }
        station.call("NotifyMonitoringReport", report)


@case("TC_N_01_CSMS", "Get Monitoring Report - with monitoringCriteria", "advanced-device-management")
def test_TC_N_01_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    monitoring_report(station, operator, ["DeltaMonitoring"], None, "EmptyResultSet")
    monitoring_report(station, operator, ["ThresholdMonitoring"], None, "Accepted")


@case("TC_N_02_CSMS", "Get Monitoring Report - with component/variable", "advanced-device-management")
def test_TC_N_02_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    monitoring_report(station, operator, None, [{"component": STATION, "variable": POWER}], "EmptyResultSet")
    monitoring_report(station, operator, None, [{"component": EVSE_1, "variable": AVAILABILITY}], "Accepted")


@case(
    "TC_N_03_CSMS",
    "Get Monitoring Report - with monitoringCriteria and component/variable",
    "advanced-device-management",
)
def test_TC_N_03_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    evse = [{"component": EVSE_1, "variable": AVAILABILITY}]
    monitoring_report(station, operator, ["DeltaMonitoring"], evse, "EmptyResultSet")
    power = [{"component": STATION, "variable": POWER}]
    monitoring_report(station, operator, ["ThresholdMonitoring"], power, "Accepted")


@case("TC_N_47_CSMS", "Get Monitoring Report - Report all", "advanced-device-management")
def test_TC_N_47_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    monitoring_report(station, operator, None, None, "Accepted")


@case(
    "TC_N_60_CSMS",
    "Get Monitoring Report - with monitoringCriteria and list of components/variables",
    "advanced-device-management",
)
def test_TC_N_60_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    both = [{"component": STATION, "variable": AVAILABILITY}, {"component": EVSE_1, "variable": AVAILABILITY}]
    monitoring_report(station, operator, ["DeltaMonitoring"], both, "EmptyResultSet")
    monitoring_report(station, operator, ["ThresholdMonitoring"], both, "Accepted")


# ==== N03–N06 Monitoring base, variable monitors, level, clearing ===============================================
@case("TC_N_05_CSMS", "Set Monitoring Base - Success", "advanced-device-management")
def test_TC_N_05_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    for base in ("All", "FactoryDefault", "HardWiredOnly"):
        request = operator.command(station, "SetMonitoringBase", {"monitoringBase": base}, {"status": "Accepted"})
        assert request.payload["monitoringBase"] == base, f"monitoringBase {request.payload['monitoringBase']!r}"


def set_monitors(station: StationUnderTest, operator: OperatorThread, targets: list[dict[str, Any]]) -> None:
    wanted = [
        {"value": 1, "type": "Delta", "severity": 8, "component": t["component"], "variable": t["variable"]}
        for t in targets
    ]

    def accept(call: Any) -> dict[str, Any]:
        results = [
            {
                "id": 80 + n,
                "status": "Accepted",
                "type": d["type"],
                "severity": d["severity"],
                "component": d["component"],
                "variable": d["variable"],
            }
            for n, d in enumerate(call.payload["setMonitoringData"])
        ]
        return {"setMonitoringResult": results}

    request = operator.command(station, "SetVariableMonitoring", {"setMonitoringData": wanted}, accept).payload
    sent = request["setMonitoringData"]
    assert len(sent) == len(wanted), f"{len(sent)} setMonitoringData elements, the case configured {len(wanted)}"
    for got, want in zip(sent, wanted, strict=True):
        keys = ("value", "type", "severity", "component", "variable")
        differ = {k: got.get(k) for k in keys if got.get(k) != want[k]}
        assert not differ, f"setMonitoringData differs from the configured monitor in {differ}"
        assert "id" not in got, "a new monitor has no id yet (the station assigns it)"


@case("TC_N_08_CSMS", "Set Variable Monitoring - One element", "advanced-device-management")
def test_TC_N_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_monitors(station, operator, [{"component": EVSE_1, "variable": AVAILABILITY}])


@case("TC_N_09_CSMS", "Set Variable Monitoring - Multiple elements", "advanced-device-management")
def test_TC_N_09_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    targets = [{"component": EVSE_1, "variable": AVAILABILITY}, {"component": STATION, "variable": AVAILABILITY}]
    set_monitors(station, operator, targets)


def _level(station: StationUnderTest, operator: OperatorThread, reply: str) -> None:
    request = operator.command(station, "SetMonitoringLevel", {"severity": 4}, {"status": reply}).payload
    assert request["severity"] == 4, f"severity {request['severity']}, the case configured 4"


@case("TC_N_16_CSMS", "Set Monitoring Level - Success", "advanced-device-management")
def test_TC_N_16_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _level(station, operator, "Accepted")


@case("TC_N_17_CSMS", "Set Monitoring Level - Out of range", "advanced-device-management")
def test_TC_N_17_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _level(station, operator, "Rejected")


def clear_monitors(station: StationUnderTest, operator: OperatorThread, ids: list[int], status: str) -> list[int]:
    def answer(call: Any) -> dict[str, Any]:
        return {"clearMonitoringResult": [{"id": i, "status": status} for i in call.payload["id"]]}

    request = operator.command(station, "ClearVariableMonitoring", {"id": ids}, answer).payload
    return list(request["id"])


@case("TC_N_18_CSMS", "Clear Monitoring - Too many elements", "advanced-device-management")
def test_TC_N_18_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    per_message = 3
    variable = {"name": "ItemsPerMessage", "instance": "ClearVariableMonitoring"}
    station.answer(
        "GetVariables",
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": str(per_message),
                    "component": {"name": "MonitoringCtrlr"},
                    "variable": variable,
                }
            ]
        },
    )
    job = operator.request(
        station, "GetVariables", {"getVariableData": [{"component": {"name": "MonitoringCtrlr"}, "variable": variable}]}
    )
    station.wait_call("GetVariables")
    job.outcome(station)
    monitors = [101, 102, 103, 104, 105]
    cleared = clear_monitors(station, operator, monitors[:per_message], "Accepted")
    cleared += clear_monitors(station, operator, monitors[per_message:], "Accepted")
    for n, batch in enumerate([cleared[:per_message], cleared[per_message:]], start=1):
        assert len(batch) <= per_message, f"request {n} clears {len(batch)} monitors, ItemsPerMessage is {per_message}"
    assert sorted(cleared) == monitors, f"cleared {sorted(cleared)}, the case configured {monitors}"


@case("TC_N_44_CSMS", "Clear Monitoring - Rejected", "advanced-device-management")
def test_TC_N_44_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    cleared = clear_monitors(station, operator, [1], "Rejected")
    assert cleared == [1], f"ids {cleared}, the case configured [1]"


# ==== N07/N08 Alert and periodic events =========================================================================
def notify_event(station: StationUnderTest, seq: int = 0, **event: Any) -> None:
    data = {
        "eventId": 700 + seq,
        "timestamp": iso(),
        "trigger": "Alerting",
        "actualValue": "Faulted",
        "eventNotificationType": "HardWiredMonitor",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": AVAILABILITY,
        **event,
    }
    answer = station.call("NotifyEvent", {"generatedAt": iso(), "seqNo": seq, "eventData": [data]})
    assert answer == {} or set(answer) <= {"customData"}, f"NotifyEventResponse has no fields, got {answer}"


@case("TC_N_21_CSMS", "Alert Event - HardWiredMonitor", "advanced-device-management")
def test_TC_N_21_CSMS(station: StationUnderTest) -> None:
    station.ready()
    notify_event(station)


@case("TC_N_48_CSMS", "Alert Event - Variable monitoring on write only", "advanced-device-management")
def test_TC_N_48_CSMS(station: StationUnderTest) -> None:
    station.ready()
    notify_event(
        station,
        actualValue="",
        eventNotificationType="CustomMonitor",
        variableMonitoringId=48,
        component={"name": "SecurityCtrlr"},
        variable={"name": "BasicAuthPassword"},
    )


@case("TC_N_49_CSMS", "Alert Event - LowerThreshold/UpperThreshold cleared after reboot", "advanced-device-management")
def test_TC_N_49_CSMS(station: StationUnderTest) -> None:
    station.ready()
    notify_event(station, actualValue="0", cleared=True, component=EVSE_1)


@case("TC_N_50_CSMS", "Alert Event - Periodic Triggered", "advanced-device-management")
def test_TC_N_50_CSMS(station: StationUnderTest) -> None:
    station.ready()
    notify_event(station, trigger="Periodic", actualValue="Available", eventNotificationType="CustomMonitor")


@case("TC_N_24_CSMS", "Set Variable Monitoring - Periodic event", "advanced-device-management")
def test_TC_N_24_CSMS(station: StationUnderTest) -> None:
    station.ready()
    for seq in range(3):
        notify_event(
            station,
            seq,
            trigger="Periodic",
            actualValue="Available",
            eventNotificationType="CustomMonitor",
            variableMonitoringId=24,
        )


# ==== N09/N10 Customer information ==============================================================================
def customer_information(
    station: StationUnderTest,
    operator: OperatorThread,
    who: dict[str, Any],
    *,
    report: bool,
    clear: bool,
    reply: str = "Accepted",
    data: str = "",
) -> dict[str, Any]:
    """The CSMS asks for (and/or clears) a customer's data; on Accepted the station notifies ``data``."""
    payload = {"requestId": 27, "report": report, "clear": clear, **who}
    request = operator.command(station, "CustomerInformation", payload, {"status": reply}).payload
    assert (request["report"], request["clear"]) == (report, clear), (
        f"report/clear {request['report']}/{request['clear']}, the case configured {report}/{clear}"
    )
    for key, value in who.items():
        assert request.get(key) == value, f"{key} {request.get(key)!r}, the case configured {value!r}"
    if reply == "Accepted":
        notice = {"data": data, "seqNo": 0, "generatedAt": iso(), "requestId": request["requestId"]}
        station.call("NotifyCustomerInformation", notice)
    return request


def _token(tokens: Tokens) -> dict[str, Any]:
    return {"idToken": {"idToken": tokens.valid, "type": "ISO14443"}}


@case("TC_N_27_CSMS", "Get Customer Information - Accepted + data", "core")
def test_TC_N_27_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    customer_information(station, operator, _token(tokens), report=True, clear=False, data=f"{tokens.valid}: cached")


@case("TC_N_28_CSMS", "Get Customer Information - Accepted + no data", "core")
def test_TC_N_28_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    customer_information(station, operator, _token(tokens), report=True, clear=False)


@case("TC_N_29_CSMS", "Get Customer Information - Not Accepted", "core")
def test_TC_N_29_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    customer_information(station, operator, _token(tokens), report=True, clear=False, reply="Rejected")


@case("TC_N_30_CSMS", "Clear Customer Information - Clear and report - Accepted + data", "core")
def test_TC_N_30_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    customer_information(station, operator, _token(tokens), report=True, clear=True, data=f"{tokens.valid}: cached")


@case("TC_N_31_CSMS", "Clear Customer Information - Clear and report - Accepted + no data", "core")
def test_TC_N_31_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    customer_information(station, operator, _token(tokens), report=True, clear=True)


@case("TC_N_32_CSMS", "Clear Customer Information - Clear and no report", "core")
def test_TC_N_32_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    customer_information(station, operator, _token(tokens), report=False, clear=True)


@case("TC_N_46_CSMS", "Clear Customer Information - Clear and report - Update Local Authorization List", "core")
def test_TC_N_46_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    version = 1
    customer_information(station, operator, _token(tokens), report=True, clear=True)
    update = {
        "versionNumber": version + 1,
        "updateType": "Differential",
        "localAuthorizationList": [_token(tokens)],
    }
    request = operator.command(station, "SendLocalList", update, {"status": "Accepted"}).payload
    assert request["updateType"] == "Differential", f"updateType {request['updateType']!r}"
    assert request["versionNumber"] > version, f"versionNumber {request['versionNumber']} does not move past {version}"
    entries = request.get("localAuthorizationList", [])
    mine = [e for e in entries if e["idToken"]["idToken"] == tokens.valid]
    assert mine and "idTokenInfo" not in mine[0], (
        f"the cleared customer's token must be removed from the list (an entry without idTokenInfo), got {entries}"
    )


@case("TC_N_62_CSMS", "Clear Customer Information - Clear and report - customerIdentifier", "core")
def test_TC_N_62_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    customer_information(station, operator, {"customerIdentifier": "OpenChargeAlliance"}, report=True, clear=True)


@case("TC_N_63_CSMS", "Clear Customer Information - Clear and report - customerCertificate", "core")
def test_TC_N_63_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    certificate = {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "5c6cbd0b2f5c3b1b6a6bb8f9e4c2a2b4f1d7e3a9c8b7a6f5e4d3c2b1a0f9e8d7",
        "issuerKeyHash": "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e",
        "serialNumber": "1a2b3c4d",
    }
    customer_information(station, operator, {"customerCertificate": certificate}, report=True, clear=True)
