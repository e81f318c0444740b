import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.twin.catalogue import CATALOGUE
from simulator.twin.evse import EvsePowerModel
from simulator.twin.vehicle import Vehicle


def vehicle(soc: float = 0.2, model: str = "compact-58", **overrides: object) -> Vehicle:
    spec = CATALOGUE[model]
    fields: dict[str, object] = dict(
        vehicle_id="v-1", battery_kwh=spec.battery_kwh, soc=soc, target_soc=0.8, max_ac_kw=spec.max_ac_kw,
        max_dc_kw=spec.max_dc_kw, curve=spec.curve, ac_phases=spec.ac_phases, model=model,
    )  # fmt: skip
    fields.update(overrides)
    return Vehicle(**fields)  # type: ignore[arg-type]


def test_power_is_min_of_acceptance_rating_and_limit() -> None:
    ac22 = EvsePowerModel(22.0, "AC", 3)
    v = vehicle(0.3)  # accepts 11 kW on AC
    assert ac22.deliver(v, 60).power_w == pytest.approx(11_000)
    assert ac22.deliver(v, 60, limit_w=7_000).power_w == pytest.approx(7_000)
    ac7 = EvsePowerModel(7.4, "AC", 1)
    assert ac7.deliver(vehicle(0.3), 60).power_w == pytest.approx(7_400)
    dc50 = EvsePowerModel(50.0, "DC")
    assert dc50.deliver(vehicle(0.3), 60).power_w == pytest.approx(50_000)
    assert EvsePowerModel(22.0).deliver(None, 60).power_w == 0.0


def test_limit_in_amps_converts_with_voltage_and_phases() -> None:
    evse = EvsePowerModel(22.0, "AC", 3, voltage_v=230.0)
    step = evse.deliver(vehicle(0.3, "city-52"), 60, limit_a=16.0)
    assert step.power_w == pytest.approx(16 * 230 * 3)
    # a one-phase car on a three-phase EVSE draws on one phase only
    evse1 = EvsePowerModel(22.0, "AC", 3)
    assert evse1.deliver(vehicle(0.3, "hatch-40"), 60, limit_a=16.0).power_w == pytest.approx(16 * 230)
    assert evse1.active_phases == 1


def test_p_equals_v_times_i_times_phases_for_ac() -> None:
    for phases, model in ((3, "compact-58"), (1, "compact-58"), (3, "hatch-40")):
        evse = EvsePowerModel(22.0, "AC", phases)  # type: ignore[arg-type]
        evse.deliver(vehicle(0.4, model), 60, limit_w=5_000)
        assert evse.power_w == pytest.approx(evse.voltage_v * evse.current_a * evse.active_phases)
        assert sum(evse.phase_currents_a) * evse.voltage_v == pytest.approx(evse.power_w)


def test_dc_reports_soc_and_current_from_pack_voltage() -> None:
    evse = EvsePowerModel(150.0, "DC")
    v = vehicle(0.3, "midsize-80")
    evse.deliver(v, 60)
    assert evse.soc == v.soc
    assert evse.power_w == pytest.approx(evse.voltage_v * evse.current_a)
    assert EvsePowerModel(22.0, "AC").soc is None


def test_energy_register_matches_battery_gain() -> None:
    evse = EvsePowerModel(11.0, "AC", 3)
    v = vehicle(0.2)
    soc0 = v.soc
    for _ in range(30):
        evse.deliver(v, 60)
    assert evse.energy_register_wh == pytest.approx(11_000 * 30 / 60)
    assert evse.energy_register_wh == pytest.approx((v.soc - soc0) * v.battery_kwh * 1000)
    assert evse.energy_register_wh == pytest.approx(v.energy_received_kwh * 1000, abs=1e-9)


def test_battery_filling_inside_a_step_stops_at_the_charge_limit() -> None:
    evse = EvsePowerModel(22.0, "AC")
    v = vehicle(0.999, battery_kwh=50.0)  # 50 Wh of headroom
    step = evse.deliver(v, 3600)
    assert step.energy_wh == pytest.approx(50.0)
    assert v.soc == 1.0 and evse.power_w == 0.0
    assert evse.seconds_until_full() is None


def test_efficiency_loses_energy_between_grid_and_battery() -> None:
    evse = EvsePowerModel(11.0, "AC", efficiency=0.9)
    v = vehicle(0.2)
    step = evse.deliver(v, 3600)
    assert step.stored_wh == pytest.approx(step.energy_wh * 0.9)
    assert v.energy_received_kwh * 1000 == pytest.approx(evse.energy_register_wh * 0.9)


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        EvsePowerModel(11.0).advance(-1)


steps = st.lists(
    st.tuples(
        st.floats(0.0, 900.0),  # dt_s
        st.one_of(st.none(), st.floats(0.0, 200_000.0)),  # limit_w
        st.one_of(st.none(), st.floats(0.0, 100.0)),  # limit_a
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps,
    soc=st.floats(0.0, 1.0),
    current=st.sampled_from(["AC", "DC"]),
    phases=st.sampled_from([1, 3]),
    rating_kw=st.floats(1.0, 350.0),
    model=st.sampled_from(sorted(CATALOGUE)),
)
def test_energy_conservation_and_bounds_for_any_power_sequence(
    steps: list[tuple[float, float | None, float | None]], soc: float, current: str, phases: int,
    rating_kw: float, model: str,
) -> None:  # fmt: skip
    evse = EvsePowerModel(rating_kw, current, phases)  # type: ignore[arg-type]
    v = vehicle(soc, model)
    soc0 = v.soc
    register_before = evse.energy_register_wh
    for dt_s, limit_w, limit_a in steps:
        acceptance_w = v.acceptance_kw(current) * 1000  # type: ignore[arg-type]
        step = evse.deliver(v, dt_s, limit_w=limit_w, limit_a=limit_a)
        assert step.power_w <= acceptance_w + 1e-6
        assert step.power_w <= rating_kw * 1000 + 1e-6
        if limit_w is not None:
            assert step.power_w <= limit_w + 1e-6
        if limit_a is not None and current == "AC":
            assert evse.current_a <= limit_a + 1e-9 or evse.power_w == 0
        assert step.energy_wh <= step.power_w * dt_s / 3600 + 1e-9
        assert evse.energy_register_wh >= register_before  # never decreases
        register_before = evse.energy_register_wh
        assert 0.0 <= v.soc <= 1.0
    gained_wh = (v.soc - soc0) * v.battery_kwh * 1000
    assert evse.energy_register_wh == pytest.approx(gained_wh, abs=1e-5)
    assert evse.energy_register_wh == pytest.approx(v.energy_received_kwh * 1000, abs=1e-9)
