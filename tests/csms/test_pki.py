"""The CSMS's station CA end to end, over real TLS on loopback: a profile-3 station (the ``ocpp`` package's
ChargePoint) connects with a certificate of the CSMS's CA, renews it through SignCertificate ->
CertificateSigned, reconnects with the new one; impostor, expired and revoked certificates are refused and
recorded as security events."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from sqlalchemy.orm import Session, sessionmaker
from websockets.typing import Subprotocol

from csms.core.plugins.certificates import CertificateManager
from csms.domain import events as ev
from csms.gateway.server import Gateway
from csms.gateway.tls import server_context
from csms.pki import authority, build
from csms.services import certificates, security_events, stations
from csms.services.config import CsmsConfig
from csms.store.models import Alert

ORG = "chargetwin test"


@dataclass(frozen=True)
class Ca:
    paths: authority.CaPaths
    ca: authority.StationCa


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    directory: Path = tmp_path_factory.mktemp("ca")
    paths = authority.init(directory, datetime.now(UTC), organisation=ORG, server_names=("localhost", "127.0.0.1"))
    return Ca(paths, authority.load(directory))


def start_gateway(
    factory: sessionmaker[Session], ca: Ca, manager: CertificateManager | None = None, **config: Any
) -> Callable[[], Any]:
    async def started() -> Gateway:
        gw = Gateway(factory, CsmsConfig(call_timeout_s=3.0, station_ca=ca.ca, **config))
        gw.add_plugin(manager or CertificateManager())
        await gw.start("127.0.0.1", 0)
        context = server_context(ca.paths.server_cert, ca.paths.server_key, ca.paths.station_ca_cert)
        await gw.start_tls("127.0.0.1", 0, context)
        return gw

    return started


@pytest.fixture
async def gateway(sqlite_factory: sessionmaker[Session], ca: Ca) -> AsyncIterator[Gateway]:
    provision(sqlite_factory)
    gw = await start_gateway(sqlite_factory, ca)()
    yield gw
    await gw.stop()


def provision(factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with factory() as db:
        for station_id, version in (("cp3", "2.0.1"), ("cp4", "2.0.1"), ("cp16", "1.6")):
            stations.provision(db, station_id, ocpp_version=version, password=None, now=now, security_profile=3)
        db.commit()


# ---- the station's side ---------------------------------------------------------------------------------------
@dataclass
class Credentials:
    cert_file: Path
    key_file: Path
    cert: x509.Certificate


def write(
    directory: Path, stem: str, cert: x509.Certificate, key: build.PrivateKey, *chain: x509.Certificate
) -> Credentials:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_text(build.cert_pem(cert, *chain))
    key_file.write_text(build.key_pem(key))
    return Credentials(cert_file, key_file, cert)


def factory_certificate(ca: Ca, directory: Path, station_id: str, *, days: float = 30, **kwargs: Any) -> Credentials:
    """A certificate the CSMS's CA made for the station before it was installed (its first one)."""
    key = build.new_key()
    now = datetime.now(UTC)
    cert = build.issue((ca.ca.cert, ca.ca.key), build.name(station_id, ORG), key.public_key(), now, days, **kwargs)
    return write(directory, f"{station_id}-{cert.serial_number:x}", cert, key)


def tls(ca: Ca, client: Credentials | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca.paths.csms_root)
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    return context


def connect(gateway: Gateway, station_id: str, context: ssl.SSLContext, version: str = "2.0.1") -> Any:
    return websockets.connect(
        f"wss://localhost:{gateway.tls_port}/ocpp/{station_id}",
        subprotocols=[Subprotocol("ocpp1.6" if version == "1.6" else "ocpp2.0.1")],
        ssl=context,
        open_timeout=5,
    )


