"""Throughput of the real gateway: N stations connected over loopback WebSockets, each sending OCPP frames
one at a time (as OCPP-J requires: next CALL after the previous answer).

The CSMS runs in a child process so its CPU time is measured apart from the load generator's:

    uv run python loadtests/bench_gateway.py --stations 200 --messages 50 --mix meter

Prints messages/s, latency percentiles and CSMS CPU time per message. ``--database-url`` targets PostgreSQL.

``--peer`` then runs the same load (same stations, frames and client) against the CSMS a Python user would write
in an afternoon with the ``ocpp`` package (``loadtests/peer/``), in a child process of its own, and prints both
rows and the ratios; ``--peer-only`` runs the peer alone (to profile it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from typing import Any

import orjson
import websockets
from websockets.typing import Subprotocol

from csms.ocpp.versions import OCPP16

CLK_TCK = os.sysconf("SC_CLK_TCK")

Result = dict[str, float | str]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _thread_cpu_seconds(pid: int) -> tuple[float, float, float]:
    """CPU of the process's main thread (the event loop), of all its other threads (database, admission), and the
    part of both spent in the kernel (system time: socket calls, file writes, thread hand-overs)."""
    main = rest = system = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
        system += int(fields[12]) / CLK_TCK
        if int(tid) == pid:
            main += seconds
        else:
            rest += seconds
    return main, rest, system


class _CollectorTime:
    """A ``gc.callbacks`` entry: CPU time spent in the cyclic garbage collector, on any thread."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = threading.local()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started.at = time.thread_time()
        else:
            self.seconds += time.thread_time() - getattr(self._started, "at", time.thread_time())


def _serve(url: str, stations: int, version: str, profile: str | None, ready: mp.Queue, stop: Event) -> None:  # child
    from csms.gateway.server import Gateway
    from csms.services import authorization
    from csms.services import stations as station_service
    from csms.services.config import CsmsConfig
    from csms.store import migrate
    from csms.store.database import make_engine, make_session_factory

    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    now = datetime.now(UTC)
    with factory() as db:
        for n in range(stations):
            station_service.provision(db, f"bench-{n}", ocpp_version=version, password=None, now=now)
        authorization.create(db, "BENCH", now)
        db.commit()

    async def main() -> None:
        # Raw throughput: no per-connection frame rate (the peer it is compared with has none either).
        gateway = Gateway(factory, CsmsConfig(message_log_per_station=0), frame_rate=None)
        await gateway.start("127.0.0.1", 0)
        collecting = _CollectorTime()
        gc.callbacks.append(collecting)
        profilers = (cProfile.Profile(), cProfile.Profile()) if profile else None
        if profilers:  # one per thread: the loop's here, the database thread's enabled on that thread
            await asyncio.wrap_future(gateway.scheduler._db.submit(profilers[1].enable))
            profilers[0].enable()
        ready.put(gateway.port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        if profilers and profile:
            profilers[0].disable()
            await asyncio.wrap_future(gateway.scheduler._db.submit(profilers[1].disable))
            profilers[0].dump_stats(f"{profile}.loop")
            profilers[1].dump_stats(f"{profile}.db")
        gc.callbacks.remove(collecting)
        ready.put((gateway.host.processor.batches, gateway.host.processor.calls, collecting.seconds))
        await gateway.stop()

    asyncio.run(main())


def _serve_peer(db_path: str, sqlite_defaults: bool, ready: mp.Queue, stop: Event) -> None:  # child process
    from peer.afternoon_csms import open_database, serve

    db = open_database(db_path, id_tags=["BENCH"], sqlite_defaults=sqlite_defaults)

    async def main() -> None:
        server = await serve(db, "127.0.0.1", 0)
        ready.put(server.sockets[0].getsockname()[1])
        while not stop.is_set():
            await asyncio.sleep(0.1)
        ready.put(None)  # no commit counter: the peer commits once per message by construction
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def _frames_16(n: int, messages: int, mix: str) -> list[tuple[str, dict[str, Any]]]:
    start = datetime.now(UTC)
    now = start.isoformat()
    out: list[tuple[str, dict[str, Any]]] = [
        ("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B1"}),
        ("StartTransaction", {"connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": now}),
    ]
    for i in range(messages):
        if mix == "heartbeat":
            out.append(("Heartbeat", {}))
            continue
        at = (start + timedelta(seconds=i + 1)).isoformat()
        sampled = [
            {"value": str(i * 1000), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
        ] + [{"value": "16.0", "measurand": "Current.Import", "phase": p, "unit": "A"} for p in ("L1", "L2", "L3")]
        out.append(
            (
                "MeterValues",
                # A meter reads once per instant: each message its own time (one stored row per reading).
                {"connectorId": 1, "transactionId": 0, "meterValue": [{"timestamp": at, "sampledValue": sampled}]},
            )
        )
    return out


async def _station(url: str, n: int, messages: int, mix: str, latencies: list[float]) -> None:
    async with websockets.connect(f"{url}/bench-{n}", subprotocols=[Subprotocol("ocpp1.6")], compression=None) as ws:
        tx_id = 0
        for i, (action, payload) in enumerate(_frames_16(n, messages, mix)):
            if action == "MeterValues":
                payload["transactionId"] = tx_id
            started = time.perf_counter()
            await ws.send(orjson.dumps([2, f"{n}-{i}", action, payload]).decode())
            answer = orjson.loads(await ws.recv())
            latencies.append(time.perf_counter() - started)
            if answer[0] != 3:
                raise RuntimeError(f"station {n}: {action} answered {answer}")
            if action == "StartTransaction":
                tx_id = answer[2]["transactionId"]


async def _drive(port: int, stations: int, messages: int, mix: str) -> tuple[float, list[float]]:
    url = f"ws://127.0.0.1:{port}/ocpp"
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_station(url, n, messages, mix, latencies) for n in range(stations)))
    return time.perf_counter() - started, latencies


