"""Real time: ``sim run --csms ws://… --realtime`` against ``csms serve`` (subprocesses), the WebSocket link
against a gateway in this process, and the clock that binds SimPy to the wall clock."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import simpy

from csms.cli import main as csms_main
from csms.gateway.server import Gateway
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from simulator.links.websocket import WebSocketLink
from simulator.realtime import RealtimeClock
from simulator.station.charger import Charger, Registration
from tests.simulator.helpers import T0, FakeMeter

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).parent / "data" / "realtime-short.yaml"
STATIONS = {"rtac-1": "1.6", "rtac-2": "1.6", "rtdc-1": "2.0.1"}
TOKENS = ["RT-AC-1", "RT-AC-2", "RT-DC-1"]
AC_PASSWORD, DC_PASSWORD = "ac-secret-pw-0001", "dc-secret-pw-0001"  # the dc group's password is in the scenario
API_KEY = "realtime-test-key"
SPEED = "120"  # 25 virtual minutes in 12.5 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    return env


def run_cli(module: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=timeout
    )


@dataclass
class Csms:
    ws_url: str
    api_url: str
    database_url: str


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'csms.db'}"


def _provision_by_cli(database: str) -> None:
    """``csms stations add`` / ``csms tokens add``, one after the other (SQLite: one writer at a time), through
    the command's own entry point in this process: six interpreter starts were 10-20 s of this fixture, and
    tests/csms/test_cli.py runs the command as a subprocess already."""
    password = {station_id: DC_PASSWORD if station_id.startswith("rtdc") else AC_PASSWORD for station_id in STATIONS}
    commands = [
        ["stations", "add", station_id, "--password", password[station_id], "--ocpp", version]
        for station_id, version in STATIONS.items()
    ]
    commands += [["tokens", "add", token] for token in TOKENS]
    for command in commands:
        errors = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(errors):
            status = csms_main([*command, "--database-url", database])
        assert status == 0, errors.getvalue()


@contextmanager
def _serve(database: str, *extra: str) -> Iterator[Csms]:
    """``csms serve`` on free loopback ports (``extra``: more of its options), stopped (or killed) on the way out."""
    ocpp_port, api_port = free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--ocpp-port", str(ocpp_port), "--api-port", str(api_port)]
    command += ["--database-url", database, "--log-level", "warning", *extra]
    process = subprocess.Popen(command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 180  # imports take 10+ s on a loaded machine, 60+ beside other jobs
        while True:
            assert process.poll() is None, process.communicate()
            try:
                httpx.get(api + "/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "csms serve did not start"
                time.sleep(0.1)
        yield Csms(f"ws://127.0.0.1:{ocpp_port}/ocpp", api, database)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


@pytest.fixture
def csms_serve(database: str) -> Iterator[Csms]:
    """An empty CSMS: the run provisions it through the API."""
    with _serve(database) as csms:
        yield csms


@pytest.fixture
def provisioned_csms(database: str) -> Iterator[Csms]:
    """A CSMS whose stations and tokens the operator added with the ``csms`` command beforehand."""
    _provision_by_cli(database)
    with _serve(database) as csms:
        yield csms


def sim_run(out: Path, *extra: str, timeout: float = 90) -> dict[str, Any]:
    done = run_cli("simulator.cli", "run", str(SCENARIO), "--out", str(out), "--quiet", *extra, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads((out / "report.json").read_text())


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document; list items share ``[]``."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            paths.add(prefix + key)
            paths |= key_paths(item, prefix + key + ".")
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, prefix + "[].")
    return paths


def assert_sound(data: dict[str, Any], source: str) -> None:
    tx = data["transactions"]
    assert data["mode"] == "realtime"
    assert tx["csms_source"] == source
    assert data["stations"] == {"count": 3, "booted": 3}
    assert tx["started"] == 3 and tx["completed"] == 3, tx
    assert tx["lost"] == 0 and tx["duplicated"] == 0, tx
    for row in tx["per_transaction"]:
        assert row["error_kwh"] is not None and row["error_kwh"] <= 0.001, row
        assert row["truth_kwh"] > 0.5, row
    assert data["frames"]["charger_to_csms"] > 0 and data["frames"]["csms_to_charger"] > 0
    assert data["passed"], data["checks"]


@pytest.mark.timeout(150)
def test_realtime_against_csms_serve_through_the_api(csms_serve: Csms, tmp_path: Path) -> None:
    virtual = sim_run(tmp_path / "virtual")
    real = sim_run(
        tmp_path / "real",
        *("--csms", csms_serve.ws_url, "--realtime", "--speed", SPEED, "--password", AC_PASSWORD),
        *("--api-url", csms_serve.api_url, "--api-key", API_KEY),
    )
    assert 12.5 <= real["wall_seconds"] < 40, real["wall_seconds"]  # in step with the wall clock, not faster
    # Sections computed only in virtual time so far (they need the embedded CSMS's load-management state);
    # everything else has the same shape. Shrink this set as real time gains them.
    virtual_only = {"load_management"}
    assert {k for k in virtual if k not in real} == virtual_only
    # real time adds what the CSMS acknowledged to the chargers beside what it stored
    realtime_only = {p for p in key_paths(real) if p.startswith("transactions.acknowledged")} | {"notes"}
    assert key_paths(real) - realtime_only == {p for p in key_paths(virtual) if p.split(".")[0] not in virtual_only}
    # uptime and alerts: the CSMS's own view through its API beside the twin's truth
    ports = {f"{sid}/{n}" for sid, n in (("rtac-1", 1), ("rtac-2", 1), ("rtdc-1", 1))}
    assert {r["port"] for r in real["uptime"]["ports"]} == ports, real["uptime"]
    assert all(r["csms_pct"] is not None and r["twin_pct"] is not None for r in real["uptime"]["ports"])
    assert real["uptime"]["max_error_pp"] < 1.0, real["uptime"]
    assert real["alerts"]["injected"] == 0 and real["alerts"]["raised"] == 0, real["alerts"]
    assert real["alerts"]["missed"] == 0 and real["alerts"]["false"] == 0, real["alerts"]
    assert any("wall-clock" in note and "--speed 1" in note for note in real["notes"]), real.get("notes")
    assert virtual["transactions"]["csms_source"] == "embedded"
    assert_sound(real, "api")
    assert real["transactions"]["energy_max_error_kwh"] is not None and "not_measured" not in real
    assert real["simulated_seconds"] == virtual["simulated_seconds"] == 1500.0
    for name in ("site_import.png", "evse_power.png", "vehicle_soc.png"):
        assert (tmp_path / "real" / name).stat().st_size > 0
    # the CSMS's own rows agree with the report (they are its source)
    rows = httpx.get(
        csms_serve.api_url + "/api/v1/transactions", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    ).json()
    assert {(r["station_id"], r["charger_transaction_id"]) for r in rows} == {
        (r["station_id"], r["transaction_id"]) for r in real["transactions"]["per_transaction"]
    }


@pytest.mark.timeout(150)
def test_realtime_against_any_csms_reports_its_figures_not_measured(provisioned_csms: Csms, tmp_path: Path) -> None:
    csms_serve = provisioned_csms
    out = tmp_path / "real"
    done = run_cli(
        "simulator.cli",
        *("run", str(SCENARIO), "--out", str(out), "--quiet"),
        *("--csms", csms_serve.ws_url, "--realtime", "--speed", SPEED, "--password", AC_PASSWORD),
        timeout=90,
    )
    assert done.returncode == 3, done.stdout + done.stderr  # nothing failed, but the CSMS was never asked
    real = json.loads((out / "report.json").read_text())
    tx = real["transactions"]
    assert real["stations"] == {"count": 3, "booted": 3}
    assert tx["started"] == 3 and tx["completed"] == 3, tx
    assert tx["csms_source"] is None and tx["energy_max_error_kwh"] is None and tx["lost"] is None, tx
    assert tx["not_measured"] == "no operator can read this CSMS's transactions"
    # no operator: the CSMS's uptime and alerts are out of reach, and the report says so
    assert "uptime" not in real and "alerts" not in real
    assert set(real["not_measured"]) == {"transactions", "uptime", "alerts"}
    assert any(note.startswith("stations.booted: the chargers whose last BootNotification") for note in real["notes"])
    # what the chargers saw acknowledged, labelled as that, is what the CSMS stored
    ack = tx["acknowledged"]
    assert ack["recorded"] == 3 and ack["lost"] == 0 and ack["duplicated"] == 0, ack
    assert ack["energy_max_error_kwh"] <= 0.001, ack
    engine = make_engine(csms_serve.database_url)
    try:
        from sqlalchemy import select

        from csms.store.models import Transaction

        with make_session_factory(engine)() as db:
            stored = {(t.station_id, t.charger_tx_id): t.energy_wh for t in db.scalars(select(Transaction))}
    finally:
        engine.dispose()
    for row in tx["per_transaction"]:
        assert stored[(row["station_id"], row["transaction_id"])] / 1000 == pytest.approx(row["truth_kwh"], abs=0.001)


FAULTS = Path(__file__).parent / "data" / "realtime-faults.yaml"


@pytest.mark.timeout(150)
def test_realtime_injects_the_station_faults_as_virtual_time_does(csms_serve: Csms, tmp_path: Path) -> None:
    out = tmp_path / "real"
    done = run_cli(
        "simulator.cli",
        *("run", str(FAULTS), "--out", str(out), "--quiet"),
        *("--csms", csms_serve.ws_url, "--realtime", "--speed", "60", "--password", AC_PASSWORD),
        *("--api-url", csms_serve.api_url, "--api-key", API_KEY),
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    real = json.loads((out / "report.json").read_text())
    # the twin's truth: every fault was injected, on the station it names
    injected = {(f["kind"], f["station_id"]) for f in real["alerts"]["per_fault"]}
    assert real["alerts"]["injected"] == 4
    assert injected == {
        ("stuck_available", "rtdc-1"),
        ("connector_fault", "rtac-2"),
        ("power_loss", "rtac-1"),
        ("meter_freeze", "rtdc-1"),
    }
    ports = {p["port"]: p for p in real["uptime"]["ports"]}
    assert all(p["twin_pct"] < 100.0 for p in ports.values()), ports  # stuck, faulted, unpowered
    assert ports["rtac-1/1"]["csms_pct"] < 100.0, ports  # the CSMS saw the unpowered station drop off
    # the CSMS's own records: the power loss, the fault and the stuck port's driver ended sessions
    headers = {"Authorization": f"Bearer {API_KEY}"}
    rows = httpx.get(csms_serve.api_url + "/api/v1/transactions", headers=headers, timeout=10).json()
    reasons = {(r["station_id"], r["stop_reason"]) for r in rows}
    assert {("rtac-1", "PowerLoss"), ("rtac-2", "Other"), ("rtdc-1", "Local")} <= reasons, rows
    # and the frozen register: the DC session's readings stood still from +9 to +13 min while it charged on
    charged = max((r for r in rows if r["station_id"] == "rtdc-1"), key=lambda r: r["energy_wh"])
    samples = httpx.get(f"{csms_serve.api_url}/api/v1/transactions/{charged['id']}", headers=headers, timeout=10)
    start = datetime.fromisoformat(real["scenario"]["start"]).timestamp()
    registers = [
        (datetime.fromisoformat(s["timestamp"]).timestamp() - start, s["value"])
        for s in samples.json()["samples"]
        if s["measurand"] == "Energy.Active.Import.Register"
    ]
    frozen = [wh for at_s, wh in registers if 9 * 60 + 5 < at_s < 13 * 60 - 5]
    assert len(frozen) >= 2 and len(set(frozen)) == 1, registers
    assert max(wh for at_s, wh in registers if at_s > 13 * 60) > frozen[0], registers
    tx = real["transactions"]
    assert tx["lost"] == 0 and tx["duplicated"] == 0, tx


@pytest.mark.timeout(90)
def test_realtime_refuses_a_csms_crash_before_it_starts(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "faults.yaml"
    line = next(n for n, text in enumerate(scenario.read_text().splitlines(), 1) if "csms_crash" in text)
    unreachable = f"ws://127.0.0.1:{free_port()}/ocpp"
    done = run_cli(
        "simulator.cli",
        *("run", str(scenario), "--out", str(tmp_path / "out"), "--quiet", "--csms", unreachable, "--realtime"),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"faults.yaml:{line}:" in done.stderr and "faults[7].kind" in done.stderr, done.stderr
    assert "csms_crash at 2026-01-16T00:30:00-05:00" in done.stderr, done.stderr
    assert "cannot be injected in real time" in done.stderr, done.stderr
    # refused up front: no run, not even a connection attempt
    assert "Traceback" not in done.stderr and "cannot connect" not in done.stderr
    assert not (tmp_path / "out").exists()


# ---- the link and the clock, in this process --------------------------------------------------------------
class FastClock:
    """Charger time running ``speed`` times the wall clock (no twin behind it)."""

    def __init__(self, speed: float) -> None:
        self.speed, self.wall0 = speed, time.monotonic()

    def now(self) -> float:
        return T0 + (time.monotonic() - self.wall0) * self.speed

    def sync(self) -> float:
        return self.now()

    def wall_delay(self, when: float) -> float:
        return (when - self.now()) / self.speed

    def kick(self) -> None:
        pass


async def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def gateway(sqlite_url: str) -> Any:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as db:
        stations.provision(db, "cp-ws", ocpp_version="2.0.1", password="right-password-01", now=_dt(T0))
        db.commit()
    gw = Gateway(factory, CsmsConfig())
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()
        engine.dispose()


def _dt(t: float) -> Any:
    from csms.ocpp.convert import from_posix

    return from_posix(t)


@pytest.mark.timeout(30)
async def test_websocket_link_wrong_password_retries_with_back_off(gateway: Gateway) -> None:
    clock = FastClock(100.0)
    charger = Charger("cp-ws", "2.0.1", meter=FakeMeter(), rng=random.Random(3))
    failed_at: list[float] = []
    original = charger.connection_failed

    def record(now: float) -> None:
        failed_at.append(now)
        original(now)

    charger.connection_failed = record  # type: ignore[method-assign]
    link = WebSocketLink(charger, clock, f"ws://127.0.0.1:{gateway.port}/ocpp", password="wrong-password-01")
    link.start()
    try:
        await wait_for(lambda: len(failed_at) >= 4, timeout=10)
        assert not link.connected and charger.registration is Registration.UNREGISTERED
        assert set(link.failures) == {"HTTP 401 at the handshake"}
        gaps = [b - a for a, b in itertools.pairwise(failed_at)]
        # back-off 10 s × 2^n ± 5 s (virtual): gaps grow, none shorter than the minimum
        assert all(gap >= 5 - 0.5 for gap in gaps), gaps
        assert gaps[-1] > gaps[0], gaps
        link.password = "right-password-01"  # the operator fixes it: the next attempt gets in and boots
        await wait_for(lambda: charger.registration is Registration.ACCEPTED, timeout=10)
        assert link.connected and link.frames_sent >= 1 and link.frames_received >= 1
    finally:
        await link.stop()
    assert link._task is not None and link._task.done()


@pytest.mark.timeout(30)
async def test_websocket_link_outage_closes_and_refuses_until_restored(gateway: Gateway) -> None:
    clock = FastClock(100.0)
    charger = Charger("cp-ws", "2.0.1", meter=FakeMeter(), rng=random.Random(4))
    link = WebSocketLink(charger, clock, f"ws://127.0.0.1:{gateway.port}/ocpp", password="right-password-01")
    link.start()
    try:
        await wait_for(lambda: charger.registration is Registration.ACCEPTED, timeout=10)
        await wait_for(lambda: gateway.is_connected("cp-ws"), timeout=5)
        link.set_network(False)
        assert not link.connected and not charger.link_up
        await wait_for(lambda: not gateway.is_connected("cp-ws"), timeout=5)
        attempts = link.attempts
        await asyncio.sleep(0.5)  # ~50 virtual seconds: several reconnect attempts fail without a socket
        assert link.attempts == attempts and "no network (link down)" in link.failures
        link.set_network(True)
        await wait_for(lambda: link.connected and gateway.is_connected("cp-ws"), timeout=10)
    finally:
        await link.stop()


@pytest.mark.timeout(30)
def test_unknown_host_is_a_log_line_not_a_crash() -> None:
    async def scenario() -> WebSocketLink:
        charger = Charger("cp-x", "1.6", meter=FakeMeter(), rng=random.Random(5))
        link = WebSocketLink(charger, FastClock(100.0), f"ws://127.0.0.1:{free_port()}/ocpp")
        link.start()
        await wait_for(lambda: link.attempts >= 2, timeout=10)
        await link.stop()
        return link

    link = asyncio.run(scenario())
    assert link.failures and all("ConnectionRefusedError" in f or "OSError" in f for f in link.failures)


async def test_realtime_clock_never_runs_ahead_of_the_wall_clock() -> None:
    wall = [100.0]
    env = simpy.Environment()
    clock = RealtimeClock(env, epoch=T0, speed=10.0, end_s=100.0, monotonic=lambda: wall[0])
    clock.start()
    fired: list[float] = []
    for at in (5.0, 20.0, 50.0):
        env.timeout(at).callbacks.append(lambda _e, at=at: fired.append(at))
    wall[0] += 1.0  # 10 virtual seconds
    assert clock.sync() == T0 + 10.0 and fired == [5.0]
    assert clock.wall_delay(T0 + 20.0) == pytest.approx(1.0)
    wall[0] += 4.0
    assert clock.sync() == T0 + 50.0 and fired == [5.0, 20.0, 50.0]  # events due now are processed
    env.timeout(60.0).callbacks.append(lambda _e: fired.append(110.0))  # at virtual 110: after the end
    wall[0] += 100.0
    assert clock.sync() == T0 + 100.0 and fired == [5.0, 20.0, 50.0]  # capped at the end
    with pytest.raises(ValueError):
        RealtimeClock(env, epoch=T0, speed=0.0, end_s=1.0)


async def test_chargetwin_operator_retries_a_busy_api_and_updates_what_exists() -> None:
    """Against a fake API: a 5xx is retried, an existing token (409) is updated, a call's answer is relayed."""
    from simulator.operators import ChargetwinOperator

    seen: list[tuple[str, str, Any]] = []
    failures = {"/api/v1/tokens": 1}  # the first token POST meets a busy database

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        if failures.get(request.url.path, 0) > 0:
            failures[request.url.path] -= 1
            return httpx.Response(500, json={"detail": "database is locked"})
        if request.url.path == "/api/v1/tokens":
            return httpx.Response(409 if body["id_token"] == "OLD" else 201, json={})
        if request.method == "PATCH":
            return httpx.Response(200, json={})
        return httpx.Response(200, json={"action": "Reset", "message_id": "1", "outcome": "result", "payload": {}})

    operator = ChargetwinOperator("http://csms", "key", transport=httpx.MockTransport(handler))
    try:
        await operator.provision_token("NEW", group="G")
        await operator.provision_token("OLD", group="G")
        outcome = await operator.send_call("cp-1", "ChangeAvailability", {"operationalStatus": "Inoperative"})
    finally:
        await operator.close()
    assert outcome.response == {}
    assert [(method, path, body) for method, path, body in seen] == [
        ("POST", "/api/v1/tokens", {"id_token": "NEW", "status": "Accepted", "group_id": "G"}),  # 500
        ("POST", "/api/v1/tokens", {"id_token": "NEW", "status": "Accepted", "group_id": "G"}),  # retried
        ("POST", "/api/v1/tokens", {"id_token": "OLD", "status": "Accepted", "group_id": "G"}),  # 409: exists
        ("PATCH", "/api/v1/tokens/OLD", {"status": "Accepted", "group_id": "G"}),
        ("POST", "/api/v1/stations/cp-1/calls/ChangeAvailability", {"operationalStatus": "Inoperative"}),
    ]
