"""A depot's evening in real time against ``csms serve`` (subprocesses): the vans are registered in the CSMS's
fleet records with the CSMS's own site as their depot and their departure on the CSMS's clock, so its load
management plans them for the wall-clock departure, whatever the scenario's date and ``--speed``."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from simulator.operators.chargetwin import ChargetwinOperator
from tests.simulator.test_realtime import API_KEY, Csms, _serve, run_cli

pytestmark = pytest.mark.timeout(240)

SCENARIO = Path(__file__).parent / "data" / "realtime-depot.yaml"
SPEED = 30.0
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def depot_csms(tmp_path: Path):
    with _serve(f"sqlite:///{tmp_path / 'csms.db'}") as csms:
        yield csms


async def _prepare(csms: Csms) -> None:
    """The depot's operator has set up its site in the CSMS (its own id, not the scenario's)."""
    operator = ChargetwinOperator(csms.api_url, API_KEY)
    try:
        for station_id in ("dep-1", "dep-2"):
            await operator.provision_station(station_id, "1.6", None)
    finally:
        await operator.close()
    site = {
        "id": "newark-yard", "name": "Newark yard", "strategy": "deadline", "interval_s": 60,
        "nodes": [{"id": "grid", "limit_kw": 60}],
        "evses": [{"station_id": s, "evse_id": 1, "node": "grid", "max_current_a": 32} for s in ("dep-1", "dep-2")],
    }  # fmt: skip
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        made = await http.post(csms.api_url + "/api/v1/sites", json=site)
        assert made.status_code == 201, made.text


def test_a_depot_run_in_real_time_tells_the_csms_its_own_depot_and_departures_on_its_clock(
    depot_csms: Csms, tmp_path: Path
) -> None:
    asyncio.run(_prepare(depot_csms))
    started = time.time()
    done = run_cli(
        "simulator.cli", "run", str(SCENARIO), "--out", str(tmp_path / "out"), "--quiet",
        *("--csms", depot_csms.ws_url, "--realtime", "--speed", str(SPEED)),
        *("--api-url", depot_csms.api_url, "--api-key", API_KEY),
        timeout=180,
    )  # fmt: skip
    finished = time.time()
    assert done.returncode == 0, done.stdout + done.stderr
    headers = {"Authorization": f"Bearer {API_KEY}"}
    base = depot_csms.api_url + "/api/v1/fleet"
    vans = httpx.get(f"{base}/vehicles", headers=headers, timeout=10).json()
    assert sorted(v["id"] for v in vans) == ["van-1", "van-2"]
    assert {v["depot_id"] for v in vans} == {"newark-yard"}  # the CSMS's site holding the chargers
    # 17:25 of the scenario's evening is 25 virtual minutes in: 50 s of wall time at x30 after the run's start
    for van in vans:
        plan = httpx.get(f"{base}/vehicles/{van['id']}/plan", headers=headers, timeout=10).json()
        today = datetime.fromtimestamp(started, NEW_YORK)
        (first,) = [d for d in plan if d["weekday"] == today.weekday()]  # a week at x30 is hours: today's first
        hour, minute = (int(part) for part in first["time"].split(":"))
        leaves = today.replace(hour=hour, minute=minute, second=0, microsecond=0)
        assert started + 50 - 60 <= leaves.timestamp() <= finished, (plan, started, finished)
        assert first["target_soc_pct"] == 45.0
