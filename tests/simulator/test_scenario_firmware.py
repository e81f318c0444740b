"""The scenario's ``update_firmware`` action in virtual time (issue 17): the embedded CSMS stores the image
and sends UpdateFirmware as its API would; each charger downloads and installs it once idle and boots with
the new version, which the CSMS then holds too."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.services import diagnostics, security_events, stations
from simulator.runner import VirtualRun
from simulator.scenario.loader import ScenarioError, load_scenario

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


SIGNED = """
name: signed-firmware-rollout
seed: 1
start: 2026-02-02T18:00:00+01:00
duration: 20m
site: {grid_limit_kw: 120}
chargers:
  - {prefix: ac, count: 1, ocpp: "1.6", max_kw: 11}
  - {prefix: dc, count: 2, ocpp: "2.0.1", max_kw: 50}
actions:
  - {at: "18:05", kind: update_firmware, charger: ac-1, version: fw-9.2.0, signed: true}
  - {at: "18:05", kind: update_firmware, charger: dc-1, version: fw-9.2.0, signed: true}
  - {at: "18:05", kind: update_firmware, charger: dc-2, version: fw-9.2.0, signed: true, tampered: true}
"""


def test_signed_roll_out_installs_where_the_signature_holds_and_a_tampered_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signed.yaml"
    path.write_text(SIGNED)
    run = VirtualRun(load_scenario(path), scenario_file=str(path))
    before = run.fleet.chargers["dc-2"].identity.firmware_version
    run.run()
    chargers = run.fleet.chargers
    assert chargers["ac-1"].identity.firmware_version == "fw-9.2.0"
    assert chargers["dc-1"].identity.firmware_version == "fw-9.2.0"
    assert chargers["dc-2"].identity.firmware_version == before, "a tampered image is never installed"
    reported = {sid: [status for _, status in c.maintenance.firmware.reported] for sid, c in chargers.items()}
    assert reported["dc-1"] == [
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", "Installed"
    ]  # fmt: skip
    assert reported["ac-1"][2:3] == ["SignatureVerified"] and reported["ac-1"][-1] == "Installed"
    assert reported["dc-2"] == ["Downloading", "Downloaded", "InvalidSignature"]
    with run.csms.session_factory() as db:
        transfers = {sid: diagnostics.list_transfers(db, sid, "firmware")[0].status for sid in chargers}
        events = {(e.station_id, e.type) for e in security_events.list_events(db, limit=1000)}
    assert transfers == {"ac-1": "Installed", "dc-1": "Installed", "dc-2": "InvalidSignature"}, transfers
    assert ("dc-2", "InvalidFirmwareSignature") in events, events
    assert ("dc-1", "FirmwareUpdated") in events and ("ac-1", "FirmwareUpdated") in events, events


def test_tampered_needs_signed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SIGNED.replace("signed: true, tampered: true", "tampered: true"))
    with pytest.raises(ScenarioError, match="tampered needs signed"):
        load_scenario(path)
