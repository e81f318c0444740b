"""The offline optimum on cases small enough to compute by hand."""

from __future__ import annotations

import pytest

from simulator.twin.records import SessionRecord
from simulator.twin.site_meter import MeterStep
from simulator.verify.optimum import LimitStep, limits_from_meter_log, offline_optimum, run_metrics

H = 3600.0


def test_one_car_with_room_gets_what_it_needs():
    result = offline_optimum([SessionRecord("a", 0, 2 * H, 10.0, 11.0)], [LimitStep(0, 2 * H, limit_kw=100)])
    assert result.optimum_kwh == pytest.approx(10.0)
    assert result.served == {"a": pytest.approx(1.0)}


def test_power_bound_and_partial_stay():
    # 7 kW car plugged from 0.5 h to 1.5 h needs 20 kWh: 7 kWh at most.
    result = offline_optimum([SessionRecord("a", 0.5 * H, 1.5 * H, 20.0, 7.0)], [LimitStep(0, 2 * H, limit_kw=100)])
    assert result.optimum_kwh == pytest.approx(7.0)
    assert result.served["a"] == pytest.approx(0.35)


def test_foresight_serves_the_early_leaver_first():
    # 10 kW site, two hours. A leaves after 1 h needing 10 kWh, B stays 2 h needing 10 kWh: 20 kWh possible
    # only if A gets everything in the first hour.
    sessions = [SessionRecord("a", 0, H, 10.0, 11.0), SessionRecord("b", 0, 2 * H, 10.0, 11.0)]
    steps = [LimitStep(0, H, limit_kw=10), LimitStep(H, 2 * H, limit_kw=10)]
    result = offline_optimum(sessions, steps)
    assert result.optimum_kwh == pytest.approx(20.0)
    assert result.energy_kwh == {"a": pytest.approx(10.0), "b": pytest.approx(10.0)}
    # An equal-share run gives A 5 kWh, then B 5 + 10 → 15 kWh, 75 % of the optimum; A is served half.
    metrics = run_metrics(result, sessions, {"a": 5.0, "b": 10.0})
    assert metrics["fraction_of_optimum"] == pytest.approx(0.75)
    assert metrics["lowest_served_fraction"] == pytest.approx(0.5)
    assert metrics["optimum_lowest_served_fraction"] == pytest.approx(1.0)


def test_the_limit_binds_when_both_must_share():
    sessions = [SessionRecord("a", 0, H, 10.0, 11.0), SessionRecord("b", 0, H, 10.0, 11.0)]
    result = offline_optimum(sessions, [LimitStep(0, H, limit_kw=10)])
    assert result.optimum_kwh == pytest.approx(10.0)


def test_per_phase_limit_for_single_phase_cars_on_one_phase():
    # Both on L1, 32 A limit on L1 for one hour: 32 A × 230 V = 7.36 kWh between them. A car on L2 is free.
    sessions = [
        SessionRecord("a", 0, H, 20.0, 7.36, phases=(0,)),
        SessionRecord("b", 0, H, 20.0, 7.36, phases=(0,)),
        SessionRecord("c", 0, H, 20.0, 7.36, phases=(1,)),
    ]
    result = offline_optimum(sessions, [LimitStep(0, H, phase_limits_a=(32.0, 32.0, 32.0))])
    assert result.optimum_kwh == pytest.approx(2 * 7.36)
    assert result.energy_kwh["c"] == pytest.approx(7.36)


def test_time_outside_the_steps_is_unconstrained_and_overloads_allow_nothing():
    sessions = [SessionRecord("a", 0, 2 * H, 30.0, 10.0)]
    result = offline_optimum(sessions, [LimitStep(0, H, limit_kw=-5.0)])  # building above the grid limit
    assert result.optimum_kwh == pytest.approx(10.0)  # only the second hour


def test_overlapping_steps_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        offline_optimum([SessionRecord("a", 0, H, 1, 1)], [LimitStep(0, H, 1), LimitStep(0.5 * H, 2 * H, 1)])


def test_limits_from_the_twin_meter_log():
    log = [MeterStep(0, 60, 40.0, 0.0, 40.0, 100.0), MeterStep(60, 60, 50.0, 0.0, 50.0, 100.0)]
    steps = limits_from_meter_log(log, phase_limits_a=(200.0, 200.0, 200.0))
    assert [s.limit_kw for s in steps] == [60.0, 50.0]
    assert steps[0].phase_limits_a == pytest.approx((200 - 40_000 / 690,) * 3)
    assert (steps[1].start_s, steps[1].end_s) == (60, 120)
