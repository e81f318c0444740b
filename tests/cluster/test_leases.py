"""Leases on the real Redis: one holder at a time, a take-over raises the fencing token, a released lease is
free at once, an expired one after its TTL; and the alert events a node relays survive the wire."""

from __future__ import annotations

import asyncio
import uuid

from csms.alerts import engine as al
from csms.alerts import wire
from csms.domain.events import PortState
from csms.runtime.leases import FenceBook, Leases
from tests.support.cluster import cluster_redis_url, require_redis

REDIS_URL = cluster_redis_url(9)  # this module's own database


async def test_one_holder_at_a_time_and_a_newer_fence_after_each_take_over():
    require_redis()
    import redis.asyncio as aioredis

    redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    name = f"test-{uuid.uuid4().hex[:8]}"
    a, b = Leases(redis, "a", ttl_s=1.0), Leases(redis, "b", ttl_s=1.0)
    try:
        await a.claim([name])
        await b.claim([name])
        assert a.holds(name) and not b.holds(name)
        first = a.fence(name)
        await a.release_all()
        await b.claim([name])
        assert b.holds(name) and not a.holds(name)
        assert b.fence(name) == first + 1
        await asyncio.sleep(1.1)  # b stops re-arming (dead): its lease lapses on its side and expires in Redis
        assert not b.holds(name)
        await a.claim([name])
        assert a.fence(name) == first + 2
        fences = FenceBook()
        assert fences.admits(name, first + 2)
        assert not fences.admits(name, first + 1)  # the old holder speaks after the take-over: refused
    finally:
        await redis.delete(Leases.key(name), f"{Leases.key(name)}:fence")
        await redis.aclose()


def test_alert_events_cross_the_wire_and_nothing_else_is_built():
    events = [
        al.Connected("cs-1", "2.0.1"),
        al.StatusChanged("cs-1", 1, PortState.FAULTED, "GroundFailure"),
        al.MeterRead("cs-1", 1, "tx-9", 1700000000.0, 1234.5, 7200.0, None, "Charging"),
    ]
    encoded = wire.encode(events)
    assert wire.decode(encoded) == events
    assert wire.decode([{"type": "Popen", "args": ["sh"]}, {"type": "Seen", "bogus": 1}]) == []
