"""The scenario's ``update_firmware`` action in real time (issue 17): through the operator adapter, against
``csms serve``, the CSMS stores the image and sends UpdateFirmware (signed, with the run's signing certificate);
the chargers download it over HTTP and install it, or refuse a tampered one, and the CSMS holds what they said."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.simulator.test_realtime import AC_PASSWORD, API_KEY, Csms, csms_serve, database, run_cli

__all__ = ["csms_serve", "database"]  # the fixtures, shared with test_realtime

SCENARIO = """
name: realtime-firmware
seed: 1
start: 2026-02-02T08:00:00+01:00
duration: 4m
site: {grid_limit_kw: 100}
chargers:
  - {prefix: rfac, count: 1, ocpp: "1.6", max_kw: 22}
  - {prefix: rfdc, count: 2, ocpp: "2.0.1", max_kw: 50, password: dc-secret-pw-0001}
actions:
  - {at: "+1m", kind: update_firmware, charger: rfac-1, version: fw-7.0.0}
  - {at: "+1m", kind: update_firmware, charger: rfdc-1, version: fw-7.0.0, signed: true}
  - {at: "+1m", kind: update_firmware, charger: rfdc-2, version: fw-7.0.0, signed: true, tampered: true}
"""


@pytest.mark.timeout(120)
def test_update_firmware_action_in_real_time_goes_through_the_api(csms_serve: Csms, tmp_path: Path) -> None:
    path = tmp_path / "firmware.yaml"
    path.write_text(SCENARIO)
    done = run_cli(
        "simulator.cli",
        *("run", str(path), "--out", str(tmp_path / "out"), "--quiet"),
        *("--csms", csms_serve.ws_url, "--realtime", "--speed", "30", "--password", AC_PASSWORD),
        *("--api-url", csms_serve.api_url, "--api-key", API_KEY),
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "update_firmware" not in done.stderr, done.stderr  # neither skipped nor failed
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=csms_serve.api_url + "/api/v1", headers=headers, timeout=10) as api:
        files = {row["name"] for row in api.get("/firmware-files").json()}
        assert files == {"fw-7.0.0.bin", "fw-7.0.0-tampered.bin"}, files
        seen = {}
        for station_id in ("rfac-1", "rfdc-1", "rfdc-2"):
            (transfer,) = api.get(f"/stations/{station_id}/transfers", params={"kind": "firmware"}).json()
            seen[station_id] = (transfer["status"], api.get(f"/stations/{station_id}").json()["firmware_version"])
        events = api.get("/security-events", params={"origin": "station"}).json()
    assert seen["rfac-1"] == ("Installed", "fw-7.0.0"), seen
    assert seen["rfdc-1"] == ("Installed", "fw-7.0.0"), seen
    assert seen["rfdc-2"][0] == "InvalidSignature" and seen["rfdc-2"][1] != "fw-7.0.0", seen
    kinds = {(e["station_id"], e["type"]) for e in events}
    assert ("rfdc-2", "InvalidFirmwareSignature") in kinds and ("rfdc-1", "FirmwareUpdated") in kinds, kinds
