"""Processes for load tests and the cluster test: ``csms serve`` and Locust as subprocesses, on loopback.

Used by ``loadtests/capacity.py``, ``loadtests/shaperun.py`` and the tests; every wait is bounded. Each process
can be pinned to a set of CPUs (``os.sched_setaffinity`` in the child before ``exec``, so every thread it
starts inherits it): the CSMS on one core and the load generator on the other keeps them from stealing from
each other, and their CPU times (from ``/proc``) tell which side saturated.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_queue_wait_seconds(pid: int) -> float:
    """Time the process's live threads spent runnable but waiting for a CPU (``/proc/PID/task/*/schedstat``):
    beside the CPU time it tells a process starved by its neighbours from one that had nothing to do."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError),
            open(f"/proc/{pid}/task/{task}/schedstat") as f,
        ):
            total += int(f.read().split()[1])
    return total / 1e9


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (and every thread it will start) to ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(CSMS cpus, generator cpus): one half of the machine each, or no pinning on a single core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


@dataclass
class CsmsProcess:
    process: subprocess.Popen
    ocpp_port: int
    api_port: int
    log_path: Path
    extra: dict = field(default_factory=dict)

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def wait_seconds(self) -> float:
        return run_queue_wait_seconds(self.pid)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_csms(  # noqa: PLR0913 - one keyword-only argument per way a test starts it
    database_url: str,
    workdir: Path,
    *,
    name: str = "csms",
    heartbeat_interval: int = 300,
    api_key: str | None = "loadtest-key",
    extra_args: list[str] | None = None,
    timeout: float = 60,
    cpus: set[int] | None = None,
    ports: tuple[int, int] | None = None,
) -> CsmsProcess:
    """``csms serve`` on two free loopback ports (or ``ports``: OCPP and API, to restart a CSMS where its
    chargers expect it), pinned to ``cpus`` if given; returns once both listen. (``csms serve`` raises its own
    file-descriptor limit to the hard limit.)"""
    ocpp_port, api_port = ports or (free_port(), free_port())
    env = {**os.environ}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    if api_key:
        env["CHARGETWIN_API_KEY"] = api_key
    command = [sys.executable, "-m", "csms.cli", "serve", "--host", "127.0.0.1", "--ocpp-port", str(ocpp_port)]
    command += ["--api-port", str(api_port), "--database-url", database_url, "--log-level", "warning"]
    command += ["--heartbeat-interval", str(heartbeat_interval), *(extra_args or [])]
    log_path = Path(workdir) / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(cpus),
        )
    csms = CsmsProcess(process, ocpp_port, api_port, log_path)
    try:
        wait_for_port(api_port, process, timeout)
        wait_for_port(ocpp_port, process, timeout)
    except Exception:
        csms.kill()
        raise RuntimeError(f"csms serve did not start:\n{csms.log()}") from None
    return csms


def locust_command(
    host: str,
    stations_file: Path,
    *,
    users: int | None,
    spawn_rate: float | None,
    run_time: str | None,
    csv_prefix: Path,
    options: list[str] | None = None,
) -> list[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--host", host, "--stations-file", str(stations_file), "--csv", str(csv_prefix), "--stop-timeout", "1",
    ]  # fmt: skip
    if users is not None:
        command += ["-u", str(users), "-r", str(spawn_rate if spawn_rate is not None else users)]
    if run_time is not None:
        command += ["-t", run_time]
    return command + list(options or [])


@dataclass
class LocustRun:
    """One Locust load generator: a single local process, or a master and its workers."""

    master: subprocess.Popen
    workers: list[subprocess.Popen]
    log_paths: list[Path]

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [self.master, *self.workers]

    def cpu_seconds(self) -> float:
        """CPU time of the whole generator (processes that already exited count as 0)."""
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                total += cpu_seconds(process.pid)
        return total

    def wait(self, timeout: float) -> int:
        """The master's exit code; workers quit when their master tells them to (killed if they don't)."""
        deadline = time.monotonic() + timeout
        try:
            code = self.master.wait(timeout=max(1.0, deadline - time.monotonic()))
            for worker in self.workers:
                # A worker still busy stopping 4,000 users after its master quit is killed below, not an error.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=max(1.0, min(30.0, deadline - time.monotonic())))
        finally:
            self.stop()
        return code

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())


def start_locust(  # noqa: PLR0913 - one keyword-only argument per Locust command-line option
    host: str,
    stations_file: Path,
    workdir: Path,
    *,
    csv_prefix: Path,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: str | None = None,
    options: list[str] | None = None,
    workers: int = 0,
    cpus: set[int] | None = None,
    shape: str | None = None,
    name: str = "locust",
) -> LocustRun:
    """Start Locust headless: one process, or (``workers`` > 0) a master on a free port and that many
    workers. ``shape`` selects a ``loadtests/loadshapes.py`` shape (then users/spawn rate/run time come from
    the ``--shape-*`` options)."""
    env = {**os.environ}
    env.pop("LOADTEST_SHAPE", None)
    if shape:
        env["LOADTEST_SHAPE"] = shape
    command = locust_command(
        host, stations_file, users=users, spawn_rate=spawn_rate, run_time=run_time, csv_prefix=csv_prefix,
        options=options,
    )  # fmt: skip
    port = free_port() if workers else 0
    if workers:
        command += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        command += ["--expect-workers", str(workers)]
    logs = [Path(workdir) / f"{name}-master.log"]
    with open(logs[0], "w") as log:
        master = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned(cpus)
        )
    started = []
    try:
        for i in range(workers):
            worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
            worker += ["--master-host", "127.0.0.1", "--master-port", str(port)]
            logs.append(Path(workdir) / f"{name}-worker{i}.log")
            with open(logs[-1], "w") as log:
                started.append(
                    subprocess.Popen(
                        worker, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned(cpus)
                    )
                )
    except Exception:
        LocustRun(master, started, logs).stop()
        raise
    return LocustRun(master, started, logs)


def read_stats(csv_prefix: Path) -> dict[str, dict[str, str]]:
    """Locust's ``PREFIX_stats.csv`` by request name (``Aggregated`` included)."""
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def read_failures(csv_prefix: Path) -> list[tuple[int, str, str]]:
    """Locust's ``PREFIX_failures.csv`` as (count, name, error), most frequent first."""
    path = Path(f"{csv_prefix}_failures.csv")
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [(int(r["Occurrences"]), r["Name"], r["Error"]) for r in csv.DictReader(f)]
    return sorted(rows, reverse=True)


def combined_percentiles(rows: dict) -> dict[int, float]:
    """p50/p99 over all actions, from each action's percentiles weighted by its count (an approximation;
    Locust's Aggregated row also includes the connect times, which we leave out)."""
    points = []
    for row in rows.values():
        n = int(row["Request Count"])
        for q in (50, 66, 75, 80, 90, 95, 98, 99, 99.9, 100):
            key = f"{q:g}%"
            points.append((float(row[key]), n * _percentile_width(q)))
    points.sort()
    total = sum(w for _, w in points)
    out = {}
    for target in (50, 99):
        acc = 0.0
        for value, weight in points:
            acc += weight
            if acc >= total * target / 100:
                out[target] = value
                break
    return out


def _percentile_width(q: float) -> float:
    edges = [0, 50, 66, 75, 80, 90, 95, 98, 99, 99.9, 100]
    i = edges.index(q)
    return edges[i] - edges[i - 1]
