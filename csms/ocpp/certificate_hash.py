"""OCPP's ``CertificateHashDataType`` (GetInstalledCertificateIds, DeleteCertificate, ISO 15118
``iso15118CertificateHashData`` and ``OCSPRequestData``): the RFC 6960 CertID of a certificate — hashes of its
issuer's name and public key, and its serial number in hexadecimal without leading zeroes.

cryptography's OCSP request builder computes the CertID, so the hashes are the ones an OCSP responder
matches; this module only maps it to OCPP's field names (the one place both the CSMS and the twin do that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # cryptography is imported where a certificate is handled (~30 ms of a run's start otherwise)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes


def hash_algorithm(name: str) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """The hash OCPP's ``hashAlgorithm`` names (KeyError: not SHA256, SHA384 or SHA512)."""
    from cryptography.hazmat.primitives import hashes

    algorithms: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
        "SHA256": hashes.SHA256,
        "SHA384": hashes.SHA384,
        "SHA512": hashes.SHA512,
    }
    return algorithms[name]()


def certificate_hash_data(
    certificate: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256"
) -> dict[str, Any]:
    """``{"hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber"}`` of ``certificate``; for a
    self-signed root, ``issuer`` is the certificate itself."""
    from cryptography.x509 import ocsp

    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hash_algorithm(algorithm)).build()
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": request.issuer_name_hash.hex(),
        "issuerKeyHash": request.issuer_key_hash.hex(),
        "serialNumber": format(request.serial_number, "x"),
    }


def same_certificate(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two hash data name one certificate (hex compared case-insensitively, as stations differ)."""
    keys = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash")
    if any(str(a.get(k, "")).lower() != str(b.get(k, "")).lower() for k in keys):
        return False
    return str(a.get("serialNumber", "")).lower().lstrip("0") == str(b.get("serialNumber", "")).lower().lstrip("0")
