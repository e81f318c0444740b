"""A small scenario with a tariff, in virtual time: every session's OCPI CDR has the twin's true energy to the Wh
and a total equal to an independent calculation to the cent, and each charger's display showed that total at the
end (2.0.1 totalCost; 1.6 FinalCost, the chargers having declared CustomDisplayCostAndPrice)."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from csms.ocpp.convert import from_posix
from csms.ocpp.outgoing import VariableRef, VariableResult
from csms.services import configuration, tariffs
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import ScenarioError, load_scenario
from simulator.verify.billing import truth_timeline

SMALL = Path(__file__).parent / "data" / "small-mixed.yaml"
#: 1.00 a session + 0.30 a kWh, 20 % VAT on both.
TARIFF = {
    "id": "FLAT-AND-ENERGY",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": "1.00", "vat": "20", "step_size": 1}]},
        {"price_components": [{"type": "ENERGY", "price": "0.30", "vat": "20", "step_size": 1}]},
    ],
}


def expected_incl_vat(kwh: float) -> Decimal:
    """The tariff worked out by hand from the twin's energy, read as its meter's Wh register shows it."""
    energy = Decimal(str(kwh)).quantize(Decimal("0.001"), ROUND_HALF_UP)
    return ((Decimal("1.00") + energy * Decimal("0.30")) * Decimal("1.2")).quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_cdrs_match_the_twins_truth_and_the_displays_show_them():
    run = VirtualRun(load_scenario(SMALL), scenario_file=str(SMALL))
    when = from_posix(run.epoch) - timedelta(days=1)
    with run.csms.session_factory() as db:
        tariffs.put(db, TARIFF["id"], TARIFF, when)
        for station_id, charger in run.fleet.chargers.items():
            tariffs.assign(db, TARIFF["id"], now=when, station_id=station_id)
            if charger.version == "1.6":  # as a GetConfiguration through the API would have stored it
                declared = VariableResult(VariableRef("CustomDisplayCostAndPrice"), "Accepted", "true", True)
                configuration.remember_results(db, station_id, [declared], when)
        db.commit()
    report = build(run.run())
    assert report["passed"], report["checks"]

    billing = report["billing"]
    assert billing["sessions"] == billing["cdrs"] == 5 and billing["without_cdr"] == 0
    assert billing["energy_max_error_wh"] <= 1.0  # the 1.6 register is whole Wh; 2.0.1 sends mWh
    assert billing["displayed_final_mismatches"] == 0
    for row in billing["per_session"]:
        assert Decimal(row["cdr_total_incl_vat"]) == expected_incl_vat(row["truth_kwh"]), row
        assert row["displayed_final_cost"] == row["cdr_total_incl_vat"] and row["displayed_matches_cdr"] is True
        assert row["review_reasons"] == []
    assert {row["station_id"][:2] for row in billing["per_session"]} == {"ac", "dc"}  # both versions


def _with_actions(tmp_path: Path, actions: str, expect: str) -> Path:
    """small-mixed.yaml with its drivers in the token group CARS, more actions and more checks."""
    text = SMALL.read_text().replace(
        '  - {at: "18:00", kind: provision_tokens, vehicles: cars}',
        '  - {at: "18:00", kind: provision_tokens, vehicles: cars, token_group: CARS}\n' + actions,
    )
    path = tmp_path / "scenario.yaml"
    path.write_text(text + expect)
    return path


def test_the_twin_prices_its_own_truth_and_the_cdrs_agree_to_the_cent(tmp_path: Path):
    """Tariffs set by the scenario: everyone's at the AC chargers, the CARS group's own at the DC chargers (the
    CSMS's precedence: the driver's group first), a new version of the first mid-session. The twin works each
    session's cost out again from its own physics with the independent calculator: equal to the CDR."""
    scenario = _with_actions(
        tmp_path,
        '  - {at: "18:00", kind: set_tariff, tariff: STD, energy_price: 0.30, flat_fee: 1.00, vat: 20, charger: ac}\n'
        '  - {at: "18:00", kind: set_tariff, tariff: STD, energy_price: 0.30, flat_fee: 1.00, vat: 20, charger: dc}\n'
        '  - {at: "18:00", kind: set_tariff, tariff: CARS, energy_price: 0.25, vat: 20, charger: dc, group: CARS}\n'
        '  - {at: "19:30", kind: set_tariff, tariff: STD, energy_price: 0.40, flat_fee: 1.00, vat: 20}\n',
        "  billing_cost_mismatches: 0\n  billing_max_cost_difference_minor: 0\n",
    )
    report = build(VirtualRun(load_scenario(scenario), scenario_file=str(scenario)).run())
    assert report["passed"], report["checks"]
    billing = report["billing"]
    assert billing["cost_compared"] == billing["cdrs"] == 5
    assert billing["cost_mismatches"] == 0 and billing["max_cost_difference_minor"] == 0
    for row in billing["per_session"]:
        assert row["truth_total_incl_vat"] == row["cdr_total_incl_vat"] and row["cost_difference_minor"] == 0, row
        kwh = Decimal(row["cdr_kwh"])
        if row["station_id"].startswith("dc"):  # the group's tariff: 0.25/kWh, no fee
            assert Decimal(row["cdr_total_excl_vat"]) == (kwh * Decimal("0.25")).quantize(Decimal("0.01")), row
        else:  # 0.30 before 19:30, 0.40 after: between the two
            assert kwh * Decimal("0.30") + 1 < Decimal(row["cdr_total_excl_vat"]) < kwh * Decimal("0.40") + 1, row
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["billing_cost_mismatches"]["actual"] == 0 and checks["billing_cost_mismatches"]["passed"]


