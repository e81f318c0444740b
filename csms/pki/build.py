"""Certificates and keys: CAs, leaves signed by a CA (server, station client), PEM in and out."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # cryptography is imported by the functions (~30 ms of a virtual-time run's start otherwise)
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]  # noqa: UP007
    PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey]  # noqa: UP007
#: Backdating of every new certificate, for stations whose clock runs a little behind.
BACKDATE = timedelta(minutes=5)


def new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def name(common_name: str, organisation: str | None) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)] if organisation else []
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(*, ca: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=not ca, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def make_ca(
    subject: x509.Name,
    now: datetime,
    days: int,
    *,
    key: PrivateKey | None = None,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    path_length: int | None = 0,
) -> tuple[x509.Certificate, PrivateKey]:
    """A root CA (self-signed) or, with ``issuer``, a sub-CA it signs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = key or new_key()
    issuer_name, signer = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(signer, hashes.SHA256()), key


def issue(
    issuer: tuple[x509.Certificate, PrivateKey],
    subject: x509.Name,
    public_key: PublicKey,
    now: datetime,
    days: float,
    *,
    server_names: tuple[str, ...] = (),
    not_before: datetime | None = None,
    ocsp_url: str | None = None,
) -> x509.Certificate:
    """A leaf signed by ``issuer``: a TLS server certificate with ``server_names`` (DNS names or IP
    addresses), else a station's client certificate; naming ``ocsp_url`` as its OCSP responder when given."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

    ca_cert, ca_key = issuer
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    start = not_before if not_before is not None else now - BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(server_names)), critical=False)
    if ocsp_url is not None:
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def firmware_signer(
    root: tuple[x509.Certificate, PrivateKey], common_name: str, now: datetime, days: float
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A firmware-signing leaf (code signing) issued by a manufacturer's ``root``, and its key: what signs the
    images a station checks before installing them (UpdateFirmware ``signingCertificate``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    root_cert, root_key = root
    key = new_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name(common_name, organisation(root_cert.subject)))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return certificate, key


def _alt_names(server_names: tuple[str, ...]) -> list[x509.GeneralName]:
    from cryptography import x509

    out: list[x509.GeneralName] = []
    for entry in server_names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            out.append(x509.DNSName(entry))
    return out


def csr(key: PrivateKey, common_name: str, organisation: str | None) -> x509.CertificateSigningRequest:
    """What a station sends in SignCertificate (the tests' and the conformance cases' stations)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = x509.CertificateSigningRequestBuilder().subject_name(name(common_name, organisation))
    return builder.sign(key, hashes.SHA256())


def cert_pem(*certs: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)


def key_pem(key: PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def load_key(pem: bytes) -> PrivateKey:
    """Raises ValueError: not a PEM private key, or neither EC nor RSA."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"a CA key must be EC or RSA, not {type(key).__name__}")
    return key


def serial_hex(cert: x509.Certificate) -> str:
    """The serial as OCPP writes it (lower-case hex, no leading zeros)."""
    return format(cert.serial_number, "x")


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


def common_name(subject: x509.Name) -> str | None:
    from cryptography.x509.oid import NameOID

    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[-1].value) if names else None


def organisation(subject: x509.Name) -> str | None:
    from cryptography.x509.oid import NameOID

    names = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(names[-1].value) if names else None
