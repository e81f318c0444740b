"""Local lists in virtual time (issue 17): the embedded CSMS keeps a station's list in step with the tokens
the scenario provisions, through the same host plugin as ``csms serve``, so the twin's charger starts
offline for a token it never saw online."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.ocpp.convert import from_posix
from csms.services import local_lists
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SCENARIO = """
name: local-list
seed: 1
start: 2026-02-02T18:00:00+01:00
duration: 60m
site: {grid_limit_kw: 120}
chargers:
  - {prefix: ac, count: 1, ocpp: "OCPP", max_kw: 11}
vehicles:
  - name: car
    count: 1
    arrival: {between: ["18:30", "18:31"]}
    soc_on_arrival: {uniform: [0.2, 0.3]}
    departure: {at: "18:50", target_soc: 0.9}
    id_token: "CAR-{n}"
    group: cars
actions:
  - {at: "18:05", kind: provision_tokens, vehicles: cars}
faults:
  - {at: "18:20", kind: link_down, charger: ac-1, duration: 35m}
"""


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("has_list", [True, False])
def test_provisioned_tokens_reach_the_local_list_and_start_offline(tmp_path: Path, version: str, has_list: bool):
    path = tmp_path / "local-list.yaml"
    path.write_text(SCENARIO.replace("OCPP", version))
    run = VirtualRun(load_scenario(path), scenario_file=str(path))
    if has_list:  # the operator gave ac-1 a list of every token (POST /stations/ac-1/local-list, no group)
        with run.csms.session_factory() as db:
            local_lists.select_group(db, "ac-1", None, from_posix(run.epoch))
            db.commit()
    run.run()
    charger = run.fleet.chargers["ac-1"]
    held = charger.auth.local_list
    with run.csms.session_factory() as db:
        state = local_lists.state(db, "ac-1")
        csms_version, behind = state.version, local_lists.behind(db, "ac-1")
    started = [tx for tx in run.records.transactions() if tx.station_id == "ac-1" and (tx.energy_kwh or 0) > 0]
    if has_list:
        assert held.lookup("CAR-1", 0) is not None and held.version == csms_version >= 1 and not behind
        assert started, "CAR-1 arrived while ac-1 was offline: its local list let it start"
    else:
        assert held.version == 0 and not started, "no list, unknown token offline: no charging"
