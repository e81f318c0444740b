"""CertificateHashData is the RFC 6960 CertID: checked against hashes computed by hand from the DER."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.ocpp.certificate_hash import certificate_hash_data, same_certificate


def _cert(subject: str, issuer_name: str, key, signer, serial: int) -> x509.Certificate:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .sign(signer, hashes.SHA256())
    )


def test_hashes_are_those_of_the_issuer_name_and_key_and_the_serial_has_no_leading_zeroes():
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _cert("Root", "Root", root_key, root_key, 1)
    leaf = _cert("CP-1", "Root", leaf_key, root_key, 0x0ABC)

    data = certificate_hash_data(leaf, root)

    point = root.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert data == {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(root.subject.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(point).hexdigest(),
        "serialNumber": "abc",
    }
    assert certificate_hash_data(root, root)["serialNumber"] == "1"
    assert (
        certificate_hash_data(leaf, root, "SHA384")["issuerNameHash"]
        == hashlib.sha384(root.subject.public_bytes()).hexdigest()
    )


def test_same_certificate_ignores_case_and_leading_zeroes_but_not_other_fields():
    a = {"hashAlgorithm": "SHA256", "issuerNameHash": "AB", "issuerKeyHash": "cd", "serialNumber": "0abc"}
    assert same_certificate(a, {**a, "issuerNameHash": "ab", "serialNumber": "ABC"})
    assert not same_certificate(a, {**a, "serialNumber": "abd"})
    assert not same_certificate(a, {**a, "hashAlgorithm": "SHA384"})
