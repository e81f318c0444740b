"""Charging-profile payloads (schema-valid for both versions) and the tracker that sends only changes."""

from __future__ import annotations

import pytest

from csms.loadmgmt.profiles import (
    STACK_LEVEL,
    ProfileSpec,
    ProfileTracker,
    Purpose,
    charging_profile,
    profile_id_of,
    round_limit,
)
from csms.ocpp import commands, schemas

NOW = 1_800_000_000.0


def to_payload(version: str, spec: ProfileSpec, now: float) -> dict:
    action, payload = commands.set_charging_profile(version, charging_profile(spec, now))
    assert action == "SetChargingProfile"
    return payload


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize(
    "spec",
    [
        ProfileSpec("cp", 1, Purpose.TX, 16.37, "A", 3, "42"),
        ProfileSpec("cp", 2, Purpose.TX_DEFAULT, 6.0, "A", 1),
        ProfileSpec("cp", 0, Purpose.STATION_MAX, 63.0, "A", 3),
        ProfileSpec("dc", 1, Purpose.TX, 49_999.7, "W", None, "7"),
        ProfileSpec("cp", 1, Purpose.TX_DEFAULT, 0.0, "A", 3),
    ],
)
def test_payloads_are_valid_for_both_versions(version, spec):
    payload = to_payload(version, spec, NOW)
    schemas.validate(version, "SetChargingProfile", "request", payload)
    assert profile_id_of(version, payload) == (spec.evse_id, spec.profile_id)
    if version == "1.6":
        profile = payload["csChargingProfiles"]
        schedule = profile["chargingSchedule"]
        assert profile["chargingProfilePurpose"] == (
            "ChargePointMaxProfile" if spec.purpose is Purpose.STATION_MAX else spec.purpose.value
        )
        assert payload["connectorId"] == spec.evse_id
        if spec.purpose is Purpose.TX:
            assert profile["transactionId"] == int(spec.transaction_id)
    else:
        profile = payload["chargingProfile"]
        (schedule,) = profile["chargingSchedule"]
        assert profile["chargingProfilePurpose"] == spec.purpose.value
        assert payload["evseId"] == spec.evse_id
        if spec.purpose is Purpose.TX:
            assert profile["transactionId"] == spec.transaction_id
    assert profile["stackLevel"] == STACK_LEVEL
    assert profile["chargingProfileKind"] == "Absolute"
    assert profile["validFrom"] == schedule["startSchedule"] == "2027-01-15T08:00:00Z"
    assert schedule["chargingRateUnit"] == spec.unit
    (period,) = schedule["chargingSchedulePeriod"]
    assert period["startPeriod"] == 0
    assert period["limit"] <= spec.limit and spec.limit - period["limit"] < (0.1 if spec.unit == "A" else 1.0)


def test_limits_round_down_never_up():
    assert round_limit(16.39, "A") == pytest.approx(16.3)
    assert round_limit(16.3, "A") == pytest.approx(16.3)
    assert round_limit(-1.0, "A") == 0.0
    assert round_limit(1234.9, "W") == 1234.0


def test_tx_profile_needs_a_transaction_and_16_needs_an_integer_one():
    with pytest.raises(ValueError, match="transaction id"):
        to_payload("2.0.1", ProfileSpec("cp", 1, Purpose.TX, 10.0), NOW)
    with pytest.raises(ValueError, match="integers"):
        to_payload("1.6", ProfileSpec("cp", 1, Purpose.TX, 10.0, transaction_id="abc"), NOW)


def test_profile_ids_are_deterministic_so_a_new_limit_replaces_the_old():
    a = ProfileSpec("cp", 3, Purpose.TX, 10.0, transaction_id="1")
    b = ProfileSpec("cp", 3, Purpose.TX, 20.0, transaction_id="2")
    assert a.profile_id == b.profile_id
    ids = {ProfileSpec("cp", e, p, 1.0).profile_id for e in (1, 2) for p in (Purpose.TX, Purpose.TX_DEFAULT)}
    assert len(ids) == 4


def tx(limit: float, transaction: str = "1", evse: int = 1) -> ProfileSpec:
    return ProfileSpec("cp", evse, Purpose.TX, limit, "A", 3, transaction)


def test_tracker_sends_only_changes_with_a_deadband_for_increases():
    tracker = ProfileTracker(deadband_a=0.5)
    assert tracker.changes([tx(16.0), tx(10.0, evse=2)], NOW) == [tx(16.0), tx(10.0, evse=2)]
    assert tracker.changes([tx(16.0), tx(10.0, evse=2)], NOW + 60) == []
    assert tracker.changes([tx(16.4)], NOW + 120) == []  # small increase: not worth a message
    assert tracker.changes([tx(16.6)], NOW + 180) == [tx(16.6)]
    assert tracker.changes([tx(16.5)], NOW + 240) == [tx(16.5)]  # any decrease: the tree depends on it
    assert tracker.changes([tx(0.0)], NOW + 300) == [tx(0.0)]  # pause
    assert tracker.changes([tx(6.0)], NOW + 360) == [tx(6.0)]  # resume
    assert tracker.changes([tx(6.0, transaction="2")], NOW + 420) == [tx(6.0, transaction="2")]


def test_tracker_failures_mark_the_evse_unresponsive_until_a_retry():
    tracker = ProfileTracker(retry_after_s=300.0)
    tracker.changes([tx(16.0)], NOW)
    tracker.on_response("cp", 1, tx(16.0).profile_id, "Accepted", NOW + 1)
    assert tracker.unresponsive() == []
    tracker.changes([tx(10.0)], NOW + 60)
    tracker.on_response("cp", 1, tx(10.0).profile_id, "Rejected", NOW + 61)
    ((spec, accepted),) = tracker.unresponsive()
    assert (spec.station_id, spec.evse_id, accepted) == ("cp", 1, 16.0)  # it may still run at 16 A
    assert tracker.retry_deadline() == NOW + 361
    assert tracker.changes([tx(10.0)], NOW + 120) == []  # not hammered
    assert tracker.changes([tx(10.0)], NOW + 361) == [tx(10.0)]
    tracker.on_response("cp", 1, tx(10.0).profile_id, "Accepted", NOW + 362)
    assert tracker.unresponsive() == []


def test_tracker_forgets_what_the_charger_dropped():
    tracker = ProfileTracker()
    default = ProfileSpec("cp", 1, Purpose.TX_DEFAULT, 6.0)
    tracker.changes([tx(16.0), default], NOW)
    tracker.forget("cp", 1, Purpose.TX)
    assert tracker.sent("cp", 1, Purpose.TX) is None
    assert tracker.sent("cp", 1, Purpose.TX_DEFAULT) == default
    tracker.forget("cp")
    assert tracker.changes([default], NOW) == [default]
