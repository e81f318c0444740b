"""Where a connection's bytes go: the CSMS (``run_server``, as ``csms serve`` runs it) in a child process under
tracemalloc, N stations of the asyncio fleet connected and booted, then the Python allocations that grew,
by source line, per connection, beside the RSS growth per connection.

    uv run python loadtests/conn_memory.py --stations 1000 5000

tracemalloc sees what Python allocates (objects, buffers); RSS also holds the allocator's free lists and
fragments, so RSS/N ≥ traced/N. Both are printed for each N.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import fleet
import harness
import provision

from csms.runtime.server import raise_fd_limit

PASSWORD = "fleet-password-0001"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * harness.PAGE


def _serve(url: str, port: int, api_port: int, commands: Any, answers: Any, frames: int) -> None:  # child process
    from csms.runtime.server import run_server

    raise_fd_limit()
    tracemalloc.start(frames)
    stop_holder: list[Any] = []

    def measure() -> None:
        baseline: tracemalloc.Snapshot | None = None
        while True:
            command = commands.get()
            if command == "baseline":
                baseline = tracemalloc.take_snapshot()
                answers.put(_rss())
            elif command == "measure":
                assert baseline is not None
                snapshot = tracemalloc.take_snapshot()
                stats = snapshot.compare_to(baseline, "traceback" if frames > 1 else "lineno")
                traced = sum(s.size_diff for s in stats)
                top = [
                    (s.size_diff, s.count_diff, "\n    ".join(s.traceback.format()[-2 * frames :]))
                    for s in sorted(stats, key=lambda s: -s.size_diff)[:40]
                ]
                answers.put((_rss(), traced, top))
            else:
                stop_holder[0][1].call_soon_threadsafe(stop_holder[0][0].set)
                return

    async def main() -> None:
        stop = asyncio.Event()
        stop_holder.append((stop, asyncio.get_running_loop()))
        threading.Thread(target=measure, daemon=True).start()
        await run_server(
            database_url=url,
            ocpp_port=port,
            api_port=api_port,
            stop=stop,
            log_level="warning",
            handle_signals=False,
            on_ready=lambda _e: answers.put("ready"),
        )

    asyncio.run(main())


def measure(stations: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url = f"sqlite:///{workdir}/mem-{stations}.db"
    rows = provision.plan(stations, f"mem{stations}-", 0.25, PASSWORD, unique=False)
    provision.provision(url, rows, "LOADTEST")
    ctx = mp.get_context("spawn")
    commands, answers = ctx.Queue(), ctx.Queue()
    port, api_port = harness.free_port(), harness.free_port()
    csms_cpus, gen_cpus = harness.split_cpus()
    server = ctx.Process(target=_serve, args=(url, port, api_port, commands, answers, args.frames), daemon=True)
    server.start()
    if csms_cpus and server.pid:
        import os

        os.sched_setaffinity(server.pid, csms_cpus)
    generator = None
    try:
        assert answers.get(timeout=120) == "ready"
        commands.put("baseline")
        idle_rss = answers.get(timeout=120)
        options = fleet.FleetOptions(
            url=f"ws://127.0.0.1:{port}/ocpp",
            password=PASSWORD,
            token="LOADTEST",
            rate=args.rate,
            charging=args.charging,
            meter_s=60,
            backoff=(10, 10, 3),
            addresses=fleet.source_addresses(2),
        )
        generator = fleet.Fleet([(r[0], r[2]) for r in rows], options, workers=2, cpus=gen_cpus).start()
        t0 = time.monotonic()
        snap = generator.snapshot()
        while snap["online"] < stations and time.monotonic() - t0 < stations / args.rate * 4 + 120:
            time.sleep(2)
            snap = generator.snapshot()
        time.sleep(args.settle)
        commands.put("measure")
        rss, traced, top = answers.get(timeout=600)
        connected = generator.snapshot()["connected"]
    finally:
        if generator is not None:
            generator.kill()
        commands.put("stop")
        server.join(timeout=60)
        if server.is_alive():
            server.kill()
    return {
        "stations": stations,
        "connected": connected,
        "rss_kb_per_conn": (rss - idle_rss) / max(1, connected) / 1024,
        "traced_kb_per_conn": traced / max(1, connected) / 1024,
        "top": [(size / max(1, connected), count / max(1, connected), where) for size, count, where in top],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rate", type=float, default=60, help="connections opened per second")
    parser.add_argument("--charging", type=float, default=0.3)
    parser.add_argument("--settle", type=float, default=10, help="seconds after the last boot before measuring")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth (1: group by source line)")
    parser.add_argument("--lines", type=int, default=25, help="source lines to print")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="conn-memory-") as tmp:
        for stations in args.stations:
            r = measure(stations, args, Path(tmp))
            print(
                f"{r['connected']:,} connected: RSS {r['rss_kb_per_conn']:.1f} kB/conn, "
                f"traced by tracemalloc {r['traced_kb_per_conn']:.1f} kB/conn"
            )
            for size, count, where in r["top"][: args.lines]:
                print(f"  {size:8.0f} B/conn {count:6.2f} blocks/conn  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
