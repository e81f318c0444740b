"""1.6 Remote Trigger profile (Central System side): TriggerMessage of each message, and a rejected one."""

from __future__ import annotations

from simulator.conformance.cases.v16._steps import booted, expect_fields
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")


@case("TC_054_CSMS", "Trigger Message", "remote-trigger")
def test_TC_054_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    for message, connector in (
        ("MeterValues", 1),
        ("Heartbeat", None),
        ("StatusNotification", 1),
        ("DiagnosticsStatusNotification", None),
        ("FirmwareStatusNotification", None),
    ):
        payload: dict[str, object] = {"requestedMessage": message}
        if connector is not None:
            payload["connectorId"] = connector
        call = operator.command(station, "TriggerMessage", payload)
        expect_fields(station, call, requestedMessage=message)
        if connector is not None:
            expect_fields(station, call, connectorId=connector)
        station.wait_result(message)  # the triggered message is answered like any other


@case("TC_055_CSMS", "Trigger Message - Rejected", "remote-trigger")
def test_TC_055_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    payload = {"requestedMessage": "MeterValues", "connectorId": 1}
    call = operator.command(station, "TriggerMessage", payload, {"status": "Rejected"})
    expect_fields(station, call, requestedMessage="MeterValues")
    station.call("Heartbeat", {})  # the Central System goes on serving the station
