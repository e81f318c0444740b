"""``/healthz`` and ``/readyz``: quick, unauthenticated, and naming only which check failed."""

from __future__ import annotations

import os
import time

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from csms.gateway.server import Gateway
from csms.runtime.probes import DatabaseProbes, Readiness, mount, standard_checks
from csms.services.config import CsmsConfig
from csms.store.database import make_engine
from tests.support.cluster import REDIS_URL, require_redis
from tests.support.live import live_csms


async def timed_get(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.get(url)
    return response, time.perf_counter() - started


async def test_ready_until_the_schema_is_not_at_head_then_ready_again(sqlite_url):
    async with live_csms(sqlite_url) as (endpoints, _client):
        base = f"http://127.0.0.1:{endpoints.api_port}"
        async with httpx.AsyncClient(base_url=base) as anyone:  # no API key
            health, took = await timed_get(anyone, "/healthz")
            assert (health.status_code, health.json(), took < 2.0) == (200, {"status": "ok"}, True)
            ready, took = await timed_get(anyone, "/readyz")
            assert (ready.status_code, ready.json(), took < 2.0) == (200, {"status": "ready"}, True)

            engine = make_engine(sqlite_url)
            with engine.begin() as db:
                head = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
                db.execute(text("UPDATE alembic_version SET version_num = 'an-older-revision'"))
            try:
                ready, took = await timed_get(anyone, "/readyz")
                assert (ready.status_code, ready.json()) == (503, {"status": "not ready", "failed": ["migrations"]})
                assert took < 2.0
            finally:
                with engine.begin() as db:
                    db.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
                engine.dispose()
            assert (await anyone.get("/readyz")).status_code == 200


async def test_not_ready_when_postgresql_does_not_answer_nor_the_gateway_listen(sqlite_factory):
    # Nothing listens on port 1 of loopback: the connection is refused at once.
    engine = make_engine("postgresql://postgres@127.0.0.1:1/chargetwin")
    gateway = Gateway(sqlite_factory, CsmsConfig())  # built, never started: not listening
    database = DatabaseProbes(engine)
    readiness = Readiness(timeout_s=2.0)
    standard_checks(readiness, database, gateway)
    app = FastAPI()
    mount(app, readiness)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://csms") as client:
            ready, took = await timed_get(client, "/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "not ready", "failed": ["database", "migrations", "gateway"]}
            assert took < 1.0
            assert "127.0.0.1" not in ready.text and "refused" not in ready.text
            assert (await client.get("/healthz")).status_code == 200
            await gateway.start("127.0.0.1", 0)
            assert (await client.get("/readyz")).json()["failed"] == ["database", "migrations"]
    finally:
        await gateway.stop()
        database.shutdown()
        engine.dispose()


async def test_not_ready_while_the_node_holds_no_cluster_membership(sqlite_url):
    require_redis()
    import redis.asyncio as aioredis

    node = f"readyz-{os.getpid()}"
    async with (
        live_csms(sqlite_url, broker_url=REDIS_URL, node_id=node, registry_ttl_s=60) as (endpoints, _client),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{endpoints.api_port}") as anyone,
    ):
        assert (await anyone.get("/readyz")).json() == {"status": "ready"}
        broker = aioredis.from_url(REDIS_URL)
        try:
            await broker.delete(f"node:{node}")  # as if its heartbeat stopped reaching Redis (next in 20 s)
        finally:
            await broker.aclose()
        ready = await anyone.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "not ready", "failed": ["cluster"]})
