"""The checks a station's certificate signing request must pass before the CSMS's CA signs it (OCPP 2.0.1
A02/A03, 1.6 security whitepaper): a PEM CSR whose signature verifies, a key the CA accepts (RSA of at
least 2048 bits, EC on P-256 or P-384), the station's own id as subject CN and the configured organisation
as subject O."""

from __future__ import annotations

from typing import TYPE_CHECKING

from csms.pki.build import common_name, organisation

if TYPE_CHECKING:
    from cryptography import x509

    from csms.pki.build import PublicKey

MIN_RSA_BITS = 2048
EC_CURVES = frozenset({"secp256r1", "secp384r1"})
MAX_CSR_CHARS = 5500  # the 2.0.1 schema's limit; 1.6 allows the same


class CsrRefused(ValueError):
    """The CSR fails a check; ``str()`` says which."""


def checked_csr(pem: str, station_id: str, organisation_name: str | None) -> tuple[x509.Name, PublicKey]:
    """The subject and key of a CSR that passes every check.

    Raises:
        CsrRefused: unreadable, bad signature, weak or unknown key, or a subject that is not the station's.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if len(pem) > MAX_CSR_CHARS:
        raise CsrRefused("the CSR is too long")
    try:
        request = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CsrRefused("not a PEM certificate signing request") from None
    if not request.is_signature_valid:
        raise CsrRefused("the CSR's signature does not verify")
    key = request.public_key()
    _check_key(key)
    cn = common_name(request.subject)
    if cn != station_id:
        raise CsrRefused(f"subject CN {cn!r} is not the station's id {station_id!r}")
    if organisation_name is not None and organisation(request.subject) != organisation_name:
        raise CsrRefused(f"subject O {organisation(request.subject)!r} is not {organisation_name!r}")
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return request.subject, key


def _check_key(key: object) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(f"RSA key of {key.key_size} bits: at least {MIN_RSA_BITS} needed")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise CsrRefused(f"EC curve {key.curve.name}: P-256 or P-384 needed")
    else:
        raise CsrRefused(f"{type(key).__name__}: an RSA or EC key is needed")
