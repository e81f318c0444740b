"""The audit trail: who changed what, before and after, and every refusal of a write.

A :class:`Collector` is put in an ORM session's ``info`` (by the API for each unsafe request, by the CLI for
each command); the flush listener below records every row that session inserts, updates or deletes, with its
columns before and after (secrets masked). :func:`record` then writes one :class:`AuditEntry`. Nothing here
updates or deletes an entry: the table is append-only, and the database enforces it (triggers).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, event, inspect, or_, select
from sqlalchemy.orm import Session

from csms.store.models import AuditEntry, ConsoleSession, SecurityEventRow, SignInFailure, Station

MASK = "********"
#: Tables whose changes are not worth an entry of their own: a sign-in is audited as such.
_SKIPPED = frozenset({AuditEntry.__tablename__, ConsoleSession.__tablename__, SignInFailure.__tablename__})
_SECRET_NAMES = frozenset({"csrf_token", "authorizationkey", "basicauthpassword", "code", "token_hash"})
MAX_REQUEST_BYTES = 16 * 1024
MAX_OBJECTS = 200


def is_secret(name: str) -> bool:
    """A password, a secret, a hash of one, a CSRF token (``previous_password_expires_at`` is not one)."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(("password", "_hash")) or "secret" in lowered


def plain(value: Any) -> Any:
    """A value as JSON can hold it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def masked(value: Any) -> Any:
    """JSON with the values of secret-looking keys masked, and the ``value`` beside a secret-looking
    ``key``/``variable`` name (ChangeConfiguration AuthorizationKey, SetVariables BasicAuthPassword)."""
    if isinstance(value, dict):
        named = " ".join(str(value.get(k, "")) for k in ("key", "variable", "name") if isinstance(value.get(k), str))
        out = {}
        for k, v in value.items():
            secret = is_secret(str(k)) or (k == "value" and named and is_secret(named))
            out[k] = MASK if secret and v is not None else masked(v)
        return out
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


@dataclass
class Collector:
    """The rows one request or command changed: ``before``/``after`` by ``table:key``."""

    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: dict[str, dict[str, Any]] = field(default_factory=dict)
    first: tuple[str, str] | None = None  # (table, key) of the first changed row
    station_id: str | None = None
    created: set[str] = field(default_factory=set)

    def note(self, table: str, key: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        name = f"{table}:{key}"
        if len(self.after) + len(self.before) >= 2 * MAX_OBJECTS and name not in self.after:
            return
        if self.first is None:
            self.first = (table, key)
        if before is None:
            self.created.add(name)
        elif name not in self.created:
            self.before.setdefault(name, before)
        if after is not None:
            self.after[name] = {**self.after.get(name, {}), **after}
        if table == Station.__tablename__ and self.station_id is None:
            self.station_id = key

    @property
    def changed(self) -> bool:
        return bool(self.before or self.after)


def _columns(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    return {
        attr.key: MASK if is_secret(attr.key) else plain(attr.value)
        for attr in state.attrs
        if attr.key in state.mapper.columns
    }


def _key(obj: Any) -> str:
    state = inspect(obj)
    return "/".join(str(part) for part in state.mapper.primary_key_from_instance(obj))


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The changed columns of a dirty row: their values before and after."""
    state = inspect(obj)
    before, after = {}, {}
    for attr in state.attrs:
        history = attr.load_history()
        if attr.key in state.mapper.columns and history.has_changes():
            secret = is_secret(attr.key)
            before[attr.key] = MASK if secret else plain(history.deleted[0] if history.deleted else None)
            after[attr.key] = MASK if secret else plain(history.added[0] if history.added else None)
    return before, after


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    collector = session.info.get("audit")
    if not isinstance(collector, Collector):
        return
    for obj in session.new:
        table = obj.__table__.name
        if table not in _SKIPPED:
            collector.note(table, _key(obj), None, _columns(obj))
    for obj in session.dirty:
        table = obj.__table__.name
        if table in _SKIPPED or not session.is_modified(obj, include_collections=False):
            continue
        before, after = _changes(obj)
        if after:
            collector.note(table, _key(obj), before, after)
    for obj in session.deleted:
        table = obj.__table__.name
        if table not in _SKIPPED:
            collector.note(table, _key(obj), _columns(obj), None)


@dataclass
class Who:
    actor: str
    name: str | None = None
    organisation_id: int | None = None
    client: str | None = None
    request_id: str | None = None


