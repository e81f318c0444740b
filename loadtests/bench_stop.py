"""The graceful stop of many held connections, in-process: ``run_server`` (as ``csms serve`` runs it) in this
process, N idle chargers connected and booted from child processes, then the stop, timed.

    uv run python loadtests/bench_stop.py --stations 10000
    PYTHONPATH=/tmp/before uv run python loadtests/bench_stop.py --stations 10000   # another tree's CSMS

Each client process holds up to ``--per-process`` plain ``websockets`` clients (1.6, a quarter 2.0.1): connect,
BootNotification, then nothing but answering the CSMS's pings and its close frame. Once all are booted and
``--hold`` s have passed, the server's ``stop`` event is set; reported: the time until ``run_server`` returned
(the whole graceful stop: the API's stop, the gateway's drain, the 1001 close frames, the wait for the closing
handshakes, the aborts, the disconnections, the last commit, the engine's disposal), the gateway's own steps
when the tree logs them, and how the clients saw their connection end (close code 1001, or no close frame).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import harness
import provision
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

import csms
from csms.ocpp.versions import VERSION_SUBPROTOCOL, Version
from csms.runtime.server import raise_fd_limit

PASSWORD = "fleet-password-0001"
BOOT = {
    "1.6": {"chargePointVendor": "Bench", "chargePointModel": "Idle"},
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"vendorName": "Bench", "model": "Idle"}},
}


async def _client(url: str, station_id: str, version: Version, booted: Any, gate: asyncio.Semaphore) -> str:
    auth = base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    async with gate:
        for _attempt in range(5):
            try:
                ws = await websockets.connect(
                    f"{url}/{station_id}",
                    subprotocols=[Subprotocol(VERSION_SUBPROTOCOL[version])],
                    additional_headers={"Authorization": f"Basic {auth}"},
                    ping_interval=None,
                    compression=None,
                    open_timeout=60,
                    max_queue=4,
                )
                break
            except (OSError, TimeoutError, InvalidHandshake):
                await asyncio.sleep(1.0)
        else:
            return "never connected"
        await ws.send(json.dumps([2, "b", "BootNotification", BOOT[version]]))
        await ws.recv()
    with booted.get_lock():
        booted.value += 1
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return f"close code {ws.close_code}" if ws.close_code is not None else "no close frame"


def _clients(url: str, rows: list[tuple[str, Version]], booted: Any, results: Any) -> None:  # child process
    raise_fd_limit()

    async def main() -> Counter[str]:
        gate = asyncio.Semaphore(100)
        ends = await asyncio.gather(*(_client(url, sid, version, booted, gate) for sid, version in rows))
        return Counter(ends)

    results.put(dict(asyncio.run(main())))


class _Gateways:
    """The gateways ``run_server`` builds, kept for their :attr:`~csms.gateway.server.Gateway.stop_steps` (none in
    a tree whose gateway does not time its stop)."""

    def __init__(self) -> None:
        self.made: list[Any] = []
        #: perf_counter() when the last gateway's stop began and ended.
        self.stop_began = self.stop_ended = 0.0

    def install(self) -> None:
        import csms.runtime.server as server

        made, original = self.made, server.Gateway

        def make(*args: Any, **kwargs: Any) -> Any:
            gateway = original(*args, **kwargs)
            made.append(gateway)
            stop = gateway.stop

            async def timed_stop(*args: Any, **kwargs: Any) -> None:
                self.stop_began = time.perf_counter()
                try:
                    await stop(*args, **kwargs)
                finally:
                    self.stop_ended = time.perf_counter()

            gateway.stop = timed_stop  # type: ignore[method-assign]
            return gateway

        server.Gateway = make  # type: ignore[misc,assignment]

    def steps(self) -> list[tuple[str, float]]:
        return list(getattr(self.made[-1], "stop_steps", [])) if self.made else []


def _cpu_seconds() -> float:
    """This process's CPU time, all threads (the loop's and the database's): steadier than the wall clock on
    a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Collections:
    """Time spent in the cyclic garbage collector, by generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self.counts: Counter[int] = Counter()
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] = self.seconds.get(generation, 0.0) + time.perf_counter() - self._started
            self.counts[info["generation"]] += 1


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from csms.runtime.server import run_server

    raise_fd_limit()
    url = f"sqlite:///{workdir}/csms.db"
    rows = provision.plan(args.stations, "idle-", 0.25, PASSWORD, unique=False)
    provision.provision(url, rows, "LOADTEST")
    ocpp_port, api_port = harness.free_port(), harness.free_port()
    ctx = mp.get_context("spawn")
    booted = ctx.Value("i", 0)
    results = ctx.Queue()
    pairs = [(sid, version) for sid, _, version in rows]
    processes = max(1, -(-len(pairs) // args.per_process))
    gateways = _Gateways()
    gateways.install()
    collections = _Collections()
    timings: dict[str, float] = {}

    async def main() -> None:
        stop = asyncio.Event()
        ready = asyncio.Event()
        server = asyncio.create_task(
            run_server(
                database_url=url,
                ocpp_port=ocpp_port,
                api_port=api_port,
                stop=stop,
                log_level="warning",
                handle_signals=False,
                shutdown_grace_s=args.grace,
                on_ready=lambda _e: ready.set(),
            )
        )
        await ready.wait()
        for i in range(processes):
            ctx.Process(
                target=_clients, args=(f"ws://127.0.0.1:{ocpp_port}/ocpp", pairs[i::processes], booted, results)
            ).start()
        t0 = time.monotonic()
        while booted.value < len(pairs):
            if time.monotonic() - t0 > args.stations / 20 + 120:
                raise RuntimeError(f"only {booted.value} of {len(pairs)} booted")
            await asyncio.sleep(0.5)
        timings["ramp_s"] = time.monotonic() - t0
        await asyncio.sleep(args.hold)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        gc.callbacks.append(collections)
        cpu = _cpu_seconds()
        started = time.perf_counter()
        stop.set()
        await server
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        timings["stop_s"] = time.perf_counter() - started
        timings["stop_cpu_s"] = _cpu_seconds() - cpu
        timings["before_gateway_stop_s"] = gateways.stop_began - started
        timings["after_gateway_stop_s"] = time.perf_counter() - gateways.stop_ended
        gc.callbacks.remove(collections)
        timings["stop_started"] = started

    asyncio.run(main())
    timings["asyncio_run_returned_s"] = time.perf_counter() - timings.pop("stop_started")
    ends: Counter[str] = Counter()
    for _ in range(processes):
        ends.update(results.get(timeout=120))
    gc_seconds = {
        f"gen{g}": [collections.counts[g], round(collections.seconds[g], 3)] for g in sorted(collections.counts)
    }
    return {
        "stations": args.stations,
        "client_processes": processes,
        **timings,
        "ends": dict(ends),
        "steps": gateways.steps(),
        "gc": gc_seconds,
        "csms": str(Path(csms.__file__).parent),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=10_000)
    p.add_argument("--per-process", type=int, default=5_000, help="clients per client process")
    p.add_argument("--hold", type=float, default=5.0, help="seconds held after the last boot before the stop")
    p.add_argument("--grace", type=float, default=10.0, help="shutdown_grace_s, as csms serve's default")
    p.add_argument("--profile", default=None, help="cProfile of the stop (the loop's thread) to this file")
    p.add_argument("--json", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as tmp:
        summary = run(args, Path(tmp))
    print(
        f"{summary['stations']:,} idle stations (ramp {summary['ramp_s']:.0f} s), CSMS from {summary['csms']}: "
        f"graceful stop {summary['stop_s']:.2f} s, {summary['stop_cpu_s']:.2f} s CPU "
        f"(asyncio.run returned after {summary['asyncio_run_returned_s']:.2f} s)"
    )
    print(
        f"  run_server: {summary['before_gateway_stop_s']:.2f} s before the gateway's stop "
        f"(the API's), {summary['after_gateway_stop_s']:.2f} s after it"
    )
    if summary["steps"]:
        print("  gateway: " + ", ".join(f"{name} {s:.2f} s" for name, s in summary["steps"]))
    print("  collector during the stop (count, s): " + str(summary["gc"]))
    print("  clients: " + ", ".join(f"{k} ×{n:,}" for k, n in sorted(summary["ends"].items())))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
