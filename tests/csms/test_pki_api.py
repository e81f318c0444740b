"""Certificates through the API and the CLI: the issued list, revocation (with the connected station
dropped), the security events it leaves, and the roots on a station (InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate) for 1.6 and 2.0.1 stations made with the ``ocpp`` package."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ocpp.routing import on
from ocpp.v16 import call_result as result16
from ocpp.v201 import call_result as result201

from csms.api.app import create_app
from csms.pki import authority, build
from tests.csms import test_pki
from tests.csms.test_cli import ROOT, _wait_for_api, free_port
from tests.csms.test_pki import (
    ORG,
    Station16,
    Station201,
    factory_certificate,
    issued,
    leaf_of,
    refused,
    sign,
    station,
    tls,
    until,
    write,
)

ca = test_pki.ca  # the fixtures of the station CA and a gateway that serves it
gateway = test_pki.gateway

API_KEY = "pki-api-test-key"


@pytest.fixture
async def client(sqlite_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sqlite_factory, gateway, API_KEY)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms/api/v1", headers=headers, timeout=20) as c:
        yield c


def hash_data(cert: x509.Certificate) -> dict[str, str]:
    """What a station reports for a root it holds (OCPP CertificateHashData, SHA256)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(spki).hexdigest(),
        "serialNumber": format(cert.serial_number, "x"),
    }


