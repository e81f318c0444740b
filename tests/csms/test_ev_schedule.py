"""The EV's schedule against the TxProfile it was given (K15.FR.11/FR.12): pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.domain.ev_schedule import exceeds

T0 = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


def profile(periods: list[tuple[int, float]], unit: str = "A") -> dict:
    schedule = {
        "id": 1,
        "chargingRateUnit": unit,
        "startSchedule": T0.isoformat(),
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    }
    return {"id": 1, "chargingProfilePurpose": "TxProfile", "chargingSchedule": [schedule]}


def ev(periods: list[tuple[int, float]], unit: str = "A", phases: int = 3) -> dict:
    return {
        "id": 1,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim, "numberPhases": phases} for s, lim in periods],
    }


def test_within_the_steps_of_the_profile_is_accepted_even_a_few_seconds_late():
    given = profile([(0, 16.0), (600, 6.0)])
    late = T0 + timedelta(seconds=5)  # the EV answered the station five seconds after the profile's start
    assert exceeds(ev([(0, 16.0), (600, 6.0)]), late, given, T0.timestamp()) is None
    assert exceeds(ev([(0, 12.0)]), T0, profile([(0, 16.0)]), T0.timestamp()) is None


def test_above_the_profile_or_after_its_step_down_is_rejected_with_the_reason():
    given = profile([(0, 16.0), (600, 6.0)])
    reason = exceeds(ev([(0, 32.0)]), T0, given, T0.timestamp())
    assert reason == "the EV asks 32 A at +0 s; the profile allows 16 A"
    assert exceeds(ev([(0, 16.0)]), T0, given, T0.timestamp()) is not None  # 16 A after the step to 6 A


def test_watts_against_amperes_at_the_nominal_voltage():
    given = profile([(0, 16.0)])  # 16 A x 3 phases x 230 V = 11 040 W
    assert exceeds(ev([(0, 11_000.0)], "W"), T0, given, T0.timestamp()) is None
    assert exceeds(ev([(0, 22_000.0)], "W"), T0, given, T0.timestamp()) is not None
