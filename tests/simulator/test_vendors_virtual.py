"""Vendor profiles in a scenario: the ``vendor_profile`` field of a charger group, validated with a clear
message, and scenarios/mixed-vendors.yaml (one group per profile, quirks and faults) run in virtual time
against the embedded CSMS: nothing lost, nothing duplicated, every session's energy as the twin delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.station.vendors import PROFILES
from tests.simulator.test_scenario_loader import GOOD, assert_issue, load_text

ROOT = Path(__file__).resolve().parents[2]


def test_a_group_names_its_vendor_profile_and_boots_as_that_vendor(tmp_path: Path) -> None:
    scenario = parse_scenario(GOOD.replace("max_kw: 22}", "max_kw: 22, vendor_profile: alfen-eve}"))
    alfen, plain = scenario.chargers
    assert (alfen.vendor_profile, alfen.vendor, alfen.model) == ("alfen-eve", "Alfen BV", "NG910-60023")
    assert (plain.vendor_profile, plain.vendor) == (None, "ChargeTwin")
    abb = "max_kw: 22, vendor_profile: abb-terra-ac, vendor: ABB E-mobility}"
    named = parse_scenario(GOOD.replace("max_kw: 22}", abb))
    assert named.chargers[0].vendor == "ABB E-mobility"  # given names win over the profile's


def test_an_unknown_profile_or_one_for_another_version_is_refused_with_the_choices(tmp_path: Path) -> None:
    err = load_text(tmp_path, GOOD.replace("max_kw: 22}", "max_kw: 22, vendor_profile: tesla}"))
    assert_issue(err, tmp_path, 7, "chargers[0].vendor_profile", "expected a vendor profile (abb-terra-ac", "'tesla'")
    on_201 = GOOD.replace('ocpp: "1.6", max_kw: 22}', "ocpp: '2.0.1', max_kw: 22, vendor_profile: alfen-eve}")
    err = load_text(tmp_path, on_201)
    assert "vendor profile 'alfen-eve' models OCPP 1.6 chargers, not 2.0.1" in str(err)


def test_mixed_vendors_lose_nothing_and_every_sessions_energy_matches_the_twin() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "mixed-vendors.yaml")
    profiles = {g.vendor_profile for g in scenario.chargers}
    # One group (at least) per vendor profile; everest-pinned-url is everest on the wire until a re-point writes
    # its URL key (tests/csms/test_repoint.py), which this scenario does not do.
    assert profiles == set(PROFILES) - {"spec", "everest-pinned-url"}
    data = report.build(VirtualRun(scenario).run())
    assert data["passed"], data["checks"]
    tx = data["transactions"]
    assert (tx["lost"], tx["duplicated"], tx["energy_max_error_kwh"]) == (0, 0, 0.0)
    by_group = {
        g.prefix: [r for r in tx["per_transaction"] if r["station_id"].startswith(f"{g.prefix}-")]
        for g in scenario.chargers
    }
    assert all(rows and all(r["completed"] and r["csms_kwh"] > 0 for r in rows) for rows in by_group.values())
    assert data["stations"]["booted"] == 12
    alerts = data["alerts"]  # both outages alerted; jittered heartbeats and early statuses raise nothing
    assert (alerts["raised"], alerts["missed"], alerts["false"]) == (2, 0, 0)


@pytest.mark.parametrize("name", ["mixed-vendors.yaml"])
def test_the_scenario_loads_with_its_checks(name: str) -> None:
    scenario = load_scenario(ROOT / "scenarios" / name)
    assert {"transactions_lost", "transactions_duplicated", "energy_mismatch_kwh"} <= set(scenario.expect)
