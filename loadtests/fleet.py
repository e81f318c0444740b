"""An asyncio fleet of chargers on real sockets, spread over several processes: tens of thousands of stations
against one ``csms serve`` (used by ``loadtests/conns.py`` and ``loadtests/storm.py``).

Each station is the twin's sans-IO firmware (:class:`~simulator.station.charger.Charger`, 1.6 or 2.0.1) behind
an event-driven shell: one task that connects (first at the fleet's bounded opening rate, later on the
firmware's own reconnect back-off) and reads frames, one timer at the firmware's next deadline, one writer
per socket. Nothing polls, so an idle station costs no CPU; Locust's one-greenlet-per-user loop is the
better tool up to a few thousand chargers, this one for the tens of thousands.

Every CALL is timed until its answer, per action and per *phase* (the parent moves the phase: ramp, hold,
each storm), and with ``record_acks`` the requests the CSMS acknowledged (transactions and meter values) are
kept so the database can be checked against them. Stations bind to several 127.0.0.x source addresses
(each gives ~28,000 ephemeral ports towards one server port) and every worker raises its own
file-descriptor limit; the machine's settings are never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import math
import multiprocessing as mp
import os
import random
import time
from array import array
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

import orjson
import websockets
from chargers import KEYS, RampMeter
from harness import PAGE
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from csms.ocpp.versions import VERSION_SUBPROTOCOL, Version
from csms.runtime.server import raise_fd_limit
from simulator.station.charger import Charger

#: Requests whose acknowledgement promises stored data (the durability check reads them back).
DURABLE = frozenset({"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"})
PROGRESS_EVERY_S = 2.0
#: Stations per generator process unless ``--workers`` says otherwise.
STATIONS_PER_WORKER = 2_500


@dataclass(frozen=True)
class FleetOptions:
    url: str  #: ws://host:port/ocpp
    password: str
    token: str
    rate: float  #: first connections opened per second, whole fleet
    charging: float  #: share of stations that plug in after their first boot and charge to the end
    meter_s: int
    backoff: tuple[int, int, int]  #: reconnect wait minimum, random range, repeat (doubling) times [s, s, n]
    boot_on_reconnect: bool = True  #: BootNotification on every new connection, as many firmwares do
    record_acks: bool = False
    open_timeout_s: float = 30.0
    call_timeout_s: float = 30.0
    addresses: tuple[str, ...] = ("127.0.0.1",)
    seed: int = 1


class Shell:
    """One charger on one WebSocket."""

    __slots__ = (
        "auth", "booted_phase", "charger", "charging", "connecting", "fleet", "local_addr", "meter", "outbox",
        "plug_at", "plugged", "rng", "sent", "timer", "wake", "writer", "ws",
    )  # fmt: skip

    def __init__(self, fleet: WorkerFleet, station_id: str, version: Version, local_addr: str, rng: random.Random):
        opts = fleet.options
        keys = KEYS[version]
        minimum, spread, repeat = opts.backoff
        self.fleet = fleet
        self.rng = rng
        self.meter = RampMeter(11000.0)
        self.charger = Charger(
            station_id,
            version,
            meter=self.meter,
            rng=rng,
            config={
                keys["sample"]: str(opts.meter_s),
                keys["backoff"]: str(minimum),
                keys["range"]: str(spread),
                keys["repeat"]: str(repeat),
            },
            call_timeout_s=opts.call_timeout_s,
            heartbeat="periodic",  # the realistic mix: a Heartbeat every 300 s whatever else is sent
        )
        self.auth = "Basic " + base64.b64encode(f"{station_id}:{opts.password}".encode()).decode()
        self.local_addr = local_addr
        self.charging = rng.random() < opts.charging
        self.plug_at: float | None = None
        self.plugged = False
        self.ws: ClientConnection | None = None
        self.connecting = False
        self.outbox: deque[str] = deque()
        self.writer: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.wake = asyncio.Event()
        #: message id -> (action, sent at, the request when its acknowledgement must be checked)
        self.sent: dict[str, tuple[str, float, dict[str, Any] | None]] = {}
        self.booted_phase = -1

    async def run(self) -> None:
        while not self.fleet.stopping:
            if self.charger.wants_connection(time.time()):
                await self._connect_and_serve()
                continue
            self.wake.clear()
            self._arm()
            await self.wake.wait()

    async def _open(self) -> ClientConnection | None:
        """One connection attempt; a failure is counted by kind and the firmware told."""
        fleet, charger = self.fleet, self.charger
        failure = None
        try:
            return await websockets.connect(
                f"{fleet.options.url}/{charger.station_id}",
                subprotocols=[Subprotocol(VERSION_SUBPROTOCOL[charger.version])],
                additional_headers={"Authorization": self.auth},
                open_timeout=fleet.options.open_timeout_s,
                ping_interval=None,  # the CSMS pings; a charger's own WebSocketPingInterval is off here
                compression=None,
                local_addr=(self.local_addr, 0),
            )
        except InvalidStatus as exc:
            failure = f"handshake refused: HTTP {exc.response.status_code}"
        except TimeoutError:
            failure = "handshake timed out"
        except ConnectionRefusedError:
            failure = "TCP connection refused (nothing listening)"
        except (OSError, InvalidHandshake) as exc:
            failure = f"connect failed: {type(exc).__name__}: {exc}"[:120]
        fleet.count(failure)
        charger.connection_failed(time.time())
        return None

    async def _connect_and_serve(self) -> None:
        fleet, charger = self.fleet, self.charger
        self._disarm()
        self.connecting = True
        try:
            ws = await self._open()
        finally:
            self.connecting = False
        if ws is None:
            return
        if fleet.stopping:
            ws.transport.abort()
            return
        self.ws = ws
        fleet.connected += 1
        fleet.count("connected")
        now = time.time()
        registered = charger.registered
        charger.connected(now)
        if registered and fleet.options.boot_on_reconnect:
            charger.trigger_boot(now)
        self._flush()
        self._arm()
        try:
            async for frame in ws:
                self._received(frame if isinstance(frame, str) else frame.decode())
        except ConnectionClosed:
            pass
        finally:
            self.ws = None
            fleet.connected -= 1
            if self.sent:
                fleet.count("calls in flight when the socket closed", len(self.sent))
                self.sent.clear()
            if not fleet.stopping:
                charger.disconnected(time.time())

    def _received(self, frame: str) -> None:
        now = time.time()
        if not frame.startswith("[2"):
            # [3,"id",{…}] or [4,"id","code",…] as the CSMS writes them (orjson: no spaces): the id is between
            # the first two quotes, so the frame is parsed here only when its payload is looked at.
            entry = self.sent.pop(_message_id(frame), None)
            if entry is not None:
                action, sent_at, request = entry
                self.fleet.latency(action, now - sent_at)
                if not frame.startswith("[3"):
                    self.fleet.count(f"CALLERROR {action}: {orjson.loads(frame)[2]}")
                elif action == "BootNotification":
                    if orjson.loads(frame)[2].get("status") == "Accepted":
                        self.booted_phase = self.fleet.phase
                elif request is not None:
                    self.fleet.acks.append((self.charger.station_id, action, request, orjson.loads(frame)[2]))
        self.charger.receive_frame(frame, now)
        if self.charging and not self.plugged and self.plug_at is None and self.charger.online:
            self.plug_at = now + self.rng.uniform(0, self.fleet.options.meter_s)
        self._flush()
        self._arm()

    def _flush(self) -> None:
        frames = self.charger.frames_to_send()
        ws = self.ws
        if frames and ws is not None:
            now = time.time()
            record = self.fleet.options.record_acks
            for frame in frames:
                if frame.startswith("[2"):
                    _, message_id, _, action, _ = frame.split('"', 4)  # [2,"id","Action",{…}] (orjson)
                    request = orjson.loads(frame)[3] if record and action in DURABLE else None
                    self.sent[message_id] = (action, now, request)
            self.outbox.extend(frames)
            if self.writer is None or self.writer.done():
                self.writer = asyncio.ensure_future(self._write(ws))
        if self.charger.close_requested() and ws is not None:
            ws.transport.close()

    async def _write(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while self.outbox:
                await ws.send(self.outbox.popleft())
        self.outbox.clear()

    def _arm(self) -> None:
        self._disarm()
        if self.connecting or self.fleet.stopping:
            return
        times = [t for t in (self.charger.next_deadline(), self.plug_at) if t is not None]
        if times:
            self.timer = asyncio.get_running_loop().call_later(max(0.0, min(times) - time.time()), self._on_timer)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        now = time.time()
        charger = self.charger
        if self.ws is None and charger.wants_connection(now):
            self.wake.set()  # the task connects (and arms again once it knows how that went)
            return
        deadline = charger.next_deadline()
        if deadline is not None and now >= deadline:
            charger.handle_timer(now)
        if self.plug_at is not None and now >= self.plug_at:
            if charger.online:
                self.plug_at, self.plugged = None, True
                charger.plug_in(1, self.fleet.options.token, now)
                self.meter.start()
            else:
                self.plug_at = now + 5.0
        self._flush()
        self._arm()

    def abort(self) -> None:
        self._disarm()
        self.wake.set()
        if self.ws is not None:
            self.ws.transport.abort()


def _message_id(frame: str) -> str:
    """The message id of a compact OCPP-J frame (between its first two double quotes)."""
    start = frame.find('"') + 1
    return frame[start : frame.find('"', start)]


class WorkerFleet:
    """The stations of one worker process."""

    def __init__(self, index: int, rows: list[tuple[str, Version]], options: FleetOptions, phase: Any) -> None:
        self.index = index
        self.rows = rows
        self.options = options
        self._phase = phase
        self.stopping = False
        self.connected = 0
        self.latencies: dict[tuple[int, str], array[float]] = defaultdict(lambda: array("d"))
        self.counts: Counter[tuple[int, str]] = Counter()
        self.acks: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
        self.shells: list[Shell] = []

    @property
    def phase(self) -> int:
        return int(self._phase.value)

    def latency(self, action: str, seconds: float) -> None:
        self.latencies[(self.phase, action)].append(seconds)

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[(self.phase, kind)] += n

    async def run(self, stop: Any, progress: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        rng = random.Random(self.options.seed * 1_000_003 + self.index)
        addresses = self.options.addresses
        self.shells = [
            Shell(self, station_id, version, addresses[n % len(addresses)], random.Random(rng.getrandbits(64)))
            for n, (station_id, version) in enumerate(self.rows)
        ]
        tasks: list[asyncio.Task[None]] = []

        def launch(shell: Shell) -> None:
            tasks.append(asyncio.ensure_future(shell.run()))

        interval = 1.0 / self.options.rate
        for n, shell in enumerate(self.shells):
            loop.call_later(n * interval, launch, shell)
        while not stop.is_set():
            progress.put(self.snapshot(len(tasks)))
            await asyncio.sleep(PROGRESS_EVERY_S)
        self.stopping = True
        progress.put(self.snapshot(len(tasks)))
        now = time.time()
        unanswered = sum(
            1 for s in self.shells for _a, at, _r in s.sent.values() if now - at >= self.options.call_timeout_s
        )
        for shell in self.shells:
            shell.abort()
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        return {
            "index": self.index,
            "latencies": {key: values.tolist() for key, values in self.latencies.items()},
            "counts": dict(self.counts),
            "acks": self.acks,
            "unanswered": unanswered,
            "rss": rss,
            "stations": len(self.shells),
        }

    def snapshot(self, started: int) -> dict[str, Any]:
        phase = self.phase
        return {
            "index": self.index,
            "started": started,
            "connected": self.connected,
            "online": sum(1 for s in self.shells if s.charger.online),
            "booted_in_phase": sum(1 for s in self.shells if s.booted_phase == phase),
            "phase": phase,
            "answered": sum(len(v) for v in self.latencies.values()),
            "counts": dict(self.counts),
        }


def _worker_main(
    index: int,
    rows: list[tuple[str, Version]],
    options: FleetOptions,
    cpus: set[int] | None,
    phase: Any,
    stop: Any,
    progress: Any,
    results: Any,
) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    raise_fd_limit()
    fleet = WorkerFleet(index, rows, options, phase)
    result = asyncio.run(fleet.run(stop, progress))
    results.put(result)
    results.close()
    results.join_thread()
    progress.close()
    progress.join_thread()
    os._exit(0)  # 10,000s of aborted connections need no orderly teardown


class Fleet:
    """The parent's handle on the worker processes: start, read progress, move the phase, stop and collect."""

    def __init__(
        self, rows: list[tuple[str, Version]], options: FleetOptions, *, workers: int, cpus: set[int] | None = None
    ) -> None:
        ctx = mp.get_context("spawn")
        self.workers = max(1, min(workers, len(rows)))
        self._phase = ctx.RawValue("i", 0)
        self._stop = ctx.Event()
        self._progress = ctx.Queue()
        self._results = ctx.Queue()
        share = options.rate / self.workers
        self.processes = [
            ctx.Process(
                target=_worker_main,
                args=(
                    i,
                    rows[i :: self.workers],
                    _with_rate(options, share),
                    cpus,
                    self._phase,
                    self._stop,
                    self._progress,
                    self._results,
                ),
                name=f"fleet-{i}",
                daemon=True,
            )
            for i in range(self.workers)
        ]
        self.latest: dict[int, dict[str, Any]] = {}
        self.stations = len(rows)

    def start(self) -> Fleet:
        for process in self.processes:
            process.start()
        return self

    @property
    def phase(self) -> int:
        return int(self._phase.value)

    def set_phase(self, phase: int) -> None:
        self._phase.value = phase

    def snapshot(self) -> dict[str, Any]:
        """The latest progress of every worker, summed (a worker reports every couple of seconds)."""
        while True:
            try:
                report = self._progress.get_nowait()
            except Exception:  # queue.Empty
                break
            self.latest[report["index"]] = report
        reports = list(self.latest.values())
        counts: Counter[tuple[int, str]] = Counter()
        for r in reports:
            counts.update(r["counts"])
        phase = self.phase
        return {
            "started": sum(r["started"] for r in reports),
            "connected": sum(r["connected"] for r in reports),
            "online": sum(r["online"] for r in reports),
            "booted_in_phase": sum(r["booted_in_phase"] for r in reports if r["phase"] == phase),
            "answered": sum(r["answered"] for r in reports),
            "counts": counts,
            "workers_alive": sum(p.is_alive() for p in self.processes),
        }

    def cpu_seconds(self) -> float:
        from harness import cpu_seconds

        total = 0.0
        for process in self.processes:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError, TypeError):
                total += cpu_seconds(process.pid or 0)
        return total

    def stop(self, timeout: float = 120) -> dict[str, Any]:
        """Stop every worker and merge what they measured."""
        self._stop.set()
        results = []
        deadline = time.monotonic() + timeout
        for _ in self.processes:
            results.append(self._results.get(timeout=max(1.0, deadline - time.monotonic())))
        self.snapshot()
        for process in self.processes:
            process.join(timeout=max(1.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        latencies: dict[tuple[int, str], list[float]] = defaultdict(list)
        counts: Counter[tuple[int, str]] = Counter()
        acks = []
        for r in results:
            for key, values in r["latencies"].items():
                latencies[key].extend(values)
            counts.update(r["counts"])
            acks.extend(r["acks"])
        return {
            "latencies": dict(latencies),
            "counts": counts,
            "acks": acks,
            "unanswered": sum(r["unanswered"] for r in results),
            "generator_rss": sum(r["rss"] for r in results),
        }

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()


def _with_rate(options: FleetOptions, rate: float) -> FleetOptions:
    return FleetOptions(**{**options.__dict__, "rate": rate})


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def latency_table(latencies: dict[tuple[int, str], list[float]], phases: set[int]) -> dict[str, dict[str, float]]:
    """Per action over ``phases``: count, p50, p99 and max in milliseconds."""
    by_action: dict[str, list[float]] = defaultdict(list)
    for (phase, action), values in latencies.items():
        if phase in phases:
            by_action[action].extend(values)
    return {
        action: {
            "count": len(values),
            "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "max_ms": max(values) * 1000,
        }
        for action, values in sorted(by_action.items())
    }


def add_fleet_arguments(p: argparse.ArgumentParser, *, addresses: int, progress: float) -> None:
    """The options of the fleet that ``conns.py`` and ``storm.py`` drive alike."""
    p.add_argument("--workers", type=int, default=None,
                   help=f"generator processes (default one per {STATIONS_PER_WORKER:,} stations, at least 2; "
                        "at least what file descriptors require)")  # fmt: skip
    p.add_argument("--addresses", type=int, default=addresses, help=f"127.0.0.x source addresses (default {addresses})")
    p.add_argument("--charging", type=float, default=0.3, help="share of stations charging (default 0.3)")
    p.add_argument("--heartbeat", type=int, default=300, help="heartbeat interval the CSMS grants [s]")
    p.add_argument("--meter", type=int, default=60, help="MeterValues period while charging [s]")
    p.add_argument("--share-201", type=float, default=0.25, help="share of OCPP 2.0.1 stations")
    p.add_argument("--progress", type=float, default=progress, help="seconds between progress lines")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="don't pin the CSMS and the fleet apart")
    p.add_argument("--json", default=None, help="also write the summary here")


def source_addresses(count: int) -> tuple[str, ...]:
    """127.0.0.2, 127.0.0.3, …: the whole 127/8 is loopback on Linux, each address its own port range."""
    return tuple(f"127.0.0.{2 + i}" for i in range(count))


def min_workers(stations: int, fd_limit: int, reserve: int = 200) -> int:
    """How many processes a fleet needs so none of them runs out of file descriptors."""
    return max(1, math.ceil(stations / max(1, fd_limit - reserve)))


def workers_for(stations: int, asked: int | None, fd_limit: int) -> int:
    """Generator processes: as asked, else one per :data:`STATIONS_PER_WORKER` (at least 2); never fewer than
    the file descriptors require. (Two processes fell behind a 10,000-station reconnect storm: each station's
    reconnect, handshake and boot is client work too, and the 2-core machine is shared.)"""
    wanted = asked if asked is not None else max(2, math.ceil(stations / STATIONS_PER_WORKER))
    return max(wanted, min_workers(stations, fd_limit))
