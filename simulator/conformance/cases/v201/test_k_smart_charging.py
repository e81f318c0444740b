"""2.0.1 block K, Smart Charging: charging profiles set, cleared, reported; composite schedules; external limits;
remote start with a profile; ISO 15118 charging needs and schedules (CSMS side).

Every SetChargingProfile the CSMS sends is held to the rules of K01 whatever the case: the first period starts at
0 (K01.FR.31) and the periods' starts strictly increase (K01.FR.35), a TxProfile is for one EVSE (K01.FR.16), a
ChargingStationMaxProfile for EVSE 0 (K01.FR.03) and never Relative (K01.FR.38), the CSMS never sets
ChargingStationExternalConstraints (K01.FR.22), Absolute and Recurring schedules have a startSchedule and Relative
ones none (K01.FR.40, FR.41), a Recurring profile says how it recurs.
"""

from __future__ import annotations

from typing import Any

from csms.ocpp.framing import CallError
from simulator.conformance.cases.v201._csms_commands import in_transaction, iso, parse_time
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

PROFILE_ID = 41
STACK_LEVEL = 1
SCHEDULE_S = 3600
ACCEPTED = {"status": "Accepted"}


# ==== what the operator asks the CSMS to send ===================================================================
def profile(
    purpose: str,
    kind: str = "Absolute",
    *,
    limit: float = 6.0,
    transaction_id: str | None = None,
    pid: int = PROFILE_ID,
) -> dict[str, Any]:
    """A charging profile of one period (``limit`` A from the start), valid for :data:`SCHEDULE_S`."""
    schedule: dict[str, Any] = {
        "id": pid,
        "chargingRateUnit": "A",
        "duration": SCHEDULE_S,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
    }
    body: dict[str, Any] = {
        "id": pid,
        "stackLevel": STACK_LEVEL,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
    }
    if kind != "Relative":
        schedule["startSchedule"] = iso()
    if kind == "Recurring":
        body["recurrencyKind"] = "Daily"
        schedule["duration"] = 86_400
    elif purpose != "TxProfile":
        body["validFrom"], body["validTo"] = iso(), iso(SCHEDULE_S)
    if transaction_id is not None:
        body["transactionId"] = transaction_id
    return body


# ==== what the CSMS must respect ================================================================================
def check_profile(station: StationUnderTest, request: dict[str, Any]) -> dict[str, Any]:
    """The rules of K01 every SetChargingProfile obeys; returns the profile."""
    prof, evse = request["chargingProfile"], request["evseId"]
    purpose, kind = prof["chargingProfilePurpose"], prof["chargingProfileKind"]
    problems = []
    if purpose == "ChargingStationExternalConstraints":
        problems.append("the CSMS set a ChargingStationExternalConstraints profile (K01.FR.22)")
    if purpose == "TxProfile" and evse <= 0:
        problems.append(f"a TxProfile is for one EVSE (evseId > 0), got evseId {evse} (K01.FR.16)")
    if purpose == "ChargingStationMaxProfile" and evse != 0:
        problems.append(f"a ChargingStationMaxProfile is for evseId 0, got {evse} (K01.FR.03)")
    if purpose == "ChargingStationMaxProfile" and kind == "Relative":
        problems.append("a ChargingStationMaxProfile cannot be Relative (K01.FR.38)")
    if purpose != "TxProfile" and "transactionId" in prof:
        problems.append(f"only a TxProfile names a transaction, this {purpose} does")
    if kind == "Recurring" and "recurrencyKind" not in prof:
        problems.append("a Recurring profile without recurrencyKind")
    for schedule in prof["chargingSchedule"]:
        problems += _schedule_problems(kind, schedule)
    if problems:
        station.fail("SetChargingProfile breaks K01: " + "; ".join(problems))
    return prof


def _schedule_problems(kind: str, schedule: dict[str, Any]) -> list[str]:
    problems = []
    starts = [p["startPeriod"] for p in schedule["chargingSchedulePeriod"]]
    if starts[0] != 0:
        problems.append(f"the first chargingSchedulePeriod starts at {starts[0]}, not 0 (K01.FR.31)")
    if starts != sorted(set(starts)):
        problems.append(f"startPeriods {starts} do not strictly increase (K01.FR.35)")
    if kind == "Relative" and "startSchedule" in schedule:
        problems.append("a Relative schedule with a startSchedule (K01.FR.41)")
    if kind != "Relative" and "startSchedule" not in schedule:
        problems.append(f"an {kind} schedule without startSchedule (K01.FR.40)")
    return problems


