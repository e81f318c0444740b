"""Hostile frames at scale against a real ``csms serve`` (SQLite file) over loopback WebSockets.

    ./run python loadtests/fuzz_frames.py --frames 1000000 --workers 2 --connections 64

Fuzzing connections (``--workers`` processes of ``--connections`` each, both OCPP versions, some of them never
booted) send windows of frames from ``fuzz_generate`` and check every answer against ``fuzz_oracle``: the right
CALLERROR (code and message id), no answer to an answer, a close (1009 oversized, 1007 invalid UTF-8) and a
new connection. One connection per run floods far beyond its frame rate and must be closed with 1008.
Meanwhile ``--honest`` stations make ordinary calls, before the fuzz (baseline) and during it; their latency
p50/p99 in both phases, and their ratio, are reported. At the end the CSMS process must still be running with
nothing logged at ERROR, and its database is checked: only the provisioned stations exist, no transaction,
sample or status row belongs to a station none of whose calls of that kind was accepted, no energy is
infinite, NaN or negative, and every sample and event points at a transaction that exists.

Bounded: ``--frames`` in total, ``--max-seconds`` of fuzz, at most one window per connection in flight.
Exit status 0 when every check held, 1 otherwise. ``--json FILE`` writes the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_generate
import fuzz_oracle
import harness
from fuzz_oracle import Expect

SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
SENTINEL_ACTION = "FuzzSentinel"  # no version defines it: NotImplemented, answered at once
MAX_VIOLATION_SAMPLES = 20
#: Answers a connection may be owed (after commits) before it stops sending to wait for them.
MAX_CARRIED = 300


def _after_commit(expected: Expect) -> bool:
    """Whether this answer comes only after the CSMS's commit (so it may come after later windows' answers)."""
    return expected.kind == "answer" or "SecurityError" in expected.codes


@dataclass
class Stats:
    frames: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    results: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    csms_calls: int = 0
    unanswered_before_close: int = 0
    violations: int = 0
    samples: list[str] = field(default_factory=list)
    #: station id -> actions it sent valid calls of (what the database may hold for it; a call's answer may be
    #: lost when its connection closes after the commit).
    accepted: dict[str, set[str]] = field(default_factory=dict)

    def violation(self, text: str) -> None:
        self.violations += 1
        if len(self.samples) < MAX_VIOLATION_SAMPLES:
            self.samples.append(text[:400])

    def merge(self, other: dict[str, Any]) -> None:
        self.frames += other["frames"]
        self.by_category.update(other["by_category"])
        self.codes.update(other["codes"])
        self.results += other["results"]
        self.closes.update(other["closes"])
        self.csms_calls += other["csms_calls"]
        self.unanswered_before_close += other["unanswered_before_close"]
        self.violations += other["violations"]
        self.samples.extend(other["samples"])  # each worker's first ones
        for station_id, actions in other["accepted"].items():
            self.accepted.setdefault(station_id, set()).update(actions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "by_category": dict(self.by_category),
            "codes": dict(self.codes),
            "results": self.results,
            "closes": dict(self.closes),
            "csms_calls": self.csms_calls,
            "unanswered_before_close": self.unanswered_before_close,
            "violations": self.violations,
            "samples": self.samples,
            "accepted": {k: sorted(v) for k, v in self.accepted.items()},
        }


@dataclass
class Budget:
    """Frames still to send (shared by a worker's connections) and the time they must be sent by."""

    left: int
    deadline: float

    def take(self, wanted: int) -> int:
        if time.monotonic() >= self.deadline:
            return 0
        granted = min(wanted, self.left)
        self.left -= granted
        return granted


# ---- one fuzzing connection ----------------------------------------------------------------------------------
class FuzzConnection:
    def __init__(
        self, url: str, station_id: str, version: str, booted: bool, seed: int, stats: Stats, window: int
    ) -> None:
        self.url = f"{url}/{station_id}"
        self.station_id = station_id
        self.version = version
        self.booted = booted
        self.factory = fuzz_generate.FrameFactory(version, seed, prefix=f"{seed % 997:x}.")
        self.stats = stats
        self.window = window
        self.ws: Any = None
        #: Answers still owed on this connection, by message id.
        self.waiting: dict[str, list[Expect]] = {}

    async def connect(self) -> None:
        # open_timeout: the CSMS's own handshake timeout is 30 s; under a saturating fuzz a reconnect may take
        # longer than websockets' default of 10 s without anything being wrong.
        subprotocols = [Subprotocol(SUBPROTOCOL[self.version])]
        self.ws = await websockets.connect(
            self.url, subprotocols=subprotocols, max_size=None, compression=None, open_timeout=60
        )
        if self.booted and self.factory.count == 0:
            action, payload = fuzz_generate.boot_call(self.version)
            frame = self.factory.call(action, payload)
            await self._window([(frame, False, "valid", fuzz_oracle.expect(frame, False, self.version))])
            await self._read(lambda: bool(self.waiting), None)  # booted before anything else is sent

    async def run(self, budget: Budget) -> None:
        try:
            await self.connect()
            while (granted := budget.take(self.window)) > 0:
                await self._window(self._frames(granted))
            await self.finish()
        finally:
            if self.ws is not None:
                await self.ws.close()

    def _frames(self, count: int) -> list[tuple[bytes, bool, str, Expect]]:
        """``count`` frames of the mix; a frame that ends the connection ends the list (now and then one is
        drawn on purpose: oversized, or invalid UTF-8)."""
        frames: list[tuple[bytes, bool, str, Expect]] = []
        for _ in range(count):
            frame, binary, category = self.factory.draw()
            if len(frames) == count - 1 and self.factory.rng.random() < 0.02:
                frame, binary, category = self.factory.draw(self.factory.rng.choice(fuzz_generate.CLOSING))
            expected = fuzz_oracle.expect(frame, binary, self.version, self.booted)
            frames.append((frame, binary, category, expected))
            if expected.kind == "close":
                break
            if expected.kind == "answer" and expected.action:  # what the store may hold for this station
                self.stats.accepted.setdefault(self.station_id, set()).add(expected.action)
        return frames

    async def _window(self, frames: list[tuple[bytes, bool, str, Expect]]) -> None:
        """Send the frames and a sentinel, then read until the sentinel's answer came: every refusal made on
        receipt came before it. Answers that wait for a commit (valid calls, refusals of calls before the boot)
        are carried on to later windows, so the commit's latency does not pace the fuzz."""
        closing: Expect | None = None
        for frame, binary, category, expected in frames:
            self.stats.frames += 1
            self.stats.by_category[category] += 1
            if expected.kind == "close":
                closing = expected
            elif expected.unique_id is not None:
                self.waiting.setdefault(expected.unique_id, []).append(expected)
            try:
                await self.ws.send(frame, text=not binary)
            except ConnectionClosed as closed:
                await self._closed(closed, closing)
                return
        sentinel_id = None
        if closing is None:
            sentinel = self.factory.call(SENTINEL_ACTION, {})
            expected = fuzz_oracle.expect(sentinel, False, self.version, self.booted)
            sentinel_id = expected.unique_id
            self.waiting.setdefault(sentinel_id or "", []).append(expected)
            self.stats.frames += 1
            self.stats.by_category["sentinel"] += 1
            await self.ws.send(sentinel.decode())
        await self._read(lambda: sentinel_id in self.waiting or len(self.waiting) > MAX_CARRIED, closing)
        for unique_id, left in list(self.waiting.items()):
            carried = [e for e in left if _after_commit(e)]
            for expected in left:
                if not _after_commit(expected):
                    self.stats.violation(
                        f"{self.station_id}: no answer to {unique_id} ({expected.kind} {sorted(expected.codes)})"
                    )
            if carried:
                self.waiting[unique_id] = carried
            else:
                del self.waiting[unique_id]

    async def finish(self) -> None:
        """Read what is still owed (answers after commits), then close."""
        if self.ws is not None:
            await self._read(lambda: bool(self.waiting), None)
            for unique_id, left in self.waiting.items():
                for expected in left:
                    self.stats.violation(f"{self.station_id}: never answered {unique_id} ({expected.kind})")
            self.waiting.clear()
            await self.ws.close()

    async def _read(self, more: Any, closing: Expect | None) -> None:
        deadline = time.monotonic() + 60
        try:
            while more() or closing is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._answer(json.loads(await asyncio.wait_for(self.ws.recv(), remaining)), self.waiting)
        except ConnectionClosed as closed:
            await self._closed(closed, closing)
            closing = None
        except TimeoutError:
            pass
        if closing is not None:
            self.stats.violation(f"{self.station_id}: not closed ({closing.close_code} expected)")

    def _answer(self, message: list[Any], waiting: dict[str, list[Expect]]) -> None:
        message_type, unique_id = message[0], message[1]
        if message_type == 2:
            self.stats.csms_calls += 1  # the CSMS asks something of the station: left unanswered
            return
        code = message[2] if message_type == 4 else None
        candidates = waiting.get(unique_id) or []
        # A mutated id may repeat another frame's: the strict expectations first, so a CALLERROR is not taken
        # by a valid call's (which would accept one too).
        accepting = [e for e in candidates if e.accepts(self.version, message_type, code)]
        match = min(accepting, key=lambda e: e.kind != "error", default=None)
        if match is None:
            wanted = [(e.kind, sorted(e.codes)) for e in candidates] or "nothing"
            self.stats.violation(
                f"{self.station_id} ({self.version}): got {json.dumps(message)[:200]}, wanted {wanted}"
            )
            if candidates:
                candidates.pop(0)
        else:
            candidates.remove(match)
            if message_type == 4:
                self.stats.codes[code or ""] += 1
            else:
                self.stats.results += 1
        if not candidates:
            waiting.pop(unique_id, None)

    async def _closed(self, closed: ConnectionClosed, closing: Expect | None) -> None:
        # The connection was closed (as it had to be, or a violation below): what was not answered before is
        # lost with it (frames read in the same chunk as an oversized one, answers that waited for a commit).
        self.stats.unanswered_before_close += sum(len(left) for left in self.waiting.values())
        self.waiting.clear()
        code = closed.rcvd.code if closed.rcvd is not None else None
        if closing is None or code != closing.close_code:
            self.stats.violation(f"{self.station_id}: closed with {code}, expected {closing and closing.close_code}")
        self.stats.closes[str(code)] += 1
        await self.connect()


async def flood(url: str, station_id: str, version: str, frames: int, stats: Stats) -> None:
    """Pipeline ``frames`` heartbeats without reading an answer: must be closed with 1008 (policy violation)."""
    # max_queue=None: it keeps reading what it never looks at, so the close frame is seen.
    subprotocols = [Subprotocol(SUBPROTOCOL[version])]
    ws = await websockets.connect(f"{url}/{station_id}", subprotocols=subprotocols, max_queue=None)
    frame = json.dumps([2, "flood", "Heartbeat", {}])
    code = None
    try:
        for _ in range(frames):
            await ws.send(frame)
            stats.frames += 1
            stats.by_category["flood"] += 1
        await asyncio.wait_for(ws.wait_closed(), 30)
    except (ConnectionClosed, TimeoutError):
        pass
    code = ws.close_code
    stats.closes[str(code)] += 1
    if code != fuzz_oracle.POLICY:
        stats.violation(f"{station_id}: a flood of {frames} frames ended with close code {code}, not 1008")


def station_plan(worker: int, connections: int) -> list[tuple[str, str, bool]]:
    """(station id, version, booted) of a worker's connections: both versions, one in eight never booted."""
    plan = []
    for n in range(connections):
        version = "1.6" if n % 2 == 0 else "2.0.1"
        booted = n % 8 != 7
        plan.append((f"fuzz-{worker}-{n}{'' if booted else '-preboot'}", version, booted))
    return plan


async def run_worker(
    url: str, worker: int, connections: int, frames: int, seconds: float, window: int, seed: int
) -> Stats:
    stats = Stats()
    budget = Budget(frames, time.monotonic() + seconds)
    fuzzers = [
        FuzzConnection(url, station_id, version, booted, seed * 100_003 + worker * 1_009 + n, stats, window)
        for n, (station_id, version, booted) in enumerate(station_plan(worker, connections))
    ]
    report = asyncio.create_task(_worker_progress(worker, stats, budget))
    results = await asyncio.gather(*(f.run(budget) for f in fuzzers), return_exceptions=True)
    report.cancel()
    for fuzzer, result in zip(fuzzers, results, strict=True):
        if isinstance(result, BaseException):
            stats.violation(f"{fuzzer.station_id}: connection failed: {result!r}")
    return stats


async def _worker_progress(worker: int, stats: Stats, budget: Budget) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(30)
        elapsed = time.monotonic() - started
        print(
            f"  worker {worker}: {stats.frames:,} frames in {elapsed:.0f} s ({stats.frames / elapsed:,.0f}/s), "
            f"{budget.left:,} to go, {stats.violations} violations",
            flush=True,
        )


def _worker_process(args: tuple[str, int, int, int, float, int, int], out: Any) -> None:  # child process
    stats = asyncio.run(run_worker(*args))
    out.put(stats.as_dict())


# ---- honest stations ------------------------------------------------------------------------------------------
@dataclass
class Honest:
    phase: str = "baseline"
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"baseline": [], "fuzz": []})
    failures: list[str] = field(default_factory=list)
    stop: bool = False


