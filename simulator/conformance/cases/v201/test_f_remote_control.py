"""2.0.1 block F, Remote Control: remote start and stop, unlock connector, trigger message (CSMS side).

The CSMS acts here because its operator asks it to (the OCTT's "Manual Action: trigger the CSMS to …"):
each case checks the CALL the CSMS then sends (the token, the EVSE, the requested message) and that it handles
what follows — the transaction started with the remoteStartId it chose, the triggered message, a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.conformance.cases.v201.octt_states import (
    TOKEN_TYPE,
    ScriptedTransaction,
    ask,
    authorize,
    connector_status,
    expect_token_status,
    id_token,
    meter_value,
    sampled,
)
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest
from simulator.operators.base import CallOutcome

case = case_marker("2.0.1")

#: The remoteStartId the operator suggests (a CSMS that picks its own is fine: the case uses the one sent).
REMOTE_START_ID = 4711


def remote_start(station: StationUnderTest, operator: OperatorThread, tokens: Tokens, reply: dict[str, Any]) -> int:
    """RequestStartTransaction for the valid token on EVSE 1; returns the remoteStartId the CSMS sent."""
    payload = {"idToken": id_token(tokens.valid), "remoteStartId": REMOTE_START_ID, "evseId": 1}
    sent, _ = ask(station, operator, "RequestStartTransaction", payload, reply)
    token = sent["idToken"]
    if token.get("idToken") != tokens.valid or token.get("type") != TOKEN_TYPE:
        station.fail(f"RequestStartTransaction for idToken {token}, the operator asked {id_token(tokens.valid)}")
    return int(sent["remoteStartId"])


def remote_started(tx: ScriptedTransaction, remote_start_id: int, event_type: str) -> None:
    """The TransactionEvent of a remotely started transaction: trigger RemoteStart, the CSMS's remoteStartId."""
    answer = tx.event(event_type, "RemoteStart", with_token=True, remoteStartId=remote_start_id)
    expect_token_status(tx.station, answer, "TransactionEventResponse (RemoteStart)", "Accepted")


# ==== remote start (F01, F02) ===============================================================================
@case("TC_F_01_CSMS", "Remote start transaction - Cable plugin first")
def test_TC_F_01_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.ev_connected_pre_session()
    remote_start_id = remote_start(
        station, operator, tokens, {"status": "Accepted", "transactionId": tx.transaction_id}
    )
    remote_started(tx, remote_start_id, "Updated")
    tx.energy_transfer_started()


@case("TC_F_02_CSMS", "Remote start transaction - Remote start first - AuthorizeRemoteStart is true")
def test_TC_F_02_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    remote_start_id = remote_start(station, operator, tokens, {"status": "Accepted"})
    authorize(station, tokens.valid)
    remote_started(tx, remote_start_id, "Started")
    tx.energy_transfer_started()


@case("TC_F_03_CSMS", "Remote start transaction - Remote start first - AuthorizeRemoteStart is false")
def test_TC_F_03_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    remote_start_id = remote_start(station, operator, tokens, {"status": "Accepted"})
    remote_started(tx, remote_start_id, "Started")
    tx.energy_transfer_started()


@case("TC_F_04_CSMS", "Remote start transaction - Remote start first - Cable plugin timeout")
def test_TC_F_04_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    remote_start_id = remote_start(station, operator, tokens, {"status": "Accepted"})
    remote_started(tx, remote_start_id, "Started")
    station.idle(1.0)  # no cable within the EV connection timeout
    tx.event("Updated", "EVConnectTimeout")


# ==== unlock connector (F05) ================================================================================
@case("TC_F_06_CSMS", "Remote unlock Connector - Without ongoing transaction - Accepted")
def test_TC_F_06_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    ask(
        station,
        operator,
        "UnlockConnector",
        {"evseId": 1, "connectorId": 1},
        {"status": "Unlocked"},
        evseId=1,
        connectorId=1,
    )


