"""The shipped ``scenarios/faults.yaml`` (one fault of each kind): per-port uptime equals the twin's truth
within 0.1 pp, every fault raises its alert in time, no false alerts, nothing lost or counted twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csms.alerts import engine as al
from csms.services import alerts
from simulator.cli import main
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario
from simulator.station import Charger
from tests.simulator.helpers import T0, FakeMeter

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "faults.yaml"


@pytest.fixture(scope="module")
def run_and_report() -> tuple[VirtualRun, dict]:
    run = VirtualRun(load_scenario(SCENARIO), scenario_file=str(SCENARIO))
    return run, build(run.run())


@pytest.fixture(scope="module")
def report(run_and_report) -> dict:
    return run_and_report[1]


def test_faults_scenario_meets_its_expectations(report):
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    assert report["uptime"]["max_error_pp"] <= 0.1
    assert {p["port"] for p in report["uptime"]["ports"]} >= {"ac-1/1", "dc-2/1"}
    alerts = report["alerts"]
    assert alerts["injected"] == 8 and alerts["missed"] == alerts["late"] == alerts["false"] == 0
    assert report["transactions"]["lost"] == 0 and report["transactions"]["duplicated"] == 0


def test_every_fault_kind_was_injected_and_its_rule_fired(report):
    per_fault = {f["kind"]: f for f in report["alerts"]["per_fault"]}  # the last of each kind
    assert set(per_fault) == {
        "connector_fault",
        "power_loss",
        "link_down",
        "csms_crash",
        "meter_freeze",
        "stuck_available",
    }
    assert per_fault["stuck_available"]["rule"] == al.STUCK_AVAILABLE
    assert per_fault["meter_freeze"]["rule"] == al.METER_FROZEN
    assert all(f["outcome"] in ("on_time", "not_applicable") for f in report["alerts"]["per_fault"])
    # The faults really took ports down: the CSMS saw outages on the faulted, unpowered, unlinked, stuck ports.
    pct = {p["port"]: p["csms_pct"] for p in report["uptime"]["ports"]}
    for port in ("ac-1/1", "ac-2/1", "ac-4/1", "dc-1/1", "dc-2/1"):
        assert pct[port] < 100.0, port


def test_frozen_meters_are_alerted_within_the_rules_bound_and_cleared_when_they_move_again(run_and_report):
    run, report = run_and_report
    freezes = [f for f in report["alerts"]["per_fault"] if f["kind"] == "meter_freeze"]
    # One 1.6 and one 2.0.1 charger; 5 min and 3 readings at 60 s: within 6 min of the freeze (+ link latency).
    assert {f["station_id"] for f in freezes} == {"ac-3", "dc-3"}
    assert all(f["outcome"] == "on_time" and 300 < f["alert_after_s"] <= f["within_s"] <= 361 for f in freezes)
    with run.csms.session_factory() as db:
        rows = [a for a in alerts.list_alerts(db) if a.rule == al.METER_FROZEN]
    assert sorted((a.station_id, a.evse_id) for a in rows) == [("ac-3", 1), ("dc-3", 1)]
    for alert in rows:
        fault = next(f for f in freezes if f["station_id"] == alert.station_id)
        thawed = next(
            i["end"] for i in run.truth.injected if i["kind"] == "meter_freeze" and i["station_id"] == alert.station_id
        )
        # Cleared by the first reading after the freeze ends (readings every 60 s).
        assert alert.resolved_at is not None and 0 < alert.resolved_at.timestamp() - thawed <= 61
        assert alert.raised_at.timestamp() - run.epoch == pytest.approx(fault["at_s"] + fault["alert_after_s"], abs=0.1)


def test_a_strategy_override_keeps_the_scenarios_alert_settings(report, tmp_path):
    """``sim run scenarios/faults.yaml --strategy deadline``: the same alert rules as without the override."""
    out = tmp_path / "deadline"
    assert main(["run", str(SCENARIO), "--strategy", "deadline", "--out", str(out), "--quiet", "--reproducible"]) == 0
    managed = json.loads((out / "report.json").read_text())
    assert managed["load_management"]["strategy"] == "deadline"
    alerts = managed["alerts"]
    assert alerts["injected"] == 8 and alerts["missed"] == alerts["late"] == alerts["false"] == 0, alerts
    assert alerts["within_s"] == report["alerts"]["within_s"] == 15 * 60

    def rules(data: dict) -> list[tuple]:
        return [(f["kind"], f["station_id"], f["rule"], f["within_s"]) for f in data["alerts"]["per_fault"]]

    assert rules(managed) == rules(report)
    # the faulted connectors' alerts came after the scenario's 2 minutes, not the default 5 minutes
    faulted = [f for f in alerts["per_fault"] if f["kind"] == "connector_fault"]
    assert faulted and all(f["alert_after_s"] < 180 for f in faulted), faulted


def test_firmware_hooks_power_loss_duration_stuck_and_reboot_callback():
    import random

    meter = FakeMeter()
    charger = Charger("CP1", "1.6", meter=meter, rng=random.Random(1))
    reboots: list[float] = []
    charger.on_reboot = reboots.append
    charger.power_loss(T0, duration_s=600.0)
    assert reboots == [T0] and charger.reconnect_at == T0 + 600.0
    charger.stuck.add(1)
    assert charger.is_energizing(1) is False
