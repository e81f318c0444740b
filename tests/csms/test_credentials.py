"""Password rotation and security-profile upgrade of connected stations, through the API, over real
WebSockets and TLS on loopback; the ``ocpp`` package's own ChargePoint is the station."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from websockets.typing import Subprotocol

from csms.api.app import create_app
from csms.gateway.server import Gateway
from csms.gateway.tls import server_context
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store.models import MessageLogEntry, SecurityEventRow, Station
from tests.csms.test_cli import ROOT, _wait_for_api, csms, free_port
from tests.csms.test_security_profiles import PASSWORD, Pki, connect, http_status, pki, refusal, tls  # noqa: F401

API_KEY = "credentials-test-key"
NEW_201 = "rotated-Password-0123456789"  # 27 characters of the 2.0.1 alphabet
NEW_16 = "rotated-pass-16:X!"  # 18 printable characters


class Station201(ChargePoint201):
    """Answers what a 2.0.1 station answers; ``answers`` overrides a status."""

    def __init__(self, *args: Any, answers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers = answers or {}
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> result201.SetVariables:
        self.received.append(("SetVariables", {"set_variable_data": set_variable_data}))
        status = self.answers.get("SetVariables", "Accepted")
        return result201.SetVariables(
            set_variable_result=[
                {"attribute_status": status, "component": i["component"], "variable": i["variable"]}
                for i in set_variable_data
            ]
        )

    @on("SetNetworkProfile")
    def on_set_network_profile(self, **kwargs: Any) -> result201.SetNetworkProfile:
        self.received.append(("SetNetworkProfile", kwargs))
        return result201.SetNetworkProfile(status=self.answers.get("SetNetworkProfile", "Accepted"))

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> result201.Reset:
        self.received.append(("Reset", kwargs))
        return result201.Reset(status="Accepted")


class Station16(ChargePoint16):
    def __init__(self, *args: Any, answers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers = answers or {}
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> result16.ChangeConfiguration:
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        return result16.ChangeConfiguration(status=self.answers.get(key, "Accepted"))

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> result16.Reset:
        self.received.append(("Reset", kwargs))
        return result16.Reset(status="Accepted")


@pytest.fixture
async def gateway(sqlite_factory: sessionmaker[Session], pki: Pki) -> AsyncIterator[Gateway]:  # noqa: F811
    now = datetime.now(UTC)
    with sqlite_factory() as db:
        stations.provision(db, "cp1", ocpp_version="2.0.1", password=PASSWORD, now=now)
        stations.provision(db, "cp16", ocpp_version="1.6", password=PASSWORD, now=now)
        stations.provision(db, "cp3", ocpp_version="2.0.1", password=PASSWORD, now=now)
        stations.provision(db, "cp2", ocpp_version="2.0.1", password=PASSWORD, now=now, security_profile=2)
        db.commit()
    gw = Gateway(sqlite_factory, CsmsConfig(call_timeout_s=5.0))
    await gw.start("127.0.0.1", 0)
    await gw.start_tls(
        "127.0.0.1", 0, server_context(pki.server.cert_file, pki.server.key_file, pki.station_ca.cert_file)
    )
    yield gw
    await gw.stop()


@pytest.fixture
async def client(sqlite_factory: sessionmaker[Session], gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sqlite_factory, gateway, API_KEY)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers, timeout=20) as c:
        yield c


@contextlib.asynccontextmanager
async def online(
    gateway: Gateway,
    station_id: str,
    password: str | None,
    *,
    version: str = "2.0.1",
    context: Any = None,
    answers: dict[str, str] | None = None,
) -> AsyncIterator[Any]:
    """The station connected and booted (Accepted), its message loop running."""
    async with connect(gateway, station_id, password=password, context=context, version=version) as ws:
        cp: Any
        if version == "1.6":
            cp = Station16(station_id, ws, response_timeout=5, answers=answers)
            boot: Any = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
        else:
            cp = Station201(station_id, ws, response_timeout=5, answers=answers)
            boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
        runner = asyncio.create_task(cp.start())
        try:
            assert (await cp.call(boot)).status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


def row(factory: sessionmaker[Session], station_id: str) -> Station:
    with factory() as db:
        found = db.get(Station, station_id)
        assert found is not None
        db.expunge(found)
        return found


def logged_frames(factory: sessionmaker[Session], station_id: str) -> str:
    with factory() as db:
        return "\n".join(db.scalars(select(MessageLogEntry.frame).where(MessageLogEntry.station_id == station_id)))


async def wait_for_log(factory: sessionmaker[Session], station_id: str, text: str) -> str:
    for _ in range(100):
        frames = logged_frames(factory, station_id)
        if text in frames:
            return frames
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never reached the message log")


# ---- password rotation ------------------------------------------------------------------------------------
async def test_201_rotation_stores_the_new_password_once_the_station_accepts_it(gateway, client, sqlite_factory):
    async with online(gateway, "cp1", PASSWORD) as cp:
        answer = await client.post("/api/v1/stations/cp1/password", json={"password": NEW_201})
        assert answer.status_code == 200, answer.text
        assert answer.json()["adopted"] is True and answer.json()["password"] is None
        (item,) = cp.received[0][1]["set_variable_data"]
        assert item["component"]["name"] == "SecurityCtrlr" and item["variable"]["name"] == "BasicAuthPassword"
        assert item["attribute_value"] == NEW_201
    # The station reconnects with the new password: admitted, and the old one is forgotten from then on.
    async with online(gateway, "cp1", NEW_201):
        pass
    assert http_status(await refusal(gateway, "cp1", password=PASSWORD, context=None)) == 401


async def test_the_old_password_admits_until_the_new_one_is_used(gateway, client, sqlite_factory):
    async with online(gateway, "cp1", PASSWORD):
        assert (await client.post("/api/v1/stations/cp1/password", json={"password": NEW_201})).json()["adopted"]
    async with online(gateway, "cp1", PASSWORD):  # e.g. the station lost the new one in a power cut
        pass
    stored = row(sqlite_factory, "cp1")
    assert stored.previous_password_hash is not None and stored.previous_password_expires_at is not None
    assert stored.previous_password_expires_at - datetime.now(UTC) <= timedelta(hours=24)
    async with online(gateway, "cp1", NEW_201):
        pass
    assert row(sqlite_factory, "cp1").previous_password_hash is None
    assert http_status(await refusal(gateway, "cp1", password=PASSWORD, context=None)) == 401


async def test_a_rejected_password_changes_nothing(gateway, client, sqlite_factory):
    before = row(sqlite_factory, "cp1").password_hash
    async with online(gateway, "cp1", PASSWORD, answers={"SetVariables": "Rejected"}):
        answer = (await client.post("/api/v1/stations/cp1/password", json={"password": NEW_201})).json()
        assert answer["adopted"] is False
    assert row(sqlite_factory, "cp1").password_hash == before
    assert http_status(await refusal(gateway, "cp1", password=NEW_201, context=None)) == 401
    async with online(gateway, "cp1", PASSWORD):
        pass


async def test_a_generated_password_is_returned_once_and_works(gateway, client):
    async with online(gateway, "cp1", PASSWORD):
        answer = (await client.post("/api/v1/stations/cp1/password", json={"generate": True})).json()
    generated = answer["password"]
    assert answer["adopted"] and 16 <= len(generated) <= 40
    async with online(gateway, "cp1", generated):
        pass


async def test_16_rotation_sends_authorization_key_as_hex(gateway, client):
    async with online(gateway, "cp16", PASSWORD, version="1.6") as cp:
        answer = await client.post("/api/v1/stations/cp16/password", json={"password": NEW_16})
        assert answer.json()["adopted"] is True
        assert cp.received == [("ChangeConfiguration", {"key": "AuthorizationKey", "value": NEW_16.encode().hex()})]
    async with online(gateway, "cp16", NEW_16, version="1.6"):
        pass


@pytest.mark.parametrize(
    ("station_id", "bad", "version"),
    [("cp1", "short-one", "2.0.1"), ("cp1", "with space in it 123", "2.0.1"), ("cp16", "x" * 21, "1.6")],
)
async def test_passwords_the_spec_forbids_are_refused_before_anything_is_sent(
    gateway, client, station_id, bad, version
):
    async with online(gateway, station_id, PASSWORD, version=version) as cp:
        answer = await client.post(f"/api/v1/stations/{station_id}/password", json={"password": bad})
        assert answer.status_code == 422, answer.text
        assert cp.received == []


async def test_a_raw_set_variables_through_the_calls_door_is_adopted_too(gateway, client):
    item = {
        "component": {"name": "SecurityCtrlr"},
        "variable": {"name": "BasicAuthPassword"},
        "attributeValue": NEW_201,
    }
    async with online(gateway, "cp1", PASSWORD):
        answer = await client.post("/api/v1/stations/cp1/calls/SetVariables", json={"setVariableData": [item]})
        assert answer.status_code == 200 and answer.json()["outcome"] == "result"
        short = {**item, "attributeValue": "short"}
        refused = await client.post("/api/v1/stations/cp1/calls/SetVariables", json={"setVariableData": [short]})
        assert refused.status_code == 422
    async with online(gateway, "cp1", NEW_201):
        pass


async def test_rotation_needs_a_connected_station_and_one_of_password_or_generate(gateway, client):
    assert (await client.post("/api/v1/stations/cp1/password", json={"password": NEW_201})).status_code == 409
    assert (await client.post("/api/v1/stations/cp1/password", json={})).status_code == 422
    both = {"password": NEW_201, "generate": True}
    assert (await client.post("/api/v1/stations/cp1/password", json=both)).status_code == 422
    assert (await client.post("/api/v1/stations/nope/password", json={"generate": True})).status_code == 404


# ---- secrets never reach a log ----------------------------------------------------------------------------
async def test_pushed_passwords_are_masked_in_the_message_log(gateway, client, sqlite_factory):
    async with online(gateway, "cp1", PASSWORD):
        await client.post("/api/v1/stations/cp1/password", json={"password": NEW_201})
    async with online(gateway, "cp16", PASSWORD, version="1.6"):
        await client.post("/api/v1/stations/cp16/password", json={"password": NEW_16})
    frames = await wait_for_log(sqlite_factory, "cp1", "BasicAuthPassword")
    assert NEW_201 not in frames and "********" in frames
    frames = await wait_for_log(sqlite_factory, "cp16", "AuthorizationKey")
    assert NEW_16.encode().hex() not in frames and NEW_16 not in frames and "********" in frames


async def test_a_password_a_station_reports_back_is_masked_too(gateway, client, sqlite_factory):
    class Leaky(Station16):
        @on("GetConfiguration")
        def on_get_configuration(self, **_: Any) -> result16.GetConfiguration:
            return result16.GetConfiguration(
                configuration_key=[{"key": "AuthorizationKey", "readonly": False, "value": "leaked-secret-0001"}]
            )

    async with connect(gateway, "cp16", password=PASSWORD, context=None, version="1.6") as ws:
        cp = Leaky("cp16", ws, response_timeout=5)
        runner = asyncio.create_task(cp.start())
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        answer = await client.post("/api/v1/stations/cp16/calls/GetConfiguration", json={})
        assert answer.json()["outcome"] == "result"
        runner.cancel()
    frames = await wait_for_log(sqlite_factory, "cp16", "readonly")  # the answer is logged
    assert "leaked-secret-0001" not in frames and "********" in frames


# ---- security-profile upgrade ------------------------------------------------------------------------------
async def test_201_upgrade_to_profile_2_the_way_a05_orders_it(gateway, client, sqlite_factory, pki):  # noqa: F811
    async with online(gateway, "cp1", PASSWORD) as cp:
        answer = await client.post("/api/v1/stations/cp1/security-profile", json={"profile": 2})
        assert answer.status_code == 200, answer.text
        assert answer.json()["pending_security_profile"] == 2
        assert [action for action, _ in cp.received] == ["SetNetworkProfile", "SetVariables", "Reset"]
        network = cp.received[0][1]
        data = network["connection_data"]
        assert data["security_profile"] == 2 and data["ocpp_csms_url"] == f"wss://localhost:{gateway.tls_port}/ocpp"
        (priority,) = cp.received[1][1]["set_variable_data"]
        assert priority["variable"]["name"] == "NetworkConfigurationPriority"
        assert priority["attribute_value"] == str(network["configuration_slot"])
        assert cp.received[2][1] == {"type": "OnIdle"}
    assert (row(sqlite_factory, "cp1").security_profile, row(sqlite_factory, "cp1").pending_security_profile) == (1, 2)
    # Until it comes back on TLS the old profile still admits it; once it has, plain ws is refused.
    async with online(gateway, "cp1", PASSWORD):
        pass
    async with online(gateway, "cp1", PASSWORD, context=tls(pki)):
        pass
    assert (row(sqlite_factory, "cp1").security_profile, row(sqlite_factory, "cp1").pending_security_profile) == (
        2,
        None,
    )
    assert http_status(await refusal(gateway, "cp1", password=PASSWORD, context=None)) == 401


async def test_201_upgrade_to_profile_3_completes_with_the_client_certificate(gateway, client, sqlite_factory, pki):  # noqa: F811
    async with online(gateway, "cp3", PASSWORD):
        answer = (await client.post("/api/v1/stations/cp3/security-profile", json={"profile": 3})).json()
        assert answer["pending_security_profile"] == 3
    async with online(gateway, "cp3", None, context=tls(pki, pki.cp3)):
        pass
    assert row(sqlite_factory, "cp3").security_profile == 3
    assert http_status(await refusal(gateway, "cp3", password=PASSWORD, context=tls(pki))) == 401


async def test_16_upgrade_is_change_configuration_security_profile_then_reset(gateway, client, sqlite_factory, pki):  # noqa: F811
    async with online(gateway, "cp16", PASSWORD, version="1.6") as cp:
        answer = (await client.post("/api/v1/stations/cp16/security-profile", json={"profile": 2})).json()
        assert answer["pending_security_profile"] == 2
        assert cp.received == [
            ("ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}),
            ("Reset", {"type": "Hard"}),
        ]
    async with online(gateway, "cp16", PASSWORD, version="1.6", context=tls(pki)):
        pass
    assert row(sqlite_factory, "cp16").security_profile == 2
    assert http_status(await refusal(gateway, "cp16", password=PASSWORD, context=None)) == 401


async def test_a_refused_network_profile_sends_nothing_more_and_stores_nothing(gateway, client, sqlite_factory):
    async with online(gateway, "cp1", PASSWORD, answers={"SetNetworkProfile": "Rejected"}) as cp:
        answer = (await client.post("/api/v1/stations/cp1/security-profile", json={"profile": 2})).json()
        assert answer["pending_security_profile"] is None
        assert [action for action, _ in cp.received] == ["SetNetworkProfile"]
    assert row(sqlite_factory, "cp1").pending_security_profile is None


async def test_a_downgrade_is_refused_and_recorded_whatever_the_door(gateway, client, sqlite_factory, pki):  # noqa: F811
    async with online(gateway, "cp2", PASSWORD, context=tls(pki)) as cp:
        answer = await client.post("/api/v1/stations/cp2/security-profile", json={"profile": 1})
        assert answer.status_code == 409 and "downgrade" in answer.json()["detail"]
        raw = {
            "configurationSlot": 1,
            "connectionData": {
                "ocppVersion": "OCPP20",
                "ocppTransport": "JSON",
                "ocppCsmsUrl": f"ws://127.0.0.1:{gateway.port}/ocpp",
                "messageTimeout": 30,
                "securityProfile": 1,
                "ocppInterface": "Wired0",
            },
        }
        assert (await client.post("/api/v1/stations/cp2/calls/SetNetworkProfile", json=raw)).status_code == 409
        assert cp.received == []  # the CSMS never asked the station to downgrade
    with sqlite_factory() as db:
        events = db.scalars(select(SecurityEventRow).where(SecurityEventRow.station_id == "cp2")).all()
    # (the second refusal within a minute is counted as a repeat of the first)
    assert [(e.type, e.detail.get("repeats")) for e in events] == [("profile_downgrade_refused", 1)]
    assert row(sqlite_factory, "cp2").security_profile == 2


async def test_profile_2_needs_a_tls_listener(sqlite_factory):
    with sqlite_factory() as db:
        stations.provision(db, "cp1", ocpp_version="2.0.1", password=PASSWORD, now=datetime.now(UTC))
        db.commit()
    gw = Gateway(sqlite_factory, CsmsConfig(call_timeout_s=5.0))
    await gw.start("127.0.0.1", 0)
    try:
        app = create_app(sqlite_factory, gw, API_KEY)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://localhost", headers=headers
            ) as c,
            online(gw, "cp1", PASSWORD) as cp,
        ):
            answer = await c.post("/api/v1/stations/cp1/security-profile", json={"profile": 2})
            assert answer.status_code == 409 and "wss://" in answer.json()["detail"]
            assert cp.received == []
    finally:
        await gw.stop()


async def test_an_operator_re_key_ends_the_grace_of_the_rotated_out_password(gateway, client, sqlite_factory):
    async with online(gateway, "cp1", PASSWORD):
        assert (await client.post("/api/v1/stations/cp1/password", json={"password": NEW_201})).json()["adopted"]
    re_keyed = await client.patch("/api/v1/stations/cp1", json={"password": "operator-Set-Password-42"})
    assert re_keyed.status_code == 200, re_keyed.text
    for stale in (PASSWORD, NEW_201):
        assert http_status(await refusal(gateway, "cp1", password=stale, context=None)) == 401
    async with online(gateway, "cp1", "operator-Set-Password-42"):
        pass


# ---- csms stations rotate-password / upgrade-profile against a running csms serve ---------------------------
async def test_cli_rotates_and_upgrades_a_station_of_a_running_server(pki, sqlite_url):  # noqa: F811
    added = csms("stations", "add", "cp1", "--ocpp", "2.0.1", "--password", PASSWORD, database_url=sqlite_url)
    assert added.returncode == 0, added.stderr
    ocpp_port, tls_port, api_port = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--database-url", sqlite_url, "--log-level", "warning"]
    command += ["--ocpp-port", str(ocpp_port), "--tls-port", str(tls_port), "--api-port", str(api_port)]
    command += ["--tls-cert", str(pki.server.cert_file), "--tls-key", str(pki.server.key_file)]
    env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{api_port}/api/v1"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "csms.cli", "stations", *args, "--api-url", api, "--timeout", "10"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )  # fmt: skip

    async def station(password: str, secure: bool) -> Any:
        url = f"wss://localhost:{tls_port}/ocpp/cp1" if secure else f"ws://127.0.0.1:{ocpp_port}/ocpp/cp1"
        headers = {"Authorization": "Basic " + base64.b64encode(f"cp1:{password}".encode()).decode()}
        return websockets.connect(
            url, subprotocols=[Subprotocol("ocpp2.0.1")], additional_headers=headers,
            ssl=tls(pki) if secure else None, open_timeout=5,
        )  # fmt: skip

    try:
        await _wait_for_api(f"http://127.0.0.1:{api_port}", process, time.monotonic() + 60)
        async with await station(PASSWORD, secure=False) as ws:
            cp = Station201("cp1", ws, response_timeout=5)
            runner = asyncio.create_task(cp.start())
            boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            assert (await cp.call(boot)).status == "Accepted"
            rotated = await asyncio.to_thread(cli, "rotate-password", "cp1")
            assert rotated.returncode == 0, rotated.stdout + rotated.stderr
            new_password = rotated.stdout.split("new password (shown once): ")[1].split()[0]
            (item,) = cp.received[0][1]["set_variable_data"]
            assert item["attribute_value"] == new_password
            short = await asyncio.to_thread(cli, "rotate-password", "cp1", "--password", "short")
            assert short.returncode == 2 and "422" in short.stderr
            upgraded = await asyncio.to_thread(cli, "upgrade-profile", "cp1", "2")
            assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
            assert "pending" in upgraded.stdout
            runner.cancel()
        async with await station(new_password, secure=True) as ws:  # back on TLS with the new password
            cp = Station201("cp1", ws, response_timeout=5)
            runner = asyncio.create_task(cp.start())
            assert (await cp.call(boot)).status == "Accepted"
            down = await asyncio.to_thread(cli, "upgrade-profile", "cp1", "1")
            assert down.returncode == 2 and "downgrade" in down.stderr
            runner.cancel()
        with pytest.raises(websockets.InvalidStatus):  # profile 2 now: plain ws is refused
            async with await station(new_password, secure=False):
                pass
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
