"""Scale-out: three ``csms serve`` nodes on one PostgreSQL database and one Redis; API calls made on any node reach
chargers on every node; a node killed with SIGKILL loses its chargers to the others, and they stay reachable.

Needs PostgreSQL and Redis on loopback. Elsewhere the test skips when either is missing; under ``CI=true`` it
fails instead.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_postgres_url
from tests.support.chargers import NodeCharger
from tests.support.cluster import REDIS_URL, require_redis, tear_down, until

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import harness
import provision

API_KEY = "cluster-test-key"

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def call_everywhere(apis: list[str], station_ids: list[str]) -> list[tuple[str, str, int, dict]]:
    """ClearCache to every station through every API; (api, station, status, body) per call."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=20) as client:

        async def one(api: str, station_id: str) -> tuple[str, str, int, dict]:
            response = await client.post(f"{api}/stations/{station_id}/calls/ClearCache", json={})
            return api, station_id, response.status_code, response.json()

        return await asyncio.gather(*(one(api, s) for api in apis for s in station_ids))


def failures(results: list[tuple[str, str, int, dict]]) -> list[tuple[str, str, int, dict]]:
    return [
        r
        for r in results
        if r[2] != 200 or r[3].get("outcome") != "result" or r[3]["payload"] != {"status": "Accepted"}
    ]


async def test_three_nodes_route_calls_and_survive_a_killed_node(tmp_path):
    require_redis()
    import redis.asyncio as aioredis

    database = fresh_postgres_url()
    url = next(database)
    run = uuid.uuid4().hex[:6]
    rows = provision.plan(12, f"cl{run}-", 0.5, None, unique=False)
    provision.provision(url, rows, "LOADTEST")
    node_ids = [f"test-{run}-{i}" for i in range(3)]
    nodes: list[harness.CsmsProcess] = []
    drivers: list[NodeCharger] = []
    tasks: list[asyncio.Task] = []
    broker = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        for i, node_id in enumerate(node_ids):
            extra = ["--broker", REDIS_URL, "--node-id", node_id, "--registry-ttl", "4"]
            nodes.append(harness.start_csms(url, tmp_path, name=f"node{i}", api_key=API_KEY, extra_args=extra))
        urls = [n.ocpp_url for n in nodes]
        apis = [n.api_url for n in nodes]
        drivers = [NodeCharger(sid, pw, version, urls, first=i) for i, (sid, pw, version) in enumerate(rows)]
        tasks = [asyncio.create_task(d.run()) for d in drivers]
        station_ids = [d.station_id for d in drivers]

        async def registered() -> bool:
            owners = await broker.mget([f"station:{s}" for s in station_ids])
            expected = [node_ids[d.node] if d.node is not None else None for d in drivers]
            return all(d.charger.online for d in drivers) and owners == expected

        await until(registered, 30, "all chargers booted and registered with their nodes")
        assert {d.node for d in drivers} == {0, 1, 2}  # spread over the three nodes

        # Every API reaches every station: 2 of 3 calls per station cross the broker.
        results = await call_everywhere(apis, station_ids)
        assert not failures(results), failures(results)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:
            listing = (await client.get(f"{apis[0]}/stations")).json()
            assert all(s["connected"] for s in listing if s["id"] in station_ids)  # seen across nodes
            # a call the station's version does not know is refused by the owner: 422 from any node
            remote = next(d for d in drivers if d.node == 1)
            refused = await client.post(f"{apis[0]}/stations/{remote.station_id}/calls/NoSuchAction", json={})
            assert refused.status_code == 422, refused.text

        # SIGKILL one node: its chargers reconnect to the others and stay reachable through both APIs.
        victims = [d for d in drivers if d.node == 0]
        assert victims
        nodes[0].kill()
        survivors = apis[1:]

        async def failed_over() -> bool:
            if not all(d.node in (1, 2) and d.charger.online for d in drivers):
                return False
            return not failures(await call_everywhere(survivors, [d.station_id for d in victims]))

        await until(failed_over, 40, "the killed node's chargers to be reachable through the survivors")
        assert all(d.connections >= 2 for d in victims)
        results = await call_everywhere(survivors, station_ids)
        assert not failures(results), failures(results)
        # The dead node's own liveness key expires (nobody refreshes it).
        await until(lambda: _gone(broker, f"node:{node_ids[0]}"), 10, "the dead node's key to expire")
        for node in nodes[1:]:
            assert node.process.poll() is None, node.log()
            assert "Traceback" not in node.log(), node.log()
    finally:
        keys = [f"station:{sid}" for sid, _, _ in rows] + [f"node:{n}" for n in node_ids]
        await tear_down(tasks, nodes, broker, keys, database)


async def _gone(broker, key: str) -> bool:
    return not await broker.exists(key)
