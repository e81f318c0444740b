"""Steps the 1.6 cases share: the OCTT's reusable states (Authorized, Charging), a command the operator makes the
Central System send, and the checks on what the Central System answered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from csms.ocpp import framing
from csms.ocpp.framing import Call
from simulator.conformance.station import StationUnderTest


def now_text() -> str:
    """The station's clock as a 1.6 dateTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def status_of(station: StationUnderTest, answer: dict[str, Any], what: str) -> str:
    """``idTagInfo.status`` of an Authorize/StartTransaction/StopTransaction answer (fails if it is missing)."""
    info = answer.get("idTagInfo")
    if not isinstance(info, dict) or "status" not in info:
        station.fail(f"{what} answered without idTagInfo.status: {answer}")
        return ""
    return str(info["status"])


def expect_status(station: StationUnderTest, answer: dict[str, Any], what: str, *allowed: str) -> None:
    status = status_of(station, answer, what)
    if status not in allowed:
        must = " or ".join(allowed)
        station.fail(f"{what} answered idTagInfo.status {status!r}, the Central System must answer {must}")


def booted(station: StationUnderTest) -> dict[str, Any]:
    """Reusable state Booted: BootNotification Accepted, then a StatusNotification of connector 0 and of every
    connector answered. Returns the BootNotification answer."""
    answer = station.boot()
    for _ in range(len(station.charger.connectors) + 1):
        station.wait_result("StatusNotification")
    return answer


def authorized(station: StationUnderTest, id_tag: str) -> None:
    """Reusable state Authorized: an Authorize of a valid idTag is Accepted."""
    answer = station.call("Authorize", {"idTag": id_tag})
    expect_status(station, answer, "Authorize", "Accepted")


def status(station: StationUnderTest, connector: int, state: str, error_code: str = "NoError") -> None:
    """The station reports a connector's status (a bare StatusNotification, as the OCTT sends it)."""
    payload = {"connectorId": connector, "errorCode": error_code, "status": state, "timestamp": now_text()}
    station.call("StatusNotification", payload)


def charging(station: StationUnderTest, id_tag: str, connector: int = 1) -> int:
    """Reusable state Charging, by the firmware: the driver presents ``id_tag`` and plugs in; Authorize and
    StartTransaction must be Accepted. Returns the transaction id the Central System gave."""
    station.plug_in(connector, id_tag)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    started = station.wait_result("StartTransaction")
    expect_status(station, started, "StartTransaction", "Accepted")
    transaction_id = started.get("transactionId")
    if not isinstance(transaction_id, int):
        station.fail(f"StartTransaction answered without an integer transactionId: {started}")
    assert isinstance(transaction_id, int)
    return transaction_id


def sent(station: StationUnderTest, action: str, timeout: float | None = None) -> dict[str, Any]:
    """The payload of the station's latest CALL of ``action``, waiting for one if it has not gone out yet (unlike
    :meth:`StationUnderTest.wait_sent`, which waits for the next one)."""

    def latest() -> dict[str, Any] | None:
        for frame in reversed(station.log.frames):
            if frame.outgoing:
                message = framing.decode(frame.text)
                if isinstance(message, Call) and message.action == action:
                    return message.payload
        return None

    return station.run_until(latest, f"waiting for the station to send {action}", timeout)


def expect_fields(station: StationUnderTest, call: Call, **fields: Any) -> None:
    """The CALL's payload carries these values (the OCTT's validation of the Central System's request)."""
    for name, value in fields.items():
        if call.payload.get(name) != value:
            station.fail(f"{call.action}.{name} is {call.payload.get(name)!r}, the case expects {value!r}")
