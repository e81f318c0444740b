"""Smart charging: profile storage, composite schedules and the 1.6 / 2.0.1 wire edge.

Most tests are tables: profiles in, expected composite periods ``(offset_s, limit)`` out.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.station.smart_charging import (
    DAY_S,
    ChargingProfile,
    ChargingSchedule,
    ClearStatus,
    Conflict,
    Kind,
    Limit,
    ProfileStatus,
    ProfileStore,
    Purpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    _composite,
    clear_charging_profile_response,
    composite_schedule_response_v16,
    composite_schedule_response_v201,
    format_instant,
    parse_instant,
    set_charging_profile_response_v16,
    set_charging_profile_response_v201,
)
from simulator.station.smart_charging._composite import active_period

T0 = parse_instant("2024-03-01T00:00:00Z")
H = 3600
SCHEMAS = Path(ocpp.__file__).parent

MAX, EXT, TXD, TX = Purpose.STATION_MAX, Purpose.EXTERNAL_CONSTRAINTS, Purpose.TX_DEFAULT, Purpose.TX
A, W = RateUnit.A, RateUnit.W


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    # jsonschema checks date-time only with an optional extra package; check it here instead.
    return not isinstance(value, str) or bool(RFC3339.match(value))


def validate(version: str, name: str, payload: dict[str, Any]) -> None:
    """Validate like the ocpp package does: decimals, so that ``multipleOf: 0.1`` is exact."""
    schema = json.loads((SCHEMAS / version / "schemas" / f"{name}.json").read_text(), parse_float=Decimal)
    instance = json.loads(json.dumps(payload), parse_float=Decimal)
    jsonschema.validators.validator_for(schema)(schema, format_checker=FORMATS).validate(instance)


def test_validate_checks_date_times() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate("v16", "GetCompositeScheduleResponse", {"status": "Accepted", "scheduleStart": "tomorrow"})


def prof(
    id: int,
    purpose: Purpose,
    periods: list[tuple[int, float]] | list[tuple[int, float, int]],
    *,
    stack: int = 0,
    connector: int = 0,
    kind: Kind = Kind.ABSOLUTE,
    start: float | None = T0,
    duration: int | None = None,
    unit: RateUnit = A,
    recurrency: Recurrency | None = None,
    valid: tuple[float | None, float | None] = (None, None),
    tx: str | None = None,
) -> ChargingProfile:
    return ChargingProfile(
        id=id,
        stack_level=stack,
        purpose=purpose,
        kind=kind,
        schedules=(
            ChargingSchedule(
                unit,
                tuple(SchedulePeriod(*p) for p in periods),
                duration_s=duration,
                start_schedule=None if kind is Kind.RELATIVE else start,
            ),
        ),
        connector_id=connector,
        recurrency=recurrency,
        valid_from=valid[0],
        valid_to=valid[1],
        transaction_id=tx,
    )


def store_with(*profiles: ChargingProfile, connectors: int = 2) -> ProfileStore:
    store = ProfileStore(connectors)
    for p in profiles:
        assert store.install(p, T0).accepted
    return store


def steps(store: ProfileStore, connector: int, start: float, duration: float, **kw: Any) -> list[tuple]:
    sched = store.composite_schedule(connector, start, duration, **kw)
    return [(p.start_period_s, p.limit) for p in sched.periods]


# --- composite: the table ----------------------------------------------------------------------

BASE_32 = prof(1, TXD, [(0, 32)])

COMPOSITE_CASES = {
    "higher stack level wins, falls back after its duration": (
        [BASE_32, prof(2, TXD, [(0, 16)], stack=1, duration=H)],
        dict(connector=1, start=T0, duration=2 * H),
        [(0, 16), (H, 32)],
    ),
    "stack level ranking is per instant, by periods": (
        [prof(1, TXD, [(0, 32), (H, 8)]), prof(2, TXD, [(0, 16)], stack=3, start=T0 + H / 2, duration=H)],
        dict(connector=1, start=T0, duration=2 * H),
        [(0, 32), (H / 2, 16), (1.5 * H, 8)],
    ),
    "Tx overrides TxDefault, then falls back": (
        [BASE_32, prof(2, TX, [(0, 10)], connector=1, duration=1800, tx="7")],
        dict(connector=1, start=T0, duration=H),
        [(0, 10), (1800, 32)],
    ),
    "Tx on another connector does not count": (
        [BASE_32, prof(2, TX, [(0, 10)], connector=2, tx="7")],
        dict(connector=1, start=T0, duration=H),
        [(0, 32)],
    ),
    "station max caps (min of the two)": (
        [BASE_32, prof(3, MAX, [(0, 20), (H, 40), (2 * H, 10)])],
        dict(connector=1, start=T0, duration=3 * H),
        [(0, 20), (H, 32), (2 * H, 10)],
    ),
    "station max alone limits when no Tx profile": (
        [prof(3, MAX, [(0, 25)])],
        dict(connector=1, start=T0, duration=H),
        [(0, 25)],
    ),
    "connector 0 composite is the grid limit only": (
        [BASE_32, prof(3, MAX, [(0, 63)])],
        dict(connector=0, start=T0, duration=H),
        [(0, 63)],
    ),
    "connector TxDefault beats connector-0 TxDefault, even at a lower stack level": (
        [prof(1, TXD, [(0, 32)], stack=5), prof(2, TXD, [(0, 12)], connector=1)],
        dict(connector=1, start=T0, duration=H),
        [(0, 12)],
    ),
    "connector-0 TxDefault applies to the other connectors": (
        [prof(1, TXD, [(0, 32)], stack=5), prof(2, TXD, [(0, 12)], connector=1)],
        dict(connector=2, start=T0, duration=H),
        [(0, 32)],
    ),
    "connector TxDefault ends, connector-0 TxDefault resumes": (
        [BASE_32, prof(2, TXD, [(0, 12)], connector=1, duration=600)],
        dict(connector=1, start=T0, duration=H),
        [(0, 12), (600, 32)],
    ),
    "Relative starts at the transaction start": (
        [prof(1, TXD, [(0, 6), (600, 16)], kind=Kind.RELATIVE, duration=1800)],
        dict(connector=1, start=T0, duration=H, transaction_start=T0 + 300),
        [(0, None), (300, 6), (900, 16), (2100, None)],
    ),
    "Daily recurring wraps at midnight": (
        [
            BASE_32,
            prof(
                2,
                TXD,
                [(0, 10), (4 * H, 8)],
                stack=1,
                kind=Kind.RECURRING,
                recurrency=Recurrency.DAILY,
                start=T0 + 22 * H,
                duration=8 * H,
            ),
        ],
        dict(connector=1, start=T0 + DAY_S, duration=DAY_S),
        [(0, 10), (2 * H, 8), (6 * H, 32), (22 * H, 10)],
    ),
    "Weekly recurring skips the other days": (
        [
            BASE_32,
            prof(
                2, TXD, [(0, 6)], stack=1, kind=Kind.RECURRING, recurrency=Recurrency.WEEKLY, start=T0, duration=2 * H
            ),
        ],
        dict(connector=1, start=T0 + DAY_S, duration=7 * DAY_S),
        [(0, 32), (6 * DAY_S, 6), (6 * DAY_S + 2 * H, 32)],
    ),
    "Recurring has not started before startSchedule": (
        [
            BASE_32,
            prof(
                2,
                TXD,
                [(0, 10)],
                stack=1,
                kind=Kind.RECURRING,
                recurrency=Recurrency.DAILY,
                start=T0 + DAY_S,
                duration=H,
            ),
        ],
        dict(connector=1, start=T0, duration=2 * DAY_S),
        [(0, 32), (DAY_S, 10), (DAY_S + H, 32)],
    ),
    "validFrom/validTo window": (
        [BASE_32, prof(2, TXD, [(0, 16)], stack=1, valid=(T0 + H, T0 + 2 * H))],
        dict(connector=1, start=T0, duration=3 * H),
        [(0, 32), (H, 16), (2 * H, 32)],
    ),
    "profile starting in the future": (
        [prof(2, TXD, [(0, 16)], start=T0 + H)],
        dict(connector=1, start=T0, duration=2 * H),
        [(0, None), (H, 16)],
    ),
    "W cap converted to A (230 V x 3)": (
        [BASE_32, prof(3, MAX, [(0, 11040)], unit=W)],
        dict(connector=1, start=T0, duration=H, unit=A),
        [(0, 16)],
    ),
    "A converted to W, single-phase period": (
        [prof(1, TXD, [(0, 32, 1)]), prof(3, MAX, [(0, 11040)], unit=W)],
        dict(connector=1, start=T0, duration=H, unit=W),
        [(0, 7360)],
    ),
    "A converted to W at 120 V, 1 phase by argument": (
        [prof(1, TXD, [(0, 40)])],
        dict(connector=1, start=T0, duration=H, unit=W, volts_per_phase=120.0, phases=1),
        [(0, 4800)],
    ),
}


@pytest.mark.parametrize(("profiles", "query", "expected"), COMPOSITE_CASES.values(), ids=COMPOSITE_CASES.keys())
def test_composite(profiles: list[ChargingProfile], query: dict[str, Any], expected: list[tuple]) -> None:
    store = store_with(*profiles)
    query = dict(query)
    connector, start, duration = query.pop("connector"), query.pop("start"), query.pop("duration")
    assert steps(store, connector, start, duration, **query) == expected


def test_limit_at_carries_unit_and_phases() -> None:
    store = store_with(prof(1, TXD, [(0, 32, 1)]), prof(3, MAX, [(0, 22080)], unit=W))
    assert store.limit_at(1, T0) == Limit(32, A, 1)
    assert store.limit_at(1, T0, unit=W) == Limit(7360, W, 1)
    assert store.limit_at(0, T0) == Limit(22080, W, None)
    assert ProfileStore(1).limit_at(1, T0) is None


def test_relative_uses_the_running_transaction() -> None:
    store = store_with(prof(1, TXD, [(0, 6), (600, 16)], kind=Kind.RELATIVE))
    store.start_transaction(1, 42, T0 + 100)
    assert store.limit_at(1, T0 + 650) == Limit(6, A)
    assert store.limit_at(1, T0 + 700) == Limit(16, A)
    assert store.next_change(1, T0 + 650) == T0 + 700


NEXT_CHANGE_CASES = {
    "end of a stacked profile": ([BASE_32, prof(2, TXD, [(0, 16)], stack=1, duration=H)], T0 + 10, T0 + H),
    "a period change": ([prof(1, TXD, [(0, 16), (600, 8)])], T0, T0 + 600),
    "equal limits are no change": ([prof(1, TXD, [(0, 16), (600, 16), (900, 8)])], T0, T0 + 900),
    "validTo": ([BASE_32, prof(2, TXD, [(0, 16)], stack=1, valid=(None, T0 + 5 * H))], T0, T0 + 5 * H),
    "never": ([BASE_32], T0, None),
    "next day's recurrence": (
        [
            BASE_32,
            prof(
                2,
                TXD,
                [(0, 10)],
                stack=1,
                kind=Kind.RECURRING,
                recurrency=Recurrency.DAILY,
                start=T0 + 22 * H,
                duration=H,
            ),
        ],
        T0 + DAY_S + 23 * H + 1,
        T0 + 2 * DAY_S + 22 * H,
    ),
    "cap only starts later": ([BASE_32, prof(3, MAX, [(0, 40), (2 * H, 20)])], T0, T0 + 2 * H),
}


@pytest.mark.parametrize(("profiles", "now", "expected"), NEXT_CHANGE_CASES.values(), ids=NEXT_CHANGE_CASES.keys())
def test_next_change(profiles: list[ChargingProfile], now: float, expected: float | None) -> None:
    assert store_with(*profiles).next_change(1, now) == expected


# --- storage -------------------------------------------------------------------------------------


def test_same_id_replaces() -> None:
    store = store_with(prof(1, TXD, [(0, 32)]), prof(1, TXD, [(0, 20)], stack=4))
    assert [(p.id, p.stack_level) for p in store.profiles] == [(1, 4)]
    assert store.limit_at(1, T0) == Limit(20, A)


def test_same_stack_level_and_purpose_replaces_in_16() -> None:
    store = store_with(prof(1, TXD, [(0, 32)], stack=2), prof(2, TXD, [(0, 20)], stack=2))
    assert [p.id for p in store.profiles] == [2]


def test_same_stack_level_on_other_connector_stacks_next_to_it() -> None:
    store = store_with(prof(1, TXD, [(0, 32)], stack=2), prof(2, TXD, [(0, 20)], stack=2, connector=1))
    assert [p.id for p in store.profiles] == [1, 2]


REJECT_CONFLICT_CASES = {
    "overlapping validity: Rejected": (prof(2, TXD, [(0, 20)], stack=2), ProfileStatus.REJECTED, [1]),
    "disjoint validity: Accepted": (
        prof(2, TXD, [(0, 20)], stack=2, valid=(T0 + 10 * DAY_S, None)),
        ProfileStatus.ACCEPTED,
        [1, 2],
    ),
    "same id: replaces": (prof(1, TXD, [(0, 20)], stack=2), ProfileStatus.ACCEPTED, [1]),
    "other stack level: Accepted": (prof(2, TXD, [(0, 20)], stack=3), ProfileStatus.ACCEPTED, [1, 2]),
}


@pytest.mark.parametrize(("new", "status", "ids"), REJECT_CONFLICT_CASES.values(), ids=REJECT_CONFLICT_CASES.keys())
def test_201_conflict_rule(new: ChargingProfile, status: ProfileStatus, ids: list[int]) -> None:
    store = store_with(prof(1, TXD, [(0, 32)], stack=2, valid=(T0, T0 + DAY_S)))
    assert store.install(new, T0, Conflict.REJECT).status is status
    assert [p.id for p in store.profiles] == ids


def test_transaction_end_removes_tx_profiles() -> None:
    store = store_with(BASE_32, prof(2, TX, [(0, 10)], connector=1, tx="9"), prof(3, TX, [(0, 8)], connector=2))
    removed = store.end_transaction(1)
    assert [p.id for p in removed] == [2]
    assert [p.id for p in store.profiles] == [1, 3]


def test_purge_expired() -> None:
    store = store_with(BASE_32, prof(2, TXD, [(0, 16)], stack=1, valid=(None, T0 + H)))
    assert [p.id for p in store.purge_expired(T0 + H)] == [2]


CLEAR_SET = [
    prof(1, MAX, [(0, 63)]),
    prof(2, TXD, [(0, 32)]),
    prof(3, TXD, [(0, 16)], stack=1, connector=1),
    prof(4, TXD, [(0, 16)], stack=2, connector=2),
    prof(5, TX, [(0, 10)], stack=1, connector=1, tx="1"),
]

CLEAR_CASES = {
    "by id": (dict(id=3), ClearStatus.ACCEPTED, [1, 2, 4, 5]),
    "by id ignores other criteria": (dict(id=3, connector_id=2), ClearStatus.ACCEPTED, [1, 2, 4, 5]),
    "unknown id": (dict(id=99), ClearStatus.UNKNOWN, [1, 2, 3, 4, 5]),
    "by connector": (dict(connector_id=1), ClearStatus.ACCEPTED, [1, 2, 4]),
    "connector 0 means the station's own": (dict(connector_id=0), ClearStatus.ACCEPTED, [3, 4, 5]),
    "by purpose": (dict(purpose=TXD), ClearStatus.ACCEPTED, [1, 5]),
    "by purpose and stack level": (dict(purpose=TXD, stack_level=1), ClearStatus.ACCEPTED, [1, 2, 4, 5]),
    "criteria matching nothing": (dict(purpose=MAX, connector_id=1), ClearStatus.UNKNOWN, [1, 2, 3, 4, 5]),
    "everything": ({}, ClearStatus.ACCEPTED, []),
}


@pytest.mark.parametrize(("criteria", "status", "left"), CLEAR_CASES.values(), ids=CLEAR_CASES.keys())
def test_clear(criteria: dict[str, Any], status: ClearStatus, left: list[int]) -> None:
    store = store_with(*CLEAR_SET)
    assert store.clear(**criteria) is status
    assert [p.id for p in store.profiles] == left


CLEAR_WIRE_CASES = {
    "1.6 by id": ("v16", {"id": 4}, "Accepted", [1, 2, 3, 5, 6]),
    "1.6 by connector and purpose": (
        "v16",
        {"connectorId": 1, "chargingProfilePurpose": "TxProfile"},
        "Accepted",
        [1, 2, 3, 4, 6],
    ),
    "1.6 ChargePointMaxProfile": (
        "v16",
        {"chargingProfilePurpose": "ChargePointMaxProfile"},
        "Accepted",
        [2, 3, 4, 5, 6],
    ),
    "1.6 unknown": ("v16", {"stackLevel": 7}, "Unknown", [1, 2, 3, 4, 5, 6]),
    "2.0.1 by id": ("v201", {"chargingProfileId": 2}, "Accepted", [1, 3, 4, 5, 6]),
    "2.0.1 by criteria": (
        "v201",
        {"chargingProfileCriteria": {"evseId": 2, "stackLevel": 2}},
        "Accepted",
        [1, 2, 3, 5, 6],
    ),
    "2.0.1 all but external constraints": ("v201", {}, "Accepted", [6]),
    "2.0.1 external constraints are kept": (
        "v201",
        {"chargingProfileCriteria": {"chargingProfilePurpose": "ChargingStationExternalConstraints"}},
        "Unknown",
        [1, 2, 3, 4, 5, 6],
    ),
}


@pytest.mark.parametrize(
    ("version", "payload", "status", "left"), CLEAR_WIRE_CASES.values(), ids=CLEAR_WIRE_CASES.keys()
)
def test_clear_payloads(version: str, payload: dict[str, Any], status: str, left: list[int]) -> None:
    name = "ClearChargingProfile" if version == "v16" else "ClearChargingProfileRequest"
    validate(version, name, payload)
    store = store_with(*CLEAR_SET, prof(6, EXT, [(0, 40)]))
    handler = store.clear_charging_profile_v16 if version == "v16" else store.clear_charging_profile_v201
    response = clear_charging_profile_response(handler(payload))
    validate(version, "ClearChargingProfileResponse", response)
    assert response == {"status": status}
    assert [p.id for p in store.profiles] == left


# --- 1.6 SetChargingProfile ---------------------------------------------------------------------


def v16_payload(connector: int = 1, **profile: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chargingProfileId": 11,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": "2024-03-01T00:00:00Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 1800, "limit": 8.5}],
        },
    }
    body.update(profile)
    return {"connectorId": connector, "csChargingProfiles": body}


def tx16(**kw: Any) -> dict[str, Any]:
    return v16_payload(
        chargingProfilePurpose="TxProfile",
        chargingProfileKind="Relative",
        chargingSchedule={
            "chargingRateUnit": "W",
            "duration": 3600,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0, "numberPhases": 1}],
        },
        **kw,
    )


V16_SET_CASES = {
    "TxDefault on a connector": (v16_payload(), False, "Accepted", None),
    "TxDefault on connector 0": (v16_payload(0), False, "Accepted", None),
    "ChargePointMaxProfile on connector 0": (
        v16_payload(0, chargingProfilePurpose="ChargePointMaxProfile"),
        False,
        "Accepted",
        None,
    ),
    "ChargePointMaxProfile on connector 1": (
        v16_payload(1, chargingProfilePurpose="ChargePointMaxProfile"),
        False,
        "Rejected",
        "InvalidProfile",
    ),
    "TxProfile with a transaction": (tx16(), True, "Accepted", None),
    "TxProfile with its transactionId": (tx16(transactionId=77), True, "Accepted", None),
    "TxProfile without a transaction": (tx16(), False, "Rejected", "TxNotFound"),
    "TxProfile for another transaction": (tx16(transactionId=78), True, "Rejected", "TxNotFound"),
    "TxProfile on connector 0": (
        v16_payload(0, chargingProfilePurpose="TxProfile"),
        True,
        "Rejected",
        "InvalidProfile",
    ),
    "transactionId on TxDefault": (v16_payload(transactionId=77), True, "Rejected", "InvalidProfile"),
    "unknown connector": (v16_payload(3), False, "Rejected", "UnknownEVSE"),
    "first period not at 0": (
        v16_payload(
            chargingSchedule={"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 60, "limit": 16.0}]}
        ),
        False,
        "Rejected",
        "InvalidSchedule",
    ),
    "periods out of order": (
        v16_payload(
            chargingSchedule={
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 0, "limit": 8.0}],
            }
        ),
        False,
        "Rejected",
        "InvalidSchedule",
    ),
    "Recurring without recurrencyKind": (
        v16_payload(chargingProfileKind="Recurring"),
        False,
        "Rejected",
        "InvalidSchedule",
    ),
    "Recurring Daily": (v16_payload(chargingProfileKind="Recurring", recurrencyKind="Daily"), False, "Accepted", None),
    "validTo before validFrom": (
        v16_payload(validFrom="2024-03-02T00:00:00Z", validTo="2024-03-01T00:00:00Z"),
        False,
        "Rejected",
        "InvalidProfile",
    ),
}


@pytest.mark.parametrize(("payload", "in_tx", "status", "reason"), V16_SET_CASES.values(), ids=V16_SET_CASES.keys())
def test_set_charging_profile_v16(payload: dict[str, Any], in_tx: bool, status: str, reason: str | None) -> None:
    validate("v16", "SetChargingProfile", payload)
    store = ProfileStore(2)
    if in_tx:
        store.start_transaction(1, 77, T0)
    outcome = store.set_charging_profile_v16(payload, T0)
    response = set_charging_profile_response_v16(outcome)
    validate("v16", "SetChargingProfileResponse", response)
    assert (response["status"], outcome.reason) == (status, reason)
    assert len(store.profiles) == (1 if status == "Accepted" else 0)


def test_v16_payload_is_read_faithfully() -> None:
    store = ProfileStore(2)
    store.start_transaction(1, 77, T0 + 60)
    profile = store.set_charging_profile_v16(tx16(validFrom="2024-03-01T00:00:00Z"), T0).profile
    assert profile == ChargingProfile(
        id=11,
        stack_level=1,
        purpose=TX,
        kind=Kind.RELATIVE,
        connector_id=1,
        transaction_id="77",
        valid_from=T0,
        schedules=(ChargingSchedule(W, (SchedulePeriod(0, 7400.0, 1),), duration_s=3600),),
    )
    assert store.limit_at(1, T0 + 60) == Limit(7400.0, W, 1)
    assert store.limit_at(1, T0 + 60, unit=A) == Limit(pytest.approx(7400 / 230), A, 1)
    assert store.next_change(1, T0 + 60) == T0 + 60 + 3600


# --- 2.0.1 SetChargingProfile --------------------------------------------------------------------


def v201_payload(evse: int = 1, **profile: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": 21,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2024-03-01T00:00:00.000Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0, "numberPhases": 3}],
            }
        ],
    }
    body.update(profile)
    return {"evseId": evse, "chargingProfile": body}


RELATIVE_SCHEDULE = [
    {"id": 2, "chargingRateUnit": "A", "duration": 7200, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}
]

V201_SET_CASES = {
    "TxDefault on an EVSE": (v201_payload(), "Accepted", None),
    "ChargingStationMaxProfile on EVSE 0": (
        v201_payload(0, chargingProfilePurpose="ChargingStationMaxProfile"),
        "Accepted",
        None,
    ),
    "ChargingStationMaxProfile on EVSE 1": (
        v201_payload(1, chargingProfilePurpose="ChargingStationMaxProfile"),
        "Rejected",
        "InvalidProfile",
    ),
    "ChargingStationMaxProfile Relative (K01.FR.38)": (
        v201_payload(
            0,
            chargingProfilePurpose="ChargingStationMaxProfile",
            chargingProfileKind="Relative",
            chargingSchedule=RELATIVE_SCHEDULE,
        ),
        "Rejected",
        "InvalidProfile",
    ),
    "ExternalConstraints from the CSMS": (
        v201_payload(0, chargingProfilePurpose="ChargingStationExternalConstraints"),
        "Rejected",
        "InvalidProfile",
    ),
    "TxProfile for the running transaction": (
        v201_payload(chargingProfilePurpose="TxProfile", transactionId="tx-1"),
        "Accepted",
        None,
    ),
    "TxProfile without transactionId (K01.FR.03)": (
        v201_payload(chargingProfilePurpose="TxProfile"),
        "Rejected",
        "TxNotFound",
    ),
    "TxProfile for an unknown transaction": (
        v201_payload(chargingProfilePurpose="TxProfile", transactionId="tx-2"),
        "Rejected",
        "TxNotFound",
    ),
    "TxProfile on EVSE 2, transaction on EVSE 1": (
        v201_payload(2, chargingProfilePurpose="TxProfile", transactionId="tx-1"),
        "Rejected",
        "TxNotFound",
    ),
    "Absolute without startSchedule (K01.FR.40)": (
        v201_payload(
            chargingSchedule=[
                {"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0}]}
            ]
        ),
        "Rejected",
        "InvalidSchedule",
    ),
    "Relative with startSchedule (K01.FR.41)": (
        v201_payload(chargingProfileKind="Relative"),
        "Rejected",
        "InvalidSchedule",
    ),
    "Relative": (v201_payload(chargingProfileKind="Relative", chargingSchedule=RELATIVE_SCHEDULE), "Accepted", None),
    "negative stack level": (v201_payload(stackLevel=-1), "Rejected", "InvalidStackLevel"),
    "unknown EVSE": (v201_payload(5), "Rejected", "UnknownEVSE"),
}


@pytest.mark.parametrize(("payload", "status", "reason"), V201_SET_CASES.values(), ids=V201_SET_CASES.keys())
def test_set_charging_profile_v201(payload: dict[str, Any], status: str, reason: str | None) -> None:
    validate("v201", "SetChargingProfileRequest", payload)
    store = ProfileStore(2)
    store.start_transaction(1, "tx-1", T0)
    outcome = store.set_charging_profile_v201(payload, T0)
    response = set_charging_profile_response_v201(outcome)
    validate("v201", "SetChargingProfileResponse", response)
    assert response["status"] == status
    assert response.get("statusInfo", {}).get("reasonCode") == reason
    assert len(store.profiles) == (1 if status == "Accepted" else 0)


def test_v201_same_stack_level_and_purpose_is_rejected_not_replaced() -> None:
    store = ProfileStore(2)
    assert store.set_charging_profile_v201(v201_payload(), T0).accepted
    second = store.set_charging_profile_v201(v201_payload(id=22), T0)
    assert (second.status, second.reason) == (ProfileStatus.REJECTED, "DuplicateProfile")
    assert store.set_charging_profile_v201(v201_payload(id=21, stackLevel=0), T0).accepted  # same id
    assert [p.id for p in store.profiles] == [21]


def test_v201_same_transaction_and_stack_level_is_rejected() -> None:
    store = ProfileStore(2)
    store.start_transaction(1, "tx-1", T0)
    tx = {"chargingProfilePurpose": "TxProfile", "transactionId": "tx-1"}
    assert store.set_charging_profile_v201(v201_payload(id=31, **tx), T0).accepted
    assert store.set_charging_profile_v201(v201_payload(id=32, **tx), T0).reason == "DuplicateProfile"


def test_v201_three_schedules_first_active_applies() -> None:
    schedules = [
        {
            "id": n,
            "startSchedule": start,
            "duration": 3600,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        }
        for n, start, limit in [
            (1, "2024-03-01T01:00:00Z", 10.0),
            (2, "2024-03-01T00:00:00Z", 20.0),
            (3, "2024-03-01T01:30:00Z", 30.0),
        ]
    ]
    payload = v201_payload(chargingSchedule=schedules)
    validate("v201", "SetChargingProfileRequest", payload)
    store = ProfileStore(1)
    assert store.set_charging_profile_v201(payload, T0).accepted
    assert steps(store, 1, T0, 3 * H) == [(0, 20), (H, 10), (2 * H, 30), (2.5 * H, None)]


# --- GetCompositeSchedule ------------------------------------------------------------------------

COMPOSITE_WIRE_PROFILES = [
    prof(1, TXD, [(0, 32), (1800, 13.333)], duration=2 * H),
    prof(2, MAX, [(0, 22080), (H, 5000)], unit=W),
]


@pytest.mark.parametrize("unit", [None, "A", "W"])
def test_get_composite_schedule_v16(unit: str | None) -> None:
    request: dict[str, Any] = {"connectorId": 1, "duration": 3 * H}
    if unit:
        request["chargingRateUnit"] = unit
    validate("v16", "GetCompositeSchedule", request)
    store = store_with(*COMPOSITE_WIRE_PROFILES)
    response = store.get_composite_schedule_v16(request, T0, rating=32)
    validate("v16", "GetCompositeScheduleResponse", response)
    schedule = response["chargingSchedule"]
    assert response["scheduleStart"] == schedule["startSchedule"] == "2024-03-01T00:00:00Z"
    if unit == "W":
        assert schedule["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 22080.0},
            {"startPeriod": 1800, "limit": 9199.8},
            {"startPeriod": 3600, "limit": 5000.0},
        ]
    else:
        assert schedule["chargingRateUnit"] == "A"
        assert schedule["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 32.0},
            {"startPeriod": 1800, "limit": 13.3},
            {"startPeriod": 3600, "limit": 7.2},
        ]


def test_get_composite_schedule_v16_gap_needs_a_rating() -> None:
    store = store_with(prof(1, TXD, [(0, 16)], duration=H))
    request = {"connectorId": 1, "duration": 2 * H}
    assert store.get_composite_schedule_v16(request, T0) == {"status": "Rejected"}
    response = store.get_composite_schedule_v16(request, T0, rating=32)
    validate("v16", "GetCompositeScheduleResponse", response)
    assert response["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16.0},
        {"startPeriod": 3600, "limit": 32.0},
    ]
    assert store.get_composite_schedule_v16({"connectorId": 9, "duration": 60}, T0) == {"status": "Rejected"}


def test_get_composite_schedule_v201() -> None:
    request = {"evseId": 1, "duration": 3 * H, "chargingRateUnit": "A"}
    validate("v201", "GetCompositeScheduleRequest", request)
    store = store_with(*COMPOSITE_WIRE_PROFILES, prof(3, EXT, [(0, 10)], connector=1, start=T0 + 2 * H))
    response = store.get_composite_schedule_v201(request, T0 + 0.5, rating=32)
    validate("v201", "GetCompositeScheduleResponse", response)
    assert response == {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 10800,
            "scheduleStart": "2024-03-01T00:00:00.500Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 32.0},
                {"startPeriod": 1800, "limit": 13.3},
                {"startPeriod": 3600, "limit": 7.2},
            ],
        },
    }
    assert store.get_composite_schedule_v201({"evseId": 3, "duration": 60}, T0) == {"status": "Rejected"}


def test_composite_response_builders_without_schedule() -> None:
    builders = [(composite_schedule_response_v16, "v16"), (composite_schedule_response_v201, "v201")]
    for build, version in builders:
        response = build(None)
        validate(version, "GetCompositeScheduleResponse", response)
        assert response == {"status": "Rejected"}


def test_instants_round_trip() -> None:
    assert format_instant(T0) == "2024-03-01T00:00:00Z"
    assert parse_instant("2024-03-01T01:00:00+01:00") == T0
    assert parse_instant("2024-03-01T00:00:00") == T0  # no offset: UTC
    assert parse_instant(format_instant(T0 + 0.25)) == T0 + 0.25


# --- properties ----------------------------------------------------------------------------------

LIMITS = st.sampled_from([0.0, 6.0, 8.0, 10.0, 13.5, 16.0, 20.0, 32.0])


@st.composite
def profiles(draw: st.DrawFn, id: int) -> ChargingProfile:
    purpose = draw(st.sampled_from([MAX, TXD, TXD, TX, EXT]))
    connector = 0 if purpose is MAX else (1 if purpose is TX else draw(st.sampled_from([0, 1, 2])))
    kind = draw(st.sampled_from([Kind.ABSOLUTE, Kind.RELATIVE, Kind.RECURRING]))
    starts = sorted(draw(st.sets(st.integers(1, 4 * H), max_size=3)))
    periods = [(s, draw(LIMITS), draw(st.sampled_from([1, 3]))) for s in [0, *starts]]
    valid_from = draw(st.none() | st.integers(-H, 6 * H).map(lambda s: T0 + s))
    valid_to = draw(st.none() | st.integers(1, 6 * H).map(lambda s: (valid_from or T0) + s))
    return prof(
        id,
        purpose,
        periods,
        stack=draw(st.integers(0, 3)),
        connector=connector,
        kind=kind,
        start=T0 + draw(st.integers(-DAY_S, 6 * H)),
        duration=draw(st.none() | st.integers(60, 6 * H)),
        recurrency=draw(st.sampled_from(list(Recurrency))) if kind is Kind.RECURRING else None,
        valid=(valid_from, valid_to),
        tx="1" if purpose is TX else None,
    )


@st.composite
def stores(draw: st.DrawFn) -> ProfileStore:
    count = draw(st.integers(0, 6))
    store = ProfileStore(2)
    for i in range(count):
        store.install(draw(profiles(i + 1)), T0, draw(st.sampled_from(list(Conflict))))
    return store


def station_max_at(store: ProfileStore, t: float, reference: float) -> float | None:
    """The winning station max profile's own limit at ``t`` (highest stack, latest installed)."""
    best: tuple[int, int, float] | None = None
    for order, p in enumerate(store.profiles):
        hit = active_period(p, t, reference) if p.purpose is MAX else None
        if hit is not None and (best is None or (p.stack_level, order) > best[:2]):
            best = (p.stack_level, order, hit[1].limit)
    return None if best is None else best[2]


