"""Explicit session replay: vehicles given as a list or a CSV file of ACN-Data-shaped sessions."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import ScenarioError, load_scenario, parse_scenario
from simulator.scenario.models import SessionReplay
from simulator.scenario.to_twin import twin_spec
from simulator.twin.arrivals import plan_fleet

DATA = Path(__file__).parent / "data"
SCENARIOS = Path(__file__).parents[2] / "scenarios"

HEAD = """\
name: t
seed: 1
start: 2026-02-02T07:00:00-08:00
duration: 3h
chargers:
  - {prefix: sp, count: 2, ocpp: "1.6", max_kw: 7, phases: 1}
"""
CSV_HEADER = "stationID,connectionTime,disconnectTime,kWhRequested,max_kw\n"


def _write(tmp_path: Path, vehicles: str, csv: str | None = None) -> Path:
    if csv is not None:
        (tmp_path / "s.csv").write_text(csv)
    path = tmp_path / "x.yaml"
    path.write_text(HEAD + vehicles)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(issue) for issue in info.value.issues]


def test_inline_list_becomes_vehicles_at_their_times_stations_and_energy() -> None:
    scenario = parse_scenario(
        HEAD
        + """\
vehicles:
  battery_kwh: 50
  target_soc: 0.9
  sessions:
    - {arrival: "07:30", departure: "+2h", energy_kwh: 10, max_kw: 6.6, station: sp-2}
    - {connectionTime: 600, disconnectTime: "2026-02-02T17:00:00+00:00", kWhDelivered: 5}
"""
    )
    block = scenario.vehicles[0]
    assert isinstance(block, SessionReplay) and block.count == 2
    first, second = plan_fleet(twin_spec(scenario).fleets[0], random.Random(0), scenario.duration)
    assert (first.arrival_s, first.planned_departure_s, first.allowed) == (1800, 7200, frozenset({"sp-2"}))
    assert first.vehicle.soc == pytest.approx(0.9 - 10 / 50) and first.vehicle.charge_limit_soc == 0.9
    assert first.vehicle.max_ac_kw == 6.6
    assert (second.arrival_s, second.planned_departure_s, second.allowed) == (600, 7200, None)
    assert second.vehicle.headroom_kwh == pytest.approx(5)


def test_csv_file_is_read_relative_to_the_scenario(tmp_path: Path) -> None:
    csv = "# a comment\n" + CSV_HEADER + "sp-1,2026-02-02T07:05:00-08:00,Mon, 02 Feb 2026 16:05:00 GMT,4.5,7\n"
    csv = csv.replace("Mon, 02 Feb 2026 16:05:00 GMT", '"Mon, 02 Feb 2026 16:05:00 GMT"')
    scenario = load_scenario(_write(tmp_path, "vehicles: {sessions_file: s.csv}\n", csv))
    block = scenario.vehicles[0]
    assert isinstance(block, SessionReplay) and block.sessions_file == "s.csv"
    (session,) = twin_spec(scenario).fleets[0].sessions  # type: ignore[union-attr]
    assert (session.arrival_s, session.departure_s, session.energy_kwh, session.station) == (300, 3900, 4.5, "sp-1")


def test_bad_csv_value_names_file_line_column_and_what_was_expected(tmp_path: Path) -> None:
    csv = "# comment\n" + CSV_HEADER + "sp-1,60,3600,4,7\nsp-2,120,3600,-3,7\n"
    problems = _problems(_write(tmp_path, "vehicles: {sessions_file: s.csv}\n", csv))
    assert problems == [f"{tmp_path / 's.csv'}:4:4: kWhRequested: expected a value > 0.0, got '-3'"]


def test_csv_cross_checks_point_into_the_csv(tmp_path: Path) -> None:
    csv = CSV_HEADER + "sp-1,60,3600,4,7\nsp-9,120,3600,4,7\n,7200,3600,4,7\n"
    problems = _problems(_write(tmp_path, "vehicles: {sessions_file: s.csv}\n", csv))
    csv_file = tmp_path / "s.csv"
    assert problems[0].startswith(f"{csv_file}:3:1: stationID: expected a station id of the scenario, got 'sp-9'")
    assert problems[1].startswith(f"{csv_file}:4:3: disconnectTime: expected a departure after the arrival")


def test_csv_shape_problems_are_named(tmp_path: Path) -> None:
    csv = "stationID,connectionTime,kWhRequested,colour\nsp-1,60,4\n"
    problems = _problems(_write(tmp_path, "vehicles: {sessions_file: s.csv}\n", csv))
    csv_file = tmp_path / "s.csv"
    assert problems[0].startswith(f"{csv_file}:1:1: expected a column for departure (one of departure, ")
    assert problems[1].startswith(f"{csv_file}:1:4: colour: unknown column 'colour'")


def test_missing_csv_file_is_reported_at_the_field(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "vehicles:\n  sessions_file: nowhere.csv\n"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'x.yaml'}:8:18: vehicles.sessions_file: cannot read the sessions file")


def test_bad_yaml_session_field_names_line_and_field(tmp_path: Path) -> None:
    vehicles = """\
