"""What the cluster tests share: the Redis they use (and the check that it answers), a site over their stations,
and waiting for a condition with a deadline. The chargers themselves are :mod:`tests.support.chargers`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from csms.services import sites
from csms.store.database import make_engine, make_session_factory
from tests.conftest import IN_CI

REDIS_URL = os.environ.get("CHARGETWIN_TEST_REDIS", "redis://127.0.0.1:6379/0")
#: Leases and site keys of the multi-node tests: a Redis database per test module, so two modules that run at
#: once on two xdist workers never share one (``xdist_group`` marks do not group under pytest 9.2, see
#: docs/performance.md; failover and graceful shutdown stepped on each other's leases and hung).
CLUSTER_REDIS = os.environ.get("CHARGETWIN_TEST_REDIS_CLUSTER", "redis://127.0.0.1:6379")


def cluster_redis_url(database: int) -> str:
    return f"{CLUSTER_REDIS}/{database}"


#: The site's grid limit in :func:`make_site` unless told otherwise.
SITE_LIMIT_KW = 30.0


def require_redis() -> None:
    """Skips without Redis; under ``CI=true`` fails instead."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but {REDIS_URL} does not answer: {exc}")
        pytest.skip(f"Redis not available: {exc}")


def make_site(url: str, site_id: str, station_ids: list[str], limit_kw: float = SITE_LIMIT_KW) -> None:
    """A site sharing ``limit_kw`` equally over EVSE 1 of each station (16 A each, 6 A fallback), replanned
    every 5 s."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            sites.create(
                db,
                site_id,
                now=datetime.now(UTC),
                nodes=[{"id": "grid", "limit_kw": limit_kw}],
                evses=[
                    {"station_id": s, "evse_id": 1, "node": "grid", "max_current_a": 16, "fallback_current_a": 6}
                    for s in station_ids
                ],
                strategy="equal_share",
                interval_s=5,
            )
    finally:
        engine.dispose()


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds it took for ``predicate()`` (sync or async) to hold; AssertionError naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def tear_down(tasks: Sequence[asyncio.Task[Any]], nodes: Sequence[Any], broker: Any, keys: Sequence[str],
                    database: Iterator[Any]) -> None:  # fmt: skip
    """The end of a cluster test: its chargers' tasks cancelled, its nodes stopped, its Redis keys deleted (the
    next test starts clean even when this one failed half-way) and its database dropped."""
    await cancel_all(tasks)
    for node in nodes:
        node.stop()
    with contextlib.suppress(Exception):
        await broker.delete(*keys)
    await broker.aclose()
    with contextlib.suppress(StopIteration):
        next(database)


async def cancel_all(tasks: Sequence[asyncio.Task[Any]], rounds: int = 10) -> None:
    """Cancel the tasks and wait until they are done, cancelling again those still running: on Python 3.11
    ``asyncio.wait_for`` can swallow a cancellation that comes as its inner await completes (CPython gh-86296),
    and a charger task in its reconnect loop then runs on, so one ``gather`` after one ``cancel`` could wait
    until the test's timeout (it did, in two full-suite runs of test_graceful_shutdown)."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a charger that failed is the test's to report, not the loop's
