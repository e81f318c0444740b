"""2.0.1 block E, Transactions: start and stop options, seqNo, offline events and GetTransactionStatus (CSMS side).

The station plays the OCTT's scripted TransactionEvents (:mod:`.octt_states`): every start and stop option the
spec allows, whatever the firmware's own start point. The CSMS must answer each one, give an idTokenInfo for
every event that carries an idToken (Accepted for a valid token, not valid for an invalid one), accept a new
transaction starting again at seqNo 0, events sent late with ``offline`` and seqNo gaps, and send
GetTransactionStatus with or without the transaction's id when its operator asks.
"""

from __future__ import annotations

from simulator.conformance.cases.v201.octt_states import (
    NOT_VALID,
    ScriptedTransaction,
    authorize,
    connector_status,
    expect_token_status,
    meter_value,
    reconnect,
    sampled,
)
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

#: How long the station stays away in the offline cases (the OCTT's <Configured Transaction Duration>).
OFFLINE_S = 1.0


def started(station: StationUnderTest, tokens: Tokens) -> ScriptedTransaction:
    """A booted station with a transaction charging on EVSE 1 (Authorized, then EnergyTransferStarted)."""
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    return tx


# ==== start options (E01, E02, E03) =========================================================================
@case("TC_E_01_CSMS", "Start transaction options - PowerPathClosed")
def test_TC_E_01_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    authorize(station, tokens.valid)
    connector_status(station, "Occupied")
    answer = tx.event("Started", "ChargingStateChanged", state="SuspendedEVSE", with_token=True)
    expect_token_status(station, answer, "TransactionEventResponse (Started on PowerPathClosed)", "Accepted")
    tx.event("Updated", "ChargingStateChanged", state="Charging")


@case("TC_E_02_CSMS", "Start transaction options - EnergyTransfer")
def test_TC_E_02_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    authorize(station, tokens.valid)
    connector_status(station, "Occupied")
    answer = tx.event("Started", "ChargingStateChanged", state="Charging", with_token=True)
    expect_token_status(station, answer, "TransactionEventResponse (Started on EnergyTransfer)", "Accepted")


@case("TC_E_03_CSMS", "Local start transaction - Cable plugin first - Success")
def test_TC_E_03_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.ev_connected_pre_session()
    tx.authorized()  # an Updated event: the transaction started on the cable
    tx.energy_transfer_started()


@case("TC_E_04_CSMS", "Local start transaction - Authorization first - Success")
def test_TC_E_04_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.authorized()
    tx.energy_transfer_started()


@case("TC_E_09_CSMS", "Start transaction options - EVConnected")
def test_TC_E_09_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    connector_status(station, "Occupied")
    answer = tx.event("Started", "CablePluggedIn", state="EVConnected")
    _no_refusal(station, answer, "a transaction started on the cable, before any idToken")


@case("TC_E_10_CSMS", "Start transaction options - Authorized - Local")
def test_TC_E_10_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    ScriptedTransaction(station, tokens.valid).authorized(started=True)


@case("TC_E_11_CSMS", "Start transaction options - DataSigned")
def test_TC_E_11_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    authorize(station, tokens.valid)
    connector_status(station, "Occupied")
    signed = [meter_value([sampled(0.0, "Transaction.Begin", signed=True)])]
    answer = tx.event("Started", "SignedDataReceived", with_token=True, meter=signed)
    expect_token_status(station, answer, "TransactionEventResponse (Started on signed data)", "Accepted")


@case("TC_E_12_CSMS", "Start transaction options - ParkingBayOccupied")
def test_TC_E_12_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    answer = ScriptedTransaction(station, tokens.valid).event("Started", "EVDetected")
    _no_refusal(station, answer, "a transaction started by the parking bay detector, before any idToken")


@case("TC_E_38_CSMS", "Local start transaction - EV not ready")
def test_TC_E_38_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.authorized()
    tx.ev_connected_pre_session()
    tx.event("Updated", "ChargingStateChanged", state="SuspendedEV")


