"""Leases in Redis: which node of a cluster runs a job that must run exactly once (a site's load manager, the
alert engine).

A lease is the key ``lease:{name}`` holding the holder's node id with an expiry (``SET NX PX``). The holder
re-arms the expiry every ``ttl/3``; a holder that dies stops re-arming, so the key expires at most ``ttl``
after its death and the first node to claim it afterwards takes over. Each take-over increments
``lease:{name}:fence``: the *fencing token* the holder attaches to what it asks other nodes to do, so a node
that still believes it holds a lease it lost (paused, partitioned) is refused by the others once a newer
holder has spoken (:meth:`FenceBook.admits`).

The holder also stops believing in its lease on its own: a lease is held only until ``ttl - margin`` after
the last successful claim was *sent*, whatever Redis later says — so after a partition, the old holder
stops before the key can expire and a new holder start.

Why Redis rather than a PostgreSQL advisory lock: the cluster already needs Redis (``--broker``) for its
registry and command routing, an expiry in milliseconds gives the take-over time a bound we choose, and an
advisory lock lives as long as one database connection — a connection the pool may recycle, and which a
dead node's half-open TCP session keeps alive for as long as the server's keepalive takes to notice (minutes
by default), during which nobody could take over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# KEYS: the lease, its fence counter. ARGV: node id, ttl ms. Returns the fence when held (taken or re-armed),
# 0 when another node holds it.
_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Held:
    fence: int
    #: ``time.monotonic()`` until which this node may act on it (``ttl - margin`` after the claim was sent).
    until: float


class Leases:
    """The leases this node holds, claimed and re-armed by :meth:`claim` (the cluster's loop calls it every
    ``refresh_s``)."""

    def __init__(self, redis: Any, node_id: str, ttl_s: float) -> None:
        if ttl_s < 1.0:
            raise ValueError(f"--lease-ttl must be at least 1 s, got {ttl_s}")
        self.redis = redis
        self.node_id = node_id
        self.ttl_s = float(ttl_s)
        self.margin_s = min(1.0, self.ttl_s / 10)
        self.held: dict[str, Held] = {}
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    @property
    def refresh_s(self) -> float:
        return self.ttl_s / 3

    @staticmethod
    def key(name: str) -> str:
        return f"lease:{name}"

    async def claim(self, names: Iterable[str]) -> None:
        """Take or re-arm each lease; forget those another node holds, and those no longer wanted (released).

        A failing Redis leaves :attr:`held` as it was: each lease then lapses at its own ``until``."""
        wanted = set(names)
        for name in sorted(set(self.held) - wanted):
            await self.release(name)
        ttl_ms = int(self.ttl_s * 1000)
        for name in sorted(wanted):
            sent = time.monotonic()
            keys = [self.key(name), f"{self.key(name)}:fence"]
            fence = int(await self._claim(keys=keys, args=[self.node_id, ttl_ms]))
            if fence:
                if name not in self.held:
                    log.info("node %s took lease %s (fence %d)", self.node_id, name, fence)
                self.held[name] = Held(fence, sent + self.ttl_s - self.margin_s)
            elif self.held.pop(name, None) is not None:
                log.warning("node %s lost lease %s to another node", self.node_id, name)

    def holds(self, name: str) -> bool:
        held = self.held.get(name)
        return held is not None and time.monotonic() < held.until

    def fence(self, name: str) -> int | None:
        return self.held[name].fence if self.holds(name) else None

    def next_lapse(self) -> float | None:
        """When (``time.monotonic()``) the first held lease lapses unless re-armed."""
        return min((h.until for h in self.held.values()), default=None)

    async def release(self, name: str) -> None:
        self.held.pop(name, None)
        await self._release(keys=[self.key(name)], args=[self.node_id])

    async def release_all(self) -> list[str]:
        """Give every lease back at once (a clean shutdown: the others take over without waiting for the TTL)."""
        names = sorted(self.held)
        for name in names:
            await self.release(name)
        return names


class FenceBook:
    """The newest fencing token seen per lease: a command fenced by an older one comes from a node that lost
    the lease and is refused."""

    def __init__(self) -> None:
        self._newest: dict[str, int] = {}

    def admits(self, name: str, fence: int) -> bool:
        newest = self._newest.get(name, 0)
        if fence < newest:
            return False
        self._newest[name] = fence
        return True
