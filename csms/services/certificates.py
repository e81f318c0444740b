"""Station certificates on the database: what the CSMS's CA issued (SignCertificate), their delivery
(CertificateSigned), revocation and nearing expiry; and what stations reported installed
(GetInstalledCertificateIds / DeleteCertificate)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.ocpp.versions import OCPP16
from csms.pki import build
from csms.pki.csr import CsrRefused
from csms.services import security_events
from csms.services.config import CsmsConfig
from csms.services.errors import Conflict, NotFound
from csms.store.models import InstalledCertificate, IssuedCertificate

STATION_CERTIFICATE = "ChargingStationCertificate"


def as_dict(row: IssuedCertificate) -> dict[str, Any]:
    return {
        "station_id": row.station_id,
        "certificate_type": row.certificate_type,
        "serial": row.serial,
        "fingerprint": row.fingerprint,
        "subject": row.subject,
        "not_before": row.not_before.isoformat(),
        "not_after": row.not_after.isoformat(),
        "issued_at": row.issued_at.isoformat(),
        "delivery": row.delivery,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def installed_as_dict(row: InstalledCertificate) -> dict[str, Any]:
    return {
        "certificate_type": row.certificate_type,
        "hash_data": hash_data(row),
        "reported_at": row.reported_at.isoformat(),
    }


def hash_data(row: InstalledCertificate) -> dict[str, str]:
    return {
        "hashAlgorithm": row.hash_algorithm,
        "issuerNameHash": row.issuer_name_hash,
        "issuerKeyHash": row.issuer_key_hash,
        "serialNumber": row.serial_number,
    }


# ---- SignCertificate ----------------------------------------------------------------------------------------------
def sign_request(
    db: Session, station_id: str, report: ev.CertificateSigningRequested, now: datetime, config: CsmsConfig
) -> ev.CertificateSigningDecision:
    """Check the CSR and, when it passes, issue and store the certificate (``csr_rejected`` or
    ``certificate_issued`` security event)."""
    kind = report.certificate_type
    ca = config.station_ca
    if ca is None:
        return _rejected(db, station_id, kind, now, "this CSMS has no station CA configured")
    try:
        cert = ca.sign(report.csr, station_id, now)
    except CsrRefused as exc:
        return _rejected(db, station_id, kind, now, str(exc))
    serial = build.serial_hex(cert)
    db.add(
        IssuedCertificate(
            station_id=station_id,
            certificate_type=kind,
            serial=serial,
            fingerprint=build.fingerprint(cert),
            subject=cert.subject.rfc4514_string()[:255],
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            issued_at=now,
            delivery="sending",
            pem=build.cert_pem(cert),
        )
    )
    detail = {"serial": serial, "certificate_type": kind, "not_after": cert.not_valid_after_utc.isoformat()}
    security_events.record(db, type="certificate_issued", at=now, station_id=station_id, detail=detail)
    return ev.CertificateSigningDecision("Accepted", kind, ca.chain_pem(cert), serial)


def _rejected(db: Session, station_id: str, kind: str, now: datetime, reason: str) -> ev.CertificateSigningDecision:
    detail = {"certificate_type": kind, "reason": reason}
    security_events.record(db, type="csr_rejected", at=now, station_id=station_id, detail=detail)
    return ev.CertificateSigningDecision("Rejected", kind, reason=reason)


def delivered(db: Session, serial: str, outcome: str) -> None:
    """What became of the CertificateSigned call: Accepted, Rejected (by the station) or failed."""
    row = db.scalars(select(IssuedCertificate).where(IssuedCertificate.serial == serial)).first()
    if row is not None:
        row.delivery = outcome[:16]


# ---- revocation and expiry ----------------------------------------------------------------------------------------
def revoke(db: Session, serial: str, now: datetime) -> IssuedCertificate:
    """Raises NotFound: no certificate with that serial.  Conflict: revoked already."""
    row = db.scalars(select(IssuedCertificate).where(IssuedCertificate.serial == serial.lower())).first()
    if row is None:
        raise NotFound(f"no certificate with serial {serial!r}")
    if row.revoked_at is not None:
        raise Conflict(f"certificate {serial} was revoked at {row.revoked_at.isoformat()}")
    row.revoked_at = now
    return row


def is_revoked(db: Session, serial: str) -> bool:
    query = select(IssuedCertificate.id).where(
        IssuedCertificate.serial == serial, IssuedCertificate.revoked_at.is_not(None)
    )
    return db.scalars(query).first() is not None


def revoked_among(db: Session, serials: set[str]) -> set[str]:
    query = select(IssuedCertificate.serial).where(
        IssuedCertificate.serial.in_(serials), IssuedCertificate.revoked_at.is_not(None)
    )
    return set(db.scalars(query))


def issued(db: Session, station_id: str | None = None) -> list[IssuedCertificate]:
    query = select(IssuedCertificate).order_by(IssuedCertificate.id)
    if station_id is not None:
        query = query.where(IssuedCertificate.station_id == station_id)
    return list(db.scalars(query))


#: Stations per query of :func:`nearing_end` (SQLite allows 32,766 bound parameters, old builds 999).
STATIONS_PER_QUERY = 500


def current(db: Session, station_id: str, kind: str = STATION_CERTIFICATE) -> IssuedCertificate | None:
    """The station's newest certificate of this kind that it accepted and that is not revoked."""
    query = (
        select(IssuedCertificate)
        .where(
            IssuedCertificate.station_id == station_id,
            IssuedCertificate.certificate_type == kind,
            IssuedCertificate.delivery == "Accepted",
            IssuedCertificate.revoked_at.is_(None),
        )
        .order_by(IssuedCertificate.not_after.desc(), IssuedCertificate.id.desc())
    )
    return db.scalars(query).first()


