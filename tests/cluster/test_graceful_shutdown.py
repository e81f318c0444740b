"""Graceful shutdown of a cluster node: SIGTERM makes it give its leases back at once (the other node takes the
site over before the lease could have expired), close its chargers' connections with 1001 (going away) so they
reconnect to the other node, and exit within ``--shutdown-grace``, with nothing it acknowledged lost."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from csms.store.database import make_engine, make_session_factory
from tests.conftest import fresh_postgres_url
from tests.support.chargers import NodeCharger, missing_acknowledged
from tests.support.cluster import cluster_redis_url, make_site, require_redis, tear_down, until
from tests.support.cpu_wait import RunQueueWait

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import harness
import provision

REDIS_URL = cluster_redis_url(8)  # this module's own database

LEASE_TTL_S = 12.0  # a lease left to expire would be taken over 8-12 s after the stop
GRACE_S = 3.0

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.timeout(150),
]


async def test_sigterm_hands_the_leases_over_and_closes_with_going_away(tmp_path):
    require_redis()
    import redis.asyncio as aioredis

    database = fresh_postgres_url()
    url = next(database)
    run = uuid.uuid4().hex[:6]
    site_id = f"site-{run}"
    rows = provision.plan(4, f"gs{run}-", 0.5, None, unique=False)
    provision.provision(url, rows, "LOADTEST")
    make_site(url, site_id, [sid for sid, _, _ in rows])
    node_ids = [f"gs-{run}-{i}" for i in range(2)]
    nodes: list[harness.CsmsProcess] = []
    tasks: list[asyncio.Task] = []
    broker = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        for i, node_id in enumerate(node_ids):
            args = ["--broker", REDIS_URL, "--node-id", node_id, "--lease-ttl", str(LEASE_TTL_S)]
            args += ["--shutdown-grace", str(GRACE_S)]
            nodes.append(harness.start_csms(url, tmp_path, name=f"node{i}", extra_args=args))
        chargers = [
            NodeCharger(sid, pw, v, [n.ocpp_url for n in nodes], first=i) for i, (sid, pw, v) in enumerate(rows)
        ]
        tasks = [asyncio.create_task(c.run()) for c in chargers]
        await until(lambda: all(c.charger.online for c in chargers), 40, "every charger booted")
        for c in chargers:
            c.charger.plug_in(1, "LOADTEST", time.time())
        await until(lambda: all(c.charger.limit_w(1, time.time()) for c in chargers), 40, "every charger planned")
        holder = node_ids.index(await broker.get(f"lease:site:{site_id}"))
        leaving = [c for c in chargers if c.node == holder]
        assert leaving

        # Left to expire, the lease would go no sooner than this after the signal (re-armed since: later still).
        asked = time.monotonic()
        left_s = await broker.pttl(f"lease:site:{site_id}") / 1000
        cpu_wait = RunQueueWait(nodes[holder].process.pid)
        stopped_at = time.monotonic()
        expires_s = asked + left_s - stopped_at
        nodes[holder].process.send_signal(signal.SIGTERM)

        exits: list[float] = []

        def exited() -> bool:
            cpu_wait.sample()  # before poll(): once it reaped the process its figures are gone
            if not exits and nodes[holder].process.poll() is not None:
                exits.append(time.monotonic() - stopped_at)
            return bool(exits)

        async def moved() -> bool:
            exited()
            return await broker.get(f"lease:site:{site_id}") == node_ids[1 - holder]

        takeover_s = await until(moved, 2 * LEASE_TTL_S, "the other node to take the lease")
        await until(exited, GRACE_S + 10, "the node to exit")
        exited_s = exits[0]
        await until(lambda: all(c.node == 1 - holder and c.charger.online for c in leaving), 30, "reconnect")
        # The node's own time: what the machine kept it waiting for a CPU taken off (tests/support/cpu_wait.py).
        own_s = exited_s - cpu_wait.waited_s
        print(
            f"\nSIGTERM: lease taken over after {takeover_s:.2f} s (it would have expired after {expires_s:.2f} s), "
            f"node exited after {exited_s:.2f} s ({own_s:.2f} s without {cpu_wait.waited_s:.2f} s waiting for a CPU)"
        )
        assert 0 < left_s <= LEASE_TTL_S and takeover_s < expires_s  # released, not expired
        assert nodes[holder].process.returncode == 0, nodes[holder].log()  # not the watchdog's exit
        assert own_s <= GRACE_S + 1.0, (exited_s, cpu_wait.waited_s)
        assert all(c.closes[:1] == [1001] for c in leaving), [c.closes for c in leaving]
        assert "Traceback" not in nodes[holder].log(), nodes[holder].log()
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as db:
                assert missing_acknowledged(db, chargers) == []
        finally:
            engine.dispose()
    finally:
        keys = (
            [f"station:{sid}" for sid, _, _ in rows]
            + [f"node:{n}" for n in node_ids]
            + [f"lease:site:{site_id}", f"lease:site:{site_id}:fence"]
        )
        await tear_down(tasks, nodes, broker, keys, database)
