"""The scenario's ``update_firmware`` action in virtual time (issue 17): the embedded CSMS stores the image
and sends UpdateFirmware as its API would; each charger downloads and installs it once idle and boots with
the new version, which the CSMS then holds too."""

from __future__ import annotations

from pathlib import Path

from csms.services import stations
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SCENARIO = """
name: firmware-rollout
seed: 1
start: 2026-02-02T18:00:00+01:00
duration: 20m
site: {grid_limit_kw: 120}
chargers:
  - {prefix: ac, count: 2, ocpp: "1.6", max_kw: 11}
  - {prefix: dc, count: 1, ocpp: "2.0.1", max_kw: 50}
actions:
  - {at: "18:05", kind: update_firmware, charger: ac, version: fw-9.1.0}
  - {at: "18:06", kind: update_firmware, charger: dc-1, version: fw-9.1.0}
"""


def test_update_firmware_action_rolls_the_version_out_to_the_chargers(tmp_path: Path) -> None:
    path = tmp_path / "firmware.yaml"
    path.write_text(SCENARIO)
    run = VirtualRun(load_scenario(path), scenario_file=str(path))
    before = {sid: c.identity.firmware_version for sid, c in run.fleet.chargers.items()}
    run.run()
    after = {sid: c.identity.firmware_version for sid, c in run.fleet.chargers.items()}
    assert all(version != "fw-9.1.0" for version in before.values()), before
    assert after == {"ac-1": "fw-9.1.0", "ac-2": "fw-9.1.0", "dc-1": "fw-9.1.0"}
    with run.csms.session_factory() as db:
        stored = {row.id: row.firmware_version for row in stations.list_stations(db)}
    assert stored == after, "the chargers booted with it and said so"