# ==== stop options (E06, E10) ===============================================================================
@case("TC_E_07_CSMS", "Stop transaction options - PowerPathClosed - Local stop")
def test_TC_E_07_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.event("Ended", "StopAuthorized", stopped="Local")


@case("TC_E_08_CSMS", "Stop transaction options - EnergyTransfer stopped - StopAuthorized")
def test_TC_E_08_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.stop_authorized()
    tx.event("Ended", "ChargingStateChanged", state="EVConnected", stopped="Local")


@case("TC_E_14_CSMS", "Stop transaction options - EVDisconnected - Charging Station side")
def test_TC_E_14_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.stop_authorized()
    tx.ev_connected_post_session()
    tx.ev_disconnected()


@case("TC_E_15_CSMS", "Stop transaction options - StopAuthorized - Local")
def test_TC_E_15_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    authorize(station, tokens.valid)
    answer = tx.event("Ended", "StopAuthorized", state="EVConnected", stopped="Local", with_token=True)
    expect_token_status(station, answer, "TransactionEventResponse (Ended, StopAuthorized)", "Accepted")


@case("TC_E_16_CSMS", "Stop transaction options - Deauthorized - Invalid idToken")
def test_TC_E_16_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.unknown)
    answer = tx.event("Started", "Authorized", with_token=True)
    expect_token_status(
        station, answer, f"TransactionEventResponse for the invalid idToken {tokens.unknown}", *NOT_VALID
    )
    tx.event("Ended", "Deauthorized", stopped="DeAuthorized")


@case("TC_E_17_CSMS", "Stop transaction options - Deauthorized - EV side disconnect")
def test_TC_E_17_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.energy_transfer_suspended()
    tx.event("Ended", "EVCommunicationLost", state="Idle", stopped="EVDisconnected")


@case("TC_E_19_CSMS", "Stop transaction options - ParkingBayUnoccupied")
def test_TC_E_19_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.stop_authorized()
    tx.ev_connected_post_session()
    tx.ev_disconnected(ended=False)  # the stop point is the parking bay: the cable alone does not end it
    tx.event("Ended", "EVDeparted", stopped="Local")


@case("TC_E_20_CSMS", "Stop transaction options - EVDisconnected - EV side (able to charge IEC 61851-1 EV)")
def test_TC_E_20_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.energy_transfer_suspended()
    tx.ev_disconnected()


@case("TC_E_21_CSMS", "Stop transaction options - StopAuthorized - Remote")
def test_TC_E_21_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    tx = started(station, tokens)
    station.answer("RequestStopTransaction", {"status": "Accepted"})
    job = operator.request(station, "RequestStopTransaction", {"transactionId": tx.transaction_id})
    call = station.wait_call("RequestStopTransaction")
    if call.payload["transactionId"] != tx.transaction_id:
        station.fail(
            f"RequestStopTransaction for transactionId {call.payload['transactionId']!r}, the running transaction "
            f"is {tx.transaction_id!r} (F03.FR.01)"
        )
    job.outcome(station)
    tx.event("Ended", "RemoteStop", state="EVConnected", stopped="Remote")


@case("TC_E_22_CSMS", "Stop transaction options - EnergyTransfer stopped - SuspendedEV")
def test_TC_E_22_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.event("Ended", "ChargingStateChanged", state="SuspendedEV", stopped="StoppedByEV")


@case("TC_E_26_CSMS", "Disconnect cable on EV-side - Suspend transaction")
def test_TC_E_26_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = started(station, tokens)
    tx.energy_transfer_suspended()
    tx.event("Updated", "EVCommunicationLost", state="Idle")
    connector_status(station, "Available")
    connector_status(station, "Occupied")
    tx.event("Updated", "CablePluggedIn", state="EVConnected")
    tx.event("Updated", "ChargingStateChanged", state="Charging")


@case("TC_E_39_CSMS", "Stop transaction options - Deauthorized - timeout")
def test_TC_E_39_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.authorized()
    station.idle(1.0)  # the EV connection timeout runs out
    tx.event("Ended", "EVConnectTimeout", stopped="Timeout")


