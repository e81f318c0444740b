"""The calls the CSMS sends: each version's payload is valid against that version's schema."""

from __future__ import annotations

import pytest

from csms.ocpp import commands, schemas
from csms.ocpp.outgoing import ChargingProfile, SchedulePeriod
from csms.ocpp.versions import OCPP16, OCPP201

AT = "2027-01-15T08:00:00Z"
CALLS = {
    "remote_start": lambda v: commands.remote_start(v, "TAG1", 2, remote_start_id=7),
    "remote_start_anywhere": lambda v: commands.remote_start(v, "TAG1", None, remote_start_id=7),
    "remote_stop": lambda v: commands.remote_stop(v, 12, "c-12"),
    "soft_reset": lambda v: commands.reset(v, "soft"),
    "hard_reset": lambda v: commands.reset(v, "hard"),
    "diagnostics": lambda v: commands.get_diagnostics(v, "https://x/up", 3, start_time=AT, stop_time=AT, retries=2),
    "firmware": lambda v: commands.update_firmware(v, "https://x/fw.bin", 4, AT, retry_interval=60),
    "station_inoperative": lambda v: commands.change_availability(v, 0, False),
    "evse_operative": lambda v: commands.change_availability(v, 2, True),
    "trigger_status": lambda v: commands.trigger(v, "StatusNotification", 1),
    "trigger_log_status": lambda v: commands.trigger(v, "LogStatusNotification", None),
    "tx_profile": lambda v: commands.set_charging_profile(
        v, ChargingProfile(92001, 1, 5, "TxProfile", "A", 1.8e9, (SchedulePeriod(0, 16.3, 3),), "42")
    ),
    "station_cap": lambda v: commands.set_charging_profile(
        v, ChargingProfile(90000, 0, 5, "ChargingStationMaxProfile", "W", 1.8e9, (SchedulePeriod(0, 9000.0),))
    ),
}


@pytest.mark.parametrize("version", [OCPP16, OCPP201])
@pytest.mark.parametrize("name", CALLS)
def test_every_call_is_valid_for_the_version(version, name):
    action, payload = CALLS[name](version)
    schemas.validate(version, action, "request", payload)


@pytest.mark.parametrize(
    ("name", "v16", "v201"),
    [
        ("remote_start", "RemoteStartTransaction", "RequestStartTransaction"),
        ("remote_stop", "RemoteStopTransaction", "RequestStopTransaction"),
        ("diagnostics", "GetDiagnostics", "GetLog"),
        ("firmware", "UpdateFirmware", "UpdateFirmware"),
    ],
)
def test_actions_are_named_as_each_version_names_them(name, v16, v201):
    assert (CALLS[name](OCPP16)[0], CALLS[name](OCPP201)[0]) == (v16, v201)


def test_version_specific_names_are_translated():
    assert commands.reset(OCPP16, "soft")[1] == {"type": "Soft"}
    assert commands.reset(OCPP201, "soft")[1] == {"type": "OnIdle"}
    assert commands.trigger(OCPP16, "LogStatusNotification", None)[1]["requestedMessage"] == (
        "DiagnosticsStatusNotification"
    )
    assert CALLS["station_cap"](OCPP16)[1]["csChargingProfiles"]["chargingProfilePurpose"] == "ChargePointMaxProfile"
    assert CALLS["remote_stop"](OCPP16)[1] == {"transactionId": 12}
    assert CALLS["remote_stop"](OCPP201)[1] == {"transactionId": "c-12"}


def test_a_16_tx_profile_needs_an_integer_transaction_and_every_tx_profile_one():
    with pytest.raises(ValueError, match="integers"):
        commands.set_charging_profile(
            OCPP16, ChargingProfile(92001, 1, 5, "TxProfile", "A", 1.8e9, (SchedulePeriod(0, 6.0),), "abc")
        )
    with pytest.raises(ValueError, match="transaction id"):
        ChargingProfile(92001, 1, 5, "TxProfile", "A", 1.8e9, (SchedulePeriod(0, 6.0),))


def test_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match="unknown OCPP version"):
        commands.reset("2.0", "soft")
