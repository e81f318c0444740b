"""1.6 Reservation profile (Central System side): ReserveNow of a connector or of the charge point, the station's
refusals, expiry, a reserved transaction and CancelReservation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from csms.ocpp.framing import Call
from simulator.conformance.cases.v16._steps import (
    authorized,
    booted,
    expect_fields,
    expect_status,
    now_text,
    status,
)
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")

RESERVATION_ID = 4711


def _reserve(
    station: StationUnderTest,
    operator: OperatorThread,
    tokens: Tokens,
    *,
    connector: int = 1,
    answer: str = "Accepted",
    seconds: int = 600,
) -> Call:
    """The operator reserves ``connector`` for the valid idTag; the request must name both, and a reservationId
    the Central System chose (the operator does not give one, as an operator at a console would not)."""
    expiry = (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {"connectorId": connector, "expiryDate": expiry, "idTag": tokens.valid}
    call = operator.command(station, "ReserveNow", payload, {"status": answer})
    expect_fields(station, call, connectorId=connector, idTag=tokens.valid)
    assert isinstance(call.payload.get("reservationId"), int), f"ReserveNow without a reservationId: {call.payload}"
    expiry_sent = datetime.fromisoformat(str(call.payload["expiryDate"]).replace("Z", "+00:00"))
    assert expiry_sent > datetime.now(UTC), f"ReserveNow expiryDate {call.payload['expiryDate']} is already past"
    return call


def _start(station: StationUnderTest, id_tag: str, reservation_id: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"connectorId": 1, "idTag": id_tag, "meterStart": 0, "timestamp": now_text()}
    if reservation_id is not None:
        body["reservationId"] = reservation_id
    return station.call("StartTransaction", body)


@case("TC_046_CSMS", "Reservation of a Connector - Transaction", "reservation")
def test_TC_046_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    call = _reserve(station, operator, tokens)
    status(station, 1, "Reserved")
    authorized(station, tokens.valid)
    status(station, 1, "Preparing")
    started = _start(station, tokens.valid, call.payload["reservationId"])
    expect_status(station, started, "StartTransaction on the reservation", "Accepted")
    status(station, 1, "Charging")


@case("TC_047_CSMS", "Reservation of a Connector - Expire", "reservation")
def test_TC_047_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    _reserve(station, operator, tokens, seconds=2)
    status(station, 1, "Reserved")
    station.idle(2)  # the reservation expires
    status(station, 1, "Available")
    station.call("Heartbeat", {})


def _refused(station: StationUnderTest, operator: OperatorThread, tokens: Tokens, answer: str) -> None:
    _reserve(station, operator, tokens, answer=answer)
    station.call("Heartbeat", {})  # the Central System goes on serving the station


@case("TC_048_1_CSMS", "Reservation of a Connector - Faulted", "reservation")
def test_TC_048_1_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    status(station, 1, "Faulted", "GroundFailure")
    _refused(station, operator, tokens, "Faulted")


@case("TC_048_2_CSMS", "Reservation of a Connector - Occupied", "reservation")
def test_TC_048_2_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    status(station, 1, "Preparing")
    _refused(station, operator, tokens, "Occupied")


@case("TC_048_3_CSMS", "Reservation of a Connector - Unavailable", "reservation")
def test_TC_048_3_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    status(station, 1, "Unavailable")
    _refused(station, operator, tokens, "Unavailable")


@case("TC_048_4_CSMS", "Reservation of a Connector - Rejected", "reservation")
def test_TC_048_4_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    _refused(station, operator, tokens, "Rejected")


@case("TC_049_CSMS", "Reservation of a Charge Point - Transaction", "reservation")
def test_TC_049_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    call = _reserve(station, operator, tokens, connector=0)
    status(station, 1, "Reserved")
    authorized(station, tokens.valid)
    status(station, 1, "Preparing")
    started = _start(station, tokens.valid, call.payload["reservationId"])
    expect_status(station, started, "StartTransaction on the charge point's reservation", "Accepted")


@case("TC_051_CSMS", "Cancel Reservation", "reservation")
def test_TC_051_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    reserved = _reserve(station, operator, tokens)
    status(station, 1, "Reserved")
    reservation_id = reserved.payload["reservationId"]
    call = operator.command(station, "CancelReservation", {"reservationId": reservation_id}, {"status": "Accepted"})
    expect_fields(station, call, reservationId=reservation_id)
    status(station, 1, "Available")


@case("TC_052_CSMS", "Cancel Reservation - Rejected", "reservation")
def test_TC_052_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "CancelReservation", {"reservationId": RESERVATION_ID}, {"status": "Rejected"})
    assert isinstance(call.payload.get("reservationId"), int), f"CancelReservation carries {call.payload}"
    station.call("Heartbeat", {})