class Station201(ChargePoint201):
    """Answers CertificateSigned and TriggerMessage as a 2.0.1 station would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signed: asyncio.Queue[str] = asyncio.Queue()
        self.triggered: asyncio.Queue[str] = asyncio.Queue()
        self.answer = "Accepted"

    @on("CertificateSigned")
    async def certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        self.signed.put_nowait(certificate_chain)
        return result201.CertificateSigned(status=self.answer)

    @on("TriggerMessage")
    async def trigger(self, requested_message: str, **_: Any) -> Any:
        self.triggered.put_nowait(requested_message)
        return result201.TriggerMessage(status="Accepted")


class Station16(ChargePoint16):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signed: asyncio.Queue[str] = asyncio.Queue()
        self.triggered: asyncio.Queue[str] = asyncio.Queue()

    @on("CertificateSigned")
    async def certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        self.signed.put_nowait(certificate_chain)
        return result16.CertificateSigned(status="Accepted")

    @on("ExtendedTriggerMessage")
    async def trigger(self, requested_message: str, **_: Any) -> Any:
        self.triggered.put_nowait(requested_message)
        return result16.ExtendedTriggerMessage(status="Accepted")


@contextlib.asynccontextmanager
async def station(
    gateway: Gateway, ca: Ca, station_id: str, creds: Credentials, version: str = "2.0.1", cls: type | None = None
) -> Any:
    """Connected, booted (Accepted) and serving the CSMS's calls (as ``cls``, by default Station16/201)."""
    async with connect(gateway, station_id, tls(ca, creds), version) as ws:
        cls = cls or (Station16 if version == "1.6" else Station201)
        cp: Any = cls(station_id, ws, 5)
        runner = asyncio.create_task(cp.start())
        if version == "1.6":
            boot = await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        else:
            boot = await cp.call(
                call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            )
        assert boot.status == "Accepted"
        try:
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


