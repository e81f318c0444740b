"""A burst of registry writes on the real Redis: thousands of stations connecting at once are all registered.

The 50,000-station cluster ramp logged tens of thousands of "cluster registry update failed: Too many
connections" (redis-py's pool fails a request past its 100 connections instead of waiting): stations whose
socket a node held were missing from the registry until its next refresh, and console relays were lost."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from csms.gateway.server import Gateway
from csms.runtime.cluster import Cluster
from csms.services.config import CsmsConfig
from tests.support.cluster import cluster_redis_url, require_redis

REDIS_URL = cluster_redis_url(14)  # this module's own database


async def test_a_burst_of_connections_larger_than_the_pool_is_registered_whole(sqlite_factory, caplog):
    require_redis()
    gateway = Gateway(sqlite_factory, CsmsConfig())
    cluster = Cluster(gateway, REDIS_URL, f"burst-{uuid.uuid4().hex[:6]}")
    stations = [f"burst-{uuid.uuid4().hex[:6]}-{i}" for i in range(2_000)]
    caplog.set_level(logging.WARNING, logger="csms.runtime.cluster")
    await cluster.start()
    try:
        for station_id in stations:  # as the gateway does at each handshake: a write spawned per station
            cluster.station_connected(station_id)
        for _ in range(200):
            if not cluster._tasks:
                break
            await asyncio.sleep(0.05)
        assert not cluster._tasks, f"{len(cluster._tasks)} registry writes still pending after 10 s"
        failures = [r.getMessage() for r in caplog.records if "registry update failed" in r.getMessage()]
        assert failures == []
        owners = await cluster.redis.mget([cluster.station_key(s) for s in stations])
        assert owners.count(cluster.node_id) == len(stations)
    finally:
        await cluster.redis.delete(*(cluster.station_key(s) for s in stations))
        await cluster.stop()


@pytest.fixture
def sqlite_factory(tmp_path):
    from csms.store.database import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path / 'burst.db'}")
    yield make_session_factory(engine)
    engine.dispose()