class Roots201(Station201):
    """A 2.0.1 station's certificate store."""

    roots: list[tuple[str, x509.Certificate]]

    @on("InstallCertificate")
    async def install(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        self.roots.append((certificate_type, x509.load_pem_x509_certificate(certificate.encode())))
        return result201.InstallCertificate(status="Accepted")

    @on("GetInstalledCertificateIds")
    async def installed(self, certificate_type: list[str] | None = None, **_: Any) -> Any:
        chains = [
            {"certificate_type": kind, "certificate_hash_data": _snake(hash_data(cert))}
            for kind, cert in self.roots
            if not certificate_type or kind in certificate_type
        ]
        status = "Accepted" if chains else "NotFound"
        return result201.GetInstalledCertificateIds(status=status, certificate_hash_data_chain=chains or None)

    @on("DeleteCertificate")
    async def delete(self, certificate_hash_data: dict[str, str], **_: Any) -> Any:
        before = len(self.roots)
        self.roots = [
            (k, c) for k, c in self.roots if hash_data(c)["serialNumber"] != certificate_hash_data["serial_number"]
        ]
        return result201.DeleteCertificate(status="Accepted" if len(self.roots) < before else "NotFound")


class Roots16(Station16):
    roots: list[tuple[str, x509.Certificate]]

    @on("InstallCertificate")
    async def install(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        self.roots.append((certificate_type, x509.load_pem_x509_certificate(certificate.encode())))
        return result16.InstallCertificate(status="Accepted")

    @on("GetInstalledCertificateIds")
    async def installed(self, certificate_type: str, **_: Any) -> Any:
        found = [_snake(hash_data(cert)) for kind, cert in self.roots if kind == certificate_type]
        status = "Accepted" if found else "NotFound"
        return result16.GetInstalledCertificateIds(status=status, certificate_hash_data=found or None)

    @on("DeleteCertificate")
    async def delete(self, certificate_hash_data: dict[str, str], **_: Any) -> Any:
        before = len(self.roots)
        serial = certificate_hash_data["serial_number"]
        self.roots = [(k, c) for k, c in self.roots if hash_data(c)["serialNumber"] != serial]
        return result16.DeleteCertificate(status="Accepted" if len(self.roots) < before else "NotFound")


def _snake(data: dict[str, str]) -> dict[str, str]:
    """The ``ocpp`` package writes payloads in snake_case and converts them to camelCase itself."""
    return {
        "hash_algorithm": data["hashAlgorithm"],
        "issuer_name_hash": data["issuerNameHash"],
        "issuer_key_hash": data["issuerKeyHash"],
        "serial_number": data["serialNumber"],
    }


@pytest.mark.parametrize(("station_id", "version"), [("cp3", "2.0.1"), ("cp16", "1.6")])
async def test_roots_are_installed_listed_and_deleted_through_the_api(
    client,
    gateway,
    ca,
    tmp_path,
    station_id,
    version,
):
    root, _ = build.make_ca(build.name("Manufacturer root", "Maker"), datetime.now(UTC), 30)
    cls = Roots16 if version == "1.6" else Roots201
    async with station(gateway, ca, station_id, factory_certificate(ca, tmp_path, station_id), version, cls) as cp:
        cp.roots = []
        path = f"/stations/{station_id}/certificates"
        answer = await client.post(
            f"{path}/install",
            json={"certificate_type": "ManufacturerRootCertificate", "certificate": build.cert_pem(root)},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["payload"]["status"] == "Accepted"
        assert [c["hash_data"]["serialNumber"] for c in body["installed"]] == [format(root.serial_number, "x")]
        assert [k for k, _ in cp.roots] == ["ManufacturerRootCertificate"]
        stored = (await client.get(f"{path}/installed")).json()
        assert stored[0]["certificate_type"] == "ManufacturerRootCertificate"

        if version == "1.6":
            v2g = await client.post(
                f"{path}/install", json={"certificate_type": "V2GRootCertificate", "certificate": build.cert_pem(root)}
            )
            assert v2g.status_code == 422 and "1.6" in v2g.text
        deleted = await client.post(f"{path}/delete", json={"hash_data": stored[0]["hash_data"]})
        assert deleted.json()["payload"]["status"] == "Accepted", deleted.text
        assert deleted.json()["installed"] == [] and cp.roots == []
        again = await client.post(f"{path}/delete", json={"hash_data": stored[0]["hash_data"]})
        assert again.json()["payload"]["status"] == "NotFound"


async def test_bad_certificate_requests_get_a_4xx(client, gateway):
    not_pem = await client.post(
        "/stations/cp3/certificates/install", json={"certificate_type": "CSMSRootCertificate", "certificate": "x"}
    )
    assert not_pem.status_code == 422
    unknown_type = await client.post(
        "/stations/cp3/certificates/install",
        json={"certificate_type": "Nope", "certificate": "-----BEGIN CERTIFICATE-----"},
    )
    assert unknown_type.status_code == 422
    not_connected = await client.post(
        "/stations/cp3/certificates/install",
        json={"certificate_type": "CSMSRootCertificate", "certificate": "-----BEGIN CERTIFICATE-----\n"},
    )
    assert not_connected.status_code == 409
    assert (await client.get("/stations/nope/certificates/installed")).status_code == 404
    assert (await client.post("/certificates/00ff/revoke")).status_code == 404
    assert (await client.post("/certificates/not-hex/revoke")).status_code == 422


async def test_revoking_through_the_api_drops_the_station_and_shows_the_events(
    client, gateway, ca, sqlite_factory, tmp_path
):
    key = build.new_key()
    async with station(gateway, ca, "cp3", factory_certificate(ca, tmp_path, "cp3")) as cp:
        await sign(cp, key, "cp3")
        leaf = leaf_of(await asyncio.wait_for(cp.signed.get(), 5))
        await until(lambda: [r for r in issued(sqlite_factory, "cp3") if r["delivery"] == "Accepted"])
    renewed = write(tmp_path, "renewed", leaf, key)
    serial = format(leaf.serial_number, "x")
    listed = (await client.get("/certificates", params={"station_id": "cp3"})).json()
    assert [c["serial"] for c in listed] == [serial] and listed[0]["delivery"] == "Accepted"
    async with station(gateway, ca, "cp3", renewed):
        answer = await client.post(f"/certificates/{serial.upper()}/revoke")
        assert answer.status_code == 200, answer.text
        assert answer.json()["disconnected"] == ["cp3"] and answer.json()["revoked_at"]
        await until(lambda: "cp3" not in gateway.links)
    assert (await client.post(f"/certificates/{serial}/revoke")).status_code == 409
    await refused(gateway, "cp3", tls(ca, renewed))
    events = (await client.get("/security-events", params={"station_id": "cp3"})).json()
    assert {"certificate_issued", "revoked_certificate"} <= {e["type"] for e in events}


def test_pki_init_and_certificates_commands(tmp_path, sqlite_url):
    def csms(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "csms.cli", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    made = csms("pki", "init", str(tmp_path / "ca"), "--organisation", "Depot Ltd", "--server-name", "csms.example")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "ca" / "station-ca.pem").exists() and "csms-root.pem" in made.stdout
    server = x509.load_pem_x509_certificate((tmp_path / "ca" / "server.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["csms.example"]
    again = csms("pki", "init", str(tmp_path / "ca"))
    assert again.returncode == 2 and "not overwriting" in again.stderr

    external = csms("pki", "init", str(tmp_path / "ext"), "--ca-cert", str(tmp_path / "ca" / "station-ca.pem"),
                    "--ca-key", str(tmp_path / "ca" / "station-ca.key"))  # fmt: skip
    assert external.returncode == 0, external.stderr
    assert not (tmp_path / "ext" / "root-ca.pem").exists()
    mismatched = csms("pki", "init", str(tmp_path / "bad"), "--ca-cert", str(tmp_path / "ca" / "station-ca.pem"),
                      "--ca-key", str(tmp_path / "ca" / "server.key"))  # fmt: skip
    assert mismatched.returncode == 2 and "does not belong" in mismatched.stderr

    no_ca = csms("serve", "--pki", str(tmp_path / "nowhere"), "--database-url", sqlite_url)
    assert no_ca.returncode == 2 and "cannot use the CA" in no_ca.stderr, no_ca.stderr
    listed = csms("certificates", "list", "--database-url", sqlite_url)
    assert listed.returncode == 0 and "SERIAL" in listed.stdout
    unknown = csms("certificates", "revoke", "abc", "--database-url", sqlite_url)
    assert unknown.returncode == 2 and "no certificate" in unknown.stderr
    assert "Traceback" not in made.stderr + unknown.stderr + mismatched.stderr


async def test_csms_serve_with_its_own_ca_signs_and_serves_wss(tmp_path, sqlite_url):
    """``csms pki init`` + ``csms serve --pki``: a profile-3 station connects with a certificate of that CA,
    renews it, and the installed CLI command reaches it through the API."""
    directory = tmp_path / "ca"
    assert cli("pki", "init", str(directory), "--organisation", ORG).returncode == 0
    assert (
        cli("stations", "add", "cp3", "--ocpp", "2.0.1", "--security-profile", "3", database_url=sqlite_url).returncode
        == 0
    )
    ca_files = test_pki.Ca(authority.CaPaths(directory), authority.load(directory))
    ocpp_port, tls_port, api_port = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--database-url", sqlite_url, "--log-level", "warning"]
    command += ["--ocpp-port", str(ocpp_port), "--tls-port", str(tls_port), "--api-port", str(api_port)]
    command += ["--pki", str(directory), "--renew-before-days", "10"]
    env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await _wait_for_api(f"http://127.0.0.1:{api_port}", process, time.monotonic() + 60)
        served = SimpleNamespace(tls_port=tls_port, links={"cp3": None})  # what `station` reads of a gateway
        key = build.new_key()
        async with station(served, ca_files, "cp3", factory_certificate(ca_files, tmp_path, "cp3")) as cp:  # type: ignore[arg-type]
            assert await sign(cp, key, "cp3") == "Accepted"
            leaf = leaf_of(await asyncio.wait_for(cp.signed.get(), 5))
            assert leaf.issuer == ca_files.ca.cert.subject
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}) as api:
                url = f"http://127.0.0.1:{api_port}/api/v1/certificates"
                for _ in range(100):  # until the station's answer to CertificateSigned is stored
                    if (await api.get(url)).json()[0]["delivery"] == "Accepted":
                        break
                    await asyncio.sleep(0.05)
        renewed = write(tmp_path, "renewed", leaf, key)
        async with station(served, ca_files, "cp3", renewed, cls=Roots201) as cp:  # type: ignore[arg-type]
            cp.roots = []
            listed = await asyncio.to_thread(
                cli, "certificates", "installed", "cp3", "--api", f"http://127.0.0.1:{api_port}/api/v1", env=env
            )
            assert listed.returncode == 1 or listed.returncode == 0, listed.stderr
            assert "GetInstalledCertificateIds: result NotFound" in listed.stdout, listed.stdout + listed.stderr
        shown = cli("certificates", "list", "--station", "cp3", database_url=sqlite_url)
        assert format(leaf.serial_number, "x") in shown.stdout and "Accepted" in shown.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert "Traceback" not in err, err


def cli(
    *args: str, database_url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**(env or os.environ)}
    if database_url is not None:
        environment["CHARGETWIN_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "csms.cli", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=environment)
