from pathlib import Path

import pytest

from simulator.scenario.expect import Comparison, parse_comparison
from simulator.scenario.loader import ScenarioError, load_scenario, parse_scenario
from simulator.scenario.models import LinkDown, ProvisionTokens
from simulator.scenario.units import parse_duration_s

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

GOOD = """\
name: t
seed: 1
start: 2026-01-15T17:00:00-05:00
duration: 13h
site: {grid_limit_kw: 400, building_load: {kw: 40, noise_kw: 5}}
chargers:
  - {prefix: ac, count: 30, ocpp: "1.6", max_kw: 22}
  - prefix: dc
    count: 10
    ocpp: "2.0.1"
    max_kw: 150
vehicles:
  count: 40
  battery_kwh: 80
  arrival: {between: ["18:00", "21:00"]}
  soc_on_arrival: {uniform: [0.15, 0.40]}
  departure: {at: "05:30", target_soc: 0.90}
expect:
  site_limit_violations: 0
  vehicles_at_target: ">= 0.98"
"""


def load_text(tmp_path: Path, text: str) -> ScenarioError:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def assert_issue(err: ScenarioError, tmp_path: Path, line: int, field: str, *expected: str) -> None:
    prefix = f"{tmp_path / 'x.yaml'}:{line}:"
    matching = [str(i) for i in err.issues if str(i).startswith(prefix) and (f" {field}: " in str(i))]
    assert matching, f"no issue at line {line} for {field!r} in:\n{err}"
    for text in expected:
        assert text in matching[0], matching[0]


@pytest.mark.parametrize("name", ["depot-night.yaml", "multifamily-peak.yaml", "security-rollout.yaml"])
def test_shipped_scenarios_load(name: str) -> None:
    scenario = load_scenario(SCENARIOS / name)
    assert scenario.start.tzinfo is not None
    assert scenario.site.grid_limit_kw is not None
    assert scenario.expect


def test_depot_night_meets_the_brief() -> None:
    scenario = load_scenario(SCENARIOS / "depot-night.yaml")
    assert len(scenario.station_ids()) >= 40
    assert {g.ocpp for g in scenario.chargers} == {"1.6", "2.0.1"}
    uncontrolled_kw = sum(g.max_kw * g.count * g.connectors for g in scenario.chargers)
    assert scenario.site.grid_limit_kw is not None and uncontrolled_kw > 2 * scenario.site.grid_limit_kw
    assert scenario.duration == 13 * 3600


def test_multifamily_provisions_residents_tokens() -> None:
    scenario = load_scenario(SCENARIOS / "multifamily-peak.yaml")
    provisions = [a for a in scenario.actions if isinstance(a, ProvisionTokens)]
    assert provisions and provisions[0].vehicles == "residents"
    assert any(b.group == "residents" and b.id_token for b in scenario.vehicles)


def test_example_shape_loads_with_times_resolved_against_the_start() -> None:
    scenario = parse_scenario(GOOD, "good.yaml")
    block = scenario.vehicles[0]
    assert block.battery_kwh == 80
    assert scenario.seconds(block.departure.at) == 12.5 * 3600  # 05:30 is the next morning
    assert scenario.seconds(block.arrival.between[0]) == 3600  # type: ignore[index]
    assert scenario.chargers[0].current == "AC" and scenario.chargers[0].phases == 3
    assert scenario.chargers[1].current == "DC" and scenario.chargers[1].station_ids[-1] == "dc-10"
    assert scenario.expect["vehicles_at_target"] == Comparison(">=", 0.98)


def test_unquoted_times_are_not_base_60_numbers() -> None:
    scenario = parse_scenario(GOOD.replace('["18:00", "21:00"]', "[18:00, 21:00]"))
    assert scenario.seconds(scenario.vehicles[0].arrival.between[1]) == 4 * 3600  # type: ignore[index]