TOU_AND_IDLE_FEE = """\
  - at: "18:00"
    kind: set_tariff
    tariff: TOU
    charger: ac
    elements: &tou
      - price_components: [{type: FLAT, price: 0.50, vat: 20, step_size: 1}]
      - price_components: [{type: ENERGY, price: 0.20, vat: 20, step_size: 1}]
        restrictions: {start_time: "17:00", end_time: "18:30"}
      - price_components: [{type: ENERGY, price: 0.35, vat: 20, step_size: 1}]
      - price_components: [{type: PARKING_TIME, price: 6.00, vat: 20, step_size: 60}]
  - {at: "18:00", kind: set_tariff, tariff: TOU, charger: dc, elements: *tou}
"""


def test_a_time_of_use_tariff_with_an_idle_fee_is_billed_as_the_truth_to_the_cent(tmp_path: Path):
    """A scenario's own OCPI tariff: energy cheaper until 18:30, 6.00/h (per started minute) once plugged in
    without charging. The DC cars are full long before they leave: the truth timeline has them parked for
    about an hour, the CDRs charge it, and the twin's own calculation comes to the same totals, to the cent."""
    scenario = _with_actions(
        tmp_path, TOU_AND_IDLE_FEE, "  billing_cost_mismatches: 0\n  billing_max_cost_difference_minor: 0\n"
    )
    report = build(VirtualRun(load_scenario(scenario), scenario_file=str(scenario)).run())
    assert report["passed"], report["checks"]
    billing = report["billing"]
    assert billing["cost_compared"] == 5 and billing["cost_mismatches"] == 0, billing
    parked = [row for row in billing["per_session"] if row["truth_parking_s"] > 1800]
    assert {row["station_id"] for row in parked} == {"dc-1", "dc-2"}, billing["per_session"]
    for row in billing["per_session"]:
        assert row["cost_difference_minor"] == 0, row
        assert (row["truth_total_excl_vat"], row["truth_total_incl_vat"]) == (
            row["cdr_total_excl_vat"],
            row["cdr_total_incl_vat"],
        )
        cheapest = Decimal("0.50") + Decimal(row["cdr_kwh"]) * Decimal("0.20")
        if row in parked:  # the idle fee is in the bill: more than all the energy at the cheaper price plus it
            idle = Decimal(row["truth_parking_s"]) / 3600 * 6
            assert Decimal(row["cdr_total_excl_vat"]) >= cheapest + idle, row


def test_a_tariff_the_csms_would_refuse_is_refused_at_load_naming_field_and_line(tmp_path: Path):
    bad = TOU_AND_IDLE_FEE.replace('end_time: "18:30"', 'end_time: "18h30"')
    scenario = _with_actions(tmp_path, bad, "")
    with pytest.raises(ScenarioError) as refused:
        load_scenario(scenario)
    message = str(refused.value)
    assert "scenario.yaml:25:15: actions[1].elements: not a valid OCPI 2.2.1 tariff" in message, message
    assert 'elements[1].restrictions.end_time: must be local time "HH:MM"' in message, message


def test_the_truth_timeline_is_the_power_log_cut_to_the_session():
    """11 kW from t=100 s, full at t=1900 s (0 W, parked), unplugged at t=4000 s; the session ran 400-3000 s."""
    log = [(0.0, 500.0, 0.0), (100.0, 500.0, 11_000.0), (1900.0, 6000.0, 0.0), (4000.0, 6000.0, 0.0)]
    timeline = truth_timeline(log, 400.0, 3000.0, "CAR-1")
    assert [(at.timestamp(), round(wh, 6)) for at, wh in timeline.samples] == [
        (400.0, round(500.0 + 11_000 * 300 / 3600, 6)),
        (1900.0, 6000.0),
        (3000.0, 6000.0),
    ]
    assert [(a.timestamp(), b.timestamp()) for a, b in timeline.parking] == [(1900.0, 3000.0)]
    assert timeline.id_token == "CAR-1"