async def sign(cp: Any, key: build.PrivateKey, common_name: str, organisation: str | None = ORG) -> str:
    csr = build.csr(key, common_name, organisation).public_bytes(serialization.Encoding.PEM).decode()
    if isinstance(cp, ChargePoint16):
        answer = await cp.call(call16.SignCertificate(csr=csr))
    else:
        answer = await cp.call(call201.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate"))
    return str(answer.status)


async def refused(gateway: Gateway, station_id: str, context: ssl.SSLContext) -> Exception:
    with pytest.raises((websockets.InvalidHandshake, OSError)) as raised:
        async with connect(gateway, station_id, context):
            pass
    assert station_id not in gateway.links
    return raised.value


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def events(factory: sessionmaker[Session], kind: str) -> list[dict[str, Any]]:
    with factory() as db:
        return [security_events.as_dict(row) for row in security_events.list_events(db, type=kind)]


def issued(factory: sessionmaker[Session], station_id: str) -> list[dict[str, Any]]:
    with factory() as db:
        return [certificates.as_dict(row) for row in certificates.issued(db, station_id)]


def leaf_of(chain: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain.encode())[0]


# ---- renewal through SignCertificate -> CertificateSigned -------------------------------------------------------
@pytest.mark.parametrize(("station_id", "version"), [("cp3", "2.0.1"), ("cp16", "1.6")])
async def test_station_renews_its_certificate_and_reconnects_with_it(
    gateway, ca, sqlite_factory, tmp_path, station_id, version
):
    first = factory_certificate(ca, tmp_path, station_id)
    new_key = build.new_key()
    async with station(gateway, ca, station_id, first, version) as cp:
        assert await sign(cp, new_key, station_id) == "Accepted"
        chain = await asyncio.wait_for(cp.signed.get(), 5)
        rows = await until(lambda: [r for r in issued(sqlite_factory, station_id) if r["delivery"] != "sending"])
    leaf = leaf_of(chain)
    assert leaf.public_key() == new_key.public_key()
    assert build.common_name(leaf.subject) == station_id and leaf.issuer == ca.ca.cert.subject
    assert x509.load_pem_x509_certificates(chain.encode())[1] == ca.ca.cert  # the chain up to the root
    assert rows[0]["delivery"] == "Accepted" and rows[0]["serial"] == format(leaf.serial_number, "x")
    assert [e["station_id"] for e in events(sqlite_factory, "certificate_issued")] == [station_id]

    renewed = write(tmp_path, "renewed", leaf, new_key)
    async with station(gateway, ca, station_id, renewed, version):
        assert station_id in gateway.links


@pytest.mark.parametrize(
    ("make_key", "common_name", "organisation", "why"),
    [
        (build.new_key, "cp4", ORG, "is not the station's id"),
        (build.new_key, "cp3", "Another Org", "subject O"),
        (lambda: rsa.generate_private_key(65537, 1024), "cp3", ORG, "at least 2048"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "cp3", ORG, "P-256 or P-384"),
    ],
)
async def test_a_bad_csr_is_rejected_and_recorded(
    gateway, ca, sqlite_factory, tmp_path, make_key, common_name, organisation, why
):
    async with station(gateway, ca, "cp3", factory_certificate(ca, tmp_path, "cp3")) as cp:
        assert await sign(cp, make_key(), common_name, organisation) == "Rejected"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(cp.signed.get(), 0.5)
    rejected = await until(lambda: events(sqlite_factory, "csr_rejected"))
    assert rejected[0]["station_id"] == "cp3" and why in rejected[0]["detail"]["reason"]
    assert issued(sqlite_factory, "cp3") == []


async def test_a_csr_that_is_not_one_is_rejected(gateway, ca, tmp_path):
    async with station(gateway, ca, "cp3", factory_certificate(ca, tmp_path, "cp3")) as cp:
        answer = await cp.call(call201.SignCertificate(csr="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"))
        assert answer.status == "Rejected"


async def test_a_certificate_the_station_rejects_is_marked_so(gateway, ca, sqlite_factory, tmp_path):
    async with station(gateway, ca, "cp3", factory_certificate(ca, tmp_path, "cp3")) as cp:
        cp.answer = "Rejected"
        assert await sign(cp, build.new_key(), "cp3") == "Accepted"
        await asyncio.wait_for(cp.signed.get(), 5)
        rows = await until(lambda: [r for r in issued(sqlite_factory, "cp3") if r["delivery"] != "sending"])
    assert rows[0]["delivery"] == "Rejected"


# ---- refused certificates ---------------------------------------------------------------------------------------
async def test_a_revoked_certificate_is_disconnected_and_refused(gateway, ca, sqlite_factory, tmp_path):
    creds = factory_certificate(ca, tmp_path, "cp3")
    new_key = build.new_key()
    async with station(gateway, ca, "cp3", creds) as cp:
        await sign(cp, new_key, "cp3")
        leaf = leaf_of(await asyncio.wait_for(cp.signed.get(), 5))
        await until(lambda: [r for r in issued(sqlite_factory, "cp3") if r["delivery"] == "Accepted"])
    renewed = write(tmp_path, "renewed", leaf, new_key)
    serial = format(leaf.serial_number, "x")
    async with station(gateway, ca, "cp3", renewed) as cp:
        with sqlite_factory() as db:
            certificates.revoke(db, serial, datetime.now(UTC))
            db.commit()
        assert gateway.host.drop_certificate({serial}) == ["cp3"]
        await until(lambda: "cp3" not in gateway.links)
    refusal = await refused(gateway, "cp3", tls(ca, renewed))
    assert isinstance(refusal, websockets.InvalidStatus) and refusal.response.status_code == 401
    assert refusal.response.body == b"not authorized\n"  # the one answer; the reason is the security event
    [event] = events(sqlite_factory, "revoked_certificate")
    assert event["station_id"] == "cp3" and event["detail"]["serial"] == serial
    assert event["source"] == "127.0.0.1"


async def test_a_certificate_revoked_elsewhere_is_dropped_by_the_sweep(sqlite_factory, ca, tmp_path):
    """``csms certificates revoke`` runs in another process: the gateway finds the revocation on its own."""
    provision(sqlite_factory)
    gw = await start_gateway(sqlite_factory, ca, CertificateManager(sweep_every_s=0.1))()
    try:
        key = build.new_key()
        async with station(gw, ca, "cp3", factory_certificate(ca, tmp_path, "cp3")) as cp:
            await sign(cp, key, "cp3")
            leaf = leaf_of(await asyncio.wait_for(cp.signed.get(), 5))
            await until(lambda: [r for r in issued(sqlite_factory, "cp3") if r["delivery"] == "Accepted"])
        async with station(gw, ca, "cp3", write(tmp_path, "renewed", leaf, key)):
            assert "cp3" in gw.links
            with sqlite_factory() as db:
                certificates.revoke(db, format(leaf.serial_number, "x"), datetime.now(UTC))
                db.commit()
            await until(lambda: "cp3" not in gw.links)
    finally:
        await gw.stop()


async def test_an_impostor_from_another_ca_is_refused_at_the_tls_handshake(gateway, ca, sqlite_factory, tmp_path):
    other_root, other_key = build.make_ca(build.name("impostor CA", ORG), datetime.now(UTC), 30)
    key = build.new_key()
    cert = build.issue((other_root, other_key), build.name("cp3", ORG), key.public_key(), datetime.now(UTC), 30)
    impostor = write(tmp_path, "impostor", cert, key, other_root)
    await refused(gateway, "cp3", tls(ca, impostor))
    [event] = await until(lambda: events(sqlite_factory, "bad_certificate"))
    assert event["source"] == "127.0.0.1" and event["station_id"] is None
    assert "issuer" in event["detail"]["reason"] or "self" in event["detail"]["reason"], event


async def test_a_self_signed_certificate_is_refused_at_the_tls_handshake(gateway, ca, sqlite_factory, tmp_path):
    key = build.new_key()
    cert, _ = build.make_ca(build.name("cp3", ORG), datetime.now(UTC), 30, key=key)
    await refused(gateway, "cp3", tls(ca, write(tmp_path, "self", cert, key)))
    [event] = await until(lambda: events(sqlite_factory, "bad_certificate"))
    assert "self-signed" in event["detail"]["reason"], event


async def test_an_expired_certificate_is_refused_at_the_tls_handshake(gateway, ca, sqlite_factory, tmp_path):
    long_ago = datetime.now(UTC) - timedelta(days=40)
    expired = factory_certificate(ca, tmp_path, "cp3", days=-1, not_before=long_ago)
    assert expired.cert.not_valid_after_utc < datetime.now(UTC)
    await refused(gateway, "cp3", tls(ca, expired))
    [event] = await until(lambda: events(sqlite_factory, "bad_certificate"))
    assert "expired" in event["detail"]["reason"], event


async def test_another_stations_certificate_is_refused_and_recorded(gateway, ca, sqlite_factory, tmp_path):
    refusal = await refused(gateway, "cp3", tls(ca, factory_certificate(ca, tmp_path, "cp4")))
    assert isinstance(refusal, websockets.InvalidStatus) and refusal.response.status_code == 401
    [event] = events(sqlite_factory, "bad_certificate")
    assert event["station_id"] == "cp3" and event["detail"]["client_cn"] == "cp4"


# ---- renewal before expiry --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("station_id", "version", "trigger"),
    [("cp3", "2.0.1", "SignChargingStationCertificate"), ("cp16", "1.6", "SignChargePointCertificate")],
)
async def test_a_certificate_near_its_end_raises_an_alert_and_is_renewed(
    sqlite_factory, ca, tmp_path, station_id, version, trigger
):
    provision(sqlite_factory)
    short = authority.StationCa(ca.ca.cert, ca.ca.key, (), ORG, days=10)
    gw = await start_gateway(sqlite_factory, Ca(ca.paths, short), renew_before_days=30)()
    try:
        key = build.new_key()
        async with station(gw, ca, station_id, factory_certificate(ca, tmp_path, station_id), version) as cp:
            await sign(cp, key, station_id)
            leaf = leaf_of(await asyncio.wait_for(cp.signed.get(), 5))
            await until(lambda: [r for r in issued(sqlite_factory, station_id) if r["delivery"] == "Accepted"])
        async with station(gw, ca, station_id, write(tmp_path, "short", leaf, key), version) as cp:
            assert await asyncio.wait_for(cp.triggered.get(), 5) == trigger
            alert = await until(lambda: open_alert(sqlite_factory, station_id))
            assert alert.details["serial"] == format(leaf.serial_number, "x")
            assert await sign(cp, build.new_key(), station_id) == "Accepted"
            await asyncio.wait_for(cp.signed.get(), 5)
            await until(lambda: open_alert(sqlite_factory, station_id) is None)
    finally:
        await gw.stop()