def set_profile(
    station: StationUnderTest,
    operator: OperatorThread,
    evse_id: int,
    prof: dict[str, Any],
    reply: dict[str, Any] | CallError | None = None,
) -> dict[str, Any]:
    """The CSMS sends the profile (the station answers ``reply``, Accepted by default); returns what it sent."""
    call = operator.command(
        station, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": prof}, reply or ACCEPTED
    )
    return {"evseId": call.payload["evseId"], **check_profile(station, call.payload)}


def one_limit(sent: dict[str, Any]) -> float:
    periods = sent["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert len(periods) == 1, f"the schedule has {len(periods)} periods, the case set one"
    return float(periods[0]["limit"])


def assert_limit(sent: dict[str, Any], amps: float) -> None:
    limit = one_limit(sent)
    assert limit in (amps, amps * 1000), f"limit {limit}: the case configured {amps} A (or {amps * 1000} W)"


# ==== K01 Set charging profile ==================================================================================
@case("TC_K_01_CSMS", "Set Charging Profile - TxDefaultProfile - Specific EVSE", "smart-charging")
def test_TC_K_01_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    sent = set_profile(station, operator, 1, profile("TxDefaultProfile"))
    assert sent["evseId"] == 1, f"evseId {sent['evseId']}, the case configured EVSE 1"
    assert (sent["chargingProfilePurpose"], sent["chargingProfileKind"]) == ("TxDefaultProfile", "Absolute")
    assert "validFrom" in sent and "validTo" in sent, "validFrom/validTo omitted"
    assert parse_time(sent["validTo"]) > parse_time(sent["validFrom"]), "validTo is not after validFrom"
    schedule = sent["chargingSchedule"][0]
    assert "duration" in schedule, "chargingSchedule.duration omitted"
    assert_limit(sent, 6.0)
    phases = schedule["chargingSchedulePeriod"][0].get("numberPhases", 3)
    assert phases == 3, f"numberPhases {phases} on a three-phase EVSE"


@case(
    "TC_K_02_CSMS",
    "Set Charging Profile - TxProfile without ongoing transaction on the specified EVSE",
    "smart-charging",
)
def test_TC_K_02_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    sent = set_profile(station, operator, 1, profile("TxProfile", "Relative", limit=7.0), {"status": "Rejected"})
    assert sent["evseId"] == 1, f"evseId {sent['evseId']}, the case configured EVSE 1"
    assert (sent["chargingProfilePurpose"], sent["chargingProfileKind"]) == ("TxProfile", "Relative"), (
        f"purpose/kind {sent['chargingProfilePurpose']}/{sent['chargingProfileKind']}, the case set TxProfile/Relative"
    )
    assert_limit(sent, 7.0)
    station.expect_no_call(1, "RequestStartTransaction")


@case("TC_K_03_CSMS", "Set Charging Profile - ChargingStationMaxProfile", "smart-charging")
def test_TC_K_03_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    sent = set_profile(station, operator, 0, profile("ChargingStationMaxProfile"))
    assert sent["evseId"] == 0 and sent["chargingProfileKind"] == "Absolute", f"evseId/kind {sent}"
    assert_limit(sent, 6.0)


@case("TC_K_04_CSMS", "Replace charging profile - With chargingProfileId", "smart-charging")
def test_TC_K_04_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    first = set_profile(station, operator, 0, profile("TxDefaultProfile", limit=8.0))
    second = set_profile(station, operator, 0, profile("TxDefaultProfile", limit=6.0))
    assert_limit(first, 8.0)
    assert_limit(second, 6.0)
    same = ("id", "stackLevel", "chargingProfilePurpose", "chargingProfileKind")
    differ = [key for key in same if first[key] != second[key]]
    assert not differ, f"a replacing profile keeps {', '.join(same)}; these differ: {differ}"


@case("TC_K_10_CSMS", "Set Charging Profile - TxDefaultProfile - All EVSE", "smart-charging")
def test_TC_K_10_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    sent = set_profile(station, operator, 0, profile("TxDefaultProfile"))
    assert sent["evseId"] == 0, f"evseId {sent['evseId']}: a default for every EVSE is set on EVSE 0"
    assert sent["chargingProfilePurpose"] == "TxDefaultProfile"


@case("TC_K_15_CSMS", "Set Charging Profile - Not Supported", "smart-charging")
def test_TC_K_15_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    refusal = CallError("", "NotSupported", "smart charging is not supported", {})
    set_profile(station, operator, 1, profile("TxDefaultProfile"), refusal)
    station.expect_no_call(1, "SetChargingProfile")
    station.call("Heartbeat", {})


@case("TC_K_19_CSMS", "Set Charging Profile - ChargingProfileKind is Recurring", "smart-charging")
def test_TC_K_19_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    sent = set_profile(station, operator, 1, profile("TxDefaultProfile", "Recurring"))
    assert sent["chargingProfileKind"] == "Recurring", f"kind {sent['chargingProfileKind']}"
    assert sent.get("recurrencyKind") in ("Daily", "Weekly"), f"recurrencyKind {sent.get('recurrencyKind')}"


@case(
    "TC_K_60_CSMS", "Set Charging Profile - TxProfile with ongoing transaction on the specified EVSE", "smart-charging"
)
def test_TC_K_60_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    sent = set_profile(station, operator, 1, profile("TxProfile", transaction_id=tx))
    assert sent["transactionId"] == tx, f"transactionId {sent['transactionId']!r}, the running one is {tx!r}"
    assert sent["evseId"] == 1, f"evseId {sent['evseId']}: the transaction runs on EVSE 1"


@case(
    "TC_K_70_CSMS",
    "Set Charging Profile - Multiple Profiles",
    "smart-charging",
)
def test_TC_K_70_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    in_transaction(station, tokens.valid)
    default = set_profile(station, operator, 1, profile("TxDefaultProfile", limit=8.0))
    station_max = set_profile(station, operator, 0, profile("ChargingStationMaxProfile", pid=PROFILE_ID + 1))
    assert default["chargingProfileKind"] in ("Absolute", "Recurring"), f"kind {default['chargingProfileKind']}"
    assert station_max["chargingProfileKind"] == "Absolute", f"kind {station_max['chargingProfileKind']}"
    assert station_max["id"] != default["id"], f"both profiles have id {default['id']}: the second would replace it"


# ==== K10 Clear charging profile ================================================================================
@case("TC_K_05_CSMS", "Clear Charging Profile - With chargingProfileId", "smart-charging")
def test_TC_K_05_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    reported = 77  # the id the CSMS learns from the station's report, and clears by
    request = operator.command(station, "GetChargingProfiles", {"requestId": 5, "chargingProfile": {}}, ACCEPTED)
    station.call(
        "ReportChargingProfiles", _reported(request.payload["requestId"], 1, profile("TxDefaultProfile", pid=reported))
    )
    clear = operator.command(station, "ClearChargingProfile", {"chargingProfileId": reported}, ACCEPTED).payload
    assert clear.get("chargingProfileId") == reported, (
        f"chargingProfileId {clear.get('chargingProfileId')}, the profile the station reported is {reported}"
    )
    assert "chargingProfileCriteria" not in clear, "clearing by id: chargingProfileCriteria must be omitted"


def _clear_by_criteria(station: StationUnderTest, operator: OperatorThread, reply: str) -> None:
    criteria = {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": STACK_LEVEL}
    clear = operator.command(
        station, "ClearChargingProfile", {"chargingProfileCriteria": criteria}, {"status": reply}
    ).payload
    assert "chargingProfileId" not in clear, "clearing by criteria: chargingProfileId must be omitted"
    got = clear.get("chargingProfileCriteria", {})
    assert got == criteria, f"chargingProfileCriteria {got}, the case configured {criteria}"


@case("TC_K_06_CSMS", "Clear Charging Profile - With stackLevel/purpose combination for one profile", "smart-charging")
def test_TC_K_06_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_profile(station, operator, 1, profile("TxDefaultProfile"))
    _clear_by_criteria(station, operator, "Accepted")


@case("TC_K_08_CSMS", "Clear Charging Profile - Without previous charging profile", "smart-charging")
def test_TC_K_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _clear_by_criteria(station, operator, "Unknown")


# ==== K09 Get charging profiles =================================================================================
def _reported(request_id: int, evse_id: int, prof: dict[str, Any], source: str = "CSO") -> dict[str, Any]:
    return {"requestId": request_id, "chargingLimitSource": source, "evseId": evse_id, "chargingProfile": [prof]}


def get_profiles(
    station: StationUnderTest,
    operator: OperatorThread,
    criterion: dict[str, Any],
    evse_id: int | None,
    report_evses: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """The CSMS asks for profiles by ``criterion``; the station reports one per EVSE of ``report_evses``; every
    report must be answered. Returns the CSMS's request."""
    payload: dict[str, Any] = {"requestId": 7, "chargingProfile": criterion}
    if evse_id is not None:
        payload["evseId"] = evse_id
    request = operator.command(station, "GetChargingProfiles", payload, ACCEPTED).payload
    for n, evse in enumerate(report_evses):
        report = _reported(request["requestId"], evse, profile("TxDefaultProfile"))
        if n < len(report_evses) - 1:
            report["tbc"] = True
        station.call("ReportChargingProfiles", report)
    got = request["chargingProfile"]
    for key, value in criterion.items():
        assert got.get(key) == value, f"chargingProfile.{key} {got.get(key)!r}, the case configured {value!r}"
    extra = set(got) - set(criterion) - {"customData"}
    assert not extra, f"chargingProfile criteria {sorted(extra)} the case did not configure (they must be omitted)"
    if evse_id is None:
        assert "evseId" not in request, f"evseId {request['evseId']}: the case asked for every EVSE (omitted)"
    else:
        assert request.get("evseId") == evse_id, f"evseId {request.get('evseId')}, the case configured {evse_id}"
    return request


@case("TC_K_29_CSMS", "Get Charging Profile - EvseId 0", "smart-charging")
def test_TC_K_29_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    in_transaction(station, tokens.valid)
    get_profiles(station, operator, {"chargingProfilePurpose": "TxDefaultProfile"}, 0, report_evses=(0,))


@case("TC_K_30_CSMS", "Get Charging Profile - EvseId > 0", "smart-charging")
def test_TC_K_30_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_profiles(station, operator, {"chargingProfilePurpose": "TxDefaultProfile"}, 1)


@case("TC_K_31_CSMS", "Get Charging Profile - No EvseId", "smart-charging")
def test_TC_K_31_CSMS(make_station: Any, operator: OperatorThread) -> None:
    station: StationUnderTest = make_station(connectors=2)
    station.ready()
    get_profiles(station, operator, {"chargingProfilePurpose": "TxDefaultProfile"}, None, report_evses=(1, 2))


@case("TC_K_32_CSMS", "Get Charging Profile - chargingProfileId", "smart-charging")
def test_TC_K_32_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_profiles(station, operator, {"chargingProfileId": [PROFILE_ID]}, None)


@case("TC_K_33_CSMS", "Get Charging Profile - EvseId > 0 + stackLevel", "smart-charging")
def test_TC_K_33_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_profiles(station, operator, {"stackLevel": STACK_LEVEL}, 1)


@case("TC_K_34_CSMS", "Get Charging Profile - EvseId > 0 + chargingLimitSource", "smart-charging")
def test_TC_K_34_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_profiles(station, operator, {"chargingLimitSource": ["CSO"]}, 1)


@case("TC_K_35_CSMS", "Get Charging Profile - EvseId > 0 + chargingProfilePurpose", "smart-charging")
def test_TC_K_35_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_profiles(station, operator, {"chargingProfilePurpose": "TxProfile"}, 1)


@case("TC_K_36_CSMS", "Get Charging Profile - EvseId > 0 + chargingProfilePurpose + stackLevel", "smart-charging")
def test_TC_K_36_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_profiles(station, operator, {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": STACK_LEVEL}, 1)


# ==== K05 Remote start with a profile, K08 composite schedule ===================================================
@case("TC_K_37_CSMS", "Remote start transaction with charging profile - Success", "smart-charging")
def test_TC_K_37_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    station.ready()
    payload = {
        "idToken": {"idToken": tokens.valid, "type": "ISO14443"},
        "remoteStartId": 37,
        "evseId": 1,
        "chargingProfile": profile("TxProfile", "Relative"),
    }
    request = operator.command(station, "RequestStartTransaction", payload).payload
    prof = request.get("chargingProfile")
    assert prof is not None, "RequestStartTransaction without the chargingProfile the case configured"
    assert prof["chargingProfilePurpose"] == "TxProfile", f"purpose {prof['chargingProfilePurpose']} (F01.FR.09)"
    assert "transactionId" not in prof, "a remote start's profile cannot name a transaction yet (F01.FR.11)"
    assert prof["chargingProfileKind"] in ("Absolute", "Relative"), f"kind {prof['chargingProfileKind']}"
    assert _schedule_problems(prof["chargingProfileKind"], prof["chargingSchedule"][0]) == []
    assert request["idToken"]["idToken"] == tokens.valid, f"idToken {request['idToken']}"
    station.plug_in(1)
    started = station.wait_result("TransactionEvent")
    status = started.get("idTokenInfo", {}).get("status", "Accepted")
    assert status == "Accepted", f"the remotely started transaction's token answered {status!r}"


def _composite(station: StationUnderTest, operator: OperatorThread, evse_id: int) -> None:
    payload = {"duration": 300, "evseId": evse_id, "chargingRateUnit": "A"}
    request = operator.command(station, "GetCompositeSchedule", payload).payload
    assert request["evseId"] == evse_id, f"evseId {request['evseId']}, the case configured {evse_id}"
    assert request["duration"] > 0, f"duration {request['duration']}"
    assert request.get("chargingRateUnit") in ("A", "W"), f"chargingRateUnit {request.get('chargingRateUnit')}"


@case("TC_K_43_CSMS", "Get Composite Schedule - Specific EVSE", "smart-charging")
def test_TC_K_43_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _composite(station, operator, 1)


@case("TC_K_44_CSMS", "Get Composite Schedule - Charging Station", "smart-charging")
def test_TC_K_44_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    _composite(station, operator, 0)


# ==== K12/K13 External charging limits ==========================================================================
EMS_LIMIT = {"chargingLimitSource": "EMS", "isGridCritical": False}


@case("TC_K_48_CSMS", "Set / Update External Charging Limit (not on a transaction)", "smart-charging")
def test_TC_K_48_CSMS(station: StationUnderTest) -> None:
    station.ready()
    schedule = profile("ChargingStationExternalConstraints")["chargingSchedule"]
    station.call("NotifyChargingLimit", {"chargingLimit": EMS_LIMIT, "evseId": 1, "chargingSchedule": schedule})
    station.expect_no_call(1, "SetChargingProfile")


@case("TC_K_50_CSMS", "Reset / release external charging limit - Without ongoing transaction", "smart-charging")
def test_TC_K_50_CSMS(station: StationUnderTest) -> None:
    station.ready()
    station.call("NotifyChargingLimit", {"chargingLimit": EMS_LIMIT, "evseId": 1})
    station.call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1})


@case("TC_K_51_CSMS", "Reset / release external charging limit - With ongoing transaction", "smart-charging")
def test_TC_K_51_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    station.call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1})
    seq = 1000
    event = {
        "eventType": "Updated",
        "timestamp": iso(),
        "triggerReason": "ChargingRateChanged",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
    }
    station.call("TransactionEvent", event)


@case(
    "TC_K_52_CSMS",
    "Set / Update External Charging Limit - ChargingStationExternalConstraints in report",
    "smart-charging",
)
def test_TC_K_52_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.call("NotifyChargingLimit", {"chargingLimit": EMS_LIMIT})
    request = operator.command(
        station, "GetChargingProfiles", {"requestId": 52, "chargingProfile": {}}, ACCEPTED
    ).payload
    external = profile("ChargingStationExternalConstraints")
    station.call("ReportChargingProfiles", _reported(request["requestId"], 0, external, "EMS"))


# ==== K15–K17 ISO 15118 charging needs and schedules ============================================================
NEEDS = {
    "requestedEnergyTransfer": "AC_three_phase",
    "acChargingParameters": {"energyAmount": 20_000, "evMinCurrent": 6, "evMaxCurrent": 32, "evMaxVoltage": 400},
}


#: A CSMS that answered the EV's needs Accepted has its schedule ready (K15.FR.03): the profile follows promptly.
READY_SCHEDULE_S = 5.0


def charging_needs(station: StationUnderTest, needs: dict[str, Any] = NEEDS) -> float:
    """The EV's needs go to the CSMS, which answers Accepted or Processing (K15.FR.02/03/05); returns how long
    to wait for its profile (Processing: it may take the case's whole wait)."""
    answer = station.call("NotifyEVChargingNeeds", {"evseId": 1, "maxScheduleTuples": 10, "chargingNeeds": needs})
    assert answer["status"] in ("Accepted", "Processing"), (
        f"NotifyEVChargingNeeds answered {answer['status']!r}: a CSMS that can provide a schedule says "
        "Accepted or Processing"
    )
    return READY_SCHEDULE_S if answer["status"] == "Accepted" else station.target.wait_s


def csms_schedule(station: StationUnderTest, tx: str, what: str, within: float | None = None) -> dict[str, Any]:
    """The TxProfile the CSMS sends on its own for the transaction ``tx`` (after the EV's needs)."""
    station.answer("SetChargingProfile", ACCEPTED)
    call = station.wait_call("SetChargingProfile", within or station.target.wait_s)
    prof = check_profile(station, call.payload)
    if prof["chargingProfilePurpose"] != "TxProfile" or prof.get("transactionId") != tx:
        station.fail(f"{what}: expected a TxProfile for transaction {tx!r}, got {prof}")
    return prof


def ev_schedule(station: StationUnderTest, prof: dict[str, Any], expect: str, scale: float = 1.0) -> None:
    """The EV's schedule (the CSMS's, its limits times ``scale``) goes to the CSMS, which answers ``expect``."""
    schedule = dict(prof["chargingSchedule"][0])
    schedule["chargingSchedulePeriod"] = [
        {**p, "limit": p["limit"] * scale} for p in schedule["chargingSchedulePeriod"]
    ]
    answer = station.call("NotifyEVChargingSchedule", {"timeBase": iso(), "evseId": 1, "chargingSchedule": schedule})
    assert answer["status"] == expect, (
        f"NotifyEVChargingSchedule answered {answer['status']!r}; for an EV schedule "
        f"{'within' if scale <= 1 else 'beyond'} the CSMS's limits it must be {expect} (K15.FR.11/FR.12)"
    )


def iso15118_smart_charging(station: StationUnderTest, tokens: Tokens) -> tuple[str, dict[str, Any]]:
    """Reusable state ISO15118SmartCharging: needs, the CSMS's profile, the EV's schedule accepted."""
    tx = in_transaction(station, tokens.valid)
    within = charging_needs(station)
    prof = csms_schedule(station, tx, "after NotifyEVChargingNeeds", within)
    ev_schedule(station, prof, "Accepted")
    return tx, prof


@case("TC_K_53_CSMS", "Charging with load leveling based on High Level Communication - Success", "iso15118")
def test_TC_K_53_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    iso15118_smart_charging(station, tokens)
    station.expect_no_call(2, "SetChargingProfile")


@case(
    "TC_K_55_CSMS",
    "Charging with load leveling based on High Level Communication - EV charging profile exceeds limits",
    "iso15118",
)
def test_TC_K_55_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    within = charging_needs(station)
    prof = csms_schedule(station, tx, "after NotifyEVChargingNeeds", within)
    ev_schedule(station, prof, "Rejected", scale=2.0)
    again = csms_schedule(station, tx, "after rejecting the EV's schedule (the CSMS renegotiates with a new profile)")
    ev_schedule(station, again, "Accepted")


@case("TC_K_57_CSMS", "Renegotiating a Charging Schedule - Initiated by EV", "iso15118")
def test_TC_K_57_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    tx, _ = iso15118_smart_charging(station, tokens)
    within = charging_needs(station, {**NEEDS, "departureTime": iso(7200)})
    again = csms_schedule(station, tx, "after the EV's new NotifyEVChargingNeeds (K17.FR.03)", within)
    ev_schedule(station, again, "Accepted")


@case("TC_K_58_CSMS", "Renegotiating a Charging Schedule - Initiated by CSMS", "iso15118")
def test_TC_K_58_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx, _ = iso15118_smart_charging(station, tokens)
    sent = set_profile(station, operator, 1, profile("TxProfile", limit=10.0, transaction_id=tx, pid=58))
    assert sent["transactionId"] == tx, f"transactionId {sent['transactionId']!r}, the running one is {tx!r}"
    ev_schedule(station, sent, "Accepted")


@case("TC_K_59_CSMS", "Renegotiating a Charging Schedule - Initiated by CSMS - Send NotifyEVChargingNeeds", "iso15118")
def test_TC_K_59_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx, _ = iso15118_smart_charging(station, tokens)
    set_profile(station, operator, 1, profile("TxProfile", limit=10.0, transaction_id=tx, pid=59))
    within = charging_needs(station)
    again = csms_schedule(station, tx, "after the EV's NotifyEVChargingNeeds in the renegotiation (K16)", within)
    ev_schedule(station, again, "Accepted")