# ==== trigger message (F06) =================================================================================
def trigger(
    station: StationUnderTest, operator: OperatorThread, message: str, evse: dict[str, int] | None, **reply: Any
) -> CallOutcome:
    """TriggerMessage for ``message`` (on ``evse``, or the whole station); the CALL must name exactly those."""
    payload: dict[str, Any] = {"requestedMessage": message}
    if evse is not None:
        payload["evse"] = evse
    _, outcome = ask(
        station,
        operator,
        "TriggerMessage",
        payload,
        reply or {"status": "Accepted"},
        requestedMessage=message,
        evse=evse,
    )
    return outcome


def triggered_meter_values(station: StationUnderTest, evse_id: int) -> None:
    values = [sampled(1234.0, "Trigger"), sampled(0.0, "Trigger", measurand="Power.Active.Import", unit="W")]
    station.call("MeterValues", {"evseId": evse_id, "meterValue": [meter_value(values)]})


@case("TC_F_11_CSMS", "Trigger message - MeterValues - Specific EVSE")
def test_TC_F_11_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    trigger(station, operator, "MeterValues", {"id": 1})
    triggered_meter_values(station, 1)


@case("TC_F_12_CSMS", "Trigger message - MeterValues - All EVSE")
def test_TC_F_12_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    station.ready()
    trigger(station, operator, "MeterValues", None)
    for evse_id in station.charger.connectors:
        triggered_meter_values(station, evse_id)


def triggered_transaction_event(tx: ScriptedTransaction) -> None:
    tx.event("Updated", "Trigger", state="Charging", meter=tx.register("Trigger", add_wh=50.0))


@case("TC_F_13_CSMS", "Trigger message - TransactionEvent - Specific EVSE")
def test_TC_F_13_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    trigger(station, operator, "TransactionEvent", {"id": 1})
    triggered_transaction_event(tx)


@case("TC_F_14_CSMS", "Trigger message - TransactionEvent - All EVSE")
def test_TC_F_14_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    trigger(station, operator, "TransactionEvent", None)
    triggered_transaction_event(tx)


@case("TC_F_15_CSMS", "Trigger message - LogStatusNotification - Idle")
def test_TC_F_15_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    trigger(station, operator, "LogStatusNotification", None)
    station.call("LogStatusNotification", {"status": "Idle"})


@case("TC_F_18_CSMS", "Trigger message - FirmwareStatusNotification - Idle")
def test_TC_F_18_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    trigger(station, operator, "FirmwareStatusNotification", None)
    station.call("FirmwareStatusNotification", {"status": "Idle"})


@case("TC_F_20_CSMS", "Trigger message - Heartbeat")
def test_TC_F_20_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    trigger(station, operator, "Heartbeat", None)
    answer = station.call("Heartbeat", {})
    if not answer.get("currentTime"):
        station.fail(f"HeartbeatResponse {answer} without currentTime")


@case("TC_F_23_CSMS", "Trigger message - StatusNotification - Specific EVSE - Available")
def test_TC_F_23_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    trigger(station, operator, "StatusNotification", {"id": 1, "connectorId": 1})
    connector_status(station, "Available")


@case("TC_F_24_CSMS", "Trigger message - StatusNotification - Specific EVSE - Occupied")
def test_TC_F_24_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    connector_status(station, "Occupied")
    trigger(station, operator, "StatusNotification", {"id": 1, "connectorId": 1})
    connector_status(station, "Occupied")


@case("TC_F_27_CSMS", "Trigger message - NotImplemented")
def test_TC_F_27_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    outcome = trigger(station, operator, "SignChargingStationCertificate", None, status="NotImplemented")
    if outcome.response is not None and outcome.response.get("status") != "NotImplemented":
        station.fail(f"the CSMS reported the station's answer as {outcome.response}, it was NotImplemented")
    station.call("Heartbeat", {})  # the refusal leaves the connection as it was
