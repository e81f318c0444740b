"""A demand-response event replayed in virtual time (as the CSMS's VEN would receive it): the site keeps under
the event's limit while it lasts. Without the event the same hour draws far more, so the check can fail."""

from __future__ import annotations

from pathlib import Path

from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SCENARIO = Path(__file__).parents[2] / "scenarios" / "demand-response.yaml"


def run(with_event: bool) -> dict:
    scenario = load_scenario(SCENARIO)
    actions = scenario.actions if with_event else [a for a in scenario.actions if a.kind != "demand_response"]
    shorter = scenario.model_copy(update={"duration": 4 * 3600.0, "actions": actions, "expect": {}})
    return report.build(VirtualRun(shorter).run())


def test_the_site_keeps_under_the_event_limit_and_recovers_after_it():
    data = run(with_event=True)
    event = data["demand_response"]["events"][0]
    assert (event["start_s"], event["end_s"], event["limit_kw"]) == (7200.0, 10800.0, 60.0)
    assert event["minutes_above"] <= 2 and event["peak_import_kw"] <= 60.0 + 5.0
    baseline = run(with_event=False)
    assert "demand_response" not in baseline
    assert baseline["site"]["peak_import_kw"] > 100.0  # the hour the event covers draws far more without it
    assert data["site"]["violation_minutes"] == 0
    # the hour under the event delivers less than the same hour without it (the cars make it up later)
    assert data["vehicles"]["energy_received_kwh"] < baseline["vehicles"]["energy_received_kwh"] - 20.0
