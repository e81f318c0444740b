import random

import pytest

from simulator.twin.site_meter import BuildingLoad, SiteMeter


def test_violation_accounting_on_a_hand_computed_example() -> None:
    meter = SiteMeter(grid_limit_kw=100.0)
    # (building_kw, ev_kw) for five one-minute steps, then a 30 s step
    rows = [(40, 50), (40, 70), (50, 100), (30, 70), (20, 60)]
    for i, (building_kw, ev_kw) in enumerate(rows):
        meter.record(i * 60.0, 60.0, building_kw, ev_kw)
    meter.record(300.0, 30.0, 60.0, 80.0)
    # imports: 90, 110, 150, 100 (at the limit: not a violation), 80, 140
    summary = meter.summary()
    assert summary.steps_above_limit == 3
    assert summary.minutes_above_limit == pytest.approx(1 + 1 + 0.5)
    # excess kW × hours: 10/60 + 50/60 + 40 × 30/3600
    assert summary.violation_kwh == pytest.approx(10 / 60 + 50 / 60 + 40 / 120)
    assert summary.peak_import_kw == 150.0
    assert summary.import_kwh == pytest.approx((90 + 110 + 150 + 100 + 80) / 60 + 140 / 120)
    assert summary.ev_kwh == pytest.approx((50 + 70 + 100 + 70 + 60) / 60 + 80 / 120)
    assert [s.import_kw for s in meter.log] == [90, 110, 150, 100, 80, 140]


def test_no_limit_means_no_violation() -> None:
    meter = SiteMeter(grid_limit_kw=None)
    meter.record(0, 60, 1000, 1000)
    assert meter.summary().steps_above_limit == 0


def test_building_profile_interpolates_cyclically() -> None:
    load = BuildingLoad(((6.0, 20.0), (18.0, 80.0)))
    assert load.base_kw(6.0) == 20.0
    assert load.base_kw(12.0) == pytest.approx(50.0)
    assert load.base_kw(0.0) == pytest.approx(50.0)  # halfway from 18:00 (80) to 06:00 (20)
    assert load.base_kw(21.0) == pytest.approx(65.0)
    assert BuildingLoad.constant(40.0).base_kw(3.0) == 40.0


def test_noise_comes_from_the_given_generator_and_is_clipped_at_zero() -> None:
    load = BuildingLoad.constant(1.0, noise_kw=50.0)
    a = [load.sample_kw(12.0, random.Random(5)) for _ in range(3)]
    b = [load.sample_kw(12.0, random.Random(5)) for _ in range(3)]
    assert a == b
    rng = random.Random(1)
    assert min(load.sample_kw(0.0, rng) for _ in range(200)) == 0.0