def test_clock_times_follow_daylight_saving_in_the_named_zone() -> None:
    text = GOOD.replace("start: 2026-01-15T17:00:00-05:00", "start: 2026-03-07T17:00:00\ntimezone: America/New_York")
    scenario = parse_scenario(text)
    # clocks go forward at 02:00 on 2026-03-08: 17:00 EST → 05:30 EDT is 12.5 h on the wall, 11.5 h real
    assert scenario.seconds(scenario.vehicles[0].departure.at) == 11.5 * 3600  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("13h", 46800), ("30m", 1800), ("90s", 90), ("1h30m", 5400), (90, 90), ("2.5h", 9000), ("1d", 86400)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    ("text", "actual", "result"),
    [(">= 0.98", 0.98, True), (">= 0.98", 0.97, False), ("0", 0, True), (0, 1, False), ("< 5", 4.9, True),
     ("< 5", 5, False), ("<= 2%", 0.02, True), ("!= 3", 3, False), ("> 1e3", 1001, True)],
)  # fmt: skip
def test_comparisons(text: object, actual: float, result: bool) -> None:
    assert parse_comparison(text).evaluate(actual) is result


def test_wrong_enum_names_file_line_field_and_choices(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace('ocpp: "2.0.1"', 'ocpp: "1.7"'))
    assert_issue(err, tmp_path, 10, "chargers[1].ocpp", "expected one of '1.6', '2.0.1'", "got '1.7'")
    assert str(err).startswith(f"{tmp_path / 'x.yaml'}:10:11: chargers[1].ocpp: expected one of '1.6', '2.0.1'")


def test_unquoted_ocpp_version_is_accepted_and_wrong_one_reported(tmp_path: Path) -> None:
    assert parse_scenario(GOOD.replace('ocpp: "1.6"', "ocpp: 1.6")).chargers[0].ocpp == "1.6"
    err = load_text(tmp_path, GOOD.replace('ocpp: "1.6"', "ocpp: 1.7"))
    assert_issue(err, tmp_path, 7, "chargers[0].ocpp", "got '1.7'")


def test_missing_field(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace("    max_kw: 150\n", ""))
    assert_issue(err, tmp_path, 8, "chargers[1].max_kw", "required field is missing")


def test_unknown_field_points_at_the_key_and_suggests(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace("    count: 10\n", "    cout: 10\n"))
    assert_issue(err, tmp_path, 9, "chargers[1].cout", "unknown field 'cout'", "did you mean 'count'")
    assert_issue(err, tmp_path, 8, "chargers[1].count", "required field is missing")
    assert len(err.issues) == 2


def test_bad_duration(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace("duration: 13h", "duration: 13x"))
    assert_issue(err, tmp_path, 4, "duration", "expected a duration like '13h'", "got '13x'")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace('["18:00", "21:00"]}', '["18:00", "21:00"}'))
    (issue,) = err.issues
    assert issue.file == str(tmp_path / "x.yaml") and issue.line == 15
    assert "YAML syntax error" in str(err) and f"x.yaml:{issue.line}:" in str(err)


def test_all_errors_are_listed_in_file_order(tmp_path: Path) -> None:
    text = GOOD.replace("duration: 13h", "duration: soon").replace("count: 40", "count: -1")
    text = text.replace("vehicles_at_target", "vehicles_at_targt")
    err = load_text(tmp_path, text)
    assert [i.line for i in err.issues] == [4, 13, 20]
    assert [i.field for i in err.issues] == ["duration", "vehicles.count", "expect.vehicles_at_targt"]
    assert "expected a value >= 0" in str(err)
    assert len(str(err).splitlines()) == 3


def test_discriminated_kinds_and_references(tmp_path: Path) -> None:
    text = (
        GOOD
        + """\
faults:
  - {at: "01:00", kind: link_down, charger: dc-3, duration: 30m}
actions:
  - {at: "18:00", kind: remote_start, charger: ac-1, id_token: ABC}
"""
    )
    scenario = parse_scenario(text)
    assert isinstance(scenario.faults[0], LinkDown) and scenario.faults[0].duration == 1800
    assert [round(t) for t, _ in scenario.timeline()] == [3600, 8 * 3600]

    err = load_text(tmp_path, text.replace("kind: link_down", "kind: meltdown"))
    assert_issue(err, tmp_path, 22, "faults[0].kind", "expected one of 'link_down'", "got 'meltdown'")
    err = load_text(tmp_path, text.replace("charger: dc-3", "charger: dc-30").replace("ac-1,", "ac-99,"))
    assert_issue(err, tmp_path, 22, "faults[0].charger", "expected a station id or prefix", "got 'dc-30'")
    assert_issue(err, tmp_path, 24, "actions[0].charger", "got 'ac-99'")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace("seed: 1\n", "seed: 1\nseed: 2\n"))
    assert_issue(err, tmp_path, 3, "seed", "duplicate key 'seed' (first at line 2)")


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml:1:1: cannot read"):
        load_scenario(tmp_path / "nope.yaml")