async def honest_station(url: str, station_id: str, version: str, honest: Honest, pause_s: float) -> None:
    calls = fuzz_generate.valid_calls(version)
    async with websockets.connect(f"{url}/{station_id}", subprotocols=[Subprotocol(SUBPROTOCOL[version])]) as ws:
        n = 0
        pending = [fuzz_generate.boot_call(version)]
        while not honest.stop:
            action, payload = pending.pop() if pending else calls[n % len(calls)]
            n += 1
            phase = honest.phase
            started = time.perf_counter()
            await ws.send(json.dumps([2, f"h{n}", action, payload]))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if answer[0] != 2:
                    break
            if answer[:2] != [3, f"h{n}"]:
                honest.failures.append(f"{station_id}: {action} answered {answer}")
            honest.latencies[phase].append(time.perf_counter() - started)
            await asyncio.sleep(pause_s)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- the database after the run -------------------------------------------------------------------------------
def check_database(database_url: str, provisioned: set[str], accepted: dict[str, set[str]]) -> list[str]:
    """What the run may not have stored; each problem as a sentence (empty: the store is sound)."""
    from sqlalchemy import create_engine, text

    problems: list[str] = []
    engine = create_engine(database_url)
    with engine.connect() as db:
        stations = set(db.execute(text("SELECT id FROM stations")).scalars())
        if stations != provisioned:
            problems.append(f"stations not provisioned: {sorted(stations - provisioned)[:10]}")
        writes = {
            "transactions": {"StartTransaction", "TransactionEvent"},
            "meter_samples": {"MeterValues", "TransactionEvent", "StopTransaction"},
            "status_history": {"StatusNotification"},
        }
        for table, actions in writes.items():
            rows = db.execute(text(f"SELECT station_id, count(*) FROM {table} GROUP BY station_id")).all()
            for station_id, count in rows:
                if not accepted.get(station_id, set()) & actions:
                    problems.append(
                        f"{table}: {count} rows of {station_id}, none of whose {sorted(actions)} was accepted"
                    )
        bad_samples = db.execute(
            text(
                "SELECT count(*) FROM meter_samples WHERE value <> value OR value > 1e15 OR value < -1e15 "
                "OR (measurand LIKE 'Energy%Register' AND value < 0)"
            )
        ).scalar_one()
        if bad_samples:
            problems.append(f"{bad_samples} meter samples infinite, NaN or negative energy")
        bad_energy = db.execute(
            text(
                "SELECT count(*) FROM transactions WHERE meter_start_wh <> meter_start_wh"
                " OR meter_stop_wh <> meter_stop_wh"
                " OR abs(coalesce(meter_start_wh, 0)) > 1e15 OR abs(coalesce(meter_stop_wh, 0)) > 1e15"
                " OR meter_start_wh < 0 OR meter_stop_wh < coalesce(meter_start_wh, 0)"
            )
        ).scalar_one()
        if bad_energy:
            problems.append(f"{bad_energy} transactions with infinite, NaN or negative energy")
        orphans = db.execute(
            text(
                "SELECT count(*) FROM meter_samples s WHERE s.transaction_id IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = s.transaction_id)"
            )
        ).scalar_one()
        orphans += db.execute(
            text(
                "SELECT count(*) FROM transaction_events e "
                "WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = e.transaction_id)"
            )
        ).scalar_one()
        if orphans:
            problems.append(f"{orphans} samples or transaction events of no transaction")
    engine.dispose()
    return problems