def nearing_end(db: Session, station_ids: list[str], now: datetime, days: int) -> list[IssuedCertificate]:
    """Of these stations, the current certificates (as :func:`current`) that end within ``days``, in the
    order of ``station_ids``. One query per :data:`STATIONS_PER_QUERY` stations: a reconnect storm checks
    thousands at once."""
    horizon = now + timedelta(days=days)
    newest: dict[str, IssuedCertificate] = {}
    for start in range(0, len(station_ids), STATIONS_PER_QUERY):
        query = (
            select(IssuedCertificate)
            .where(
                IssuedCertificate.station_id.in_(station_ids[start : start + STATIONS_PER_QUERY]),
                IssuedCertificate.certificate_type == STATION_CERTIFICATE,
                IssuedCertificate.delivery == "Accepted",
                IssuedCertificate.revoked_at.is_(None),
            )
            .order_by(IssuedCertificate.not_after.desc(), IssuedCertificate.id.desc())
        )
        for row in db.scalars(query):
            newest.setdefault(row.station_id, row)
    rows = (newest.get(station_id) for station_id in dict.fromkeys(station_ids))
    return [row for row in rows if row is not None and row.not_after <= horizon]


# ---- what stations have installed ---------------------------------------------------------------------------------
def store_installed(
    db: Session, station_id: str, chains: list[dict[str, Any]], asked: list[str], now: datetime
) -> None:
    """A GetInstalledCertificateIds answer (``chains``: 2.0.1 certificateHashDataChain entries, or 1.6 hash
    data with the type asked for) replaces what was known of the ``asked`` types (all when empty)."""
    query = delete(InstalledCertificate).where(InstalledCertificate.station_id == station_id)
    if asked:
        query = query.where(InstalledCertificate.certificate_type.in_(asked))
    db.execute(query)
    for chain in chains:
        data = chain["certificateHashData"]
        db.add(
            InstalledCertificate(
                station_id=station_id,
                certificate_type=chain["certificateType"],
                hash_algorithm=data["hashAlgorithm"],
                issuer_name_hash=data["issuerNameHash"],
                issuer_key_hash=data["issuerKeyHash"],
                serial_number=data["serialNumber"],
                reported_at=now,
            )
        )


def reported_chains(version: str, asked: list[str], payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The certificates of a GetInstalledCertificateIds answer as 2.0.1 certificateHashDataChain entries
    (1.6 answers bare hash data of the one type asked for, under its 1.6 name). Child certificates of a
    2.0.1 V2G chain are not kept."""
    if version == OCPP16:
        kind = asked[0] if asked else "CSMSRootCertificate"
        return [
            {"certificateType": kind, "certificateHashData": data} for data in payload.get("certificateHashData", [])
        ]
    return list(payload.get("certificateHashDataChain", []))


def installed(db: Session, station_id: str) -> list[InstalledCertificate]:
    query = select(InstalledCertificate).where(InstalledCertificate.station_id == station_id)
    return list(db.scalars(query.order_by(InstalledCertificate.id)))


def forget_installed(db: Session, station_id: str, data: dict[str, str]) -> None:
    """The station deleted this certificate (DeleteCertificate Accepted)."""
    db.execute(
        delete(InstalledCertificate).where(
            InstalledCertificate.station_id == station_id,
            InstalledCertificate.serial_number == data["serialNumber"],
            InstalledCertificate.issuer_name_hash == data["issuerNameHash"],
            InstalledCertificate.issuer_key_hash == data["issuerKeyHash"],
        )
    )
