"""Plug & Charge (ISO 15118 over OCPP 2.0.1) end to end: the ``ocpp`` package's ChargePoint over real
WebSockets, a real OCSP responder on loopback (HTTP, answers signed with ``cryptography``), contract
certificates from local test CAs, the roots installed in the CSMS's database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from ocpp.v201 import ChargePoint
from ocpp.v201 import call as call201
from sqlalchemy.orm import Session, sessionmaker

from csms.gateway.lookups import ThreadedLookups
from csms.gateway.server import Gateway
from csms.pki import ocsp as pki_ocsp
from csms.pki.local_ca import LocalTestCa, emaid_for
from csms.services import authorization, contracts, security_events, stations
from csms.services.config import CsmsConfig
from simulator.conformance import loopback_pki
from simulator.conformance.ocsp_responder import LoopbackOcspResponder

LOOKUP_TIMEOUT_S = 2.0


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def mo_ca() -> Iterator[tuple[LocalTestCa, LoopbackOcspResponder]]:
    """A mobility operator's CA with its OCSP responder on loopback."""
    ca = LocalTestCa.generate("chargetwin MO root", datetime.now(UTC))
    with LoopbackOcspResponder(ca) as responder:
        ca.responder_url = responder.url
        yield ca, responder


@pytest.fixture
def provider() -> LocalTestCa:
    """The built-in contract-certificate provider the gateway forwards Get15118EVCertificate to."""
    return LocalTestCa.generate("chargetwin contract provider", datetime.now(UTC))


@pytest.fixture
async def pnc_gateway(sqlite_factory: sessionmaker[Session], mo_ca, provider) -> AsyncIterator[Gateway]:
    ca, _ = mo_ca
    now = datetime.now(UTC)
    with sqlite_factory() as db:
        stations.provision(db, "pnc-1", ocpp_version="2.0.1", password=None, now=now, policy="accept")
        stations.provision(db, "pnc-2", ocpp_version="2.0.1", password=None, now=now, policy="accept")
        for emaid in ("NL-CTW-C00000001", "NL-CTW-C00000002"):
            authorization.create(db, emaid, now, token_type="eMAID")
        contracts.install_root(db, ca.cert_pem, "MO", now)
        db.commit()
    config = CsmsConfig(call_timeout_s=5.0, lookup_timeout_s=LOOKUP_TIMEOUT_S)
    gateway = Gateway(sqlite_factory, config, lookups=ThreadedLookups(LOOKUP_TIMEOUT_S, provider))
    await gateway.start("127.0.0.1", 0)
    yield gateway
    await gateway.stop()