@settings(max_examples=300, deadline=None)
@given(store=stores(), offset=st.integers(-H, 2 * DAY_S), connector=st.sampled_from([0, 1, 2]))
def test_composite_limit_is_capped_and_comes_from_a_profile(store: ProfileStore, offset: int, connector: int) -> None:
    t = T0 + offset
    limit = store.limit_at(connector, t, transaction_start=T0, unit=A)
    installed = {p.limit for prof_ in store.profiles for s in prof_.schedules for p in s.periods}
    cap = station_max_at(store, t, T0)
    if limit is None:
        assert cap is None
        return
    assert limit.value in installed
    if cap is not None:
        assert limit.value <= cap


@settings(max_examples=200, deadline=None)
@given(store=stores(), offset=st.integers(-H, DAY_S), probe=st.floats(0.0, 1.0))
def test_limit_is_constant_until_next_change(store: ProfileStore, offset: int, probe: float) -> None:
    now = T0 + offset
    change = store.next_change(1, now, transaction_start=T0)
    current = store.limit_at(1, now, transaction_start=T0)
    if change is None:
        later = now + probe * 8 * DAY_S
    else:
        assert change > now
        assert store.limit_at(1, change, transaction_start=T0) != current
        later = now + probe * (change - now)
        if later >= change:
            return
    assert store.limit_at(1, later, transaction_start=T0) == current


