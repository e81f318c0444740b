"""The built-in contract-certificate provider: a local test CA, standing in for a mobility operator's PKI.

It issues contract certificates (the eMAID as subject CN, an OCSP responder URL in Authority Information
Access when it has one), keeps which ones it revoked, and answers OCSP requests about them, signed with its
own key. It is a *test* CA: its key lives in memory or in a file next to it, and nothing about it is a
production PKI.

What it does with an EV's ``exiRequest`` (Get15118EVCertificate): chargetwin has no EXI codec, so the
CertificateInstallationReq / CertificateUpdateReq is **not decoded**. The request's bytes only name the
contract: the eMAID is ``ZZ-CTW-C`` and the first eight hex digits of their SHA-256, the same request giving
the same eMAID. The CA makes a new key pair and a contract certificate for that eMAID, and answers with
``exiResponse`` = base64 of the PEM chain (contract certificate, then the CA certificate). That is not an
EXI CertificateInstallationRes: no EV could read it, the contract's private key is not returned (a real
response carries it encrypted to the EV's OEM provisioning key, which sits inside the EXI request), and
nothing is signed with a V2G provisioning certificate. A real deployment plugs a real provider into the
same :class:`~csms.pki.lookups.ContractProvider` interface.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from csms.pki.lookups import ContractAnswer, ContractRequest
from csms.pki.ocsp import key_hash

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

#: How long the CA's OCSP answers may be relied upon.
OCSP_VALIDITY = timedelta(hours=1)


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chargetwin test CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def emaid_for(exi_request: bytes) -> str:
    return f"ZZ-CTW-C{hashlib.sha256(exi_request).hexdigest()[:8].upper()}"


@dataclass
class LocalTestCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    #: Where its OCSP responder answers (written into the certificates it issues); None: no OCSP URL.
    responder_url: str | None = None
    revoked: dict[int, datetime] = field(default_factory=dict)
    issued: dict[int, x509.Certificate] = field(default_factory=dict)

    @classmethod
    def generate(cls, common_name: str, now: datetime, responder_url: str | None = None) -> LocalTestCa:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key, responder_url)

    @property
    def cert_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self,
        emaid: str,
        now: datetime,
        *,
        valid_for: timedelta = timedelta(days=30),
        not_before: datetime | None = None,
    ) -> x509.Certificate:
        """A contract certificate for ``emaid`` with a new key (``not_before``: backdate it, e.g. expired)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or now - timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, emaid)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if self.responder_url is not None:
            access = x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.responder_url)
            )
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        self.issued[cert.serial_number] = cert
        return cert

    def revoke(self, cert: x509.Certificate, at: datetime) -> None:
        self.revoked[cert.serial_number] = at

    # ---- the OCSP responder --------------------------------------------------------------------------------
    def ocsp_answer(self, request_der: bytes, now: datetime) -> bytes:
        """The DER OCSPResponse to a DER OCSPRequest: good, revoked, or unknown (not issued by this CA, or a
        request naming another issuer); malformed requests get ``malformedRequest``."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        try:
            asked = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                serialization.Encoding.DER
            )
        serial = asked.serial_number
        cert = self.issued.get(serial)
        mine = cert is not None and self._names_me(asked)
        status = ocsp.OCSPCertStatus.UNKNOWN
        if mine:
            status = ocsp.OCSPCertStatus.REVOKED if serial in self.revoked else ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=asked.issuer_name_hash,
            issuer_key_hash=asked.issuer_key_hash,
            serial_number=serial,
            algorithm=asked.hash_algorithm,
            cert_status=status,
            this_update=now - timedelta(seconds=1),
            next_update=now + OCSP_VALIDITY,
            revocation_time=self.revoked.get(serial) if status is ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert).certificates([self.cert])
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _names_me(self, asked: ocsp.OCSPRequest) -> bool:
        algorithm = asked.hash_algorithm.name.upper()
        return key_hash(self.cert, algorithm) == asked.issuer_key_hash.hex()

    # ---- the contract-certificate provider -----------------------------------------------------------------
    def request(self, request: ContractRequest, now: datetime) -> ContractAnswer:
        from cryptography.hazmat.primitives import serialization

        try:
            raw = base64.b64decode(request.exi_request, validate=True)
        except (binascii.Error, ValueError):
            return ContractAnswer("Failed", "")
        cert = self.issue(emaid_for(raw), now)
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        return ContractAnswer("Accepted", base64.b64encode(chain).decode())
