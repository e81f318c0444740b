"""The twin's billing check for multifamily garages: its independent cost, the open units it leaves out, and a
scenario that onboards without saying how the property bills is refused with the field named."""

from __future__ import annotations

import pytest

from simulator.scenario.loader import ScenarioError, parse_scenario
from simulator.scenario.models import PropertyTerms
from simulator.verify.multifamily import UnitStatement, section, truth_cost_minor


def test_the_truth_cost_follows_the_terms_to_the_cent():
    recovery = PropertyTerms(utility_rate="0.2450", margin_pct="10")
    assert truth_cost_minor(recovery, 20_000.4) == 539  # 20 kWh x 0.2695
    flat = PropertyTerms(billing_mode="flat_fee", utility_rate="0.30", flat_fee="25", allowance_kwh="100")
    assert truth_cost_minor(flat, 80_000) == 2500 and truth_cost_minor(flat, 112_500) == 2875
    yen = PropertyTerms(utility_rate="31", currency="JPY")
    assert truth_cost_minor(yen, 10_000) == 310


def test_units_still_charging_are_listed_open_and_not_judged():
    terms = PropertyTerms(utility_rate="0.25")
    statements = [UnitStatement("RES-1", 10_000.0, 250, 250), UnitStatement("RES-2", 4_000.0, 100, 100)]
    out = section(statements, {"RES-1": 10_000.3, "RES-2": 4_300.0}, {"RES-2"}, terms)
    assert (out["max_error_cents"], out["max_error_wh"], out["open"]) == (0, 0.3, 1)
    assert [r["open"] for r in out["per_unit"]] == [False, True]
    wrong = section([UnitStatement("RES-1", 10_000.0, 260, 260)], {"RES-1": 10_000.0}, set(), terms)
    assert wrong["max_error_cents"] == 10 and wrong["max_ledger_error_cents"] == 10  # the ledger holds it too


def test_a_ledger_that_does_not_hold_the_statement_is_caught_open_unit_or_not():
    terms = PropertyTerms(utility_rate="0.25")
    statements = [UnitStatement("RES-1", 10_000.0, 250, 500), UnitStatement("RES-2", 4_000.0, 100, 0)]
    out = section(statements, {"RES-1": 10_000.0, "RES-2": 4_300.0}, {"RES-2"}, terms)
    assert out["max_error_cents"] == 0 and out["max_ledger_error_cents"] == 250  # posted twice
    assert [r["ledger_error_cents"] for r in out["per_unit"]] == [250, 100]  # the open unit never posted


def test_onboarding_without_the_property_terms_is_refused_naming_the_field():
    text = """
name: no-terms
seed: 1
start: 2026-03-10T16:00:00+01:00
duration: 1h
chargers: [{prefix: g, count: 1, ocpp: "1.6", vendor: V, model: M, max_kw: 11}]
vehicles:
  - name: residents
    count: 1
    model: compact-58
    arrival: {between: ["16:10", "16:20"]}
    departure: {between: ["16:50", "16:55"]}
    id_token: "R-{n}"
actions: [{at: "16:00", kind: onboard, vehicles: residents}]
csms: {load_management: {strategy: equal_share}}
"""
    with pytest.raises(ScenarioError, match=r"actions\[0\].*csms.property"):
        parse_scenario(text, "no-terms.yaml")
