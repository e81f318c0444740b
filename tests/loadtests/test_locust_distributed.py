"""Locust's distributed mode against a real ``csms serve``: a master and two workers drive 50 chargers.

Two workers, so the station split (worker i takes rows i, i+W, …) is exercised: every station boots exactly
once and the master's statistics hold what both workers measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import harness
import provision

pytestmark = pytest.mark.timeout(150)


def test_master_and_two_workers_drive_50_chargers(tmp_path):
    url = f"sqlite:///{tmp_path}/csms.db"
    stations_file = tmp_path / "stations.csv"
    rows = provision.plan(50, "dist-", 0.25, None, unique=False)
    assert provision.provision(url, rows, "LOADTEST") == 50
    provision.write_file(stations_file, rows)

    csms = harness.start_csms(url, tmp_path, heartbeat_interval=3)
    prefix = tmp_path / "dist"
    try:
        gen = harness.start_locust(
            csms.ocpp_url,
            stations_file,
            tmp_path,
            csv_prefix=prefix,
            users=50,
            spawn_rate=50,
            run_time="10s",
            workers=2,
            options=["--meter-interval", "2", "--session-length", "5", "--idle-length", "2"],
        )
        code = gen.wait(timeout=90)
        assert code == 0, gen.log()[-4000:]
        assert csms.process.poll() is None, csms.log()
        booted = _booted_stations(csms)
    finally:
        csms.stop()
    assert "Traceback" not in csms.log()
    assert "Traceback" not in gen.log(), gen.log()[-4000:]
    # each worker took its own stations: 50 boots reached 50 distinct stations, so none booted twice
    assert booted == {r[0] for r in rows}
    stats = harness.read_stats(prefix)
    assert int(stats["BootNotification"]["Request Count"]) == 50
    assert int(stats["connect"]["Request Count"]) == 50
    for name in ("Heartbeat", "StatusNotification", "MeterValues", "StartTransaction", "TransactionEvent"):
        assert int(stats[name]["Request Count"]) > 0, (name, sorted(stats))
    for name, row in stats.items():
        assert int(row["Failure Count"]) == 0, (name, row)


def _booted_stations(csms: harness.CsmsProcess) -> set[str]:
    response = httpx.get(f"{csms.api_url}/stations", headers={"Authorization": "Bearer loadtest-key"}, timeout=10)
    response.raise_for_status()
    return {station["id"] for station in response.json() if station["last_boot_at"] is not None}