# ---- load management fields -----------------------------------------------------------------------------
MANAGED = """\
name: managed
seed: 1
start: 2026-01-15T17:00:00-05:00
duration: 13h
site: {grid_limit_kw: 400, phase_limits_a: [630, 630, 600], voltage: 230, building_load: {kw: 40}}
csms:
  load_management:
    strategy: deadline
    interval: 30s
    safety_margin_kw: 10
    fallback_current_a: 8
    priority_groups: [fleet]
    prices: {"00:00": 0.10, "17:00": 0.30, "21:00": 0.12}
    demand_charge_per_kw: 15
chargers:
  - {prefix: ac, count: 4, ocpp: "1.6", max_kw: 7.4, phases: 1, phase: rotate}
  - {prefix: one, count: 2, ocpp: "1.6", max_kw: 7.4, phases: 1, phase: L2}
  - {prefix: dc, count: 1, ocpp: "2.0.1", max_kw: 150}
"""


def test_load_management_block_and_phase_wiring_load() -> None:
    scenario = parse_scenario(MANAGED)
    lm = scenario.csms.load_management
    assert lm is not None
    assert (lm.strategy, lm.interval, lm.safety_margin_kw, lm.fallback_current_a) == ("deadline", 30.0, 10.0, 8.0)
    assert lm.priority_groups == ["fleet"] and lm.demand_charge_per_kw == 15
    assert lm.prices == {0.0: 0.10, 17.0: 0.30, 21.0: 0.12}
    assert scenario.site.phase_limits_a == (630.0, 630.0, 600.0) and scenario.site.voltage == 230.0
    ac, one, dc = scenario.chargers
    assert [ac.site_phases(i) for i in range(4)] == [(0,), (1,), (2,), (0,)]
    assert one.site_phases(0) == (1,) and dc.site_phases(0) == (0, 1, 2)


def test_load_management_is_optional_and_defaults_to_unmanaged() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.csms.load_management is None
    assert scenario.site.phase_limits_a is None and scenario.site.voltage == 230.0
    assert parse_scenario(GOOD.replace("expect:", "csms: {load_management: {}}\nexpect:")).csms.load_management


def test_load_management_errors_name_line_and_field(tmp_path: Path) -> None:
    err = load_text(tmp_path, MANAGED.replace("strategy: deadline", "strategy: fastest"))
    assert_issue(
        err, tmp_path, 8, "csms.load_management.strategy", "expected one of 'none', 'equal_share'", "'fastest'"
    )
    err = load_text(tmp_path, MANAGED.replace("interval: 30s", "interval: soon"))
    assert_issue(err, tmp_path, 9, "csms.load_management.interval", "expected a duration")
    err = load_text(tmp_path, MANAGED.replace("safety_margin_kw: 10", "safety_margin_kw: -1"))
    assert_issue(err, tmp_path, 10, "csms.load_management.safety_margin_kw", ">= 0")
    err = load_text(tmp_path, MANAGED.replace("    fallback_current_a: 8\n", "    fallback_a: 8\n"))
    assert_issue(err, tmp_path, 11, "csms.load_management.fallback_a", "unknown field", "fallback_current_a")


def test_phase_limits_and_phase_wiring_errors(tmp_path: Path) -> None:
    err = load_text(tmp_path, MANAGED.replace("[630, 630, 600]", "[630, 630]"))
    assert_issue(err, tmp_path, 5, "site.phase_limits_a[2]", "list item is missing")
    err = load_text(tmp_path, MANAGED.replace("[630, 630, 600]", "[630, 0, 600]"))
    assert_issue(err, tmp_path, 5, "site.phase_limits_a[1]", "> 0")
    err = load_text(tmp_path, MANAGED.replace("phases: 1, phase: L2", "phase: L2"))
    assert_issue(err, tmp_path, 17, "chargers[1]", "'phase' applies to single-phase AC chargers only")
    err = load_text(tmp_path, MANAGED.replace("phase: rotate", "phase: L4"))
    assert_issue(err, tmp_path, 16, "chargers[0].phase", "expected one of 'L1', 'L2', 'L3', 'rotate'")


