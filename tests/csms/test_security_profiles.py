"""Security profiles 1-3 at the handshake, over real TLS on loopback with certificates made by
``cryptography``; the ``ocpp`` package's own ChargePoint is the station."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from websockets.typing import Subprotocol

from csms.gateway.server import Gateway
from csms.gateway.tls import server_context
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store.models import SecurityEventRow
from simulator.conformance.loopback_pki import Issued, issue, make_ca
from tests.csms.test_cli import ROOT, _wait_for_api, csms, free_port

PASSWORD = "station-password-1"  # 18 characters: the rule of both versions


@dataclass(frozen=True)
class Pki:
    server_ca: Issued
    server: Issued
    station_ca: Issued
    cp3: Issued  # CN cp3, signed by the station CA
    cp3_by_stranger: Issued  # CN cp3, signed by another CA
    cp2_cert: Issued  # CN cp2: a good certificate naming another station


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory: Path = tmp_path_factory.mktemp("pki")
    server_ca = make_ca(directory, "csms-root")
    station_ca = make_ca(directory, "station-ca")
    stranger = make_ca(directory, "stranger-ca")
    return Pki(
        server_ca=server_ca,
        server=issue(directory, server_ca, "localhost", server=True),
        station_ca=station_ca,
        cp3=issue(directory, station_ca, "cp3"),
        cp3_by_stranger=issue(directory, stranger, "cp3"),
        cp2_cert=issue(directory, station_ca, "cp2"),
    )


@pytest.fixture
async def gateway(sqlite_factory: sessionmaker[Session], pki: Pki) -> AsyncIterator[Gateway]:
    """Plain ws:// and wss:// (client certificates checked against the station CA) on loopback."""
    now = datetime.now(UTC)
    with sqlite_factory() as db:
        stations.provision(db, "cp1", ocpp_version="2.0.1", password=PASSWORD, now=now)
        stations.provision(db, "cp2", ocpp_version="2.0.1", password=PASSWORD, now=now, security_profile=2)
        stations.provision(db, "cp2-16", ocpp_version="1.6", password=PASSWORD, now=now, security_profile=2)
        stations.provision(db, "cp3", ocpp_version="2.0.1", password=None, now=now, security_profile=3)
        db.commit()
    gw = Gateway(sqlite_factory, CsmsConfig(call_timeout_s=5.0))
    await gw.start("127.0.0.1", 0)
    await gw.start_tls(
        "127.0.0.1", 0, server_context(pki.server.cert_file, pki.server.key_file, pki.station_ca.cert_file)
    )
    yield gw
    await gw.stop()


def tls(pki: Pki, client: Issued | None = None) -> ssl.SSLContext:
    """What a station does: trust the CSMS root, present its own certificate (profile 3)."""
    context = ssl.create_default_context(cafile=pki.server_ca.cert_file)
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    return context


def url(gateway: Gateway, station_id: str, secure: bool) -> str:
    return (
        f"wss://localhost:{gateway.tls_port}/ocpp/{station_id}"
        if secure
        else f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    )


def connect(
    gateway: Gateway, station_id: str, *, password: str | None, context: ssl.SSLContext | None, version: str = "2.0.1"
) -> Any:
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    return websockets.connect(
        url(gateway, station_id, context is not None),
        subprotocols=[subprotocol],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=context,
        open_timeout=5,
    )


async def boot(
    gateway: Gateway, station_id: str, *, password: str | None, context: ssl.SSLContext | None, version: str = "2.0.1"
) -> str:
    """Connect with the ``ocpp`` package's ChargePoint and send BootNotification; its answer's status."""
    async with connect(gateway, station_id, password=password, context=context, version=version) as ws:
        runner: asyncio.Task[None]
        if version == "1.6":
            cp16 = ChargePoint16(station_id, ws, response_timeout=5)
            runner = asyncio.create_task(cp16.start())
            answer = await cp16.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        else:
            cp = ChargePoint201(station_id, ws, response_timeout=5)
            runner = asyncio.create_task(cp.start())
            answer = await cp.call(
                call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            )
        assert station_id in gateway.links
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await runner
        return str(answer.status)


async def refusal(
    gateway: Gateway, station_id: str, *, password: str | None, context: ssl.SSLContext | None
) -> Exception:
    """The handshake fails (HTTP refusal or TLS alert): what the station saw."""
    with pytest.raises((websockets.InvalidHandshake, OSError)) as raised:  # an HTTP refusal, or a TLS alert
        async with connect(gateway, station_id, password=password, context=context):
            pass
    assert station_id not in gateway.links
    assert isinstance(raised.value, Exception)
    return raised.value


def http_status(error: Exception) -> int | None:
    return error.response.status_code if isinstance(error, websockets.InvalidStatus) else None


# ---- admitted ---------------------------------------------------------------------------------------------------
async def test_profile_1_connects_over_ws_and_wss(gateway, pki):
    assert await boot(gateway, "cp1", password=PASSWORD, context=None) == "Accepted"
    assert await boot(gateway, "cp1", password=PASSWORD, context=tls(pki)) == "Accepted"


async def test_profile_2_boots_over_wss_with_its_password(gateway, pki):
    assert await boot(gateway, "cp2", password=PASSWORD, context=tls(pki)) == "Accepted"
    assert await boot(gateway, "cp2-16", password=PASSWORD, context=tls(pki), version="1.6") == "Accepted"


async def test_profile_3_boots_with_its_client_certificate_and_no_password(gateway, pki):
    assert await boot(gateway, "cp3", password=None, context=tls(pki, pki.cp3)) == "Accepted"


