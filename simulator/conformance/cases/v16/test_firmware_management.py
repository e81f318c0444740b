"""1.6 Firmware Management profile (Central System side): UpdateFirmware with the firmware's status reports, and
GetDiagnostics with the upload's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulator.conformance.cases.v16._steps import booted, expect_fields, status
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")

FIRMWARE_URL = "https://firmware.example.com/chargetwin/conformance-1.0.1.bin"
DIAGNOSTICS_URL = "ftp://diagnostics.example.com/uploads/"
STATION_BOOT = {"chargePointVendor": "chargetwin", "chargePointModel": "conformance", "firmwareVersion": "1.0.1"}


def _update_firmware(station: StationUnderTest, operator: OperatorThread) -> None:
    """The operator asks for a firmware update; the request must name the location and a retrieve date."""
    retrieve = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    call = operator.command(station, "UpdateFirmware", {"location": FIRMWARE_URL, "retrieveDate": retrieve}, {})
    expect_fields(station, call, location=FIRMWARE_URL)
    assert call.payload.get("retrieveDate"), "UpdateFirmware without retrieveDate"


def _firmware_status(station: StationUnderTest, state: str) -> None:
    answer = station.call("FirmwareStatusNotification", {"status": state})
    assert answer == {}, f"FirmwareStatusNotification answered {answer}: the answer has no fields"


def _all_statuses(station: StationUnderTest, state: str) -> None:
    for connector in range(len(station.charger.connectors) + 1):
        status(station, connector, state)


@case("TC_044_1_CSMS", "Firmware Update - Download and Install", "firmware-management")
def test_TC_044_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    _update_firmware(station, operator)
    _firmware_status(station, "Downloading")
    _firmware_status(station, "Downloaded")
    _all_statuses(station, "Unavailable")
    _firmware_status(station, "Installing")
    answer = station.call("BootNotification", STATION_BOOT)  # the station restarts on its new firmware
    assert answer.get("status") == "Accepted", f"BootNotification after the update answered {answer}"
    _all_statuses(station, "Available")
    _firmware_status(station, "Installed")


@case("TC_044_2_CSMS", "Firmware Update - Download Failed", "firmware-management")
def test_TC_044_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    _update_firmware(station, operator)
    _firmware_status(station, "Downloading")
    _firmware_status(station, "DownloadFailed")
    station.call("Heartbeat", {})


@case("TC_044_3_CSMS", "Firmware Update - Installation Failed", "firmware-management")
def test_TC_044_3_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    _update_firmware(station, operator)
    _firmware_status(station, "Downloading")
    _firmware_status(station, "Downloaded")
    _firmware_status(station, "Installing")
    _firmware_status(station, "InstallationFailed")
    station.call("Heartbeat", {})


@case("TC_045_1_CSMS", "Get Diagnostics", "firmware-management")
def test_TC_045_1_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "GetDiagnostics", {"location": DIAGNOSTICS_URL}, {"fileName": "diag.log"})
    expect_fields(station, call, location=DIAGNOSTICS_URL)
    for state in ("Uploading", "Uploaded"):
        answer = station.call("DiagnosticsStatusNotification", {"status": state})
        assert answer == {}, f"DiagnosticsStatusNotification answered {answer}: the answer has no fields"


@case("TC_045_2_CSMS", "Get Diagnostics - Upload Failed", "firmware-management")
def test_TC_045_2_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    call = operator.command(station, "GetDiagnostics", {"location": DIAGNOSTICS_URL}, {"fileName": "diag.log"})
    expect_fields(station, call, location=DIAGNOSTICS_URL)
    for state in ("Uploading", "UploadFailed"):
        answer = station.call("DiagnosticsStatusNotification", {"status": state})
        assert answer == {}, f"DiagnosticsStatusNotification answered {answer}: the answer has no fields"
    station.call("Heartbeat", {})  # the station goes on with normal operation
