import random
from pathlib import Path

import pytest

from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.scenario.models import Scenario
from simulator.scenario.to_twin import twin_spec
from simulator.twin.catalogue import CATALOGUE
from simulator.twin.interfaces import AlwaysOn, ChargingLimit, ConnectorRef, VehicleInfo
from simulator.twin.world import TwinWorld

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def small_scenario(vehicles: str, chargers: str = '- {prefix: ac, count: 1, ocpp: "1.6", max_kw: 11}',
                   extra: str = "") -> Scenario:  # fmt: skip
    text = f"""
name: small
seed: 3
start: 2026-01-15T17:00:00+00:00
duration: 4h
site: {{grid_limit_kw: 100, building_load: {{kw: 10}}}}
chargers:
  {chargers}
vehicles:
{vehicles}
{extra}
"""
    return parse_scenario(text, "small.yaml")


ONE_VEHICLE = """
  count: 1
  model: compact-58
  arrival: {at: "+0s"}
  plug_in_delay: 0s
  soc_on_arrival: 0.2
  departure: {at: "+90s", target_soc: 0.9}
"""


def run(scenario: Scenario, seed: int | None = None, **kwargs: object) -> TwinWorld:
    world = TwinWorld(twin_spec(scenario), random.Random(scenario.seed if seed is None else seed), **kwargs)  # type: ignore[arg-type]
    world.run()
    return world


def test_depot_night_is_deterministic_for_a_seed() -> None:
    scenario = load_scenario(SCENARIOS / "depot-night.yaml")
    a, b = run(scenario), run(scenario)
    assert a.ground_truth == b.ground_truth
    assert a.vehicle_records() == b.vehicle_records()
    c = run(scenario, seed=scenario.seed + 1)
    assert c.ground_truth != a.ground_truth


def test_depot_night_exceeds_its_grid_limit_without_load_management() -> None:
    world = run(load_scenario(SCENARIOS / "depot-night.yaml"))
    summary = world.site.summary()
    assert len(world.connectors) >= 40
    assert world.env.now == world.end_s == 13 * 3600
    assert len(world.ground_truth) == 13 * 60
    assert summary.steps_above_limit > 0 and summary.peak_import_kw > 400
    records = world.vehicle_records()
    assert all(r.plug_in_s is not None for r in records)
    assert all(r.departure_s == pytest.approx(12.5 * 3600) for r in records)  # 05:30 next morning


def test_multifamily_peak_runs_and_exceeds_its_limit() -> None:
    world = run(load_scenario(SCENARIOS / "multifamily-peak.yaml"))
    assert world.site.summary().peak_import_kw > 150
    residents = [r for r in world.vehicle_records() if r.group == "residents"]
    assert residents and all(r.id_token and r.id_token.startswith("RES-") for r in residents)
    assert all(r.connector and r.connector.station_id.startswith("garage") for r in residents)


def test_ground_truth_energy_is_conserved_across_the_world() -> None:
    world = run(load_scenario(SCENARIOS / "depot-night.yaml"))
    meter_ev_kwh = sum(s.ev_kw * s.duration_s / 3600 for s in world.ground_truth)
    vehicles_kwh = sum(r.energy_received_kwh for r in world.vehicle_records())
    registers_kwh = sum(world.evse(ref).energy_register_wh for ref in world.connectors) / 1000
    assert meter_ev_kwh == pytest.approx(vehicles_kwh, rel=1e-9)
    assert registers_kwh == pytest.approx(vehicles_kwh, rel=1e-12)
    for r in world.vehicle_records():
        assert r.soc_at_departure == pytest.approx(r.soc_on_arrival + r.energy_received_kwh / _battery(r.model))


def _battery(model: str) -> float:
    return CATALOGUE[model].battery_kwh


def test_unplug_interrupts_charging_mid_step() -> None:
    hooks = AlwaysOn()
    world = run(small_scenario(ONE_VEHICLE), hooks=hooks)
    ref = ConnectorRef("ac-1", 1)
    # 11 kW for exactly 90 s, although the physics step is 60 s
    assert world.evse(ref).energy_register_wh == pytest.approx(11_000 * 90 / 3600)
    assert [(t, name) for t, name, _ in hooks.events] == [(0, "plug_in"), (90, "unplug")]
    first, second = world.ground_truth[:2]
    assert first.ev_kw == pytest.approx(11.0)
    assert second.ev_kw == pytest.approx(5.5)  # 30 s of 11 kW averaged over the minute


