"""A contract-certificate chain (OCPP's ``AuthorizeRequest.certificate``: PEM, leaf first, up to but excluding
the root) checked against the MO/V2G roots the operator installed in the CSMS (C07: central contract
validation). The answer is OCPP's AuthorizeCertificateStatusEnumType; revocation is OCSP's (:mod:`.ocsp`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from csms.domain.events import CertificateId
from csms.pki.ocsp import certificate_id

if TYPE_CHECKING:
    from cryptography import x509

ACCEPTED = "Accepted"
SIGNATURE_ERROR = "SignatureError"
CERTIFICATE_EXPIRED = "CertificateExpired"
CERTIFICATE_REVOKED = "CertificateRevoked"
NO_CERTIFICATE_AVAILABLE = "NoCertificateAvailable"
CERT_CHAIN_ERROR = "CertChainError"
CONTRACT_CANCELLED = "ContractCancelled"


@dataclass(frozen=True)
class ChainCheck:
    """``status``: the chain's own verdict; ``links``: (certificate, its issuer) from the leaf up, to ask
    OCSP about when the status is Accepted."""

    status: str
    links: tuple[tuple[x509.Certificate, x509.Certificate], ...] = field(default=())

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.links[0][0] if self.links else None


def load_roots(pems: list[str]) -> list[x509.Certificate]:
    from cryptography import x509

    return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def check(pem_chain: str, roots: list[x509.Certificate], now: datetime) -> ChainCheck:
    """Order of the checks: readable, within validity (every certificate and the root), issued one by the
    next, ending at an installed root."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        chain = x509.load_pem_x509_certificates(pem_chain.encode())
    except ValueError:
        return ChainCheck(CERT_CHAIN_ERROR)
    top = chain[-1]
    root = next((one for one in roots if one.subject == top.issuer), None)
    if root is None:
        return ChainCheck(CERT_CHAIN_ERROR)
    full = [*chain, root]
    if any(not (one.not_valid_before_utc <= now <= one.not_valid_after_utc) for one in full):
        return ChainCheck(CERTIFICATE_EXPIRED)
    links = tuple(itertools.pairwise(full))
    for certificate, issuer in links:
        try:
            certificate.verify_directly_issued_by(issuer)
        except ValueError:
            return ChainCheck(CERT_CHAIN_ERROR)  # the issuer named is not the next certificate
        except (InvalidSignature, TypeError):
            return ChainCheck(SIGNATURE_ERROR)
    return ChainCheck(ACCEPTED, links)


def ocsp_url(certificate: x509.Certificate) -> str | None:
    """The OCSP responder the certificate names (Authority Information Access), if any."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        if description.access_method == AuthorityInformationAccessOID.OCSP:
            value = description.access_location.value
            return value if isinstance(value, str) else None
    return None


def ocsp_ids(
    links: tuple[tuple[x509.Certificate, x509.Certificate], ...],
) -> list[tuple[CertificateId, x509.Certificate]]:
    """What to ask OCSP about: every certificate of the chain that names a responder, with its issuer."""
    ids = []
    for certificate, issuer in links:
        url = ocsp_url(certificate)
        if url is not None:
            ids.append((certificate_id(certificate, issuer, url), issuer))
    return ids
