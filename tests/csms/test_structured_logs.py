"""``csms serve --log-format json`` as an operator runs it: every line on stderr is one JSON object, lines carry
the station id, OCPP action, message id and API request id where they apply, and no secret is ever written
(station passwords sent with ChangeConfiguration/SetVariables, the API key, an upload token, the database
password). Real PostgreSQL, real sockets, the ``ocpp`` package's ChargePoint as the stations."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201

from csms.api.request_id import HEADER
from tests.conftest import fresh_postgres_url
from tests.csms.test_cli import ROOT, _wait_for_api, free_port
from tests.csms.test_credentials import Station16, Station201

pytestmark = pytest.mark.postgres

API_KEY = "json-logs-api-key-0123456789"
DB_PASSWORD = "db-Secret-4711"
OLD = "old-Password-0123"
NEW_16 = "new-pass-16:secret"
NEW_201 = "new-Password-201-secret-xyz"


class Diagnostics16(Station16):
    """Also answers GetDiagnostics, keeping the upload URL it was given."""

    location: str = ""

    @on("GetDiagnostics")
    def on_get_diagnostics(self, location: str, **_: Any) -> result16.GetDiagnostics:
        self.location = location
        return result16.GetDiagnostics(file_name="diag.log")


@pytest.fixture
def database_url() -> Iterator[str]:
    for url in fresh_postgres_url():
        # trust authentication takes any password: the URL carries one that must never be logged
        yield url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)


@contextlib.asynccontextmanager
async def station(port: int, station_id: str, version: str) -> AsyncIterator[Any]:
    auth = "Basic " + base64.b64encode(f"{station_id}:{OLD}".encode()).decode()
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ocpp/{station_id}",
        subprotocols=[websockets.Subprotocol(subprotocol)],
        additional_headers={"Authorization": auth},
    ) as ws:
        if version == "1.6":
            cp: Any = Diagnostics16(station_id, ws, response_timeout=10)
            boot: Any = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
        else:
            cp = Station201(station_id, ws, response_timeout=10)
            boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
        runner = asyncio.create_task(cp.start())
        try:
            assert (await cp.call(boot)).status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


async def drive(api: httpx.AsyncClient, ocpp_port: int) -> dict[str, Any]:
    """What an operator does in a day, in seconds; returns what the log must show and must not."""
    seen: dict[str, Any] = {}
    for station_id, version in (("cp16", "1.6"), ("cp201", "2.0.1")):
        body = {"id": station_id, "password": OLD, "ocpp_version": version}
        created = await api.post("/api/v1/stations", json=body, headers={HEADER: f"create-{station_id}"})
        assert created.status_code == 201, created.text
        assert created.headers[HEADER] == f"create-{station_id}"  # the caller's id is echoed
    async with station(ocpp_port, "cp16", "1.6") as cp16, station(ocpp_port, "cp201", "2.0.1"):
        rotated = await api.post("/api/v1/stations/cp16/password", json={"password": NEW_16})
        assert rotated.status_code == 200, rotated.text
        seen["rotate16"] = (rotated.headers[HEADER], rotated.json()["call"]["message_id"])
        assert ("ChangeConfiguration", {"key": "AuthorizationKey", "value": NEW_16.encode().hex()}) in cp16.received
        rotated = await api.post("/api/v1/stations/cp201/password", json={"password": NEW_201})
        assert rotated.status_code == 200, rotated.text
        seen["rotate201"] = (rotated.headers[HEADER], rotated.json()["call"]["message_id"])
        asked = await api.post("/api/v1/stations/cp16/diagnostics", json={})
        assert asked.status_code == 200, asked.text
        token = cp16.location.rstrip("/").rsplit("/", 1)[-1]
        assert len(token) > 20 and token in cp16.location
        uploaded = await api.put(cp16.location, content=b"log lines", headers={"x-file-name": "diag.log"})
        assert uploaded.status_code == 201, uploaded.text
        seen["upload_token"] = token
    dashboard = await api.get("/", headers={"Authorization": f"Bearer {API_KEY}"})
    assert dashboard.status_code == 200
    assert len(dashboard.headers[HEADER]) == 32  # none given: a new one
    return seen


def lines_of(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return records


async def test_json_logs_carry_context_and_no_secret(database_url):
    ocpp_port, api_port = free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--log-format", "json", "--log-level", "debug"]
    command += ["--ocpp-port", str(ocpp_port), "--api-port", str(api_port), "--database-url", database_url]
    env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )  # fmt: skip
    base = f"http://127.0.0.1:{api_port}"
    try:
        await _wait_for_api(base, process, time.monotonic() + 60)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=20) as api:
            seen = await drive(api, ocpp_port)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    records = lines_of(err)
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert "\\u001b[" not in err  # no terminal colours (uvicorn's color_message) in a shipped log

    secrets = [API_KEY, DB_PASSWORD, OLD, NEW_16, NEW_16.encode().hex(), NEW_201, seen["upload_token"]]
    for secret in secrets:  # not even a piece (a log line cut short would keep one)
        pieces = {secret[i : i + 10] for i in range(len(secret) - 9)}
        assert not [p for p in pieces if p in err or p in out], secret
    assert any(f":{'*' * 8}@" in r["message"] for r in records)  # the database URL was logged, masked

    def having(**fields: Any) -> list[dict[str, Any]]:
        return [r for r in records if all(r.get(k) == v for k, v in fields.items())]

    # The API's request ids: the caller's, echoed and logged on its access line.
    assert having(logger="uvicorn.access", request_id="create-cp16", method="POST", path="/api/v1/stations")
    # A CSMS-initiated call: the API request that sent it, the station, the action and the OCPP message id.
    calls = (("rotate16", "cp16", "ChangeConfiguration"), ("rotate201", "cp201", "SetVariables"))
    for key, station_id, action in calls:
        request_id, message_id = seen[key]
        sent = having(message="call sent", station_id=station_id, action=action, message_id=message_id)
        assert sent and sent[0]["request_id"] == request_id, (key, sent)
        assert having(message="call done: result", message_id=message_id, request_id=request_id)
    # Station-initiated calls (debug): each with its station, action and message id.
    boots = having(logger="csms.core.session", message="call answered", action="BootNotification")
    assert {r["station_id"] for r in boots} == {"cp16", "cp201"} and all(r["message_id"] for r in boots)
    assert having(message="station connected (OCPP 1.6)", station_id="cp16")
    # The upload: its access line is there, its token is not.
    uploads = [r for r in having(logger="uvicorn.access", method="PUT") if "/uploads/diagnostics/" in r["path"]]
    assert uploads and uploads[0]["path"].endswith("/uploads/diagnostics/********") and uploads[0]["status"] == 201
