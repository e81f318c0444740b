"""``GET /healthz`` and ``GET /readyz``: for load balancers and orchestrators, without authentication.

``/healthz`` answers 200 while the process serves HTTP at all. ``/readyz`` runs the readiness checks, all at
once, each within ``timeout_s``: 200 when all pass, 503 naming the failed ones by their short names, never
why (the log and ``/metrics`` say more to those who may know). The checks are a list: a part that a node
needs to be ready adds its own with :meth:`Readiness.add`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from csms.gateway.server import Gateway
from csms.store import migrate

#: A check: True when its part is ready. One that raises or overruns the timeout counts as failed.
Probe = Callable[[], Awaitable[bool]]


@dataclass
class Readiness:
    timeout_s: float = 1.0
    checks: list[tuple[str, Probe]] = field(default_factory=list)

    def add(self, name: str, probe: Probe) -> None:
        self.checks.append((name, probe))

    async def failed(self) -> list[str]:
        """The names of the checks that did not pass, in the order added."""
        outcomes = await asyncio.gather(*(self._run(probe) for _, probe in self.checks))
        return [name for (name, _), ok in zip(self.checks, outcomes, strict=True) if not ok]

    async def _run(self, probe: Probe) -> bool:
        try:
            return await asyncio.wait_for(probe(), self.timeout_s)
        except Exception:
            return False


class DatabaseProbes:
    """The database answers, and its schema is at the migrations' head.

    Each query runs on a thread of its own pool; while one is still stuck (a database that does not answer
    at all), the next probe fails at once instead of queueing another thread behind it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="csms-readyz")
        self._running: dict[str, Future[Any]] = {}

    async def reachable(self) -> bool:
        return bool(await self._query("database", lambda: self._scalar("SELECT 1")))

    async def migrated(self) -> bool:
        revision = await self._query("migrations", lambda: self._scalar("SELECT version_num FROM alembic_version"))
        return bool(revision == self.head)

    def _scalar(self, sql: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql)).scalar()

    async def _query(self, name: str, work: Callable[[], Any]) -> Any:
        running = self._running.get(name)
        if running is not None and not running.done():
            return None
        job = self._threads.submit(work)
        self._running[name] = job
        return await asyncio.wrap_future(job)

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def standard_checks(readiness: Readiness, database: DatabaseProbes, gateway: Gateway) -> None:
    """What every node needs: its database, at the schema it was built for, and its OCPP listener."""
    readiness.add("database", database.reachable)
    readiness.add("migrations", database.migrated)

    async def listening() -> bool:
        return gateway.listening

    readiness.add("gateway", listening)


def cluster_check(readiness: Readiness, gateway: Gateway) -> None:
    """With ``--broker``: this node's membership key is alive in Redis (it stops being ready when it
    cannot refresh it, as the other nodes then see it gone)."""

    async def member() -> bool:
        cluster = gateway.cluster
        if cluster is None:
            return False
        return bool(await cluster.redis.exists(f"node:{cluster.node_id}"))

    readiness.add("cluster", member)


def mount(app: FastAPI, readiness: Readiness) -> None:
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz() -> JSONResponse:
        failed = await readiness.failed()
        if failed:
            return JSONResponse({"status": "not ready", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ready"})

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
