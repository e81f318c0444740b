"""A twin charger on a real socket moves up the security profiles the way the spec orders it, against the real
gateway serving ws:// and wss://: the CSMS installs its root, gives a profile-2 network profile and a priority,
resets the charger, and the charger comes back over TLS with its password; a TLS attempt it cannot verify
fails as a connection failure, not a crash."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csms.gateway.server import Gateway
from csms.gateway.tls import server_context
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from simulator.conformance.loopback_pki import issue, make_ca
from simulator.links.websocket import WebSocketLink
from simulator.station import Charger, Registration
from tests.simulator.helpers import FakeMeter
from tests.simulator.test_realtime import FastClock, wait_for

PASSWORD = "twin-tls-password-0001"


@pytest.fixture
async def tls_gateway(sqlite_url: str, tmp_path: Path) -> Any:
    root = make_ca(tmp_path / "pki", "csms-root")
    server = issue(tmp_path / "pki", root, "localhost", server=True)
    station_ca = make_ca(tmp_path / "pki", "station-ca")
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as db:
        stations.provision(db, "cp-up", ocpp_version="2.0.1", password=PASSWORD, now=datetime.now(UTC))
        db.commit()
    gw = Gateway(factory, CsmsConfig(call_timeout_s=5.0))
    await gw.start("127.0.0.1", 0)
    await gw.start_tls("127.0.0.1", 0, server_context(server.cert_file, server.key_file, station_ca.cert_file))
    try:
        yield gw, factory, root
    finally:
        await gw.stop()
        engine.dispose()


async def call(gw: Gateway, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    pending = await gw.call("cp-up", action, payload)
    assert pending.payload is not None, pending.as_dict()
    return pending.payload


@pytest.mark.timeout(60)
async def test_the_twin_moves_from_profile_1_to_2_over_a_real_tls_socket(tls_gateway) -> None:
    gw, _factory, root = tls_gateway
    charger = Charger("cp-up", "2.0.1", meter=FakeMeter(), rng=random.Random(5), reboot_s=2.0)
    charger.security.password = PASSWORD
    link = WebSocketLink(charger, FastClock(20.0), f"ws://127.0.0.1:{gw.port}/ocpp")
    link.start()
    try:
        await wait_for(lambda: charger.registration is Registration.ACCEPTED and gw.is_connected("cp-up"), 10)
        root_pem = root.cert_file.read_text()
        install = {"certificateType": "CSMSRootCertificate", "certificate": root_pem}
        assert await call(gw, "InstallCertificate", install) == {"status": "Accepted"}
        wss = f"wss://localhost:{gw.tls_port}/ocpp"
        slot = {
            "configurationSlot": 1,
            "connectionData": {
                "ocppVersion": "OCPP20",
                "ocppTransport": "JSON",
                "ocppCsmsUrl": wss,
                "messageTimeout": 30,
                "securityProfile": 2,
                "ocppInterface": "Wired0",
            },
        }
        assert await call(gw, "SetNetworkProfile", slot) == {"status": "Accepted"}
        priority = {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "NetworkConfigurationPriority"},
            "attributeValue": "1",
        }
        answer = await call(gw, "SetVariables", {"setVariableData": [priority]})
        assert answer["setVariableResult"][0]["attributeStatus"] == "RebootRequired"

        plain_links = link.attempts
        assert await call(gw, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
        await wait_for(lambda: link.attempts > plain_links and link.connected and gw.is_connected("cp-up"), 20)
        assert charger.security.profile == 2 and charger.security.csms_url == wss
        assert link.failures == [], link.failures  # straight in over TLS, nothing refused
        assert link.ws is not None and link.ws.transport.get_extra_info("ssl_object") is not None
    finally:
        await link.stop()


@pytest.mark.timeout(30)
async def test_a_wss_csms_the_twin_cannot_verify_is_a_failed_attempt(tls_gateway) -> None:
    gw, _factory, _root = tls_gateway
    charger = Charger("cp-up", "2.0.1", meter=FakeMeter(), rng=random.Random(6))
    charger.security.password = PASSWORD
    link = WebSocketLink(charger, FastClock(100.0), f"wss://localhost:{gw.tls_port}/ocpp")
    link.start()
    try:
        await wait_for(lambda: len(link.failures) >= 2, 10)
        assert all(f.startswith("TLS:") for f in link.failures), link.failures  # no root installed or given
        assert not gw.is_connected("cp-up")
    finally:
        await link.stop()
