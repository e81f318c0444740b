"""Processes for load tests and the cluster test: ``csms serve`` and Locust as subprocesses, on loopback.

Used by ``loadtests/capacity.py`` and the tests; every wait is bounded.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
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
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

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


def start_csms(
    database_url: str,
    workdir: Path,
    *,
    name: str = "csms",
    heartbeat_interval: int = 300,
    api_key: str | None = "loadtest-key",
    extra_args: list[str] | None = None,
    timeout: float = 60,
) -> CsmsProcess:
    """``csms serve`` on two free loopback ports; returns once both listen."""
    ocpp_port, api_port = free_port(), free_port()
    env = {**os.environ}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    if api_key:
        env["CHARGETWIN_API_KEY"] = api_key
    command = [sys.executable, "-m", "csms.cli", "serve", "--host", "127.0.0.1", "--ocpp-port", str(ocpp_port)]
    command += ["--api-port", str(api_port), "--database-url", database_url, "--log-level", "warning"]
    command += ["--heartbeat-interval", str(heartbeat_interval), *(extra_args or [])]
    log_path = Path(workdir) / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
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
    users: int,
    spawn_rate: float,
    run_time: str,
    csv_prefix: Path,
    options: list[str] | None = None,
) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", str(spawn_rate), "-t", run_time, "--host", host,
        "--stations-file", str(stations_file), "--csv", str(csv_prefix), "--stop-timeout", "5",
        *(options or []),
    ]  # fmt: skip


def read_stats(csv_prefix: Path) -> dict[str, dict[str, str]]:
    """Locust's ``PREFIX_stats.csv`` by request name (``Aggregated`` included)."""
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}
