"""1.6 Smart Charging profile (Central System side): TxDefaultProfile, TxProfile, a remote start with a profile,
GetCompositeSchedule and ClearChargingProfile."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.conformance.cases.v16._steps import (
    booted,
    charging,
    expect_fields,
    expect_status,
)
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")

STACK_LEVEL = 1
DAY_S = 86_400


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _profile(profile_id: int, purpose: str, transaction_id: int | None = None) -> dict[str, Any]:
    """An absolute profile limiting to 6 A on three phases for a day."""
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": STACK_LEVEL,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "validFrom": _at(-60),
        "validTo": _at(DAY_S),
        "chargingSchedule": {
            "duration": DAY_S,
            "startSchedule": _at(-60),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0, "numberPhases": 3}],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


def _check_profile(
    station: StationUnderTest, profile: dict[str, Any], purpose: str, transaction_id: int | None
) -> None:
    """What the OCTT checks of every profile the Central System sends (1.6 §3.13 and the OCTT validations)."""

    def need(ok: bool, why: str) -> None:
        if not ok:
            station.fail(f"charging profile {profile}: {why}")

    need(profile.get("chargingProfilePurpose") == purpose, f"chargingProfilePurpose must be {purpose}")
    need(profile.get("transactionId") == transaction_id, f"transactionId must be {transaction_id or 'omitted'}")
    need("recurrencyKind" not in profile, "recurrencyKind must be omitted")
    kind, schedule = profile.get("chargingProfileKind"), profile.get("chargingSchedule") or {}
    need(kind in ("Absolute", "Relative"), "chargingProfileKind must be Absolute or Relative")
    if kind == "Absolute":
        for field in ("validFrom", "validTo"):
            need(field in profile, f"an Absolute profile needs {field}")
        for field in ("startSchedule", "duration"):
            need(field in schedule, f"an Absolute profile's schedule needs {field}")
    else:
        need("startSchedule" not in schedule, "a Relative profile's schedule has no startSchedule")
    periods = schedule.get("chargingSchedulePeriod") or []
    need(bool(periods) and periods[0].get("startPeriod") == 0, "the first period must start at 0")


@case("TC_056_CSMS", "Central Smart Charging - TxDefaultProfile", "smart-charging")
def test_TC_056_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    payload = {"connectorId": 1, "csChargingProfiles": _profile(101, "TxDefaultProfile")}
    call = operator.command(station, "SetChargingProfile", payload)
    expect_fields(station, call, connectorId=1)
    profile = call.payload["csChargingProfiles"]
    _check_profile(station, profile, "TxDefaultProfile", None)
    limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    assert limit in (6.0, 6000.0), f"the first period's limit is {limit}, the case expects 6 A (or 6000 W)"


@case("TC_057_CSMS", "Central Smart Charging - TxProfile", "smart-charging")
def test_TC_057_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    payload = {"connectorId": 1, "csChargingProfiles": _profile(102, "TxProfile", transaction_id)}
    call = operator.command(station, "SetChargingProfile", payload)
    expect_fields(station, call, connectorId=1)
    _check_profile(station, call.payload["csChargingProfiles"], "TxProfile", transaction_id)


@case("TC_059_CSMS", "Remote Start Transaction with Charging Profile", "smart-charging")
def test_TC_059_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread, tokens: Tokens) -> None:
    station = make_station(config={"AuthorizeRemoteTxRequests": "true"})
    booted(station)
    payload = {"connectorId": 1, "idTag": tokens.valid, "chargingProfile": _profile(103, "TxProfile")}
    call = operator.command(station, "RemoteStartTransaction", payload)
    expect_fields(station, call, connectorId=1, idTag=tokens.valid)
    _check_profile(station, call.payload.get("chargingProfile") or {}, "TxProfile", None)
    expect_status(station, station.wait_result("Authorize"), "Authorize", "Accepted")
    station.plug_in(1)
    expect_status(station, station.wait_result("StartTransaction"), "StartTransaction", "Accepted")


@case("TC_066_CSMS", "Get Composite Schedule", "smart-charging")
def test_TC_066_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    booted(station)
    payload = {"connectorId": 1, "duration": DAY_S, "chargingRateUnit": "A"}
    call = operator.command(station, "GetCompositeSchedule", payload)
    expect_fields(station, call, connectorId=1)
    assert isinstance(call.payload.get("duration"), int) and call.payload["duration"] > 0, call.payload
    assert call.payload.get("chargingRateUnit") in ("A", "W"), f"GetCompositeSchedule carries {call.payload}"


@case("TC_067_CSMS", "Clear Charging Profile", "smart-charging")
def test_TC_067_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    booted(station)
    transaction_id = charging(station, tokens.valid)
    sets = (
        (0, _profile(201, "ChargePointMaxProfile"), "ChargePointMaxProfile", None),
        (1, _profile(202, "TxDefaultProfile"), "TxDefaultProfile", None),
        (1, _profile(203, "TxProfile", transaction_id), "TxProfile", transaction_id),
    )
    ids = []
    for connector, profile, purpose, tx in sets:
        call = operator.command(
            station, "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": profile}
        )
        expect_fields(station, call, connectorId=connector)
        sent = call.payload["csChargingProfiles"]
        assert sent.get("transactionId") == tx and sent.get("chargingProfilePurpose") == purpose, sent
        assert sent.get("stackLevel") == STACK_LEVEL, f"stackLevel {sent.get('stackLevel')}, expected {STACK_LEVEL}"
        ids.append(sent["chargingProfileId"])
    assert len(set(ids)) == len(ids), f"the three profiles must have different ids, got {ids}"
    by_id = operator.command(station, "ClearChargingProfile", {"id": ids[0]}, {"status": "Accepted"})
    assert by_id.payload == {"id": ids[0]}, f"clear by id must name only the id: {by_id.payload}"
    criteria = {"connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": STACK_LEVEL}
    by_criteria = operator.command(station, "ClearChargingProfile", criteria, {"status": "Accepted"})
    assert by_criteria.payload == criteria, f"clear by criteria sends {by_criteria.payload}"
    everything = operator.command(station, "ClearChargingProfile", {}, {"status": "Accepted"})
    assert everything.payload == {}, f"clear all remaining must name nothing: {everything.payload}"
