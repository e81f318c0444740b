"""The scenario's ``reserve`` action in real time (issue 17): through the operator adapter, against
``csms serve``, the CSMS makes the reservation with a relative validity and the twin's chargers hold it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.simulator.test_realtime import AC_PASSWORD, API_KEY, Csms, csms_serve, database, run_cli

__all__ = ["csms_serve", "database"]  # the fixtures, shared with test_realtime

SCENARIO = """
name: realtime-reserve
seed: 1
start: 2026-02-02T08:00:00+01:00
duration: 3m
site: {grid_limit_kw: 100}
chargers:
  - {prefix: rsac, count: 1, ocpp: "1.6", max_kw: 22}
  - {prefix: rsdc, count: 1, ocpp: "2.0.1", max_kw: 50, password: dc-secret-pw-0001}
actions:
  - {at: "+0m", kind: provision_tokens, tokens: [HOLDER]}
  - {at: "+1m", kind: reserve, charger: rsac-1, connector: 1, id_token: HOLDER, valid_for: 60m}
  - {at: "+1m", kind: reserve, charger: rsdc-1, id_token: HOLDER, valid_for: 60m}
"""


@pytest.mark.timeout(90)
def test_reserve_action_in_real_time_goes_through_the_api(csms_serve: Csms, tmp_path: Path) -> None:
    path = tmp_path / "reserve.yaml"
    path.write_text(SCENARIO)
    done = run_cli(
        "simulator.cli",
        *("run", str(path), "--out", str(tmp_path / "out"), "--quiet"),
        *("--csms", csms_serve.ws_url, "--realtime", "--speed", "60", "--password", AC_PASSWORD),
        *("--api-url", csms_serve.api_url, "--api-key", API_KEY),
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reserve skipped" not in done.stderr
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for station_id, evse_id in (("rsac-1", 1), ("rsdc-1", None)):
        api = f"{csms_serve.api_url}/api/v1/stations/{station_id}"
        rows = httpx.get(api + "/reservations", headers=headers, timeout=10).json()
        assert [(r["id_token"], r["evse_id"], r["status"]) for r in rows] == [("HOLDER", evse_id, "active")], rows
        lasts = datetime.fromisoformat(rows[0]["expires_at"]) - datetime.fromisoformat(rows[0]["created_at"])
        assert lasts.total_seconds() == pytest.approx(60, abs=1), "60 scenario minutes at speed 60"
        connectors = httpx.get(api, headers=headers, timeout=10).json()["connectors"]
        assert "Reserved" in {c["status"] for c in connectors}, connectors  # the charger said so itself
