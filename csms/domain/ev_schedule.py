"""Is the EV's charging schedule (ISO 15118, 2.0.1 NotifyEVChargingSchedule) within the TxProfile it was given?

K15.FR.11/FR.12 (and K17 after a renegotiation): the CSMS accepts the EV's schedule when it stays within the
limits of the charging profile the CSMS sent for the transaction, and rejects it when it exceeds them.

Both schedules are step functions of time: the profile's periods start at its ``startSchedule`` (Absolute; a
Relative one at the time it was accepted), the EV's at ``timeBase``. The EV's limit at each of its period starts,
and :data:`SLACK_S` after each of the profile's steps, is compared with the profile's highest limit over the
:data:`SLACK_S` before that instant: the EV answers the station some seconds after the profile was made, so its
schedule lags the profile's by that much and must not be rejected for it; so a step down of the profile binds
the EV from :data:`SLACK_S` after it. Different units (A and W) are compared
at :data:`NOMINAL_VOLTAGE_V` per phase; that is an estimate, so a tolerance of :data:`TOLERANCE` is allowed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SLACK_S = 60.0
NOMINAL_VOLTAGE_V = 230.0
TOLERANCE = 0.01


def _steps(schedule: dict[str, Any], start: float) -> list[tuple[float, float, int]]:
    """``(time, limit, phases)`` of each period, in order."""
    return [
        (start + float(p["startPeriod"]), float(p["limit"]), int(p.get("numberPhases", 3)))
        for p in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"])
    ]


def _limit_at(steps: list[tuple[float, float, int]], t: float, end: float | None) -> float | None:
    """The limit in force at ``t`` (None: before the first period or after ``end``)."""
    if end is not None and t >= end:
        return None
    current = None
    for at, limit, _ in steps:
        if at <= t:
            current = limit
    return current


def _in_unit(limit: float, unit: str, phases: int, target: str) -> float:
    if unit == target:
        return limit
    factor = NOMINAL_VOLTAGE_V * phases
    return limit * factor if target == "W" else limit / factor


def exceeds(
    ev_schedule: dict[str, Any], time_base: datetime, profile: dict[str, Any], accepted_at: float
) -> str | None:
    """Why the EV's schedule exceeds the profile's limits; None when it stays within them.

    Args:
        ev_schedule: the ChargingScheduleType of NotifyEVChargingSchedule, relative to ``time_base``.
        profile: the ChargingProfileType the station accepted (2.0.1), at POSIX ``accepted_at``.
    """
    given = profile["chargingSchedule"][0]
    start_text = given.get("startSchedule")
    start = datetime.fromisoformat(start_text).timestamp() if start_text else accepted_at
    end = start + float(given["duration"]) if given.get("duration") is not None else None
    allowed = _steps(given, start)
    unit = given["chargingRateUnit"]
    asked = _steps(ev_schedule, time_base.timestamp())
    ev_unit = ev_schedule["chargingRateUnit"]
    instants = [at for at, _, _ in asked] + [at + SLACK_S for at, _, _ in allowed[1:]]
    for t in sorted(instants):
        ev_limit = _limit_at(asked, t, None)
        if ev_limit is None:
            continue
        phases = next((ph for at, _, ph in reversed(asked) if at <= t), 3)
        window = [t - SLACK_S] + [at for at, _, _ in allowed if t - SLACK_S < at <= t] + [t]
        limits = [lim for w in window if (lim := _limit_at(allowed, w, end)) is not None]
        if not limits:
            continue  # outside the profile: the station's other profiles decide there
        cap = max(limits)
        wanted = _in_unit(ev_limit, ev_unit, phases, unit)
        if wanted > cap * (1 + TOLERANCE) + 1e-6:
            offset = t - time_base.timestamp()
            return f"the EV asks {ev_limit:g} {ev_unit} at +{offset:.0f} s; the profile allows {cap:g} {unit}"
    return None
