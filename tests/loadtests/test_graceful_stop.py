"""SIGTERM to ``csms serve`` while its chargers keep sending (issue 13, point 6): the process stops reading, commits
and answers what it read, closes every connection with 1001 (going away) and exits well within its grace with
status 0."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import time
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.cpu_wait import RunQueueWait

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import harness
import provision

pytestmark = pytest.mark.timeout(120)

STATIONS = 60
PASSWORD = "fleet-password-0001"


async def _charger(url: str, station_id: str, booted: asyncio.Event, counts: dict[str, int]) -> int | None:
    auth = base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    async with websockets.connect(
        f"{url}/{station_id}", subprotocols=["ocpp1.6"], additional_headers={"Authorization": f"Basic {auth}"}
    ) as ws:
        boot = {"chargePointVendor": "Test", "chargePointModel": "Busy"}
        await ws.send(json.dumps([2, "boot", "BootNotification", boot]))
        await ws.recv()
        counts["booted"] += 1
        if counts["booted"] == STATIONS:
            booted.set()
        n = 0
        try:
            while True:  # a call every 0.1 s after each answer
                n += 1
                await ws.send(json.dumps([2, f"hb-{n}", "Heartbeat", {}]))
                await ws.recv()
                await asyncio.sleep(0.1)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        return ws.close_code


async def test_sigterm_under_traffic_exits_at_once_with_going_away(tmp_path):
    url = f"sqlite:///{tmp_path}/csms.db"
    rows = provision.plan(STATIONS, "busy-", 0.0, PASSWORD, unique=False)
    provision.provision(url, rows, "LOADTEST")
    csms = harness.start_csms(url, tmp_path, extra_args=["--shutdown-grace", "10"])
    try:
        booted = asyncio.Event()
        counts = {"booted": 0}
        base = csms.ocpp_url
        tasks = [asyncio.create_task(_charger(base, sid, booted, counts)) for sid, _, _ in rows]
        await asyncio.wait_for(booted.wait(), 60)
        await asyncio.sleep(2.0)  # traffic flowing
        cpu_wait = RunQueueWait(csms.process.pid)
        signalled = time.monotonic()
        csms.process.send_signal(signal.SIGTERM)
        while time.monotonic() - signalled < 30:
            cpu_wait.sample()  # before poll(): once it reaped the process its figures are gone
            if csms.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        exited_s = time.monotonic() - signalled
        codes = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        csms.stop()
    # Its own time: what the machine kept it waiting for a CPU taken off (tests/support/cpu_wait.py).
    own_s = exited_s - cpu_wait.waited_s
    print(
        f"\nSIGTERM with {STATIONS} chargers sending: exited after {exited_s:.2f} s ({own_s:.2f} s without "
        f"{cpu_wait.waited_s:.2f} s waiting for a CPU), close codes {set(codes)}"
    )
    assert csms.process.returncode == 0, csms.log()  # not the watchdog's exit: within its grace
    assert own_s < 4.0, (exited_s, cpu_wait.waited_s, csms.log())
    assert all(code == 1001 for code in codes), codes