def provision_stations(database_url: str, rows: list[tuple[str, str]]) -> None:
    from csms.services import stations
    from csms.store.database import make_engine, make_session_factory
    from csms.store.migrate import upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    now = datetime.now(UTC)
    with make_session_factory(engine)() as db:
        for station_id, version in rows:
            stations.provision(db, station_id, ocpp_version=version, password=None, now=now)
        db.commit()
    engine.dispose()


# ---- the run ---------------------------------------------------------------------------------------------------
async def _fuzz(args: argparse.Namespace, url: str, stats: Stats) -> None:
    per_worker = math.ceil(args.frames / max(1, args.workers))
    if args.workers == 0:  # in this process (the test's small sample)
        stats.merge(
            (
                await run_worker(url, 0, args.connections, args.frames, args.max_seconds, args.window, args.seed)
            ).as_dict()
        )
        return
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    processes = [
        ctx.Process(
            target=_worker_process,
            args=((url, w, args.connections, per_worker, args.max_seconds, args.window, args.seed), out),
            daemon=True,
        )
        for w in range(args.workers)
    ]
    for process in processes:
        process.start()
    loop = asyncio.get_running_loop()
    for _ in processes:
        stats.merge(await loop.run_in_executor(None, out.get, True, args.max_seconds + 300))
    for process in processes:
        await loop.run_in_executor(None, process.join, 30)