def test_managed_site_needs_a_limit_and_chargers_above_the_minimum(tmp_path: Path) -> None:
    text = MANAGED.replace("grid_limit_kw: 400, phase_limits_a: [630, 630, 600], ", "")
    err = load_text(tmp_path, text)
    assert_issue(err, tmp_path, 8, "csms.load_management.strategy", "expected a site limit")
    err = load_text(tmp_path, MANAGED.replace("max_kw: 7.4, phases: 1, phase: L2", "max_kw: 1.2, phases: 1, phase: L2"))
    assert_issue(err, tmp_path, 17, "chargers[1].max_kw", "expected chargers rated above min_current_a (6 A)")


def test_charger_firmware_smart_charging_behaviour(tmp_path: Path) -> None:
    flagged = GOOD.replace("max_kw: 22}", "max_kw: 22, smart_charging: ignore}")
    scenario = parse_scenario(flagged)
    assert [g.smart_charging for g in scenario.chargers] == ["ignore", "compliant"]
    err = load_text(tmp_path, GOOD.replace("max_kw: 22}", "max_kw: 22, smart_charging: sometimes}"))
    assert_issue(
        err, tmp_path, 7, "chargers[0].smart_charging", "expected one of 'compliant', 'reject', 'ignore'", "sometimes"
    )


@pytest.mark.parametrize("name", ["noncompliant-station.yaml", "offline-station.yaml"])
def test_noncompliant_scenarios_load(name: str) -> None:
    scenario = load_scenario(SCENARIOS / name)
    assert scenario.expect["site_limit_violations"].value == 0
    assert scenario.csms.load_management is not None and scenario.csms.load_management.strategy != "none"


# ---- fleet records -------------------------------------------------------------------------------------------
FLEET = """\
name: fleet
seed: 1
start: 2026-01-15T17:00:00-05:00
duration: 13h
site: {grid_limit_kw: 400}
csms: {load_management: {strategy: deadline}}
chargers:
  - {prefix: ac, count: 4, ocpp: "1.6", max_kw: 22}
vehicles:
  name: van
  count: 4
  arrival: {between: ["18:00", "21:00"]}
  departure: {at: "05:30", target_soc: 0.90}
  id_token: "V-{n:02d}"
  group: depot
  telematics: {before_arrival: 2h, every: 10m}
actions:
  - {at: "17:00", kind: provision_tokens, vehicles: depot}
  - {at: "17:00", kind: register_vehicles, vehicles: depot}
"""


def test_vehicles_registered_in_the_fleet_records_with_their_telematics_load() -> None:
    scenario = parse_scenario(FLEET)
    block = scenario.vehicles[0]
    assert block.telematics is not None and (block.telematics.before_arrival, block.telematics.every) == (7200, 600)
    assert [a.kind for a in scenario.actions] == ["provision_tokens", "register_vehicles"]


def test_fleet_record_errors_name_line_and_field(tmp_path: Path) -> None:
    err = load_text(tmp_path, FLEET.replace('  - {at: "17:00", kind: register_vehicles, vehicles: depot}\n', ""))
    assert_issue(err, tmp_path, 16, "vehicles.telematics", "register_vehicles action for 'depot'")
    err = load_text(
        tmp_path,
        FLEET.replace('  id_token: "V-{n:02d}"\n', "").replace(
            '  - {at: "17:00", kind: provision_tokens, vehicles: depot}\n', ""
        ),
    )
    assert_issue(err, tmp_path, 10, "vehicles.id_token", "registered vehicles need id_token")
    err = load_text(tmp_path, FLEET.replace("register_vehicles, vehicles: depot", "register_vehicles, vehicles: vans"))
    assert_issue(err, tmp_path, 19, "actions[1].vehicles", "expected a vehicle group ('depot')", "'vans'")
    err = load_text(tmp_path, FLEET.replace("every: 10m", "every: 0s"))
    assert_issue(err, tmp_path, 16, "vehicles.telematics.every", "expected a value > 0")