def test_power_respects_the_firmware_limit_and_reevaluate_applies_it_at_once() -> None:
    scenario = small_scenario(ONE_VEHICLE.replace("+90s", "+10m"))
    hooks = AlwaysOn()
    world = TwinWorld(twin_spec(scenario), random.Random(1), hooks=hooks)
    ref = ConnectorRef("ac-1", 1)

    def operator():  # type: ignore[no-untyped-def]
        yield world.env.timeout(90)
        hooks.limits[ref] = ChargingLimit(10, "A")
        world.reevaluate(ref)

    world.env.process(operator())
    world.run()
    limited_w = 10 * 230 * 3
    expected_wh = 11_000 * 90 / 3600 + limited_w * (600 - 90) / 3600
    assert world.evse(ref).energy_register_wh == pytest.approx(expected_wh)
    assert max(s.ev_kw for s in world.ground_truth[2:]) <= limited_w / 1000 + 1e-9


def test_not_energized_means_no_power() -> None:
    class NeverOn(AlwaysOn):
        def is_energizing(self, connector: ConnectorRef) -> bool:
            return False

    world = run(small_scenario(ONE_VEHICLE), hooks=NeverOn())
    assert world.evse(ConnectorRef("ac-1", 1)).energy_register_wh == 0.0
    assert all(s.ev_kw == 0.0 for s in world.ground_truth)


def test_full_vehicle_idles_until_departure() -> None:
    vehicles = ONE_VEHICLE.replace("+90s", "+3h").replace("soc_on_arrival: 0.2", "soc_on_arrival: 0.95")
    hooks = AlwaysOn()
    world = run(small_scenario(vehicles), hooks=hooks)
    (record,) = world.vehicle_records()
    assert record.soc_at_departure == 1.0 and record.reached_target
    assert record.full_at_s is not None and record.full_at_s < record.departure_s == 3 * 3600  # type: ignore[operator]
    assert "ev_suspended" in [name for _, name, _ in hooks.events]
    full_step = int(record.full_at_s // 60)
    assert all(s.ev_kw == 0.0 for s in world.ground_truth[full_step + 1 :])


def test_vehicles_wait_for_a_free_connector_or_leave_unserved() -> None:
    vehicles = """
  - {name: first, count: 1, arrival: {at: "+0s"}, plug_in_delay: 0s, departure: {at: "+1h"}}
  - {name: second, count: 1, arrival: {at: "+10m"}, plug_in_delay: 0s, departure: {at: "+3h"}}
  - {name: third, count: 1, arrival: {at: "+20m"}, plug_in_delay: 0s, departure: {at: "+50m"}}
"""
    world = run(small_scenario(vehicles))
    records = {r.vehicle_id: r for r in world.vehicle_records()}
    assert records["first-1"].plug_in_s == 0
    assert records["second-1"].plug_in_s == 3600  # got the connector when the first left
    assert records["third-1"].plug_in_s is None and records["third-1"].departure_s == 50 * 60
    assert records["third-1"].energy_received_kwh == 0.0


def test_hooks_receive_vehicle_info_with_token() -> None:
    seen: list[VehicleInfo] = []

    class Recording(AlwaysOn):
        def on_plug_in(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None:
            seen.append(vehicle)
            super().on_plug_in(connector, vehicle, now_s)

    vehicles = ONE_VEHICLE + '  id_token: "TOK-{n:02d}"\n  group: staff\n'
    run(small_scenario(vehicles), hooks=Recording())
    assert seen[0].id_token == "TOK-01" and seen[0].group == "staff" and seen[0].soc == 0.2


def test_meter_reading_integrates_up_to_now() -> None:
    scenario = small_scenario(ONE_VEHICLE.replace("+90s", "+10m"))
    world = TwinWorld(twin_spec(scenario), random.Random(1))
    world.start()
    world.env.run(until=30)
    reading = world.meter(ConnectorRef("ac-1", 1))
    assert reading.energy_register_wh == pytest.approx(11_000 * 30 / 3600)
    assert reading.power_w == pytest.approx(11_000) and reading.vehicle_plugged
    assert reading.power_w == pytest.approx(reading.voltage_v * reading.current_a * reading.active_phases)


def test_idle_and_full_connectors_cost_no_work_per_physics_step() -> None:
    """Only a connector delivering power wakes at every physics step: 50 empty connectors and one full
    vehicle over 4 h take about as many SimPy events as the site meter's own steps, not 50 × 240."""
    chargers = '- {prefix: ac, count: 50, ocpp: "1.6", max_kw: 11}'
    vehicles = ONE_VEHICLE.replace("+90s", "+3h").replace("soc_on_arrival: 0.2", "soc_on_arrival: 0.95")
    world = TwinWorld(twin_spec(small_scenario(vehicles, chargers)), random.Random(3))
    done, steps = world.start(), 0
    while not done.triggered:
        world.env.step()
        steps += 1
    site_meter_steps = len(world.ground_truth)
    assert site_meter_steps == 240
    assert steps < site_meter_steps + 200
    full = world.vehicle_records()[0]
    assert full.full_at_s is not None and full.soc_at_departure == pytest.approx(1.0)