def _measure(serve: Callable[..., None], args: tuple[Any, ...], stations: int, messages: int, mix: str) -> Result:
    """Drive the CSMS that ``serve`` starts in a child process; its CPU time is read from ``/proc``."""
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    child = ctx.Process(target=serve, args=(*args, ready, stop), daemon=True)
    child.start()
    port = ready.get(timeout=120)
    if child.pid is None:
        raise RuntimeError("the CSMS process did not start")
    cpu_before, threads_before = _cpu_seconds(child.pid), _thread_cpu_seconds(child.pid)
    wall, latencies = asyncio.run(_drive(port, stations, messages, mix))
    cpu = _cpu_seconds(child.pid) - cpu_before
    threads = [after - before for after, before in zip(_thread_cpu_seconds(child.pid), threads_before, strict=True)]
    stop.set()
    commit_counts = ready.get(timeout=60)  # (batches, calls, gc seconds), None when the CSMS does not count them
    child.join(timeout=30)
    total = len(latencies)
    latencies.sort()
    return {
        "stations": stations,
        "messages": total,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(total / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[int(0.99 * (total - 1))], 2),
        "csms_cpu_s": round(cpu, 3),
        "csms_cpu_us_per_msg": round(1e6 * cpu / total, 1),
        "loop_thread_us_per_msg": round(1e6 * threads[0] / total, 1),
        "other_threads_us_per_msg": round(1e6 * threads[1] / total, 1),
        "kernel_us_per_msg": round(1e6 * threads[2] / total, 1),
        "gc_us_per_msg": "-" if commit_counts is None else round(1e6 * commit_counts[2] / total, 1),
        "calls_per_commit": "-" if commit_counts is None else round(commit_counts[1] / max(commit_counts[0], 1), 1),
    }


def run(
    stations: int,
    messages: int,
    mix: str,
    database_url: str | None,
    workdir: str | None = None,
    profile: str | None = None,
) -> Result:
    """chargetwin's gateway; its SQLite file is ``bench.db`` in ``workdir`` (default: a new temporary directory).
    ``profile``: cProfile dumps of the CSMS's event loop and database thread to ``PROFILE.loop`` and ``PROFILE.db``."""
    url = database_url or f"sqlite:///{workdir or tempfile.mkdtemp(prefix='ct-bench-')}/bench.db"
    return _measure(_serve, (url, stations, OCPP16, profile), stations, messages, mix)


def run_peer(
    stations: int, messages: int, mix: str, workdir: str | None = None, sqlite_defaults: bool = False
) -> Result:
    """The afternoon CSMS of ``loadtests/peer/``; its SQLite file is ``peer.db`` in ``workdir``."""
    db_path = f"{workdir or tempfile.mkdtemp(prefix='ct-bench-peer-')}/peer.db"
    return _measure(_serve_peer, (db_path, sqlite_defaults), stations, messages, mix)


def _print_table(columns: dict[str, Result]) -> None:
    keys = next(iter(columns.values()))
    width = max(map(len, keys))
    if len(columns) > 1:
        print(f"{'':<{width}}" + "".join(f"  {name:>12}" for name in columns))
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"  {result[key]!s:>12}" for result in columns.values()))


def _print_ratios(ours: Result, peer: Result) -> None:
    our_cpu = float(ours["csms_cpu_us_per_msg"])
    # /proc counts CPU in clock ticks (10 ms): a tiny run can measure none at all.
    cpu = f"{float(peer['csms_cpu_us_per_msg']) / our_cpu:.2f}" if our_cpu else "not measurable (too few messages)"
    print(f"CSMS CPU per message, peer / chargetwin: {cpu}")
    print(f"messages per second, chargetwin / peer: {float(ours['msgs_per_s']) / float(peer['msgs_per_s']):.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--messages", type=int, default=50, help="messages per station after boot and start")
    parser.add_argument("--mix", choices=["meter", "heartbeat"], default="meter")
    parser.add_argument("--database-url", default=None)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--peer", action="store_true", help="then the same load against loadtests/peer/, and the ratios")
    which.add_argument("--peer-only", action="store_true", help="only the peer (to profile it)")
    parser.add_argument(
        "--peer-sqlite-defaults", action="store_true", help="the peer without WAL (an fsync per commit)"
    )
    parser.add_argument("--workdir", default=None, help="keep the SQLite files here (default: a temporary directory)")
    parser.add_argument(
        "--profile", metavar="PREFIX", default=None, help="cProfile the CSMS: PREFIX.loop and PREFIX.db (pstats dumps)"
    )
    args = parser.parse_args(argv)
    if (args.peer or args.peer_only) and args.database_url:
        parser.error("the peer stores in SQLite: compare on SQLite (drop --database-url)")
    load = (args.stations, args.messages, args.mix)
    if args.peer_only:
        _print_table({"peer": run_peer(*load, args.workdir, args.peer_sqlite_defaults)})
        return 0
    ours = run(*load, database_url=args.database_url, workdir=args.workdir, profile=args.profile)
    if not args.peer:
        _print_table({"chargetwin": ours})
        return 0
    peer_result = run_peer(*load, args.workdir, args.peer_sqlite_defaults)
    _print_table({"chargetwin": ours, "peer": peer_result})
    _print_ratios(ours, peer_result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