def record(  # noqa: PLR0913 - one argument per column of the entry
    db: Session,
    who: Who,
    action: str,
    status: int,
    now: datetime,
    *,
    collector: Collector | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    station_id: str | None = None,
    request: Any = None,
) -> AuditEntry:
    """Write one entry (the caller commits). The object defaults to the first row the collector saw."""
    collector = collector or Collector()
    if object_type is None and collector.first is not None:
        object_type, object_id = collector.first
    station_id = station_id or collector.station_id
    entry = AuditEntry(
        at=now,
        actor=who.actor[:100],
        actor_name=(who.name or None) and who.name[:254],
        organisation_id=who.organisation_id,
        action=action[:200],
        status=status,
        object_type=object_type and object_type[:50],
        object_id=object_id and object_id[:200],
        station_id=station_id[:48] if station_id else None,
        before=collector.before or None,
        after=collector.after or None,
        request=masked(request) if request is not None else None,
        client=who.client and who.client[:64],
        request_id=who.request_id,
    )
    db.add(entry)
    db.flush()
    return entry


# ---- reading ------------------------------------------------------------------------------------------------
@dataclass
class Filters:
    organisation_id: int | None = None  # the caller's scope (None: every organisation)
    station_id: str | None = None
    user: str | None = None  # an actor (user:3, key:5) or its name (an e-mail, a key's name)
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _audit_query(f: Filters) -> Select[AuditEntry]:
    stmt = select(AuditEntry)
    if f.organisation_id is not None:
        stmt = stmt.where(AuditEntry.organisation_id == f.organisation_id)
    if f.station_id is not None:
        stmt = stmt.where(AuditEntry.station_id == f.station_id)
    if f.user is not None:
        stmt = stmt.where(or_(AuditEntry.actor == f.user, AuditEntry.actor_name == f.user.lower()))
    if f.object_type is not None:
        stmt = stmt.where(AuditEntry.object_type == f.object_type)
    if f.object_id is not None:
        stmt = stmt.where(AuditEntry.object_id == f.object_id)
    if f.since is not None:
        stmt = stmt.where(AuditEntry.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(AuditEntry.at < f.until)
    return stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


def _security_query(f: Filters) -> Select[SecurityEventRow]:
    stmt = select(SecurityEventRow)
    if f.organisation_id is not None:
        own = select(Station.id).where(Station.organisation_id == f.organisation_id)
        stmt = stmt.where(SecurityEventRow.station_id.in_(own))
    if f.station_id is not None:
        stmt = stmt.where(SecurityEventRow.station_id == f.station_id)
    if f.since is not None:
        stmt = stmt.where(SecurityEventRow.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(SecurityEventRow.at < f.until)
    return stmt.order_by(SecurityEventRow.at.desc(), SecurityEventRow.id.desc())


def search(db: Session, f: Filters, *, limit: int, security_events: bool) -> list[dict[str, Any]]:
    """Audit entries, and (unless filtered by user or object, which stations are not) the security events of
    the same stations and period, merged newest first."""
    rows = [_entry(e) for e in db.scalars(_audit_query(f).limit(limit))]
    if security_events and f.user is None and f.object_type is None and f.object_id is None:
        rows += [_security(e) for e in db.scalars(_security_query(f).limit(limit))]
        rows.sort(key=lambda r: r["at"], reverse=True)
    return rows[:limit]


def _entry(e: AuditEntry) -> dict[str, Any]:
    return {
        "kind": "audit",
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "actor_name": e.actor_name,
        "organisation_id": e.organisation_id,
        "action": e.action,
        "status": e.status,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "station_id": e.station_id,
        "before": e.before,
        "after": e.after,
        "request": e.request,
        "client": e.client,
        "request_id": e.request_id,
    }


def _security(e: SecurityEventRow) -> dict[str, Any]:
    return {
        "kind": "security_event",
        "id": e.id,
        "at": e.at,
        "actor": f"station:{e.station_id}" if e.origin == "station" else "csms",
        "actor_name": e.station_id,
        "organisation_id": None,
        "action": e.type,
        "status": None,
        "object_type": "station",
        "object_id": e.station_id,
        "station_id": e.station_id,
        "before": None,
        "after": e.detail,
        "request": None,
        "client": e.source,
        "request_id": None,
    }


CSV_COLUMNS = ("kind", "at", "actor", "actor_name", "organisation_id", "action", "status", "object_type",
               "object_id", "station_id", "client", "request_id", "before", "after", "request")  # fmt: skip


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = []
        for name in CSV_COLUMNS:
            value = row.get(name)
            if isinstance(value, (dict, list)):
                value = json.dumps(plain(value), sort_keys=True)
            elif isinstance(value, datetime):
                value = value.isoformat()
            text = "" if value is None else str(value)
            # A cell that a spreadsheet would run as a formula is quoted with a leading apostrophe.
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@") else text)
        writer.writerow(cells)
    return out.getvalue()