def open_alert(factory: sessionmaker[Session], station_id: str) -> Alert | None:
    with factory() as db:
        query = db.query(Alert).filter_by(rule="certificate_expiring", station_id=station_id, resolved_at=None)
        return query.first()


async def test_a_certificate_naming_the_station_stands_for_its_password(gateway, ca, sqlite_factory, tmp_path):
    """Profiles 1 and 2 ask for HTTP Basic; a verified certificate of the station CA naming the station is the
    stronger credential and is enough (on TLS only: plain ws has no certificate)."""
    with sqlite_factory() as db:
        password = "station-password-1"
        stations.provision(
            db, "cp2", ocpp_version="2.0.1", password=password, now=datetime.now(UTC), security_profile=2
        )
        db.commit()
    async with station(gateway, ca, "cp2", factory_certificate(ca, tmp_path, "cp2")):
        assert "cp2" in gateway.links
    refusal = await refused(gateway, "cp2", tls(ca, None))  # neither certificate nor password
    assert isinstance(refusal, websockets.InvalidStatus) and refusal.response.status_code == 401


def test_the_certificate_store_on_both_backends(session_factory, ca):
    """Issue, deliver, revoke, and a station's installed list, on SQLite and PostgreSQL."""
    now = datetime.now(UTC)
    config = CsmsConfig(station_ca=ca.ca)
    csr = build.csr(build.new_key(), "cp3", ORG).public_bytes(serialization.Encoding.PEM).decode()
    with session_factory() as db, db.begin():
        stations.provision(db, "cp3", ocpp_version="2.0.1", password=None, now=now, security_profile=3)
        decision = certificates.sign_request(db, "cp3", ev.CertificateSigningRequested(csr), now, config)
        assert decision.status == "Accepted" and decision.serial is not None
        certificates.delivered(db, decision.serial, "Accepted")
    with session_factory() as db, db.begin():
        assert certificates.current(db, "cp3") is not None
        assert certificates.nearing_end(db, ["cp3"], now, 400)[0].serial == decision.serial
        assert certificates.nearing_end(db, ["cp3"], now, 30) == []
        certificates.revoke(db, decision.serial.upper(), now)
    with session_factory() as db, db.begin():
        assert certificates.is_revoked(db, decision.serial)
        assert certificates.revoked_among(db, {decision.serial, "ab"}) == {decision.serial}
        assert certificates.current(db, "cp3") is None
        data = {"hashAlgorithm": "SHA256", "issuerNameHash": "aa", "issuerKeyHash": "bb", "serialNumber": "1f"}
        chains = [{"certificateType": "CSMSRootCertificate", "certificateHashData": data}]
        certificates.store_installed(db, "cp3", chains, [], now)
    with session_factory() as db, db.begin():
        assert [certificates.hash_data(r) for r in certificates.installed(db, "cp3")] == [data]
        certificates.forget_installed(db, "cp3", data)
    with session_factory() as db:
        assert certificates.installed(db, "cp3") == []
