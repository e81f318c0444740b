"""``sim run`` in virtual time, end to end: twin + firmware + embedded CSMS through the real protocol path."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from csms.store.models import Transaction
from simulator.cli import main
from simulator.links.inprocess import NetworkModel
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

DATA = Path(__file__).parent / "data"
SMALL = DATA / "small-mixed.yaml"
SCENARIOS = Path(__file__).parents[2] / "scenarios"


def _run(path: Path, **kwargs) -> tuple[VirtualRun, dict]:
    run = VirtualRun(load_scenario(path), scenario_file=str(path), **kwargs)
    return run, build(run.run())


def test_small_fleet_survives_link_outages_with_nothing_lost_or_counted_twice():
    run, report = _run(SMALL)
    tx = report["transactions"]
    assert tx["started"] == 5
    assert tx["lost"] == 0 and tx["duplicated"] == 0
    assert all(row["error_kwh"] is not None and row["error_kwh"] <= 0.001 for row in tx["per_transaction"])
    assert report["stations"]["booted"] == 5
    assert report["passed"], report["checks"]
    # The 2.0.1 station that was offline replayed its TransactionEvents with offline=true.
    with run.csms.session_factory() as db:
        dc1 = db.scalars(select(Transaction).where(Transaction.station_id == "dc-1")).one()
    assert dc1.offline_events > 0


def test_lossy_network_is_healed_by_retries_and_idempotent_csms():
    _, report = _run(SMALL, network=NetworkModel(latency_s=0.2, jitter_s=0.3, loss=0.03))
    tx = report["transactions"]
    assert report["frames"]["lost_in_network"] > 0
    assert tx["lost"] == 0 and tx["duplicated"] == 0
    assert tx["energy_max_error_kwh"] <= 0.001


def test_same_scenario_and_seed_give_a_byte_identical_report(tmp_path):
    for name in ("a", "b"):
        assert main(["run", str(SMALL), "--out", str(tmp_path / name), "--reproducible", "--quiet"]) == 0
    first, second = (tmp_path / "a/report.json").read_bytes(), (tmp_path / "b/report.json").read_bytes()
    assert first == second
    assert main(["run", str(SMALL), "--out", str(tmp_path / "c"), "--reproducible", "--quiet", "--seed", "4"]) == 0
    assert (tmp_path / "c/report.json").read_bytes() != first
    for picture in ("site_import.png", "evse_power.png", "vehicle_soc.png"):
        assert (tmp_path / "a" / picture).stat().st_size > 10_000


def test_report_has_the_documented_interface(tmp_path):
    assert main(["run", str(SMALL), "--out", str(tmp_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"checks", "transactions", "site", "vehicles", "wall_seconds", "simulated_seconds"} <= set(report)
    assert {"started", "completed", "lost", "duplicated"} <= set(report["transactions"])
    assert {"peak_import_kw", "limit_kw", "violation_kwh"} <= set(report["site"])
    assert "at_target_fraction" in report["vehicles"]
    assert all({"name", "passed"} <= set(c) for c in report["checks"])
    assert report["wall_seconds"] > 0 and report["simulated_seconds"] == 3 * 3600


def test_a_failing_check_makes_the_exit_status_non_zero(tmp_path):
    text = SMALL.read_text().replace("  stations_booted: 5", "  stations_booted: 5\n  transactions_started: '>= 50'")
    path = tmp_path / "strict.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    report = json.loads((tmp_path / "out/report.json").read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["transactions_started"]


def test_a_bad_scenario_is_a_usage_error_naming_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL.read_text().replace('ocpp: "2.0.1"', 'ocpp: "2.0"'))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:9:" in err and "chargers[1].ocpp" in err and "'2.0.1'" in err


def test_depot_night_without_load_management_shows_the_overload_honestly():  # 5 of 13 h: ~3 s, in the default suite
    path = SCENARIOS / "depot-night.yaml"
    scenario = load_scenario(path)
    scenario = scenario.model_copy(update={"duration": 5 * 3600})
    run = VirtualRun(scenario, scenario_file=str(path), strategy="none")  # the scenario is managed: turn it off
    report = build(run.run())
    assert report["stations"]["booted"] == 40
    assert report["site"]["violation_kwh"] > 0 and report["site"]["peak_import_kw"] > report["site"]["limit_kw"]
    assert report["transactions"]["lost"] == 0 and report["transactions"]["duplicated"] == 0