@settings(max_examples=150, deadline=None)
@given(store=stores(), offset=st.integers(-H, DAY_S))
def test_composite_agrees_with_limit_at(store: ProfileStore, offset: int) -> None:
    start = T0 + offset
    sched = store.composite_schedule(1, start, 6 * H, A, transaction_start=T0)
    for i, period in enumerate(sched.periods):
        end = sched.periods[i + 1].start_period_s if i + 1 < len(sched.periods) else 6 * H
        for t in (period.start_period_s, (period.start_period_s + end) / 2):
            lim = store.limit_at(1, start + t, transaction_start=T0, unit=A)
            assert (None if lim is None else lim.value) == period.limit


@settings(max_examples=200, deadline=None)
@given(
    store=stores(),
    offsets=st.lists(st.integers(-H, 2 * DAY_S), min_size=1, max_size=12),
    connector=st.sampled_from([0, 1, 2]),
    late=profiles(99),
    in_transaction=st.booleans(),
)
def test_kept_limit_answers_as_a_fresh_evaluation(
    store: ProfileStore, offsets: list[int], connector: int, late: ChargingProfile, in_transaction: bool
) -> None:
    """The store keeps an answer until the next breakpoint (the twin asks at every step): asked along a run
    (mostly forward, sometimes back), and again after a profile arrives mid-run, it answers exactly what
    evaluating the profiles afresh answers, with or without a transaction to anchor Relative schedules."""
    start = T0 if in_transaction else None

    def fresh(t: float) -> Limit | None:
        return _composite.limit_at(store.profiles, connector, t, T0 if in_transaction else t, W, 230.0, 3)

    ordered = sorted(offsets) + offsets
    for i, offset in enumerate(ordered):
        if i == len(offsets):
            store.install(late, T0 + offset)
        t = T0 + offset
        kept = store.limit_at(connector, t, transaction_start=start, unit=W, volts_per_phase=230.0, phases=3)
        assert kept == fresh(t)


def test_kept_limit_sees_a_recurring_profile_that_starts_days_later() -> None:
    daily = prof(1, TXD, [(0, 16.0)], kind=Kind.RECURRING, start=T0 + 3 * DAY_S, recurrency=Recurrency.DAILY)
    store = store_with(daily)
    assert store.limit_at(1, T0, transaction_start=T0) is None
    assert store.limit_at(1, T0 + 3 * DAY_S + 60, transaction_start=T0) == Limit(16.0, A)
