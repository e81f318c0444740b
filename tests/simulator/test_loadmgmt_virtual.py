"""Load management in virtual time, judged by the twin's site meter (short scenarios, a few seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.services import fleet
from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]

SMALL = """
name: small-depot
seed: 3
start: 2026-01-15T17:00:00+00:00
duration: 4h
site: {grid_limit_kw: 45, building_load: {kw: 8, noise_kw: 1}}
chargers:
  - {prefix: ac, count: 6, ocpp: "1.6", max_kw: 11}
  - {prefix: dc, count: 1, ocpp: "2.0.1", max_kw: 50}
vehicles:
  name: van
  count: 7
  model: compact-58
  arrival: {between: ["17:00", "17:40"]}
  soc_on_arrival: {uniform: [0.2, 0.4]}
  departure: {at: "20:45", target_soc: 0.8}
  id_token: "VAN-{n:02d}"
  group: vans
actions:
  - {at: "17:00", kind: provision_tokens, vehicles: vans}
faults:
  - {at: "18:00", kind: link_down, charger: ac-2, duration: 40m}
csms:
  load_management: {strategy: deadline, interval: 60s, safety_margin_kw: 1}
expect:
  site_limit_violations: 0
"""


def run(scenario, strategy: str | None = None) -> dict:
    rec = VirtualRun(scenario, strategy=strategy).run()
    return report.build(rec)


@pytest.mark.parametrize("strategy", ["deadline", "optimal", "equal_share"])
def test_managed_site_holds_the_limit_with_an_offline_station(strategy):
    data = run(parse_scenario(SMALL), strategy)
    assert data["site"]["violation_minutes"] == 0
    assert data["load_management"]["profiles_sent"] > 0
    assert data["energy"]["optimum_kwh"] > 0
    if strategy != "equal_share":
        # Tight site, and 40 minutes in which the offline station's fallback is reserved (the optimum
        # knows it drew nothing): not the 99% of the shipped scenarios.
        assert data["energy"]["optimum_fraction"] >= 0.9


def test_unmanaged_site_shows_the_violations():
    data = run(parse_scenario(SMALL), "none")
    assert data["site"]["violation_minutes"] > 0
    assert data["load_management"]["profiles_sent"] == 0
    assert not data["passed"]


#: The default suite runs the shortest shipped scenario with its own strategy; the sweep over the others is
#: `pytest -m slow` (docs/performance.md, "The test suite"). A correctness gate, not a timing one: with both cores
#: busy (xdist's two workers) multifamily-peak under the deadline strategy took over 300 s of CPU on 2026-12-05
#: (main and 188a62b8 alike, run side by side), so it gets 900 s.
SHIPPED = [
    pytest.param("depot-night", "deadline", marks=pytest.mark.slow),
    pytest.param("depot-night", "optimal", marks=pytest.mark.slow),
    pytest.param("multifamily-peak", "deadline", marks=pytest.mark.timeout(900)),
    pytest.param("multifamily-peak", "optimal", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "strategy"), SHIPPED)
def test_shipped_scenario_managed_holds_the_limit_near_the_offline_optimum(name, strategy):
    """Issue 4's acceptance: one run per test so xdist spreads them over the workers."""
    data = run(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), strategy)
    assert data["site"]["violation_minutes"] == 0
    assert data["energy"]["optimum_fraction"] >= 0.99
    assert data["load_management"]["profiles_failed"] == 0
    failed = [c for c in data["checks"] if not c["passed"]]
    if strategy == "optimal" and "billing" in data:
        # docs/report.md, "The twin checks the money": the optimal plan switches chargers on and off at whole
        # minutes, inside the chargers' 60 s sample intervals, so a CDR can put a few Wh on the wrong side of a
        # time-of-use boundary (measured on multifamily-peak: 3 of 15 sessions 1 cent apart). Known, not hidden.
        assert data["billing"]["max_cost_difference_minor"] <= 1, data["billing"]
        failed = [c for c in failed if not c["name"].startswith("billing_")]
    assert not failed, failed


@pytest.mark.slow
def test_shipped_scenario_unmanaged_breaks_the_limit():
    data = run(load_scenario(ROOT / "scenarios" / "multifamily-peak.yaml"), "none")
    assert data["site"]["violation_minutes"] > 0
    assert not data["passed"]