# ---- refused at the handshake -----------------------------------------------------------------------------------
def refusal_reasons(factory: sessionmaker[Session], station_id: str) -> list[tuple[str, str]]:
    """The peer only ever reads "not authorized"; the reason is the security event."""
    with factory() as db:
        rows = db.scalars(select(SecurityEventRow).where(SecurityEventRow.station_id == station_id))
        return [(row.type, row.detail["reason"]) for row in rows]


async def test_profile_2_station_is_refused_on_plain_ws_even_with_its_password(gateway, sqlite_factory):
    refused = await refusal(gateway, "cp2", password=PASSWORD, context=None)
    assert http_status(refused) == 401
    assert refused.response.body == b"not authorized\n"  # type: ignore[attr-defined]
    assert refusal_reasons(sqlite_factory, "cp2") == [
        ("handshake_refused", "security profile 2: connect over TLS (wss://)")
    ]


async def test_profile_2_wrong_or_missing_password_is_refused(gateway, pki):
    assert http_status(await refusal(gateway, "cp2", password="another-password-9", context=tls(pki))) == 401
    assert http_status(await refusal(gateway, "cp2", password=None, context=tls(pki))) == 401


async def test_profile_3_station_without_a_certificate_is_refused(gateway, pki):
    assert http_status(await refusal(gateway, "cp3", password=PASSWORD, context=tls(pki))) == 401
    assert http_status(await refusal(gateway, "cp3", password=None, context=None)) == 401


async def test_profile_3_certificate_naming_another_station_is_refused(gateway, pki, sqlite_factory):
    refused = await refusal(gateway, "cp3", password=None, context=tls(pki, pki.cp2_cert))
    assert http_status(refused) == 401
    assert refusal_reasons(sqlite_factory, "cp3") == [
        ("bad_certificate", "the client certificate names another station")
    ]


async def test_a_certificate_naming_another_station_is_refused_on_any_profile(gateway, pki):
    refused = await refusal(gateway, "cp2", password=PASSWORD, context=tls(pki, pki.cp3))
    assert http_status(refused) == 401
    assert await boot(gateway, "cp2", password=PASSWORD, context=tls(pki, pki.cp2_cert)) == "Accepted"


async def test_profile_3_certificate_from_another_ca_fails_the_tls_handshake(gateway, pki):
    refused = await refusal(gateway, "cp3", password=None, context=tls(pki, pki.cp3_by_stranger))
    # No HTTP answer at all: the server failed the TLS handshake (with TLS 1.3 the client learns it on its
    # first read, as a closed connection or the alert).
    assert isinstance(refused, websockets.InvalidMessage | ssl.SSLError | ConnectionError), repr(refused)


async def test_a_station_that_does_not_trust_the_server_certificate_does_not_connect(gateway, pki, tmp_path):
    other_root = make_ca(tmp_path, "other-root")
    context = ssl.create_default_context(cafile=other_root.cert_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        async with connect(gateway, "cp2", password=PASSWORD, context=context):
            pass


def test_server_context_needs_a_matching_key(pki):
    with pytest.raises(ssl.SSLError):
        server_context(pki.server.cert_file, pki.cp3.key_file, None)


# ---- csms serve -------------------------------------------------------------------------------------------------
async def test_csms_serve_serves_wss_beside_ws(pki, sqlite_url):
    added = csms("stations", "add", "cp3", "--ocpp", "2.0.1", "--security-profile", "3", database_url=sqlite_url)
    assert added.returncode == 0, added.stderr
    ocpp_port, tls_port, api_port = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--database-url", sqlite_url, "--log-level", "warning"]
    command += ["--ocpp-port", str(ocpp_port), "--tls-port", str(tls_port), "--api-port", str(api_port)]
    command += ["--tls-cert", str(pki.server.cert_file), "--tls-key", str(pki.server.key_file)]
    command += ["--tls-client-ca", str(pki.station_ca.cert_file)]
    env = {**os.environ, "CHARGETWIN_API_KEY": "tls-test-key"}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await _wait_for_api(f"http://127.0.0.1:{api_port}", process, time.monotonic() + 60)
        secure = f"wss://localhost:{tls_port}/ocpp/cp3"
        async with websockets.connect(
            secure, subprotocols=[Subprotocol("ocpp2.0.1")], ssl=tls(pki, pki.cp3), open_timeout=5
        ) as ws:
            cp = ChargePoint201("cp3", ws, response_timeout=5)
            runner = asyncio.create_task(cp.start())
            answer = await cp.call(
                call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            )
            assert answer.status == "Accepted"
            runner.cancel()
        plain = f"ws://127.0.0.1:{ocpp_port}/ocpp/cp3"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(plain, subprotocols=[Subprotocol("ocpp2.0.1")], open_timeout=5):
                pass
        assert refused.value.response.status_code == 401
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert f"wss://127.0.0.1:{tls_port}/ocpp/" in out and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_csms_serve_tls_options_are_checked_before_listening(pki, sqlite_url):
    lone_cert = csms("serve", "--tls-cert", str(pki.server.cert_file), database_url=sqlite_url)
    assert lone_cert.returncode == 2 and "--tls-key" in lone_cert.stderr
    wrong_key = csms(
        "serve", "--tls-cert", str(pki.server.cert_file), "--tls-key", str(pki.cp3.key_file), database_url=sqlite_url
    )
    assert wrong_key.returncode == 2 and "cannot use the TLS certificate" in wrong_key.stderr
    assert "Traceback" not in lone_cert.stderr + wrong_key.stderr
