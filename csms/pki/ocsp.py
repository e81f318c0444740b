"""OCSP (RFC 6960) as the CSMS, an OCSP client, speaks it: the request for a certificate named by OCPP's
``OCSPRequestDataType`` (hashes of its issuer and its serial number), and the verdict on the responder's answer.

The answer counts only when it is signed by the certificate's issuer (its key hashes to ``issuerKeyHash``) or
by a responder certificate that issuer signed for OCSP signing, names the certificate asked for, and is not
stale (``nextUpdate`` passed). Everything else is ``BAD_ANSWER``: the status stays unknown.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from csms.domain.events import CertificateId
from csms.ocpp.certificate_hash import certificate_hash_data, hash_algorithm

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.x509 import ocsp


def certificate_id(
    certificate: x509.Certificate, issuer: x509.Certificate, responder_url: str, hash_algorithm: str = "SHA256"
) -> CertificateId:
    data = certificate_hash_data(certificate, issuer, hash_algorithm)
    return CertificateId(
        hash_algorithm, data["issuerNameHash"], data["issuerKeyHash"], data["serialNumber"], responder_url
    )


def key_hash(certificate: x509.Certificate, hash_algorithm: str) -> str:
    """The hash of the certificate's public key as OCSP's issuerKeyHash has it (hex)."""
    hashed: str = certificate_hash_data(certificate, certificate, hash_algorithm)["issuerKeyHash"]
    return hashed


def to_ocpp(cert_id: CertificateId) -> dict[str, str]:
    return {
        "hashAlgorithm": cert_id.hash_algorithm,
        "issuerNameHash": cert_id.issuer_name_hash,
        "issuerKeyHash": cert_id.issuer_key_hash,
        "serialNumber": cert_id.serial_number,
        "responderURL": cert_id.responder_url,
    }


def _matches(cert_id: CertificateId, single: ocsp.OCSPSingleResponse) -> bool:
    return (
        single.hash_algorithm.name.upper() == cert_id.hash_algorithm
        and single.issuer_name_hash.hex() == cert_id.issuer_name_hash
        and single.issuer_key_hash.hex() == cert_id.issuer_key_hash
        and single.serial_number == int(cert_id.serial_number, 16)
    )


def request(cert_id: CertificateId) -> bytes:
    """The DER OCSPRequest for one certificate (no nonce: responders of the V2G PKI pre-sign answers)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import ocsp

    built = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            bytes.fromhex(cert_id.issuer_name_hash),
            bytes.fromhex(cert_id.issuer_key_hash),
            int(cert_id.serial_number, 16),
            hash_algorithm(cert_id.hash_algorithm),
        )
        .build()
    )
    return built.public_bytes(serialization.Encoding.DER)


class Verdict(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # the responder does not know the certificate
    BAD_ANSWER = "bad answer"  # unsigned, signed by someone else, stale, not about this certificate, not OCSP
    NO_ANSWER = "no answer"  # the responder could not be reached in time


def verdict(
    cert_id: CertificateId, answer: bytes | None, now: datetime, issuer: x509.Certificate | None = None
) -> Verdict:
    """What the responder's ``answer`` says of ``cert_id`` (``issuer``: its issuer's certificate, when the
    caller has it; otherwise the answer must embed it)."""
    from cryptography.x509 import ocsp

    if answer is None:
        return Verdict.NO_ANSWER
    try:
        response = ocsp.load_der_ocsp_response(answer)
    except ValueError:
        return Verdict.BAD_ANSWER
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return Verdict.BAD_ANSWER
    single = next((one for one in response.responses if _matches(cert_id, one)), None)
    if single is None or not _signed_by_issuer(response, cert_id, issuer):
        return Verdict.BAD_ANSWER
    if single.this_update_utc > now or (single.next_update_utc is not None and single.next_update_utc < now):
        return Verdict.BAD_ANSWER
    return {
        ocsp.OCSPCertStatus.GOOD: Verdict.GOOD,
        ocsp.OCSPCertStatus.REVOKED: Verdict.REVOKED,
    }.get(single.certificate_status, Verdict.UNKNOWN)


def _is_issuer(certificate: x509.Certificate, cert_id: CertificateId) -> bool:
    try:
        return key_hash(certificate, cert_id.hash_algorithm) == cert_id.issuer_key_hash
    except (KeyError, ValueError, TypeError):
        return False


def _candidate_keys(response: ocsp.OCSPResponse, cert_id: CertificateId, issuer: x509.Certificate | None) -> list[Any]:
    """Keys that may sign this answer: the issuer's own (known to the caller, or embedded in the answer), or
    that of a delegated responder (OCSPSigning) which the embedded issuer certificate signed."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    embedded = list(response.certificates) + ([issuer] if issuer is not None else [])
    issuers = [cert for cert in embedded if _is_issuer(cert, cert_id)]
    keys = [cert.public_key() for cert in issuers]
    for delegate in response.certificates:
        try:
            usage = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in usage and any(_issued_by(delegate, one) for one in issuers):
            keys.append(delegate.public_key())
    return keys


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _signed_by_issuer(response: ocsp.OCSPResponse, cert_id: CertificateId, issuer: x509.Certificate | None) -> bool:
    return any(_signature_holds(key, response) for key in _candidate_keys(response, cert_id, issuer))


def _signature_holds(key: Any, response: ocsp.OCSPResponse) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True
