"""The console's live streams in a cluster: a browser's stream on one ``csms serve`` node hears a charger that
connects to another node (the nodes relay which station changed over the broker; each renders from the store).

Needs PostgreSQL and Redis on loopback. Elsewhere the test skips when either is missing; under ``CI=true`` it
fails instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import sessionmaker

from csms.store.database import make_engine
from tests.conftest import fresh_postgres_url
from tests.csms.test_console_signin import add_user, sign_in
from tests.support.chargers import NodeCharger
from tests.support.cluster import cluster_redis_url, require_redis, until

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import harness
import provision

REDIS_URL = cluster_redis_url(10)  # this module's own database (pub/sub channels are shared: node ids differ)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def test_a_stream_on_one_node_hears_a_charger_connecting_to_another(tmp_path):
    require_redis()
    database = fresh_postgres_url()
    url = next(database)
    run = uuid.uuid4().hex[:6]
    rows = provision.plan(1, f"lv{run}-", 0.0, None, unique=False)
    provision.provision(url, rows, "LOADTEST")
    engine = make_engine(url)
    add_user(sessionmaker(engine), f"ops-{run}@example.com", "platform-admin")
    engine.dispose()
    nodes = []
    task: asyncio.Task | None = None
    heard: list[str] = []
    try:
        for i in range(2):
            extra = ["--broker", REDIS_URL, "--node-id", f"live-{run}-{i}", "--registry-ttl", "4"]
            nodes.append(harness.start_csms(url, tmp_path, name=f"node{i}", api_key="k", extra_args=extra))
        console = nodes[1].api_url.removesuffix("/api/v1")
        async with httpx.AsyncClient(base_url=console, timeout=30) as browser:
            assert (await sign_in(browser, f"ops-{run}@example.com")).status_code == 303

            async def listen() -> None:
                async with browser.stream("GET", "/console/live/stations", timeout=None) as stream:
                    async for line in stream.aiter_lines():
                        heard.append(line)

            listener = asyncio.create_task(listen())
            await until(lambda: any(line.startswith("retry:") for line in heard), 10, "the stream to open")
            station_id, password, version = rows[0]
            charger = NodeCharger(station_id, password, version, [nodes[0].ocpp_url], first=0)  # node 0 only
            task = asyncio.create_task(charger.run())
            await until(lambda: charger.charger.online, 20, "the charger to boot on node 0")

            def told() -> bool:  # the station's row, rendered by node 1, with the connection node 0 holds
                rows = "\n".join(heard).split("event: ")
                return any(r.startswith(f"row-{station_id}") and ">online<" in r for r in rows)

            await until(told, 15, "node 1's stream to show the station online")
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in nodes:
            node.stop()
        with contextlib.suppress(StopIteration):
            next(database)
