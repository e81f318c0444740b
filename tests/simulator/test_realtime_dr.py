"""Demand response in real time (issue 20): ``sim run --realtime --start now --speed 1 --vtn HOST:PORT`` against
``csms serve --openadr-vtn-url`` (a subprocess). The run hosts a real openleadr VTN and publishes the scenario's
event on it; the CSMS's VEN registers, receives it and lowers its site's limit from the event's start to its end;
the twin's meter (a step a second) shows the three cars' import at the site's 30 kW before, at the event's 15 kW
during it, and back at 30 kW after — the chargers on the CSMS's clock, so its charging profiles hold when it
means them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from simulator.cli import _parser
from simulator.operators import make_operator
from simulator.outputs import write_outputs
from simulator.realtime import RealtimeOptions, RealtimeRun
from simulator.scenario.loader import load_scenario
from simulator.twin.site_meter import MeterStep
from tests.simulator.test_realtime import API_KEY, Csms, _serve, free_port

pytestmark = pytest.mark.timeout(300)

SCENARIO = Path(__file__).parent / "data" / "realtime-dr.yaml"
STATIONS = ("rtdr-1", "rtdr-2", "rtdr-3")
EVENT_S, EVENT_END_S, EVENT_KW, SITE_KW = 50.0, 80.0, 15.0, 30.0
#: The twin's meter step (1 s) the plan is applied in: the chargers hear the new limit at the event's edge.
REACTION_S = 3.0


async def _prepare(csms: Csms) -> None:
    """The operator's site in the CSMS: the three chargers behind a 30 kW grid connection."""
    operator = make_operator("chargetwin", csms.api_url, API_KEY)
    try:
        for station_id in STATIONS:
            await operator.provision_station(station_id, "1.6", None)
    finally:
        await operator.close()
    site = {
        "id": "dr-garage", "name": "DR garage", "strategy": "equal_share", "interval_s": 60, "openadr_enrolled": True,
        "nodes": [{"id": "grid", "limit_kw": SITE_KW}],
        "evses": [{"station_id": s, "evse_id": 1, "node": "grid", "max_current_a": 16} for s in STATIONS],
    }  # fmt: skip
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        made = await http.post(csms.api_url + "/api/v1/sites", json=site)
        assert made.status_code == 201, made.text


def import_kw(log: tuple[MeterStep, ...], start: float, end: float) -> list[float]:
    return [s.import_kw for s in log if s.t_s >= start and s.t_s + s.duration_s <= end]


def test_a_scenarios_demand_response_event_lowers_the_csms_site_limit_for_its_duration_in_real_time(
    tmp_path: Path,
) -> None:
    vtn_port = free_port()
    vtn_url = f"http://127.0.0.1:{vtn_port}/OpenADR2/Simple/2.0b"
    with _serve(
        f"sqlite:///{tmp_path / 'csms.db'}", "--openadr-vtn-url", vtn_url, "--openadr-ven-name", "garage-ven"
    ) as csms:
        asyncio.run(_prepare(csms))
        args = _parser().parse_args([
            "run", str(SCENARIO), "--csms", csms.ws_url, "--realtime", "--start", "now", "--speed", "1",
            "--vtn", f"127.0.0.1:{vtn_port}", "--api-url", csms.api_url, "--api-key", API_KEY, "--quiet",
        ])  # fmt: skip
        options = RealtimeOptions.from_args(args)
        scenario = load_scenario(SCENARIO)
        run = RealtimeRun(scenario, options, None, make_operator("chargetwin", csms.api_url, API_KEY))
        record = asyncio.run(run.run())
    assert run.fleet is not None
    data = write_outputs(record, tmp_path / "out", reproducible=False, sampler=run.fleet.sampler,
                         step_s=run.fleet.world.step_s, scenario=scenario)  # fmt: skip
    notes = " ".join(data.get("notes", []))
    assert "VEN 'garage-ven'" in notes and "optIn" in notes, notes
    log = record.meter_log
    before = import_kw(log, 30.0, EVENT_S)
    during = import_kw(log, EVENT_S + REACTION_S, EVENT_END_S)
    after = import_kw(log, EVENT_END_S + REACTION_S, 110.0)
    assert before and min(before) > 25.0, before  # three cars sharing the site's 30 kW
    assert during and max(during) <= EVENT_KW + 0.1, during  # the event's 15 kW, within a step or two of its start
    assert min(during) > 10.0, during  # lowered to the event's limit, not stopped
    assert after and min(after) > 25.0, after  # given back at its end
    # The report's demand-response section sees the same from the twin's meter: the edges are its only steps above.
    (event,) = data["demand_response"]["events"]
    assert (event["start_s"], event["end_s"], event["limit_kw"]) == (EVENT_S, EVENT_END_S, EVENT_KW)
    assert event["minutes_above"] <= REACTION_S / 60, event
    assert data["transactions"]["started"] == 3, data["transactions"]


def test_vtn_and_start_now_are_refused_outside_real_time_and_a_bad_address_is_named(capsys) -> None:
    from simulator.cli import EXIT_USAGE, main

    assert main(["run", str(SCENARIO), "--vtn", "127.0.0.1:8081", "--quiet"]) == EXIT_USAGE
    assert "--vtn and --start now work in real time" in capsys.readouterr().err
    assert main(["run", str(SCENARIO), "--start", "now", "--quiet"]) == EXIT_USAGE
    bad = ["--csms", "ws://127.0.0.1:9/ocpp", "--realtime", "--vtn", "vtn.example.com", "--quiet"]
    assert main(["run", str(SCENARIO), *bad]) == EXIT_USAGE
    assert "--vtn vtn.example.com: expected HOST:PORT" in capsys.readouterr().err
