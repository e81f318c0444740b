"""Plug & Charge on the database: the contract-certificate roots the operator installs, and the answers to
Authorize with a contract certificate, GetCertificateStatus and Get15118EVCertificate as far as the database
and local checks go. What needs an outside lookup (OCSP, the contract-certificate provider) comes back as a
:class:`~csms.pki.lookups.Pending` for the host to finish after the commit (docs/architecture.md)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.pki import chain, lookups
from csms.services import authorization
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import ContractRoot

if TYPE_CHECKING:
    from cryptography import x509

KINDS = ("MO", "V2G")


def install_root(db: Session, pem: str, kind: str, now: datetime) -> ContractRoot:
    """Trust ``pem`` (one CA certificate) as a root of contract certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise Invalid(f"not a PEM certificate: {exc}") from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise Invalid("a contract-certificate root must be a CA certificate (basicConstraints CA:TRUE)")
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    if db.get(ContractRoot, fingerprint) is not None:
        raise Conflict(f"root {fingerprint} is installed already")
    row = ContractRoot(
        fingerprint=fingerprint,
        kind=kind,
        subject=cert.subject.rfc4514_string()[:500],
        not_after=cert.not_valid_after_utc,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        created_at=now,
    )
    db.add(row)
    db.flush()
    return row


def list_roots(db: Session) -> list[ContractRoot]:
    return list(db.scalars(select(ContractRoot).order_by(ContractRoot.created_at, ContractRoot.fingerprint)))


def remove_root(db: Session, fingerprint: str) -> None:
    row = db.get(ContractRoot, fingerprint.lower())
    if row is None:
        raise NotFound(f"root {fingerprint!r} is not installed")
    db.delete(row)
    db.flush()


def authorize(
    db: Session, report: ev.AuthorizationRequested, now: datetime
) -> ev.ContractAuthorization | lookups.ContractCheck:
    """C07: the eMAID's own status from the id tokens; the contract certificate's from its chain (when the
    station sent it: central contract validation, against the installed roots) and from OCSP — the OCSP data
    the station sent, and the responders the chain's certificates name."""
    token = authorization.authorize(db, report.id_token, now)
    asked: list[tuple[ev.CertificateId, x509.Certificate | None]] = []
    if report.certificate is not None:
        roots = chain.load_roots([row.pem for row in list_roots(db)])
        checked = chain.check(report.certificate, roots, now)
        if checked.status != chain.ACCEPTED:
            return lookups.contract_decision(token, checked.status)
        asked.extend(chain.ocsp_ids(checked.links))
    for cert_id in report.contract:
        if all(cert_id != known for known, _ in asked):
            asked.append((cert_id, None))
    if not asked:  # nothing names a responder: revocation cannot be checked
        return lookups.contract_decision(token, chain.NO_CERTIFICATE_AVAILABLE)
    return lookups.ContractCheck(token, tuple(asked), report.id_token)


def certificate_status(report: ev.CertificateStatusRequested) -> lookups.StatusCheck:
    return lookups.StatusCheck(report.certificate)


def ev_certificate(report: ev.EvCertificateRequested) -> lookups.ContractCertificateOrder:
    return lookups.ContractCertificateOrder(
        lookups.ContractRequest(report.schema_version, report.action, report.exi_request)
    )