async def _progress(
    csms: harness.CsmsProcess, started: float, honest: Honest, peak: list[int], done: asyncio.Event
) -> None:
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 10)
        alive = csms.process.poll() is None
        rss = csms.rss_bytes() if alive else 0
        peak[0] = max(peak[0], rss)
        phase = honest.phase
        latencies = honest.latencies[phase]
        state = "running" if alive else "EXITED"
        print(
            f"  {time.monotonic() - started:6.0f} s  CSMS {state}  RSS {rss / 2**20:5.0f} MiB  "
            f"{phase}: honest calls {len(latencies):>6}, p99 {percentile(latencies, 0.99) * 1000:6.1f} ms",
            flush=True,
        )


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    database_url = f"sqlite:///{workdir}/fuzz.db"
    honest_rows = [(f"honest-{n}", "1.6" if n % 2 else "2.0.1") for n in range(args.honest)]
    fuzz_rows = [
        (station_id, version)
        for w in range(max(1, args.workers))
        for station_id, version, _booted in station_plan(w, args.connections)
    ]
    rows = honest_rows + fuzz_rows + [("flooder", "2.0.1")]
    provision_stations(database_url, rows)
    extra = [] if args.max_frames_per_second is None else ["--max-frames-per-second", str(args.max_frames_per_second)]
    csms = harness.start_csms(database_url, workdir, api_key=None, extra_args=extra)
    stats = Stats()
    honest = Honest()
    peak = [csms.rss_bytes()]
    started = time.monotonic()
    done = asyncio.Event()
    progress = asyncio.create_task(_progress(csms, started, honest, peak, done))
    try:
        url = csms.ocpp_url
        tasks = [asyncio.create_task(honest_station(url, s, v, honest, args.honest_pause)) for s, v in honest_rows]
        await asyncio.sleep(args.baseline_seconds)
        honest.phase = "fuzz"
        fuzz_started = time.monotonic()
        await asyncio.gather(_fuzz(args, url, stats), flood(url, "flooder", "2.0.1", args.flood_frames, stats))
        fuzz_seconds = time.monotonic() - fuzz_started
        honest.stop = True
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                honest.failures.append(f"honest station failed: {result!r}")
        alive = csms.process.poll() is None
        peak[0] = max(peak[0], csms.rss_bytes() if alive else 0)
    finally:
        done.set()
        await progress
        csms.stop()
    log = csms.log()
    errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]
    everything = {"StartTransaction", "TransactionEvent", "MeterValues", "StopTransaction", "StatusNotification"}
    accepted = stats.accepted | {station_id: everything for station_id, _ in honest_rows}
    problems = check_database(database_url, {s for s, _ in rows}, accepted)
    base, during = honest.latencies["baseline"], honest.latencies["fuzz"]
    p99_base, p99_fuzz = percentile(base, 0.99), percentile(during, 0.99)
    return {
        **stats.as_dict(),
        "fuzz_seconds": round(fuzz_seconds, 1),
        "frames_per_s": round(stats.frames / fuzz_seconds) if fuzz_seconds else 0,
        "crashes": 0 if alive and csms.process.returncode in (None, 0) else 1,
        "exit_code": csms.process.returncode,
        "error_log_lines": errors[:10],
        "database_problems": problems,
        "honest_failures": honest.failures[:10],
        "honest_calls": {"baseline": len(base), "fuzz": len(during)},
        "honest_p50_ms": {"baseline": percentile(base, 0.5) * 1000, "fuzz": percentile(during, 0.5) * 1000},
        "honest_p99_ms": {"baseline": p99_base * 1000, "fuzz": p99_fuzz * 1000},
        "honest_p99_ratio": p99_fuzz / p99_base if base and during else math.nan,
        "csms_peak_rss_mib": round(peak[0] / 2**20),
    }


