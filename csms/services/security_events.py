"""Security events: one stored, searchable record for what a station reports (SecurityEventNotification,
``origin`` "station") and for what the CSMS itself detects (``origin`` "csms": refused handshakes, bad
passwords, bad or revoked certificates, rejected CSRs, throttled clients…).

Every new record is queued for the webhooks (``security_event.recorded``). An event the CSMS detected about a
known station also raises that station's ``security_event`` alert (one open alert per station; an operator
resolves it); station-reported events reach the alert engine through the committed report instead.

A hostile client can make the CSMS detect thousands of events a minute. Repeats of one event (same type,
origin, station and source address) within :data:`COALESCE_S` are therefore folded into the first record:
its ``detail`` counts them (``repeats``) and keeps the time of the last one (``last_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from csms.alerts.engine import SECURITY_EVENT
from csms.services import alerts, webhooks
from csms.services.errors import Invalid
from csms.store.models import SecurityEventRow, Station

ORIGINS = ("csms", "station")
COALESCE_S = 60.0

#: The types the CSMS records (stations report the types of the OCPP security-event list).
CSMS_TYPES = {
    "handshake_refused": "a connection was refused at the WebSocket handshake (reason in detail)",
    "unknown_station": "a connection claimed a station id that is not provisioned",
    "bad_password": "a station's HTTP Basic credentials were wrong or missing",
    "throttled": "handshakes refused without a check after repeated failures (per id or address)",
    "frame_flood": "a station's connection was closed (1008) for sending frames far beyond its rate",
    "bad_certificate": "a TLS client certificate was refused (expired, self-signed, wrong CA or name)",
    "revoked_certificate": "a station presented a certificate the CSMS revoked",
    "csr_rejected": "a SignCertificate request failed the CSR checks",
    "certificate_issued": "the CSMS's CA signed a station certificate",
    "ocsp_failed": "an OCSP lookup failed or answered revoked",
    "profile_downgrade_refused": "a change would have lowered a station's security profile",
    "openadr_wrong_signature": "the OpenADR VEN refused a VTN message signed by another certificate or not verifying",
    "openadr_expired_signature": "the OpenADR VEN refused a VTN message signed too long ago (ReplayProtect)",
    "openadr_replayed": "the OpenADR VEN refused a VTN message whose signature it had seen before",
    "openadr_unsigned": "the OpenADR VEN, told to check signatures, refused an unsigned VTN message",
    "openadr_bad_message": "the OpenADR VEN refused a VTN message that is not valid OpenADR 2.0b",
    "openadr_unknown_resource": "the OpenADR VEN refused an event for a resource no enrolled site is named by",
}


def as_dict(row: SecurityEventRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "type": row.type,
        "origin": row.origin,
        "station_id": row.station_id,
        "source": row.source,
        "detail": row.detail,
    }


def record(
    db: Session,
    *,
    type: str,
    at: datetime,
    station_id: str | None = None,
    source: str | None = None,
    detail: dict[str, Any] | None = None,
    origin: str = "csms",
) -> SecurityEventRow:
    """Store one event (or count it as a repeat of the same event within :data:`COALESCE_S`)."""
    if origin not in ORIGINS:
        raise Invalid(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    source = source[:64] if source else None
    repeated = _recent_same(db, type, origin, station_id, source, at)
    if repeated is not None:
        detail_now = dict(repeated.detail)
        detail_now["repeats"] = int(detail_now.get("repeats", 0)) + 1
        detail_now["last_at"] = at.isoformat()
        repeated.detail = detail_now
        db.flush()
        return repeated
    row = SecurityEventRow(
        at=at, type=type[:50], origin=origin, station_id=station_id, source=source, detail=dict(detail or {})
    )
    db.add(row)
    db.flush()
    webhooks.enqueue(db, "security_event.recorded", as_dict(row), at)
    if origin == "csms" and station_id is not None and db.get(Station, station_id) is not None:
        details = {"type": type, "origin": origin, "security_event_id": row.id, **row.detail}
        alerts.raise_alert(db, SECURITY_EVENT, station_id, None, "warning", at, details)
    return row


def _recent_same(
    db: Session, type_: str, origin: str, station_id: str | None, source: str | None, at: datetime
) -> SecurityEventRow | None:
    query = select(SecurityEventRow).where(
        SecurityEventRow.type == type_,
        SecurityEventRow.origin == origin,
        SecurityEventRow.at >= at - timedelta(seconds=COALESCE_S),
        SecurityEventRow.at <= at,
    )
    for column, value in ((SecurityEventRow.station_id, station_id), (SecurityEventRow.source, source)):
        query = query.where(column.is_(None) if value is None else column == value)
    return db.scalars(query.order_by(SecurityEventRow.id.desc()).limit(1)).first()


def query(
    *,
    station_id: str | None = None,
    type: str | None = None,
    origin: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    organisation_id: int | None = None,
) -> Select[SecurityEventRow]:
    """Events matching every given filter, newest first (``since`` inclusive, ``until`` exclusive)."""
    stmt = select(SecurityEventRow)
    if organisation_id is not None:  # events of ids that name no station of it (a made-up id) stay out
        own = select(Station.id).where(Station.organisation_id == organisation_id)
        stmt = stmt.where(SecurityEventRow.station_id.in_(own))
    if station_id is not None:
        stmt = stmt.where(SecurityEventRow.station_id == station_id)
    if type is not None:
        stmt = stmt.where(SecurityEventRow.type == type)
    if origin is not None:
        if origin not in ORIGINS:
            raise Invalid(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
        stmt = stmt.where(SecurityEventRow.origin == origin)
    if source is not None:
        stmt = stmt.where(SecurityEventRow.source == source)
    if since is not None:
        stmt = stmt.where(SecurityEventRow.at >= since)
    if until is not None:
        stmt = stmt.where(SecurityEventRow.at < until)
    return stmt.order_by(SecurityEventRow.at.desc(), SecurityEventRow.id.desc())


def list_events(db: Session, *, limit: int = 100, offset: int = 0, **filters: Any) -> list[SecurityEventRow]:
    return list(db.scalars(query(**filters).limit(limit).offset(offset)))
