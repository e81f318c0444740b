"""The OCSP client's verdicts and the contract-chain check, on answers and chains made with ``cryptography``:
only an answer the certificate's issuer (or its delegated responder) signed, about that certificate, and
still fresh, counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.ocpp.errors import OcppError
from csms.ocpp.v201.adapter import certificate_id as parse_certificate_id
from csms.pki import chain
from csms.pki import ocsp as pki_ocsp
from csms.pki.local_ca import LocalTestCa

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
URL = "http://127.0.0.1:1/ocsp"


@pytest.fixture
def ca() -> LocalTestCa:
    return LocalTestCa.generate("MO root", NOW - timedelta(days=1), URL)


def ask(ca: LocalTestCa, cert: x509.Certificate) -> tuple[object, bytes]:
    cert_id = pki_ocsp.certificate_id(cert, ca.cert, URL)
    return cert_id, ca.ocsp_answer(pki_ocsp.request(cert_id), NOW)


def test_good_revoked_and_unknown(ca):
    good, revoked = ca.issue("A", NOW), ca.issue("B", NOW)
    ca.revoke(revoked, NOW)
    stranger = LocalTestCa.generate("MO root", NOW).issue("C", NOW)  # same name, another key: not ca's
    verdicts = [pki_ocsp.verdict(*ask(ca, cert), NOW) for cert in (good, revoked)]
    unknown_id = pki_ocsp.certificate_id(stranger, ca.cert, URL)  # claims ca as issuer; ca never issued it
    unknown = pki_ocsp.verdict(unknown_id, ca.ocsp_answer(pki_ocsp.request(unknown_id), NOW), NOW)
    assert verdicts == [pki_ocsp.Verdict.GOOD, pki_ocsp.Verdict.REVOKED]
    assert unknown is pki_ocsp.Verdict.UNKNOWN


def test_answers_that_do_not_count(ca):
    cert, other = ca.issue("A", NOW), ca.issue("B", NOW)
    cert_id, answer = ask(ca, cert)
    _, about_other = ask(ca, other)
    impostor = LocalTestCa.generate("MO root", NOW)  # signs an answer about ca's certificate with its own key
    forged = impostor.ocsp_answer(pki_ocsp.request(cert_id), NOW)
    impostor.issued[cert.serial_number] = cert
    forged_good = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=bytes.fromhex(cert_id.issuer_name_hash),
            issuer_key_hash=bytes.fromhex(cert_id.issuer_key_hash),
            serial_number=cert.serial_number,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW - timedelta(seconds=1),
            next_update=NOW + timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, impostor.cert)
        .certificates([impostor.cert])
        .sign(impostor.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    bad = pki_ocsp.Verdict.BAD_ANSWER
    assert pki_ocsp.verdict(cert_id, forged_good, NOW) is bad, "an answer signed by another key counted"
    assert pki_ocsp.verdict(cert_id, forged, NOW) is bad
    assert pki_ocsp.verdict(cert_id, about_other, NOW) is bad, "an answer about another certificate counted"
    assert pki_ocsp.verdict(cert_id, answer, NOW + timedelta(hours=2)) is bad, "a stale answer counted"
    assert pki_ocsp.verdict(cert_id, b"<html>proxy error</html>", NOW) is bad
    assert pki_ocsp.verdict(cert_id, None, NOW) is pki_ocsp.Verdict.NO_ANSWER
    assert pki_ocsp.verdict(cert_id, answer, NOW) is pki_ocsp.Verdict.GOOD


def test_a_delegated_responder_signed_by_the_issuer_counts(ca):
    cert = ca.issue("A", NOW)
    cert_id = pki_ocsp.certificate_id(cert, ca.cert, URL)
    key = ec.generate_private_key(ec.SECP256R1())
    delegate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MO OCSP responder")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )

    def answer(signer_cert: x509.Certificate, signer_key: ec.EllipticCurvePrivateKey, embedded: list) -> bytes:
        return (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=bytes.fromhex(cert_id.issuer_name_hash),
                issuer_key_hash=bytes.fromhex(cert_id.issuer_key_hash),
                serial_number=cert.serial_number,
                algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=NOW - timedelta(seconds=1),
                next_update=None,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
            .certificates(embedded)
            .sign(signer_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )

    assert pki_ocsp.verdict(cert_id, answer(delegate, key, [delegate, ca.cert]), NOW) is pki_ocsp.Verdict.GOOD
    assert pki_ocsp.verdict(cert_id, answer(delegate, key, [delegate]), NOW, issuer=ca.cert) is pki_ocsp.Verdict.GOOD
    # Without the issuer's certificate nothing proves the delegate speaks for it.
    assert pki_ocsp.verdict(cert_id, answer(delegate, key, [delegate]), NOW) is pki_ocsp.Verdict.BAD_ANSWER


def test_chain_statuses(ca):
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    twin = LocalTestCa.generate("MO root", NOW - timedelta(days=1))  # same name as ca, another key
    expired = ca.issue("E", NOW, valid_for=timedelta(days=1), not_before=NOW - timedelta(days=3))
    checks = {
        "good": chain.check(pem(ca.issue("A", NOW)), [ca.cert], NOW).status,
        "forged": chain.check(pem(twin.issue("F", NOW)), [ca.cert], NOW).status,
        "expired": chain.check(pem(expired), [ca.cert], NOW).status,
        "unknown root": chain.check(pem(ca.issue("U", NOW)), [], NOW).status,
        "garbage": chain.check("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", [ca.cert], NOW).status,
    }
    assert checks == {
        "good": "Accepted",
        "forged": "SignatureError",
        "expired": "CertificateExpired",
        "unknown root": "CertChainError",
        "garbage": "CertChainError",
    }


def test_ocsp_request_data_must_be_hex_and_as_long_as_the_digest():
    good = {"hashAlgorithm": "SHA256", "issuerNameHash": "AB" * 32, "issuerKeyHash": "0" * 64, "serialNumber": "00Ff"}
    good["responderURL"] = URL
    bad_ones = (
        {"issuerNameHash": "zz" * 32},
        {"issuerKeyHash": "00"},
        {"serialNumber": "x1"},
        {"hashAlgorithm": "SHA512"},
    )
    for bad in bad_ones:
        with pytest.raises(OcppError) as raised:
            parse_certificate_id({**good, **bad})
        assert raised.value.kind.name == "PROPERTY_CONSTRAINT", bad
    parsed = parse_certificate_id(good)
    assert (parsed.serial_number, parsed.issuer_name_hash) == ("ff", "ab" * 32)