def failed(summary: dict[str, Any]) -> list[str]:
    reasons = []
    for key in ("violations", "crashes"):
        if summary[key]:
            reasons.append(f"{key}: {summary[key]}")
    for key in ("error_log_lines", "database_problems", "honest_failures"):
        if summary[key]:
            reasons.append(f"{key}: {summary[key]}")
    return reasons


def report(summary: dict[str, Any]) -> str:
    codes = ", ".join(f"{code} {n:,}" for code, n in sorted(summary["codes"].items(), key=lambda kv: -kv[1]))
    closes = ", ".join(f"{code} {n:,}" for code, n in sorted(summary["closes"].items()))
    lines = [
        f"frames sent           {summary['frames']:,} in {summary['fuzz_seconds']} s ({summary['frames_per_s']:,}/s)",
        f"CALLERRORs by code    {codes}",
        f"CALLRESULTs           {summary['results']:,} (valid calls among the fuzz)",
        f"connections closed    {closes or 'none'} ({summary['unanswered_before_close']:,} frames unanswered then)",
        f"violations            {summary['violations']}  crashes {summary['crashes']}",
        "honest calls          baseline {:,}, during fuzz {:,}".format(*summary["honest_calls"].values()),
        "honest p50 / p99 ms   baseline {:.1f} / {:.1f}, during fuzz {:.1f} / {:.1f} (p99 ratio {:.2f})".format(
            summary["honest_p50_ms"]["baseline"],
            summary["honest_p99_ms"]["baseline"],
            summary["honest_p50_ms"]["fuzz"],
            summary["honest_p99_ms"]["fuzz"],
            summary["honest_p99_ratio"],
        ),
        f"CSMS peak RSS         {summary['csms_peak_rss_mib']} MiB",
        f"database              {'sound' if not summary['database_problems'] else summary['database_problems']}",
    ]
    lines += [f"  violation: {s}" for s in summary["samples"][:10]]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=1_000_000, help="fuzz frames in total (default 1,000,000)")
    p.add_argument("--workers", type=int, default=2, help="fuzzing processes (0: in this process)")
    p.add_argument("--connections", type=int, default=64, help="fuzzing connections per process (default 64)")
    p.add_argument("--window", type=int, default=50, help="frames a connection sends before it reads the answers")
    p.add_argument("--honest", type=int, default=10, help="honest stations (default 10)")
    p.add_argument("--honest-pause", type=float, default=0.05, help="seconds between an honest station's calls")
    p.add_argument("--baseline-seconds", type=float, default=20, help="honest stations alone first (default 20)")
    p.add_argument("--max-seconds", type=float, default=1800, help="the fuzz stops after this (default 1800)")
    p.add_argument("--flood-frames", type=int, default=20_000, help="frames of the one flooding connection")
    p.add_argument(
        "--max-frames-per-second",
        type=float,
        default=None,
        help="the CSMS's frame rate per connection (default: its own)",
    )
    p.add_argument("--seed", type=int, default=15, help="seed of every generator (default 15)")
    p.add_argument("--json", type=Path, default=None, help="write the summary here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as workdir:
        summary = asyncio.run(run(args, Path(workdir)))
    print(report(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    reasons = failed(summary)
    for reason in reasons:
        print("FAILED", reason)
    return 1 if reasons else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
