"""The JSON edge: SetChargingProfile parsers with the station's validation, response builders.

Payloads are the camelCase dicts of the wire (already schema-valid: the RPC layer checks the
schema first and answers a FormatViolation itself). Datetimes are parsed here into POSIX
seconds and formatted back as UTC ``...Z`` strings; a datetime without offset is read as UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from ._model import (
    ActiveTransaction,
    ChargingProfile,
    ChargingSchedule,
    ClearStatus,
    CompositeSchedule,
    Kind,
    ProfileStatus,
    Purpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    SetProfileOutcome,
)

__all__ = [
    "V16_RULES",
    "V201_RULES",
    "ValidationContext",
    "clear_charging_profile_response",
    "composite_schedule_response_v16",
    "composite_schedule_response_v201",
    "format_instant",
    "parse_instant",
    "parse_set_charging_profile_v16",
    "parse_set_charging_profile_v201",
    "purpose_from_v16",
    "purpose_from_v201",
    "set_charging_profile_response_v16",
    "set_charging_profile_response_v201",
]

_V16_PURPOSES: Mapping[str, Purpose] = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}


def purpose_from_v16(name: str) -> Purpose:
    """Map a 1.6 ``chargingProfilePurpose`` to the neutral purpose."""
    return _V16_PURPOSES[name]


def purpose_from_v201(name: str) -> Purpose:
    """Map a 2.0.1 ``chargingProfilePurpose`` to the neutral purpose."""
    return Purpose(name)


def parse_instant(text: str) -> float:
    """ISO 8601 date-time to POSIX seconds; no offset means UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_instant(t: float) -> str:
    """POSIX seconds to an ISO 8601 UTC string ending in ``Z`` (milliseconds if fractional)."""
    moment = datetime.fromtimestamp(t, tz=UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _optional_instant(payload: Mapping[str, Any], key: str) -> float | None:
    return parse_instant(payload[key]) if key in payload else None


def _schedule(payload: Mapping[str, Any]) -> ChargingSchedule:
    return ChargingSchedule(
        rate_unit=RateUnit(payload["chargingRateUnit"]),
        periods=tuple(
            SchedulePeriod(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
            for p in payload["chargingSchedulePeriod"]
        ),
        duration_s=payload.get("duration"),
        start_schedule=_optional_instant(payload, "startSchedule"),
        min_charging_rate=None if "minChargingRate" not in payload else float(payload["minChargingRate"]),
        id=payload.get("id"),
    )


# --- validation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidationContext:
    """What the station knows when it validates: its size and its running transactions."""

    connector_count: int
    transactions: Mapping[int, ActiveTransaction]


def _bad_schedule(schedule: ChargingSchedule) -> bool:
    starts = [p.start_period_s for p in schedule.periods]
    return (
        not starts
        or starts[0] != 0
        or any(b <= a for a, b in pairwise(starts))
        or any(p.limit < 0 for p in schedule.periods)
        or any(p.number_phases is not None and not 1 <= p.number_phases <= 3 for p in schedule.periods)
        or (schedule.duration_s is not None and schedule.duration_s <= 0)
    )


def _tx_mismatch(p: ChargingProfile, ctx: ValidationContext) -> bool:
    if p.purpose is not Purpose.TX:
        return False
    active = ctx.transactions.get(p.connector_id)
    return active is None or (p.transaction_id is not None and p.transaction_id != active.transaction_id)


#: A rule: (reasonCode, what is wrong, predicate that is True when the profile breaks it).
Rule = tuple[str, str, Callable[[ChargingProfile, ValidationContext], bool]]

_COMMON_RULES: tuple[Rule, ...] = (
    ("UnknownEVSE", "connector/EVSE does not exist", lambda p, c: not 0 <= p.connector_id <= c.connector_count),
    ("InvalidStackLevel", "stackLevel is negative", lambda p, c: p.stack_level < 0),
    (
        "InvalidSchedule",
        "periods must start at 0, increase, be >= 0, 1-3 phases",
        lambda p, c: any(_bad_schedule(s) for s in p.schedules),
    ),
    (
        "InvalidSchedule",
        "Recurring needs recurrencyKind and startSchedule",
        lambda p, c: (
            p.kind is Kind.RECURRING and (p.recurrency is None or any(s.start_schedule is None for s in p.schedules))
        ),
    ),
    (
        "InvalidProfile",
        "validTo is not after validFrom",
        lambda p, c: p.valid_from is not None and p.valid_to is not None and p.valid_to <= p.valid_from,
    ),
    (
        "InvalidProfile",
        "station max profile only on connector/EVSE 0",
        lambda p, c: p.purpose is Purpose.STATION_MAX and p.connector_id != 0,
    ),
    (
        "InvalidProfile",
        "TxProfile not on connector/EVSE 0",
        lambda p, c: p.purpose is Purpose.TX and p.connector_id == 0,
    ),
    (
        "InvalidProfile",
        "transactionId only with TxProfile",
        lambda p, c: p.purpose is not Purpose.TX and p.transaction_id is not None,
    ),
    ("TxNotFound", "TxProfile without that active transaction on the connector/EVSE", _tx_mismatch),
)

#: OCPP 1.6 SetChargingProfile checks, in order; the first broken one rejects.
V16_RULES: tuple[Rule, ...] = _COMMON_RULES

#: OCPP 2.0.1 SetChargingProfile checks (K01), in order; the first broken one rejects.
V201_RULES: tuple[Rule, ...] = (
    (
        "InvalidProfile",
        "ChargingStationExternalConstraints is set locally, not by the CSMS",
        lambda p, c: p.purpose is Purpose.EXTERNAL_CONSTRAINTS,
    ),
    (
        "TxNotFound",
        "TxProfile needs a transactionId (K01.FR.03)",
        lambda p, c: p.purpose is Purpose.TX and p.transaction_id is None,
    ),
    *_COMMON_RULES,
    (
        "InvalidProfile",
        "ChargingStationMaxProfile cannot be Relative (K01.FR.38)",
        lambda p, c: p.purpose is Purpose.STATION_MAX and p.kind is Kind.RELATIVE,
    ),
    (
        "InvalidSchedule",
        "Absolute/Recurring need startSchedule (K01.FR.40)",
        lambda p, c: p.kind is not Kind.RELATIVE and any(s.start_schedule is None for s in p.schedules),
    ),
    (
        "InvalidSchedule",
        "Relative must not have startSchedule (K01.FR.41)",
        lambda p, c: p.kind is Kind.RELATIVE and any(s.start_schedule is not None for s in p.schedules),
    ),
)


def _check(profile: ChargingProfile, rules: tuple[Rule, ...], ctx: ValidationContext) -> SetProfileOutcome:
    for reason, detail, broken in rules:
        if broken(profile, ctx):
            return SetProfileOutcome(ProfileStatus.REJECTED, None, reason, detail)
    return SetProfileOutcome(ProfileStatus.ACCEPTED, profile)


def parse_set_charging_profile_v16(payload: Mapping[str, Any], ctx: ValidationContext) -> SetProfileOutcome:
    """Read a 1.6 ``SetChargingProfile.req`` and validate it as a Charge Point does.

    A TxProfile without ``transactionId`` is bound to the transaction running on its connector.

    Returns:
        Accepted with the profile to store, or Rejected with a reason; never raises for a
        schema-valid payload.
    """
    raw = payload["csChargingProfiles"]
    tx_id = raw.get("transactionId")
    profile = ChargingProfile(
        id=raw["chargingProfileId"],
        stack_level=raw["stackLevel"],
        purpose=purpose_from_v16(raw["chargingProfilePurpose"]),
        kind=Kind(raw["chargingProfileKind"]),
        schedules=(_schedule(raw["chargingSchedule"]),),
        connector_id=payload["connectorId"],
        recurrency=Recurrency(raw["recurrencyKind"]) if "recurrencyKind" in raw else None,
        valid_from=_optional_instant(raw, "validFrom"),
        valid_to=_optional_instant(raw, "validTo"),
        transaction_id=None if tx_id is None else str(tx_id),
    )
    outcome = _check(profile, V16_RULES, ctx)
    if outcome.accepted and profile.purpose is Purpose.TX and profile.transaction_id is None:
        bound = replace(profile, transaction_id=ctx.transactions[profile.connector_id].transaction_id)
        return SetProfileOutcome(ProfileStatus.ACCEPTED, bound)
    return outcome


def parse_set_charging_profile_v201(payload: Mapping[str, Any], ctx: ValidationContext) -> SetProfileOutcome:
    """Read a 2.0.1 ``SetChargingProfileRequest`` and validate it as a Charging Station does (K01).

    Returns:
        Accepted with the profile to store, or Rejected with a reason code; never raises for a
        schema-valid payload.
    """
    raw = payload["chargingProfile"]
    unsupported = _beyond_201(raw)
    if unsupported is not None:
        return SetProfileOutcome(ProfileStatus.REJECTED, None, "UnsupportedRequest", unsupported)
    profile = ChargingProfile(
        id=raw["id"],
        stack_level=raw["stackLevel"],
        purpose=purpose_from_v201(raw["chargingProfilePurpose"]),
        kind=Kind(raw["chargingProfileKind"]),
        schedules=tuple(_schedule(s) for s in raw["chargingSchedule"]),
        connector_id=payload["evseId"],
        recurrency=Recurrency(raw["recurrencyKind"]) if "recurrencyKind" in raw else None,
        valid_from=_optional_instant(raw, "validFrom"),
        valid_to=_optional_instant(raw, "validTo"),
        transaction_id=raw.get("transactionId"),
    )
    return _check(profile, V201_RULES, ctx)


def _beyond_201(raw: Mapping[str, Any]) -> str | None:
    """What of an OCPP 2.1 profile the twin, a charger at the 2.0.1 level, does not do (None: nothing).

    2.1 adds purposes (PriorityCharging, LocalGeneration), the Dynamic kind and periods that set a setpoint or
    operation mode instead of a ``limit``; the 2.1 schema lets them through, so they are refused here.
    """
    purpose, kind = raw["chargingProfilePurpose"], raw["chargingProfileKind"]
    if purpose not in {p.value for p in Purpose}:
        return f"chargingProfilePurpose {purpose} is not supported"
    if kind not in {k.value for k in Kind}:
        return f"chargingProfileKind {kind} is not supported"
    for schedule in raw["chargingSchedule"]:
        if any("limit" not in period for period in schedule["chargingSchedulePeriod"]):
            return "a chargingSchedulePeriod without limit (2.1 setpoints and operation modes) is not supported"
    return None


# --- responses -------------------------------------------------------------------------------


def set_charging_profile_response_v16(outcome: SetProfileOutcome) -> dict[str, Any]:
    """``SetChargingProfile.conf`` for 1.6."""
    return {"status": outcome.status.value}


def set_charging_profile_response_v201(outcome: SetProfileOutcome) -> dict[str, Any]:
    """``SetChargingProfileResponse`` for 2.0.1, with ``statusInfo`` when Rejected."""
    body: dict[str, Any] = {"status": outcome.status.value}
    if outcome.reason is not None:
        body["statusInfo"] = {"reasonCode": outcome.reason, "additionalInfo": (outcome.detail or "")[:512]}
    return body


def clear_charging_profile_response(status: ClearStatus) -> dict[str, Any]:
    """``ClearChargingProfile`` response body, the same in both versions."""
    return {"status": status.value}


def _wire_periods(schedule: CompositeSchedule, rating: float | None) -> list[dict[str, Any]] | None:
    """Periods with integer starts and 1-decimal limits, re-merged; None if a gap has no rating."""
    out: list[dict[str, Any]] = []
    for period in schedule.periods:
        limit = period.limit if period.limit is not None else rating
        if limit is None:
            return None
        item: dict[str, Any] = {"startPeriod": round(period.start_period_s), "limit": round(limit, 1)}
        if period.number_phases is not None:
            item["numberPhases"] = period.number_phases
        if out and out[-1]["startPeriod"] == item["startPeriod"]:
            out.pop()  # two changes inside one second: the later one stands
        if out and {k: v for k, v in out[-1].items() if k != "startPeriod"} == {
            k: v for k, v in item.items() if k != "startPeriod"
        }:
            continue
        out.append(item)
    return out


def composite_schedule_response_v16(schedule: CompositeSchedule | None, rating: float | None = None) -> dict[str, Any]:
    """``GetCompositeSchedule.conf`` for 1.6.

    Args:
        schedule: the composite, or None to reply Rejected (e.g. unknown connector).
        rating: the limit reported where no profile limits charging (the hardware rating in the
            schedule's unit); without it such a gap makes the reply Rejected.
    """
    periods = None if schedule is None else _wire_periods(schedule, rating)
    if schedule is None or periods is None:
        return {"status": "Rejected"}
    start = format_instant(schedule.start)
    return {
        "status": "Accepted",
        "connectorId": schedule.connector_id,
        "scheduleStart": start,
        "chargingSchedule": {
            "duration": round(schedule.duration_s),
            "startSchedule": start,
            "chargingRateUnit": schedule.unit.value,
            "chargingSchedulePeriod": periods,
        },
    }


def composite_schedule_response_v201(schedule: CompositeSchedule | None, rating: float | None = None) -> dict[str, Any]:
    """``GetCompositeScheduleResponse`` for 2.0.1; arguments as in the 1.6 builder."""
    periods = None if schedule is None else _wire_periods(schedule, rating)
    if schedule is None or periods is None:
        return {"status": "Rejected"}
    return {
        "status": "Accepted",
        "schedule": {
            "evseId": schedule.connector_id,
            "duration": round(schedule.duration_s),
            "scheduleStart": format_instant(schedule.start),
            "chargingRateUnit": schedule.unit.value,
            "chargingSchedulePeriod": periods,
        },
    }
