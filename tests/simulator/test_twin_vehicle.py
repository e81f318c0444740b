import itertools

import pytest

from simulator.twin.catalogue import CATALOGUE
from simulator.twin.curves import CURVES, TaperCurve
from simulator.twin.vehicle import Vehicle


def make_vehicle(soc: float = 0.2, model: str = "compact-58", **overrides: object) -> Vehicle:
    spec = CATALOGUE[model]
    fields: dict[str, object] = dict(
        vehicle_id="v-1", battery_kwh=spec.battery_kwh, soc=soc, target_soc=0.8, max_ac_kw=spec.max_ac_kw,
        max_dc_kw=spec.max_dc_kw, curve=spec.curve, ac_phases=spec.ac_phases, model=model,
    )  # fmt: skip
    fields.update(overrides)
    return Vehicle(**fields)  # type: ignore[arg-type]


def test_catalogue_has_at_least_four_models_with_valid_curves() -> None:
    assert len(CATALOGUE) >= 4
    for spec in CATALOGUE.values():
        assert spec.battery_kwh > 0 and spec.max_ac_kw > 0 and spec.max_dc_kw > 0
        assert spec.curve is CURVES[spec.name]


def test_curve_interpolates_linearly_and_clips() -> None:
    curve = TaperCurve(((0.0, 1.0), (0.8, 1.0), (1.0, 0.2)))
    assert curve.fraction(0.5) == 1.0
    assert curve.fraction(0.9) == pytest.approx(0.6)
    assert curve.fraction(1.0) == pytest.approx(0.2)
    assert curve.fraction(1.5) == pytest.approx(0.2)
    assert curve.fraction(-1.0) == 1.0


@pytest.mark.parametrize(
    "points",
    [
        ((0.0, 1.0),),
        ((0.1, 1.0), (1.0, 0.5)),
        ((0.0, 1.0), (0.5, 0.4), (0.9, 0.6), (1.0, 0.1)),  # rises again after the peak
        ((0.0, 1.2), (1.0, 0.5)),
        ((0.0, 1.0), (0.5, 0.5), (0.5, 0.4), (1.0, 0.1)),
    ],
)
def test_bad_curves_are_refused(points: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError):
        TaperCurve(points)


@pytest.mark.parametrize("model", sorted(CATALOGUE))
@pytest.mark.parametrize("current", ["AC", "DC"])
def test_taper_reduces_power_near_full(model: str, current: str) -> None:
    mid = make_vehicle(0.3, model).acceptance_kw(current)  # type: ignore[arg-type]
    near_full = make_vehicle(0.99, model).acceptance_kw(current)  # type: ignore[arg-type]
    assert 0 < near_full < mid
    socs = [0.9 + i * 0.005 for i in range(20)]
    powers = [make_vehicle(s, model).acceptance_kw(current) for s in socs]  # type: ignore[arg-type]
    assert all(b <= a for a, b in itertools.pairwise(powers))


def test_ac_acceptance_is_capped_by_onboard_charger() -> None:
    v = make_vehicle(0.3, "sedan-75")
    assert v.acceptance_kw("AC") == 11.0
    assert v.acceptance_kw("DC") == pytest.approx(170.0)


def test_soc_never_exceeds_one_and_absorb_refuses_the_excess() -> None:
    v = make_vehicle(0.99, battery_kwh=50.0)
    stored = v.absorb(10.0)
    assert stored == pytest.approx(0.5)
    assert v.soc == 1.0
    assert v.is_full and v.acceptance_kw("AC") == 0.0 and v.acceptance_kw("DC") == 0.0
    assert v.absorb(1.0) == 0.0
    assert v.soc == 1.0


def test_charge_limit_stops_charging_below_full() -> None:
    v = make_vehicle(0.85, charge_limit_soc=0.9, battery_kwh=100.0)
    assert v.absorb(20.0) == pytest.approx(5.0)
    assert v.soc == 0.9 and v.acceptance_kw("AC") == 0.0


def test_negative_energy_is_refused() -> None:
    with pytest.raises(ValueError):
        make_vehicle().absorb(-1.0)