def test_phase_imbalance_holds_the_phase_limit():
    scenario = load_scenario(ROOT / "scenarios" / "phase-imbalance.yaml")
    data = run(scenario)
    phases = data["site"]["phases"]
    assert phases["violation_minutes"] == 0 and phases["peak_a"][0] <= 63.0
    assert data["passed"], data["checks"]
    unmanaged = run(scenario, "none")
    assert unmanaged["site"]["phases"]["violation_minutes"] > 0


def test_a_csms_crash_loses_the_load_managers_memory_and_the_restart_rebuilds_it_from_the_store():
    scenario = parse_scenario(
        SMALL.replace("faults:\n", 'faults:\n  - {at: "18:20", kind: csms_crash, restart_after: 5m}\n')
    )
    run = VirtualRun(scenario, strategy="deadline")
    seen: dict[str, object] = {}
    crash, restart = run.csms.crash, run.csms.restart

    def sessions() -> dict:
        assert run.csms.load is not None
        state = run.csms.load.manager.planners["site"].state(run.epoch + run.env.now)
        return {key: s.transaction_id for key, s in state.sessions.items()}

    def crashing() -> list[str]:
        seen["manager"], seen["before"] = run.csms.load, sessions()
        return crash()

    def restarting() -> None:
        seen["down"] = run.csms.load
        restart()
        seen["manager_after"], seen["after"] = run.csms.load, sessions()
        seen["online_after"] = [sid for sid in run.fleet.chargers if run.csms.connected(sid)]

    run.csms.crash, run.csms.restart = crashing, restarting
    data = report.build(run.run())
    assert seen["down"] is None  # nothing of the plan survives the process
    assert seen["manager_after"] is not seen["manager"]
    # The new process knows the running sessions (and their transaction ids) from the database alone,
    # before any station has connected again.
    assert seen["online_after"] == []
    assert seen["after"] == seen["before"] and len(seen["before"]) >= 5
    assert data["site"]["violation_minutes"] == 0
    assert data["energy"]["optimum_fraction"] >= 0.9
    assert data["uptime"] is not None and data["transactions"]["lost"] == 0


def test_a_depots_vans_reach_the_plan_through_the_csms_fleet_records():
    """The operator registers the vans (token, depot, weekly plan), their telematics report SoC before they
    arrive: the CSMS works out every van's needs from its own records (no app tells them) and plans the vans still
    on their way; every van is ready by its departure."""
    fleet_small = (
        SMALL.replace("  group: vans\n", "  group: vans\n  telematics: {before_arrival: 1h, every: 10m}\n")
        .replace(
            '  - {at: "17:00", kind: provision_tokens, vehicles: vans}\n',
            '  - {at: "17:00", kind: provision_tokens, vehicles: vans}\n'
            '  - {at: "17:00", kind: register_vehicles, vehicles: vans}\n',
        )
        .replace(
            "site: {grid_limit_kw: 45,",
            'site: {utility_tariff: {currency: USD, periods: [{from: "00:00", price: 0.2}],'
            " demand_charge_per_kw: 12}, grid_limit_kw: 90,",
        )
    )
    vr = VirtualRun(parse_scenario(fleet_small), strategy="deadline")
    seen: list[int] = []
    plan = vr.csms.install_site

    def installed(*args, **kwargs):  # count the vans on their way at the first plans of the evening
        plan(*args, **kwargs)
        vr.env.process(watch())

    def watch():
        yield vr.env.timeout(15 * 60)
        assert vr.csms.load is not None
        seen.append(len(vr.csms.load.manager.planners["site"].expected))

    vr.csms.install_site = installed  # type: ignore[method-assign]
    data = report.build(vr.run())
    assert data["passed"], [c for c in data["checks"] if not c["passed"]]
    assert seen and seen[0] > 0  # before the first van plugged in, the plan counted those on their way
    assert vr.wiring._needs == {}  # nobody told a van's needs as an app
    assert vr.csms.fleet_needs is not None
    told = vr.csms.fleet_needs.told
    departure = vr.epoch + 3 * 3600 + 45 * 60
    for arrival in vr.fleet.world.arrivals():
        v = arrival.vehicle
        _, energy_wh, leaves = told[v.vehicle_id]
        assert leaves == departure  # its weekly plan, in the CSMS's records
        assert energy_wh == pytest.approx((v.target_soc - arrival.soc_on_arrival) * v.battery_kwh * 1000, abs=60)
    with vr.csms.session_factory() as db:
        vans = fleet.list_vehicles(db, "site")
        assert len(vans) == 7 and all(fleet.newest_soc(db, van.id) is not None for van in vans)
    assert data["vehicles"]["at_target"] == data["vehicles"]["count"] == 7