# ==== sequence numbers (E01.FR.07) ==========================================================================
@case("TC_E_53_CSMS", "Reset Sequence Number - CSMS accepting seqNo = 0 at start of transaction")
def test_TC_E_53_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    for _ in range(2):
        tx = ScriptedTransaction(station, tokens.valid)  # a new transaction id, seqNo back at 0
        tx.charging()
        tx.stop_authorized()
        tx.ev_connected_post_session()
        tx.ev_disconnected()


# ==== transaction status (E14) and offline events ===========================================================
def _transaction_status(
    station: StationUnderTest, operator: OperatorThread, transaction_id: str | None, answer: dict[str, bool]
) -> None:
    """The operator asks the CSMS for GetTransactionStatus (of ``transaction_id``, or of none); the station
    answers ``answer``; the request must name exactly that transaction (or none)."""
    station.answer("GetTransactionStatus", answer)
    job = operator.request(
        station, "GetTransactionStatus", {} if transaction_id is None else {"transactionId": transaction_id}
    )
    call = station.wait_call("GetTransactionStatus")
    named = call.payload.get("transactionId")
    if named != transaction_id:
        wanted = "no transactionId" if transaction_id is None else f"transactionId {transaction_id!r}"
        station.fail(f"GetTransactionStatus with transactionId {named!r}, the case expects {wanted}")
    job.outcome(station)


@case("TC_E_29_CSMS", "Check Transaction status - Transaction with id ongoing - with message in queue")
def test_TC_E_29_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    tx = started(station, tokens)
    reconnect(station, OFFLINE_S)
    _transaction_status(station, operator, tx.transaction_id, {"ongoingIndicator": True, "messagesInQueue": True})
    tx.event("Updated", "MeterValuePeriodic", meter=tx.register("Sample.Periodic", add_wh=120.0), offline=True)


@case("TC_E_30_CSMS", "Check Transaction status - Transaction with id ongoing - without message in queue")
def test_TC_E_30_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    tx = started(station, tokens)
    _transaction_status(station, operator, tx.transaction_id, {"ongoingIndicator": True, "messagesInQueue": False})


@case("TC_E_31_CSMS", "Check Transaction status - Transaction with id ended - with message in queue")
def test_TC_E_31_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    tx = started(station, tokens)
    reconnect(station, OFFLINE_S)
    skipped = tx.seq_no
    tx.seq_no += 2  # the StopAuthorized and EVConnected events are still queued: the Ended one overtakes them
    tx.event("Ended", "EVCommunicationLost", state="Idle", stopped="EVDisconnected", offline=True)
    _transaction_status(station, operator, tx.transaction_id, {"ongoingIndicator": False, "messagesInQueue": True})
    tx.seq_no = skipped
    answer = tx.event("Updated", "StopAuthorized", state="EVConnected", with_token=True, offline=True)
    expect_token_status(station, answer, "TransactionEventResponse (queued StopAuthorized)", "Accepted")
    tx.event("Updated", "ChargingStateChanged", state="EVConnected", offline=True)


@case("TC_E_33_CSMS", "Check Transaction status - Without transactionId - with message in queue")
def test_TC_E_33_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    tx = started(station, tokens)
    reconnect(station, OFFLINE_S)
    _transaction_status(station, operator, None, {"messagesInQueue": True})
    tx.event("Updated", "MeterValuePeriodic", meter=tx.register("Sample.Periodic", add_wh=120.0), offline=True)


@case("TC_E_34_CSMS", "Check Transaction status - Without transactionId - without message in queue")
def test_TC_E_34_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _transaction_status(station, operator, None, {"messagesInQueue": False})


def _no_refusal(station: StationUnderTest, answer: dict[str, object], what: str) -> None:
    """An event without an idToken needs no idTokenInfo; one that refuses would deauthorize the transaction."""
    info = answer.get("idTokenInfo")
    if isinstance(info, dict) and info.get("status") not in (None, "Accepted"):
        station.fail(f"{what}: the CSMS answered idTokenInfo {info}, refusing a transaction that carries no idToken")
