"""The conformance cases' throw-away PKI: what a CSMS under test gets from it must be real X.509 and OCSP."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.conformance.cases.v201.certificates import OcspResponder, Pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=20, check=False)


def _ask_responder(pki: Pki, certificate: str, url: str) -> str:
    leaf = pki.path("asked.pem")
    leaf.write_text(certificate)
    done = _openssl("ocsp", "-issuer", str(pki.ca_cert), "-cert", str(leaf), "-url", url, "-CAfile", str(pki.ca_cert))
    assert "Response verify OK" in done.stderr + done.stdout, done.stderr
    return done.stdout


@pytest.mark.parametrize(("revoked", "verdict"), [(False, "good"), (True, "revoked")])
def test_the_ocsp_responder_answers_for_the_certificates_the_ca_issued(revoked: bool, verdict: str) -> None:
    with Pki.create() as pki, OcspResponder(pki, revoked=revoked) as responder:
        contract, _ = pki.issue("NL-CTW-C12345678")
        assert f": {verdict}" in _ask_responder(pki, contract, responder.url)
        assert responder.requests == 1


def test_hash_data_is_the_certificates_ocsp_cert_id() -> None:
    with Pki.create() as pki:
        contract, _ = pki.issue("NL-CTW-C12345678")
        (data,) = pki.hash_data(contract, "http://127.0.0.1:1/ocsp")
        leaf = pki.path("leaf.pem")
        leaf.write_text(contract)
        serial = _openssl("x509", "-in", str(leaf), "-noout", "-serial").stdout.strip().split("=")[1]
    assert data["hashAlgorithm"] == "SHA256"
    assert re.fullmatch(r"[0-9a-f]{64}", data["issuerNameHash"])
    assert re.fullmatch(r"[0-9a-f]{64}", data["issuerKeyHash"])
    assert data["serialNumber"] == serial.lower().lstrip("0")  # OCPP: hex without leading zeroes
    assert data["responderURL"] == "http://127.0.0.1:1/ocsp"


def test_a_signed_csr_chains_to_the_ca_and_a_self_signed_certificate_does_not() -> None:
    with Pki.create() as pki:
        csr, key = pki.csr("CT-STATION-01")
        assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")
        assert Path(key).exists()
        signed, _ = pki.issue("CT-STATION-01", csr=csr)
        pki.path("signed.pem").write_text(signed)
        stranger, _ = pki.self_signed("CT-STATION-01")
        good = _openssl("verify", "-CAfile", str(pki.ca_cert), str(pki.path("signed.pem")))
        bad = _openssl("verify", "-CAfile", str(pki.ca_cert), str(stranger))
    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode != 0
