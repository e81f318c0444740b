"""1.6 Core profile (Central System side): boot, charging sessions, authorization, remote start/stop, reset,
unlock, configuration, power failure, offline transactions, the authorization cache and DataTransfer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from simulator.conformance.cases.v16._steps import (
    authorized,
    booted,
    charging,
    expect_fields,
    expect_status,
    now_text,
    sent,
    status,
)
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")

#: Stations that let a remote start authorize first (the OCTT's flow: RemoteStart, then Authorize).
AUTHORIZE_REMOTE = {"AuthorizeRemoteTxRequests": "true"}


# ==== boot ======================================================================================================
@case("TC_001_CSMS", "Cold Boot Charge Point")
def test_TC_001_CSMS(station: StationUnderTest) -> None:
    answer = booted(station)
    assert answer["interval"] > 0, f"BootNotification interval {answer['interval']}: a heartbeat interval must be > 0"
    sent = datetime.fromisoformat(answer["currentTime"].replace("Z", "+00:00"))
    assert sent.tzinfo is not None, "currentTime must carry its UTC offset"
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 60, f"currentTime {answer['currentTime']} is off"
    beat = station.call("Heartbeat", {})
    assert beat.get("currentTime"), "Heartbeat answered without currentTime"


# ==== charging sessions ========================================================================================
@case("TC_003_CSMS", "Regular Charging Session - Plugin First")
def test_TC_003_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    station.plug_in(1)
    station.wait_result("StatusNotification")  # Preparing
    station.present_token(tokens.valid)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")
    station.wait_result("StatusNotification")  # Charging


@case("TC_004_1_CSMS", "Regular Charging Session - Identification First")
def test_TC_004_1_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    station.present_token(tokens.valid)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    station.plug_in(1)
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")
    station.wait_result("StatusNotification")


@case("TC_004_2_CSMS", "Regular Charging Session - Identification First - ConnectionTimeOut")
def test_TC_004_2_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens) -> None:
    station = make_station(config={"ConnectionTimeOut": "2"})
    booted(station)
    authorized(station, tokens.valid)
    status(station, 1, "Preparing")
    station.idle(2)  # the connection timeout passes without a cable
    status(station, 1, "Available")


@case("TC_005_1_CSMS", "EV Side Disconnected")
def test_TC_005_1_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    station.unplug(1)
    stop = sent(station, "StopTransaction")
    assert stop["transactionId"] == transaction_id and stop["reason"] == "EVDisconnected", stop
    station.wait_result("StopTransaction")


@case("TC_007_CSMS", "Regular Start Charging Session - Cached Id")
def test_TC_007_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    status(station, 1, "Preparing")
    # the idTag is in the station's cache: StartTransaction without an Authorize first
    body = {"connectorId": 1, "idTag": tokens.valid, "meterStart": 0, "timestamp": now_text()}
    started = station.call("StartTransaction", body)
    expect_status(station, started, "StartTransaction", "Accepted")
    assert isinstance(started.get("transactionId"), int), f"StartTransaction answered {started}"
    status(station, 1, "Charging")


# ==== remote start / stop ======================================================================================
@case("TC_010_CSMS", "Remote Start Charging Session - Cable Plugged in First")
def test_TC_010_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread, tokens: Tokens) -> None:
    station = make_station(config=AUTHORIZE_REMOTE)
    booted(station)
    station.plug_in(1)
    station.wait_result("StatusNotification")  # Preparing
    call = operator.command(station, "RemoteStartTransaction", {"connectorId": 1, "idTag": tokens.valid})
    expect_fields(station, call, idTag=tokens.valid)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")


@case("TC_011_1_CSMS", "Remote Start Charging Session - Remote Start First")
def test_TC_011_1_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread, tokens: Tokens) -> None:
    station = make_station(config=AUTHORIZE_REMOTE)
    booted(station)
    call = operator.command(station, "RemoteStartTransaction", {"connectorId": 1, "idTag": tokens.valid})
    expect_fields(station, call, idTag=tokens.valid)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    station.plug_in(1)
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")


@case("TC_011_2_CSMS", "Remote Start Charging Session - Time Out")
def test_TC_011_2_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread, tokens: Tokens) -> None:
    station = make_station(config={**AUTHORIZE_REMOTE, "ConnectionTimeOut": "2"})
    booted(station)
    call = operator.command(station, "RemoteStartTransaction", {"connectorId": 1, "idTag": tokens.valid})
    expect_fields(station, call, idTag=tokens.valid)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    station.idle(2.5)  # no cable within ConnectionTimeOut: the connector goes back to Available
    back = sent(station, "StatusNotification")
    assert back["status"] == "Available", f"the station should be Available again, it reported {back}"
    station.call("Heartbeat", {})  # its StatusNotification is answered and the station still served


@case("TC_012_CSMS", "Remote Stop Charging Session")
def test_TC_012_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    call = operator.command(station, "RemoteStopTransaction", {"transactionId": transaction_id})
    expect_fields(station, call, transactionId=transaction_id)
    stop = sent(station, "StopTransaction")
    assert stop["reason"] == "Remote", stop
    station.wait_result("StopTransaction")


@case("TC_026_CSMS", "Remote Start Charging Session - Rejected")
def test_TC_026_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    call = operator.command(
        station, "RemoteStartTransaction", {"connectorId": 1, "idTag": tokens.valid}, {"status": "Rejected"}
    )
    expect_fields(station, call, idTag=tokens.valid)
    station.call("Heartbeat", {})  # the Central System goes on serving the station


@case("TC_028_CSMS", "Remote Stop Transaction - Rejected")
def test_TC_028_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    # the station rejects it (as it would an unknown transactionId): the OCTT checks no field of the request
    call = operator.command(station, "RemoteStopTransaction", {"transactionId": transaction_id}, {"status": "Rejected"})
    assert isinstance(call.payload.get("transactionId"), int), f"RemoteStopTransaction carries {call.payload}"
    station.call("Heartbeat", {})


# ==== reset ====================================================================================================
@case("TC_013_CSMS", "Hard Reset Without transaction")
def test_TC_013_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "Reset", {"type": "Hard"})
    expect_fields(station, call, type="Hard")
    booted(station)


@case("TC_014_CSMS", "Soft Reset Without Transaction")
def test_TC_014_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "Reset", {"type": "Soft"})
    expect_fields(station, call, type="Soft")
    booted(station)


# ==== unlock connector =========================================================================================
@case("TC_017_1_CSMS", "Unlock connector - no charging session running (Not fixed cable)")
def test_TC_017_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"})
    expect_fields(station, call, connectorId=1)


@case("TC_017_2_CSMS", "Unlock connector - no charging session running (Fixed cable)")
def test_TC_017_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "UnlockConnector", {"connectorId": 1}, {"status": "NotSupported"})
    expect_fields(station, call, connectorId=1)


@case("TC_018_1_CSMS", "Unlock connector - with charging session")
def test_TC_018_1_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    call = operator.command(station, "UnlockConnector", {"connectorId": 1})
    expect_fields(station, call, connectorId=1)
    stop = sent(station, "StopTransaction")
    assert stop["transactionId"] == transaction_id and stop["reason"] == "UnlockCommand", stop
    station.wait_result("StopTransaction")


@case("TC_030_CSMS", "Unlock Connector - Unlock Failure")
def test_TC_030_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "UnlockConnector", {"connectorId": 1}, {"status": "UnlockFailed"})
    expect_fields(station, call, connectorId=1)


@case("TC_031_CSMS", "Unlock Connector - Unknown Connector")
def test_TC_031_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    unknown = len(station.charger.connectors) + 1
    call = operator.command(station, "UnlockConnector", {"connectorId": unknown}, {"status": "NotSupported"})
    expect_fields(station, call, connectorId=unknown)


# ==== configuration ============================================================================================
@case("TC_019_1_CSMS", "Retrieve all configuration keys")
def test_TC_019_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "GetConfiguration", {})
    keys = call.payload.get("key")
    assert not keys, f"GetConfiguration names keys {keys}: to retrieve all of them it must name none"


@case("TC_019_2_CSMS", "Retrieve specific configuration key")
def test_TC_019_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    expect_fields(station, call, key=["SupportedFeatureProfiles"])


@case("TC_021_CSMS", "Change/set Configuration")
def test_TC_021_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "60"})
    expect_fields(station, call, key="MeterValueSampleInterval", value="60")
    assert station.charger.config.value("MeterValueSampleInterval") == "60"


@case("TC_040_1_CSMS", "Configuration keys - NotSupported")
def test_TC_040_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    payload = {"key": "ConformanceUnknownKey", "value": "true"}
    call = operator.command(station, "ChangeConfiguration", payload, {"status": "NotSupported"})
    assert call.payload.get("key"), "ChangeConfiguration without a key"
    station.call("Heartbeat", {})


@case("TC_040_2_CSMS", "Configuration keys - Invalid value")
def test_TC_040_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    payload = {"key": "MeterValueSampleInterval", "value": "-1"}
    call = operator.command(station, "ChangeConfiguration", payload, {"status": "Rejected"})
    expect_fields(station, call, key="MeterValueSampleInterval")
    station.call("Heartbeat", {})


# ==== authorization, non-happy =================================================================================
@case("TC_023_1_CSMS", "Start Charging Session - Authorize invalid")
def test_TC_023_1_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    answer = station.call("Authorize", {"idTag": tokens.unknown})
    expect_status(station, answer, "Authorize of an unknown idTag", "Invalid")


@case("TC_023_2_CSMS", "Start Charging Session - Authorize expired")
def test_TC_023_2_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    answer = station.call("Authorize", {"idTag": tokens.expired})
    expect_status(station, answer, "Authorize of an expired idTag", "Expired")


@case("TC_023_3_CSMS", "Start Charging Session - Authorize blocked")
def test_TC_023_3_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    answer = station.call("Authorize", {"idTag": tokens.blocked})
    expect_status(station, answer, "Authorize of a blocked idTag", "Blocked")


@case("TC_024_CSMS", "Start Charging Session - Lock Failure")
def test_TC_024_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    authorized(station, tokens.valid)
    status(station, 1, "Preparing")
    status(station, 1, "Faulted", "ConnectorLockFailure")  # the cable could not be locked
    station.call("Heartbeat", {})  # the Central System goes on serving the station


# ==== power failure, offline ===================================================================================
@case("TC_032_1_CSMS", "Power failure boot charging point - configured to stop transaction(s)")
def test_TC_032_1_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    station.act(lambda now: station.charger.power_loss(now))
    booted(station)  # the Central System must accept the station again
    stop = sent(station, "StopTransaction")
    assert stop["transactionId"] == transaction_id and stop["reason"] == "PowerLoss", stop
    station.wait_result("StopTransaction")


def _offline_start(station: StationUnderTest, id_tag: str) -> None:
    """The link drops, the driver starts a transaction offline, the link comes back (no reboot)."""
    station.auto_reconnect = False
    station.disconnect()
    station.plug_in(1, id_tag)
    station.idle(0.5)
    station.auto_reconnect = True
    station.connect()


@case("TC_037_1_CSMS", "Offline Start Transaction - valid idTag")
def test_TC_037_1_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens) -> None:
    station = make_station(config={"AllowOfflineTxForUnknownId": "true"})
    booted(station)
    _offline_start(station, tokens.valid)
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")


@case("TC_037_3_CSMS", "Offline Start Transaction - invalid idTag - StopTransactionOnInvalidId = true")
def test_TC_037_3_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens) -> None:
    station = make_station(config={"AllowOfflineTxForUnknownId": "true", "StopTransactionOnInvalidId": "true"})
    booted(station)
    _offline_start(station, tokens.unknown)
    started = station.wait_result("StartTransaction")
    expect_status(station, started, "StartTransaction of an unknown idTag", "Invalid")
    assert isinstance(started.get("transactionId"), int), f"StartTransaction answered {started}"
    stop = sent(station, "StopTransaction")
    assert stop["reason"] == "DeAuthorized", stop
    station.wait_result("StopTransaction")


@case("TC_039_CSMS", "Offline Transaction")
def test_TC_039_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens) -> None:
    station = make_station(config={"AllowOfflineTxForUnknownId": "true"})
    booted(station)
    station.auto_reconnect = False
    station.disconnect()
    station.plug_in(1, tokens.valid)
    station.idle(0.5)
    station.present_token(tokens.valid)  # the driver stops offline too
    station.unplug(1)
    station.auto_reconnect = True
    station.connect()
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")
    stop = sent(station, "StopTransaction")
    assert stop["reason"] == "Local", stop
    station.wait_result("StopTransaction")


# ==== cache, data transfer =====================================================================================
@case("TC_061_CSMS", "Clear Authorization Data in Authorization Cache")
def test_TC_061_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "ClearCache", {}, {"status": "Accepted"})
    assert call.payload == {}, f"ClearCache carries {call.payload}: it has no fields"


@case("TC_064_CSMS", "Data Transfer to a Central System")
def test_TC_064_CSMS(station: StationUnderTest) -> None:
    booted(station)
    answer = station.call("DataTransfer", {"vendorId": "org.conformance.unknown", "messageId": "Probe", "data": "x"})
    allowed = ("Rejected", "UnknownMessageId", "UnknownVendorId", "Accepted")
    assert answer.get("status") in allowed, f"DataTransfer answered {answer}"
    if answer["status"] == "Accepted":
        station.log.note(station.elapsed(), "warning: the Central System accepted data of an unknown vendor")
