"""2.0.1 block P, Data Transfer: vendor data the CSMS does not know, and customData in any message (CSMS side)."""

from __future__ import annotations

from simulator.conformance.cases.v201._csms_commands import iso
from simulator.conformance.catalogue import case_marker
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

#: A vendor no CSMS implements: the OCTT's own.
UNKNOWN_VENDOR = "org.openchargealliance.octt.unknown"
CUSTOM = {"vendorId": UNKNOWN_VENDOR, "note": "conformance custom data"}


@case("TC_P_02_CSMS", "Data Transfer to the CSMS - Rejected / Unknown VendorId / Unknown MessageId", "core")
def test_TC_P_02_CSMS(station: StationUnderTest) -> None:
    station.ready()
    answer = station.call("DataTransfer", {"vendorId": UNKNOWN_VENDOR, "messageId": "TestMessage", "data": "ping"})
    assert answer["status"] in ("Rejected", "UnknownVendorId", "UnknownMessageId"), (
        f"DataTransfer of an unknown vendor answered {answer['status']!r}: Rejected, UnknownVendorId or "
        "UnknownMessageId (P02.FR.06/FR.07)"
    )


@case("TC_P_03_CSMS", "Data Transfer - Receive custom data", "core")
def test_TC_P_03_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    station.call(
        "StatusNotification",
        {"timestamp": iso(), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1, "customData": CUSTOM},
    )
    tx = "CT-P03-CUSTOM-DATA"
    started = station.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": iso(),
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": tx, "chargingState": "EVConnected", "customData": CUSTOM},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": tokens.valid, "type": "ISO14443"},
            "customData": CUSTOM,
        },
    )
    status = started.get("idTokenInfo", {}).get("status")
    assert status == "Accepted", f"the token of a TransactionEvent with customData answered {status!r}, not Accepted"
    station.call(
        "TransactionEvent",
        {
            "eventType": "Ended",
            "timestamp": iso(),
            "triggerReason": "EVCommunicationLost",
            "seqNo": 1,
            "transactionInfo": {"transactionId": tx, "stoppedReason": "EVDisconnected", "customData": CUSTOM},
            "customData": CUSTOM,
        },
    )
