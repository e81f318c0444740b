"""What the audit trail costs an API write: the latency of ``PATCH /api/v1/tokens/{id}`` with and without the
audit middleware, on the same database, in process (the app through httpx's ASGI transport, no network).

    ./run python loadtests/bench_audit.py --requests 300
    ./run python loadtests/bench_audit.py --requests 300 --database-url postgresql://postgres@127.0.0.1:5432/bench

Runs alternate (plain, audited, plain, audited) so that a change of the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

import httpx

from csms.api.app import create_app
from csms.api.audit import AuditTrail
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory

KEY = "bench-audit-key-0123456789"


async def _one_run(database_url: str, audited: bool, requests: int) -> list[float]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    app = create_app(make_session_factory(engine), None, KEY)  # type: ignore[arg-type]  # no gateway needed
    if not audited:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditTrail]
    headers = {"Authorization": f"Bearer {KEY}"}
    token = f"BENCH-{int(audited)}-{time.time_ns() % 10**9}"
    times = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms", headers=headers) as c:
        assert (await c.post("/api/v1/tokens", json={"id_token": token})).status_code == 201
        for i in range(requests):
            start = time.perf_counter()
            answer = await c.patch(f"/api/v1/tokens/{token}", json={"status": "Blocked" if i % 2 else "Accepted"})
            times.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200, answer.text
    engine.dispose()
    return times


def run(requests: int, database_url: str | None) -> dict[str, Any]:
    """p50 and p95 (ms) of each mode over two alternating runs of ``requests`` writes each."""
    url = database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-audit-')}/bench.db"
    samples: dict[str, list[float]] = {"plain": [], "audited": []}
    for audited in (False, True, False, True):
        samples["audited" if audited else "plain"] += asyncio.run(_one_run(url, audited, requests))
    result: dict[str, Any] = {"requests": requests * 2}
    for mode, times in samples.items():
        times.sort()
        result[mode] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(len(times) * 0.95)], 2)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="writes per run (4 runs: 2 plain, 2 audited)")
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args(argv)
    result = run(args.requests, args.database_url)
    for mode in ("plain", "audited"):
        print(f"{mode:8} p50 {result[mode]['p50_ms']:7.2f} ms   p95 {result[mode]['p95_ms']:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
