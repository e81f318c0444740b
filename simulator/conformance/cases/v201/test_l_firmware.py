"""2.0.1 block L, Firmware Management: secure firmware updates (with their failures, cancellation and a running
transaction) and publishing firmware on a Local Controller (CSMS side).

The CSMS sends the update the operator configured, signed (L01: signingCertificate and signature), and answers
every FirmwareStatusNotification, SecurityEventNotification and the BootNotification after the new firmware's
reboot (reason FirmwareUpdate) — Accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.conformance.cases.v201._csms_commands import ROOT_PEM, in_transaction, iso, parse_time
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

FIRMWARE_URL = "https://firmware.example.com/chargetwin-2.0.0.bin"
SIGNATURE = "MEUCIQDm2Ilx0Ct6pQmwR7Q5T0kYkaQkWv0x3c3mH4l0n0qYvQIgJm1k9Zc4w0r2n7X3bq8yXK1z2a0o6Q5b1c2d3e4f5g6="
MD5 = "9e107d9d372bb6826bd81d3542a419d6"
INSTALLED = ("Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting")


def update(
    station: StationUnderTest, operator: OperatorThread, request_id: int, reply: str = "Accepted", **firmware: Any
) -> dict[str, Any]:
    """The CSMS asks for a signed firmware update; the station answers ``reply``. Returns the request, checked."""
    configured = {
        "location": FIRMWARE_URL,
        "retrieveDateTime": iso(),
        "signingCertificate": ROOT_PEM,
        "signature": SIGNATURE,
        **firmware,
    }
    payload = {"requestId": request_id, "retries": 1, "firmware": configured}
    request = operator.command(station, "UpdateFirmware", payload, {"status": reply}).payload
    got = request["firmware"]
    assert got["location"] == FIRMWARE_URL, f"firmware.location {got['location']!r}, the case set {FIRMWARE_URL!r}"
    for key in ("signingCertificate", "signature"):
        assert got.get(key), f"firmware.{key} omitted: a secure firmware update is signed (L01.FR.01)"
    for key in ("retrieveDateTime", "installDateTime"):
        if key in firmware:
            assert key in got, f"firmware.{key} omitted, the case configured {firmware[key]}"
            assert abs((parse_time(got[key]) - parse_time(firmware[key])).total_seconds()) < 1, (
                f"firmware.{key} {got[key]}, the case configured {firmware[key]}"
            )
    return request


def progress(station: StationUnderTest, request_id: int, *statuses: str) -> None:
    for status in statuses:
        station.call("FirmwareStatusNotification", {"status": status, "requestId": request_id})


def reboot_into_new_firmware(station: StationUnderTest) -> None:
    """The station reboots into the new firmware: BootNotification (reason FirmwareUpdate) must be Accepted."""
    station.act(lambda now: station.charger.power_loss(now, 0.2))
    station.charger.boot_reason = "FirmwareUpdate"
    sent = station.wait_sent("BootNotification", station.target.wait_s)
    assert sent["reason"] == "FirmwareUpdate", f"the station booted with reason {sent['reason']!r}"
    station.boot()
    for _ in station.charger.connectors:
        station.wait_result("StatusNotification")
    connector_available(station, 1)


def connector_available(station: StationUnderTest, evse: int, value: str = "Available") -> None:
    """The device model's view of a connector's availability (NotifyEvent, trigger Delta)."""
    event = {
        "eventId": 1,
        "timestamp": iso(),
        "trigger": "Delta",
        "actualValue": value,
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": evse, "connectorId": 1}},
        "variable": {"name": "AvailabilityState"},
    }
    station.call("NotifyEvent", {"generatedAt": iso(), "seqNo": 0, "eventData": [event]})


def security_event(station: StationUnderTest, kind: str) -> None:
    station.call("SecurityEventNotification", {"type": kind, "timestamp": iso(), "techInfo": FIRMWARE_URL})


# ==== L01 Secure firmware update ================================================================================
@case("TC_L_01_CSMS", "Secure Firmware Update - Installation successful", "core")
def test_TC_L_01_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = update(station, operator, 1)["requestId"]
    progress(station, request_id, *INSTALLED)
    reboot_into_new_firmware(station)
    progress(station, request_id, "Installed")


@case("TC_L_02_CSMS", "Secure Firmware Update - InstallScheduled", "core")
def test_TC_L_02_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    install_at = iso(2)
    request_id = update(station, operator, 2, installDateTime=install_at)["requestId"]
    progress(station, request_id, "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")
    station.idle(max(0.0, (parse_time(install_at) - parse_time(iso())).total_seconds()))
    progress(station, request_id, "Installing", "InstallRebooting")
    reboot_into_new_firmware(station)
    progress(station, request_id, "Installed")


@case("TC_L_03_CSMS", "Secure Firmware Update - DownloadScheduled", "core")
def test_TC_L_03_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    retrieve_at = iso(2)
    request_id = update(station, operator, 3, retrieveDateTime=retrieve_at)["requestId"]
    progress(station, request_id, "DownloadScheduled")
    station.idle(max(0.0, (parse_time(retrieve_at) - parse_time(iso())).total_seconds()))
    progress(station, request_id, *INSTALLED)
    reboot_into_new_firmware(station)
    progress(station, request_id, "Installed")


@case("TC_L_04_CSMS", "Secure Firmware Update - RevokedCertificate", "core")
def test_TC_L_04_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    update(station, operator, 4, "RevokedCertificate")
    station.expect_no_call(1, "UpdateFirmware")


@case("TC_L_05_CSMS", "Secure Firmware Update - InvalidCertificate", "core")
def test_TC_L_05_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    update(station, operator, 5, "InvalidCertificate")
    security_event(station, "InvalidFirmwareSigningCertificate")


@case("TC_L_06_CSMS", "Secure Firmware Update - InvalidSignature", "core")
def test_TC_L_06_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = update(station, operator, 6)["requestId"]
    progress(station, request_id, "Downloading", "Downloaded", "InvalidSignature")
    security_event(station, "InvalidFirmwareSignature")


@case("TC_L_07_CSMS", "Secure Firmware Update - DownloadFailed", "core")
def test_TC_L_07_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = update(station, operator, 7)["requestId"]
    progress(station, request_id, "Downloading", "DownloadFailed")


@case("TC_L_08_CSMS", "Secure Firmware Update - InstallVerificationFailed", "core")
def test_TC_L_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = update(station, operator, 8)["requestId"]
    progress(station, request_id, "Downloading", "Downloaded", "SignatureVerified", "InstallVerificationFailed")


@case("TC_L_09_CSMS", "Secure Firmware Update - InstallationFailed", "core")
def test_TC_L_09_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = update(station, operator, 9)["requestId"]
    progress(station, request_id, *INSTALLED)
    reboot_into_new_firmware(station)
    progress(station, request_id, "InstallationFailed")


def _second_update(station: StationUnderTest, operator: OperatorThread, reply: str) -> tuple[int, int]:
    first = update(station, operator, 101)["requestId"]
    progress(station, first, "Downloading")
    second = update(station, operator, 102, reply)["requestId"]
    assert second != first, f"the second UpdateFirmware reuses requestId {first}: each request has its own id"
    return first, second


@case("TC_L_10_CSMS", "Secure Firmware Update - AcceptedCanceled", "core")
def test_TC_L_10_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _, second = _second_update(station, operator, "AcceptedCanceled")
    progress(station, second, *INSTALLED)
    reboot_into_new_firmware(station)
    progress(station, second, "Installed")


@case("TC_L_11_CSMS", "Secure Firmware Update - Unable to cancel", "core")
def test_TC_L_11_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    first, _ = _second_update(station, operator, "Rejected")
    progress(station, first, *INSTALLED[1:])
    reboot_into_new_firmware(station)
    progress(station, first, "Installed")


@case(
    "TC_L_13_CSMS",
    "Secure Firmware Update - Unable to download/install firmware with ongoing transaction - "
    "AllowNewSessionsPendingFirmwareUpdate is false",
    "core",
)
def test_TC_L_13_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread, tokens: Tokens) -> None:
    station = make_station(connectors=2)
    in_transaction(station, tokens.valid)
    request_id = update(station, operator, 13)["requestId"]
    progress(station, request_id, "DownloadScheduled")
    unavailable = {"timestamp": iso(), "connectorStatus": "Unavailable", "evseId": 2, "connectorId": 1}
    station.call("StatusNotification", unavailable)
    connector_available(station, 2, "Unavailable")
    station.unplug(1)
    station.wait_result("TransactionEvent")
    station.call("StatusNotification", {**unavailable, "evseId": 1, "timestamp": iso()})
    connector_available(station, 1, "Unavailable")
    progress(station, request_id, *INSTALLED)
    reboot_into_new_firmware(station)
    progress(station, request_id, "Installed")


# ==== L03/L04 Publish and unpublish firmware on a Local Controller ==============================================
def publish(station: StationUnderTest, operator: OperatorThread, request_id: int) -> int:
    payload = {"location": FIRMWARE_URL, "checksum": MD5, "requestId": request_id}
    request = operator.command(station, "PublishFirmware", payload, {"status": "Accepted"}).payload
    assert request["location"] == FIRMWARE_URL, f"location {request['location']!r}, the case set {FIRMWARE_URL!r}"
    assert request["checksum"] == MD5, f"checksum {request['checksum']!r}: the MD5 of the firmware the case set"
    return int(request["requestId"])


def published(station: StationUnderTest, request_id: int, *statuses: str) -> None:
    for status in statuses:
        notice: dict[str, Any] = {"status": status, "requestId": request_id}
        if status == "Published":
            notice["location"] = ["http://192.168.1.10/firmware/chargetwin-2.0.0.bin"]
        station.call("PublishFirmwareStatusNotification", notice)


@case("TC_L_17_CSMS", "Publish Firmware - Published", "core")
def test_TC_L_17_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = publish(station, operator, 17)
    published(station, request_id, "Downloading", "Downloaded", "ChecksumVerified", "Published")


@case("TC_L_19_CSMS", "Publish Firmware - Invalid Checksum", "core")
def test_TC_L_19_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = publish(station, operator, 19)
    published(station, request_id, "Downloading", "Downloaded", "InvalidChecksum")


@case("TC_L_20_CSMS", "Publish Firmware - PublishFailed", "core")
def test_TC_L_20_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = publish(station, operator, 20)
    published(station, request_id, "Downloading", "Downloaded", "ChecksumVerified", "PublishFailed")


@case("TC_L_24_CSMS", "Publish Firmware - Download failed", "core")
def test_TC_L_24_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    request_id = publish(station, operator, 24)
    published(station, request_id, "Downloading", "DownloadFailed")


def unpublish(station: StationUnderTest, operator: OperatorThread, reply: str) -> None:
    request = operator.command(station, "UnpublishFirmware", {"checksum": MD5}, {"status": reply}).payload
    assert request["checksum"] == MD5, f"checksum {request['checksum']!r}: the MD5 of the published firmware"


@case("TC_L_21_CSMS", "Unpublish Firmware - Unpublished", "core")
def test_TC_L_21_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    unpublish(station, operator, "Unpublished")


@case("TC_L_22_CSMS", "Unpublish Firmware - NoFirmware", "core")
def test_TC_L_22_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    unpublish(station, operator, "NoFirmware")


@case("TC_L_23_CSMS", "Unpublish Firmware - Download Ongoing", "core")
def test_TC_L_23_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    unpublish(station, operator, "DownloadOngoing")