@contextlib.asynccontextmanager
async def station(gateway: Gateway, station_id: str = "pnc-1") -> AsyncIterator[ChargePoint]:
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    async with websockets.connect(url, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        cp = ChargePoint(station_id, ws, response_timeout=10)
        runner = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(
                call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            )
            assert boot.status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


def hash_data(cert: x509.Certificate, ca: LocalTestCa, url: str) -> list[dict[str, str]]:
    cert_id = pki_ocsp.certificate_id(cert, ca.cert, url)
    return [
        {
            "hash_algorithm": cert_id.hash_algorithm,
            "issuer_name_hash": cert_id.issuer_name_hash,
            "issuer_key_hash": cert_id.issuer_key_hash,
            "serial_number": cert_id.serial_number,
            "responder_url": cert_id.responder_url,
        }
    ]


async def authorize(cp: ChargePoint, emaid: str, **contract: Any) -> tuple[str, str | None]:
    answer = await cp.call(call201.Authorize(id_token={"id_token": emaid, "type": "eMAID"}, **contract))
    return answer.id_token_info["status"], answer.certificate_status


async def test_a_good_contract_is_accepted_after_a_real_ocsp_check(pnc_gateway, mo_ca):
    ca, responder = mo_ca
    contract = ca.issue("NL-CTW-C00000001", datetime.now(UTC))
    async with station(pnc_gateway) as cp:
        by_hash = await authorize(
            cp, "NL-CTW-C00000001", iso15118_certificate_hash_data=hash_data(contract, ca, responder.url)
        )
        asked = responder.requests
        by_chain = await authorize(cp, "NL-CTW-C00000001", certificate=pem(contract))
    assert by_hash == ("Accepted", "Accepted")
    assert asked == 1, "the hash data was not checked with the responder"
    assert by_chain == ("Accepted", "Accepted")
    assert responder.requests == 2, "the chain's certificate names its responder (AIA) and was not checked there"


async def test_a_revoked_contract_is_refused(pnc_gateway, mo_ca):
    ca, responder = mo_ca
    contract = ca.issue("NL-CTW-C00000001", datetime.now(UTC))
    ca.revoke(contract, datetime.now(UTC))
    async with station(pnc_gateway) as cp:
        by_hash = await authorize(
            cp, "NL-CTW-C00000001", iso15118_certificate_hash_data=hash_data(contract, ca, responder.url)
        )
        by_chain = await authorize(cp, "NL-CTW-C00000001", certificate=pem(contract))
    assert by_hash == ("Invalid", "CertificateRevoked")
    assert by_chain == ("Invalid", "CertificateRevoked")


async def test_an_expired_contract_and_one_of_an_unknown_root(pnc_gateway, mo_ca, tmp_path):
    ca, _ = mo_ca
    now = datetime.now(UTC)
    expired = ca.issue("NL-CTW-C00000001", now, valid_for=timedelta(days=1), not_before=now - timedelta(days=3))
    stranger = loopback_pki.make_ca(tmp_path, "not an installed MO root")
    foreign = LocalTestCa(stranger.cert, stranger.key).issue("NL-CTW-C00000002", now)
    async with station(pnc_gateway) as cp:
        assert await authorize(cp, "NL-CTW-C00000001", certificate=pem(expired)) == ("Invalid", "CertificateExpired")
        assert await authorize(cp, "NL-CTW-C00000002", certificate=pem(foreign)) == ("Invalid", "CertChainError")


async def test_a_responder_that_is_down_leaves_the_contract_unproven(pnc_gateway, mo_ca):
    ca, responder = mo_ca
    contract = ca.issue("NL-CTW-C00000001", datetime.now(UTC))
    data = hash_data(contract, ca, responder.url)
    responder.stop()
    async with station(pnc_gateway) as cp:
        assert await authorize(cp, "NL-CTW-C00000001", iso15118_certificate_hash_data=data) == (
            "Invalid",
            "NoCertificateAvailable",
        )
        await cp.call(call201.Heartbeat())  # answered after the commit that stored the security event
    with pnc_gateway.session_factory() as db:
        (event,) = security_events.list_events(db, station_id="pnc-1", type="ocsp_failed")
    assert event.detail["emaid"] == "NL-CTW-C00000001" and event.detail["responders"] == [responder.url]


@pytest.fixture
def silent_responder() -> Iterator[str]:
    """A responder that accepts the connection and never answers (hung back end)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/ocsp"
    finally:
        server.close()


async def test_a_hung_responder_is_answered_at_the_lookup_deadline_and_blocks_no_other_station(
    pnc_gateway, mo_ca, silent_responder
):
    ca, _ = mo_ca
    contract = ca.issue("NL-CTW-C00000001", datetime.now(UTC))
    async with station(pnc_gateway, "pnc-1") as waiting, station(pnc_gateway, "pnc-2") as other:
        started = time.monotonic()
        lookup = asyncio.create_task(
            authorize(
                waiting, "NL-CTW-C00000001", iso15118_certificate_hash_data=hash_data(contract, ca, silent_responder)
            )
        )
        await asyncio.sleep(0.2)
        beat = await other.call(call201.Heartbeat())
        beat_after = time.monotonic() - started
        assert beat.current_time and not lookup.done(), "the other station waited for the lookup"
        assert await lookup == ("Invalid", "NoCertificateAvailable")
        waited = time.monotonic() - started
    assert beat_after < LOOKUP_TIMEOUT_S / 2
    assert LOOKUP_TIMEOUT_S * 0.9 <= waited < LOOKUP_TIMEOUT_S + 3.0


async def test_get_certificate_status_returns_the_responders_answer(pnc_gateway, mo_ca):
    ca, responder = mo_ca
    good = ca.issue("V2G-SUBCA-1", datetime.now(UTC))
    revoked = ca.issue("V2G-SUBCA-2", datetime.now(UTC))
    ca.revoke(revoked, datetime.now(UTC))
    statuses = {}
    async with station(pnc_gateway) as cp:
        for cert in (good, revoked):
            (request,) = hash_data(cert, ca, responder.url)
            answer = await cp.call(call201.GetCertificateStatus(ocsp_request_data=request))
            assert answer.status == "Accepted"
            response = ocsp.load_der_ocsp_response(base64.b64decode(answer.ocsp_result))
            assert response.serial_number == cert.serial_number
            response.certificates[0].public_key().verify(  # signed by the MO CA: the responder's real answer
                response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm)
            )
            statuses[cert.subject.rfc4514_string()] = response.certificate_status
        responder.stop()
        (request,) = hash_data(good, ca, responder.url)
        failed = await cp.call(call201.GetCertificateStatus(ocsp_request_data=request))
    assert statuses == {"CN=V2G-SUBCA-1": ocsp.OCSPCertStatus.GOOD, "CN=V2G-SUBCA-2": ocsp.OCSPCertStatus.REVOKED}
    assert (failed.status, failed.ocsp_result) == ("Failed", None)


async def test_get_15118_ev_certificate_returns_a_chain_from_the_built_in_provider(pnc_gateway, provider):
    exi = b"\x80\x98\x02\x10 an EXI CertificateInstallationReq, opaque to chargetwin"
    async with station(pnc_gateway) as cp:
        answer = await cp.call(
            call201.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                action="Install",
                exi_request=base64.b64encode(exi).decode(),
            )
        )
    assert answer.status == "Accepted"
    leaf, ca_cert = x509.load_pem_x509_certificates(base64.b64decode(answer.exi_response))
    assert ca_cert == provider.cert
    leaf.verify_directly_issued_by(ca_cert)
    assert leaf.subject.rfc4514_string() == f"CN={emaid_for(exi)}"


# ---- the operator's door: roots through the API and the CLI ----------------------------------------------------
async def test_roots_through_the_api(sqlite_factory, mo_ca, tmp_path):
    import httpx

    from csms.api.app import create_app

    ca, _ = mo_ca
    gateway = Gateway(sqlite_factory, CsmsConfig())
    app = create_app(sqlite_factory, gateway, "k" * 32)
    headers = {"Authorization": f"Bearer {'k' * 32}"}
    leaf = ca.issue("NL-CTW-C00000001", datetime.now(UTC))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms", headers=headers) as c:
        created = await c.post("/api/v1/contract-roots", json={"pem": ca.cert_pem, "kind": "V2G"})
        again = await c.post("/api/v1/contract-roots", json={"pem": ca.cert_pem, "kind": "V2G"})
        not_ca = await c.post("/api/v1/contract-roots", json={"pem": pem(leaf)})
        garbage = await c.post("/api/v1/contract-roots", json={"pem": "hello"})
        listed = (await c.get("/api/v1/contract-roots")).json()
        fingerprint = created.json()["fingerprint"]
        removed = await c.delete(f"/api/v1/contract-roots/{fingerprint}")
        gone = await c.delete(f"/api/v1/contract-roots/{fingerprint}")
    assert created.status_code == 201 and "CN=chargetwin MO root" in created.json()["subject"]
    assert (again.status_code, not_ca.status_code, garbage.status_code) == (409, 422, 422), not_ca.text
    assert [row["fingerprint"] for row in listed] == [fingerprint]
    assert (removed.status_code, gone.status_code) == (204, 404)


def test_roots_through_the_cli(tmp_path, mo_ca):
    from tests.csms.test_cli import csms

    ca, _ = mo_ca
    url = f"sqlite:///{tmp_path}/cli.db"
    root_file = tmp_path / "mo.pem"
    root_file.write_text(ca.cert_pem)
    added = csms("contract-roots", "add", str(root_file), "--kind", "MO", database_url=url)
    assert added.returncode == 0, added.stderr
    fingerprint = added.stdout.split()[2]
    listing = csms("contract-roots", "list", database_url=url)
    assert fingerprint in listing.stdout and "MO" in listing.stdout
    refused = csms("contract-roots", "add", str(tmp_path / "missing.pem"), database_url=url)
    assert refused.returncode != 0 and "cannot read" in refused.stderr
    assert csms("contract-roots", "remove", fingerprint, database_url=url).returncode == 0
    assert fingerprint not in csms("contract-roots", "list", database_url=url).stdout


async def test_malformed_ocsp_data_is_refused_with_a_callerror_and_the_station_stays_served(pnc_gateway):
    from ocpp.exceptions import OCPPError

    bad = {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": "00",  # not a SHA-256 hash
        "issuer_key_hash": "zz",  # not hex
        "serial_number": "1",
        "responder_url": "http://127.0.0.1:1/ocsp",
    }
    async with station(pnc_gateway) as cp:
        token = {"id_token": "NL-CTW-C00000001", "type": "eMAID"}
        with pytest.raises(OCPPError) as refused:
            await cp.call(call201.Authorize(id_token=token, iso15118_certificate_hash_data=[bad]), suppress=False)
        assert type(refused.value).__name__ == "PropertyConstraintViolationError"
        with pytest.raises(OCPPError) as refused:
            await cp.call(
                call201.GetCertificateStatus(ocsp_request_data={**bad, "issuer_key_hash": "0" * 64}), suppress=False
            )
        assert "64 hex digits" in str(refused.value)
        assert (await cp.call(call201.Heartbeat())).current_time
