"""The ``csms`` command as a user runs it: a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from ocpp.v16 import ChargePoint, call
from sqlalchemy import select

from csms.services.passwords import api_key_hash, verify_password
from csms.store.database import make_engine, make_session_factory
from csms.store.models import ApiKey, IdToken, Station

ROOT = Path(__file__).resolve().parents[2]


def csms(*args: str, database_url: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    if database_url is not None:
        env["CHARGETWIN_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "csms.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


def rows(database_url: str, model: type) -> list:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            return list(db.scalars(select(model)))
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["stations"],
        ["stations", "add"],
        ["stations", "list"],
        ["tokens"],
        ["tokens", "add"],
        ["tokens", "list"],
        ["apikeys"],
        ["apikeys", "create"],
    ],
)
def test_help(command):
    done = csms(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: csms" in done.stdout


def test_admin_commands_write_rows(database_url):
    upgraded = csms("db", "upgrade", "--database-url", database_url)
    assert upgraded.returncode == 0, upgraded.stderr

    added = csms(
        "stations", "add", "cp-1", "--password", "pw-1234-5678-abcd", "--ocpp", "2.0.1", database_url=database_url
    )
    assert added.returncode == 0, added.stderr
    (station,) = rows(database_url, Station)
    assert (station.id, station.ocpp_version, station.registration_policy) == ("cp-1", "2.0.1", "accept")
    assert station.password_hash and verify_password("pw-1234-5678-abcd", station.password_hash)

    again = csms("stations", "add", "cp-1", "--password", "x" * 16, "--ocpp", "1.6", database_url=database_url)
    assert again.returncode == 2
    assert again.stderr.strip() == "csms: station 'cp-1' already exists"
    assert "Traceback" not in again.stderr

    token = csms(
        "tokens", "add", "TAG-1", "--status", "Blocked", "--group", "fleet", "--expiry", "2030-01-01T00:00:00Z",
        database_url=database_url,
    )  # fmt: skip
    assert token.returncode == 0, token.stderr
    (row,) = rows(database_url, IdToken)
    assert (row.id_token, row.status, row.group_id, row.expiry.year) == ("TAG-1", "Blocked", "fleet", 2030)
    bad = csms("tokens", "add", "T" * 40, database_url=database_url)
    assert bad.returncode == 2 and "1-36 characters" in bad.stderr and "Traceback" not in bad.stderr
    assert csms("tokens", "add", "X", "--expiry", "soon", database_url=database_url).returncode == 2

    created = csms("apikeys", "create", "--name", "ops", database_url=database_url)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    (stored,) = rows(database_url, ApiKey)
    assert stored.name == "ops" and stored.key_hash == api_key_hash(key) and key not in stored.key_hash

    assert "cp-1" in csms("stations", "list", database_url=database_url).stdout
    assert "TAG-1" in csms("tokens", "list", "--database-url", database_url).stdout


def test_stations_add_security_profile_and_password_rules(sqlite_url):
    for password in ["", "short", " " * 18]:
        refused = csms("stations", "add", "cp-1", "--password", password, "--ocpp", "2.0.1", database_url=sqlite_url)
        assert refused.returncode == 2 and "16-40 characters" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    missing = csms("stations", "add", "cp-2", "--ocpp", "1.6", "--security-profile", "2", database_url=sqlite_url)
    assert missing.returncode == 2 and "--password is required" in missing.stderr
    mtls = csms("stations", "add", "cp-3", "--ocpp", "2.0.1", "--security-profile", "3", database_url=sqlite_url)
    assert mtls.returncode == 0 and "security profile 3" in mtls.stdout, mtls.stderr
    tls = ("stations", "add", "cp-2", "--ocpp", "1.6", "--security-profile", "2", "--password", "p" * 20)
    assert csms(*tls, database_url=sqlite_url).returncode == 0
    assert {(s.id, s.security_profile, s.password_hash is None) for s in rows(sqlite_url, Station)} == {
        ("cp-2", 2, False),
        ("cp-3", 3, True),
    }
    listing = csms("stations", "list", database_url=sqlite_url).stdout.splitlines()
    assert listing[0].split()[:3] == ["ID", "OCPP", "PROFILE"] and listing[1].split()[:3] == ["cp-2", "1.6", "2"]


def test_database_errors_are_one_line(tmp_path):
    done = csms("stations", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2
    assert done.stderr.startswith("csms: database error:") and len(done.stderr.strip().splitlines()) == 1


async def _wait_for_api(url: str, process: subprocess.Popen[str], deadline: float) -> None:
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            try:
                await client.get(url + "/openapi.json")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise TimeoutError("csms serve did not start")


async def test_serve_runs_gateway_and_api(database_url):
    ocpp_port, api_port = free_port(), free_port()
    env = {**os.environ, "CHARGETWIN_API_KEY": "serve-test-key"}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    command = [sys.executable, "-m", "csms.cli", "serve", "--host", "127.0.0.1"]
    command += ["--ocpp-port", str(ocpp_port), "--api-port", str(api_port), "--database-url", database_url]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{api_port}"
    try:
        await _wait_for_api(base, process, time.monotonic() + 60)
        headers = {"Authorization": "Bearer serve-test-key"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            assert (await client.get("/api/v1/stations", headers={"Authorization": ""})).status_code == 401
            body = {"id": "cp-s", "password": "pw-serve-012345678", "ocpp_version": "1.6"}
            assert (await client.post("/api/v1/stations", json=body)).status_code == 201
            auth = "Basic " + base64.b64encode(b"cp-s:pw-serve-012345678").decode()
            url = f"ws://127.0.0.1:{ocpp_port}/ocpp/cp-s"
            async with websockets.connect(
                url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": auth}
            ) as ws:
                cp = ChargePoint("cp-s", ws)
                runner = asyncio.create_task(cp.start())
                boot = await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
                assert boot.status == "Accepted"
                station = (await client.get("/api/v1/stations/cp-s")).json()
                assert station["connected"] is True
                answer = (await client.post("/api/v1/stations/cp-s/calls/ClearCache", json={})).json()
                assert answer["outcome"] == "error"  # the plain ChargePoint has no handler: NotImplemented
                runner.cancel()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert f"ws://127.0.0.1:{ocpp_port}/ocpp/" in out and f"http://127.0.0.1:{api_port}/api/v1" in out
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_serve_reports_a_busy_port(sqlite_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = csms("serve", "--ocpp-port", "0", "--api-port", str(port), "--database-url", sqlite_url, timeout=60)
    assert done.returncode == 2
    assert "cannot listen" in done.stderr and "Traceback" not in done.stderr