vehicles:
  sessions:
    - {arrival: "07:30", departure: "08:30", energy_kwh: 10}
    - {arrival: "07:30", departure: "08:30", energy_kwh: 10, colour: red}
    - {arrival: "7.30am", departure: "08:30", energy_kwh: 100}
"""
    problems = _problems(_write(tmp_path, vehicles))
    x = tmp_path / "x.yaml"
    # (a "did you mean" hint may follow, from whichever scenario field name is closest)
    assert problems[0].startswith(f"{x}:10:62: vehicles.sessions[1].colour: unknown field 'colour'")
    assert problems[1].startswith(f"{x}:11:17: vehicles.sessions[2].arrival: expected seconds after the start")


def test_energy_beyond_the_battery_below_its_target_is_an_error(tmp_path: Path) -> None:
    vehicles = 'vehicles:\n  sessions:\n    - {arrival: "07:30", departure: "09:30", energy_kwh: 70}\n'
    (problem,) = _problems(_write(tmp_path, vehicles))
    assert "vehicles.sessions[0].energy_kwh: expected at most 64 kWh (target_soc 0.8 of a 80 kWh" in problem


def test_replay_run_delivers_each_session_at_its_station_through_the_csms() -> None:
    path = DATA / "replay-small.yaml"
    scenario = load_scenario(path)
    run = VirtualRun(scenario, scenario_file=str(path))
    record = run.run()
    report = build(record)
    assert report["passed"], report["checks"]
    sessions = twin_spec(scenario).fleets[0].sessions  # type: ignore[union-attr]
    vehicles = sorted(record.vehicles, key=lambda v: int(v.vehicle_id.split("-")[1]))
    assert len(vehicles) == len(sessions) == 4
    for vehicle, session in zip(vehicles, sessions, strict=True):
        assert vehicle.plug_in_s == session.arrival_s
        assert vehicle.departure_s == session.departure_s
        assert vehicle.connector is not None
        assert session.station is None or vehicle.connector.station_id == session.station
        assert vehicle.energy_received_kwh == pytest.approx(session.energy_kwh, abs=1e-6)
    assert vehicles[2].connector is not None and vehicles[2].connector.station_id == "sp-2"  # first free
    assert report["transactions"]["started"] == 4


def test_shipped_acn_scenario_replays_200_sessions_on_200_stations() -> None:
    scenario = load_scenario(SCENARIOS / "acn-depot-200.yaml")
    (fleet,) = twin_spec(scenario).fleets
    sessions = fleet.sessions  # type: ignore[union-attr]
    assert len(sessions) == 200 == len(scenario.station_ids())
    assert len({s.station for s in sessions}) == 200
    assert all(0 <= s.arrival_s < s.departure_s <= scenario.duration for s in sessions)
