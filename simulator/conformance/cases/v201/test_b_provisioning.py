"""2.0.1 block B, Provisioning: booting, heartbeats, configuration, reports, reset (CSMS side)."""

from __future__ import annotations

from datetime import UTC, datetime

from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")


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


@case("TC_B_06_CSMS", "Heartbeat")
def test_TC_B_06_CSMS(station: StationUnderTest) -> None:
    station.ready()
    answer = station.call("Heartbeat", {})
    assert answer["currentTime"], "Heartbeat answered without currentTime"


@case("TC_B_20_CSMS", "Reset Charging Station - Without ongoing transaction - OnIdle")
def test_TC_B_20_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    job = operator.request(station, "Reset", {"type": "OnIdle"})
    call = station.wait_call("Reset")
    assert call.payload["type"] == "OnIdle", f"Reset type {call.payload['type']!r}, the operator asked OnIdle"
    job.outcome(station)
    station.boot(timeout=station.target.wait_s)
