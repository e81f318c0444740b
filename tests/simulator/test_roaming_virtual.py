"""Roaming in virtual time (issue 22 point 4): the embedded CSMS serves OCPI 2.2.1 on a loopback port, the twin's
eMSP (its own HTTP server) registers with it (token A → B → C), pulls locations and tariffs, pushes its drivers'
tokens, starts a session by command, answers a real-time authorisation, and receives sessions, CDRs and a new
tariff (the CSMS pulls its tokens too); it is down
for a while and no CDR is lost or sent twice. Each CDR it received equals the twin's truth to the Wh and the cost
the independent calculator works out from the truth to the cent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SHORT = Path(__file__).parent / "data" / "roaming-short.yaml"
FULL = Path(__file__).parents[2] / "scenarios" / "roaming.yaml"


def test_the_emsp_authorises_starts_and_receives_every_cdr_also_across_its_downtime():
    run = VirtualRun(load_scenario(SHORT), scenario_file=str(SHORT))
    report = build(run.run())
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    roaming = report["roaming"]
    assert roaming["errors"] == []
    assert (roaming["emsp_locations_pulled"], roaming["emsp_tariffs_pulled"]) == (4, 1)  # 4 stations, no site
    assert roaming["sessions"] == roaming["cdrs_received"] == 3 and roaming["cdrs_duplicated"] == 0
    assert roaming["real_time_authorisations"] == 1  # the NEVER card, asked at Authorize
    assert roaming["tariffs_pushed"] == 1 and roaming["locations_pushed"] == 0  # the new tariff; no location changed
    assert roaming["token_pulls"] == 2  # at registration (in full), an hour later (date_from)
    [start] = roaming["remote_start_commands"]
    assert start["token"] == "APP001" and start["response"] == start["result"] == "ACCEPTED" and start["started"]
    assert roaming["pushes_refused_while_down"] > 0  # the card driver's CDR waited in the outbox
    by_driver = {row["driver"]: row for row in roaming["per_session"]}
    assert {d: r["auth_method"] for d, r in by_driver.items()} == {
        "ALLOWED": "WHITELIST",
        "NEVER": "AUTH_REQUEST",
        "app": "COMMAND",
    }
    for row in roaming["per_session"]:
        assert row["cdrs_received"] == 1 and row["cost_difference_minor"] == 0, row
        assert row["cdr_total_incl_vat"] is not None and row["energy_error_wh"] <= 1.0
    # The CDRs the eMSP holds are the ones the CSMS stored (the billing section's, from its own records).
    stored = {(r["station_id"], r["transaction_id"]): r["cdr_total_incl_vat"] for r in report["billing"]["per_session"]}
    for row in roaming["per_session"]:
        assert Decimal(stored[(row["station_id"], row["transaction_id"])]) == Decimal(row["cdr_total_incl_vat"])


@pytest.mark.slow
def test_the_roaming_scenario_passes_its_checks():
    report = build(VirtualRun(load_scenario(FULL), scenario_file=str(FULL)).run())
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    assert report["roaming"]["sessions"] == 8 and report["roaming"]["remote_starts"] == 3
