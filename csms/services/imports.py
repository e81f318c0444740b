"""Records brought from another platform (SteVe's database, an operator's spreadsheets) and their writing.

A reader (``csms/migration/``) turns its source into these records; :func:`apply` writes them through the
services that own each concept (stations are provisioned, tokens created) and adds the history a charger
would otherwise have reported: sessions with their meter samples, reservations. It never overwrites what
the database holds: a record whose key exists already is ``unchanged``, so a second import changes nothing.
Nothing here commits; the caller's one transaction holds the whole import (``--dry-run`` rolls it back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from csms.domain.transaction import TransactionStatus
from csms.services import authorization, local_lists, stations
from csms.services.errors import DomainError
from csms.store.models import Connector, IdToken, MeterSample, Reservation, Transaction
from csms.store.models import Station as StationRow

ENERGY_REGISTER = "Energy.Active.Import.Register"
CREATED, UNCHANGED, SKIPPED = "created", "unchanged", "skipped"


@dataclass(frozen=True, slots=True)
class PortState:
    """A 1.6 connector (stored as EVSE ``connector_id``, connector 1) and its last known status."""

    connector_id: int
    status: str | None = None
    error_code: str | None = None
    info: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StationRecord:
    station_id: str
    ocpp_version: str
    policy: str = "accept"
    password: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    ports: tuple[PortState, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id_token: str
    status: str = "Accepted"
    expiry: datetime | None = None
    group_id: str | None = None
    token_type: str = "ISO14443"


@dataclass(frozen=True, slots=True)
class SampleRecord:
    timestamp: datetime
    value: float
    measurand: str = ENERGY_REGISTER
    unit: str | None = "Wh"
    phase: str | None = None
    location: str | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A charging session; ``transaction_id`` is the 1.6 transactionId the charger knows, kept when free so a
    session still running on the charger can be stopped on chargetwin."""

    station_id: str
    charger_tx_id: str
    started_at: datetime
    transaction_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    stopped_at: datetime | None = None
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    samples: tuple[SampleRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ReservationRecord:
    station_id: str
    id_token: str
    created_at: datetime
    expires_at: datetime
    status: str
    reservation_id: int | None = None
    connector_id: int | None = None
    group_id: str | None = None
    #: The session that used it (its charger_tx_id on the same station).
    used_by: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    kind: str
    key: str
    reason: str


@dataclass
class ImportReport:
    """What an import did or, under ``--dry-run``, would do: per kind how many rows were created, found
    unchanged or skipped (each skip with its reason), what the source holds that has no place here, and the
    stations that connect without a password until the operator gives them one."""

    source: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    not_imported: list[str] = field(default_factory=list)
    needs_password: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str, outcome: str) -> None:
        per_kind = self.counts.setdefault(kind, {CREATED: 0, UNCHANGED: 0, SKIPPED: 0})
        per_kind[outcome] += 1

    def skip(self, kind: str, key: str, reason: str) -> None:
        self.count(kind, SKIPPED)
        self.skipped.append(Skipped(kind, key, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "counts": self.counts,
            "skipped": [{"kind": s.kind, "key": s.key, "reason": s.reason} for s in self.skipped],
            "not_imported": self.not_imported,
            "needs_password": self.needs_password,
            "notes": self.notes,
        }

    def render(self, dry_run: bool) -> str:
        lines = [f"import from {self.source}" + (" (dry run: nothing written)" if dry_run else "")]
        lines += [
            f"  {kind}: {c[CREATED]} created, {c[UNCHANGED]} unchanged, {c[SKIPPED]} skipped"
            for kind, c in self.counts.items()
        ]
        lines += [f"  skipped {s.kind} {s.key}: {s.reason}" for s in self.skipped]
        lines += [f"  not imported: {line}" for line in self.not_imported]
        lines += [f"  note: {line}" for line in self.notes]
        if self.needs_password:
            lines.append(
                f"  {len(self.needs_password)} station(s) have no password and connect without authentication "
                "(security profile 1) until given one: " + ", ".join(self.needs_password)
            )
        return "\n".join(lines)


@dataclass
class Records:
    stations: list[StationRecord] = field(default_factory=list)
    tokens: list[TokenRecord] = field(default_factory=list)
    sessions: list[SessionRecord] = field(default_factory=list)
    reservations: list[ReservationRecord] = field(default_factory=list)


def apply(db: Session, records: Records, report: ImportReport, now: datetime) -> ImportReport:
    """Write ``records`` (stations first: sessions and reservations name them). Adds to ``report``."""
    for station in records.stations:
        _station(db, station, report, now)
    for token in records.tokens:
        _token(db, token, report, now)
    for session in records.sessions:
        _session(db, session, report)
    for reservation in records.reservations:
        _reservation(db, reservation, report)
    db.flush()
    _advance_sequences(db)
    return report


def _station(db: Session, record: StationRecord, report: ImportReport, now: datetime) -> None:
    if db.get(StationRow, record.station_id) is not None:
        report.count("stations", UNCHANGED)
        return
    try:
        row = stations.provision(
            db, record.station_id, ocpp_version=record.ocpp_version, password=record.password, now=now,
            policy=record.policy,
        )  # fmt: skip
    except DomainError as exc:
        report.skip("stations", record.station_id, str(exc))
        return
    row.vendor, row.model = record.vendor, record.model
    row.serial_number, row.firmware_version = record.serial_number, record.firmware_version
    for port in record.ports:
        db.add(
            Connector(
                station_id=record.station_id, evse_id=port.connector_id, connector_id=min(port.connector_id, 1),
                status=port.status, error_code=port.error_code, info=port.info, status_at=port.at,
            )
        )  # fmt: skip
    if record.password is None:
        report.needs_password.append(record.station_id)
    report.count("stations", CREATED)


def _token(db: Session, record: TokenRecord, report: ImportReport, now: datetime) -> None:
    if db.get(IdToken, record.id_token) is not None:
        report.count("tokens", UNCHANGED)
        return
    try:
        authorization.create(
            db, record.id_token, now, status=record.status, token_type=record.token_type, expiry=record.expiry,
            group_id=record.group_id,
        )  # fmt: skip
    except DomainError as exc:
        report.skip("tokens", record.id_token, str(exc))
        return
    local_lists.token_changed(db, record.id_token, {record.group_id}, now)
    report.count("tokens", CREATED)


def _session(db: Session, record: SessionRecord, report: ImportReport) -> None:
    key = f"{record.station_id}/{record.charger_tx_id}"
    if db.get(StationRow, record.station_id) is None:
        report.skip("sessions", key, f"station {record.station_id!r} is not in chargetwin (not imported)")
        return
    too_long = _too_long({"id token": (record.id_token, 36), "stop reason": (record.stop_reason, 40)})
    if too_long:
        report.skip("sessions", key, too_long)
        return
    found = db.scalar(
        select(Transaction.id).where(
            Transaction.station_id == record.station_id, Transaction.charger_tx_id == record.charger_tx_id
        )
    )
    if found is not None:
        report.count("sessions", UNCHANGED)
        return
    keep_id = record.transaction_id is not None and db.get(Transaction, record.transaction_id) is None
    if record.transaction_id is not None and not keep_id:
        report.notes.append(f"session {key}: transaction id {record.transaction_id} is taken here, given a new one")
    last = _last_register(record.samples)
    row = Transaction(
        id=record.transaction_id if keep_id else None,
        station_id=record.station_id, charger_tx_id=record.charger_tx_id, evse_id=record.connector_id,
        connector_id=None if record.connector_id is None else 1, id_token=record.id_token, auth_status="Accepted",
        started_at=record.started_at, stopped_at=record.stopped_at,
        meter_start_wh=record.meter_start_wh, meter_start_at=record.started_at,
        meter_start_explicit=record.meter_start_wh is not None, meter_stop_wh=record.meter_stop_wh,
        last_meter_wh=last[1] if last else record.meter_stop_wh, last_meter_at=last[0] if last else record.stopped_at,
        stop_reason=record.stop_reason,
        status=(TransactionStatus.ACTIVE if record.stopped_at is None else TransactionStatus.COMPLETED).value,
        offline_events=0,
    )  # fmt: skip
    db.add(row)
    db.flush()
    _samples(db, record, row.id)
    report.count("sessions", CREATED)


def _too_long(fields: dict[str, tuple[str | None, int]]) -> str | None:
    """Why a value does not fit the column it goes to (None: all fit)."""
    for name, (value, limit) in fields.items():
        if value is not None and len(value) > limit:
            return f"its {name} is longer than the {limit} characters chargetwin stores"
    return None


def _last_register(samples: tuple[SampleRecord, ...]) -> tuple[datetime, float] | None:
    """The last energy register reading, in Wh (the running total of a session still open)."""
    registers = [s for s in samples if s.measurand == ENERGY_REGISTER and s.phase is None]
    if not registers:
        return None
    last = max(registers, key=lambda s: s.timestamp)
    return last.timestamp, last.value * 1000 if last.unit == "kWh" else last.value


def _samples(db: Session, record: SessionRecord, transaction_id: int) -> None:
    seen: set[tuple[Any, ...]] = set()
    for s in record.samples:
        # One row per reading (the table's unique index): a reading the source holds twice is kept once.
        identity = (s.timestamp, s.measurand, s.phase or "", s.location or "", s.context or "")
        if identity in seen:
            continue
        seen.add(identity)
        db.add(
            MeterSample(
                station_id=record.station_id, transaction_id=transaction_id, evse_id=record.connector_id or 0,
                timestamp=s.timestamp, measurand=s.measurand, phase=s.phase, location=s.location,
                context=s.context, unit=s.unit, value=s.value,
            )
        )  # fmt: skip


def _reservation(db: Session, record: ReservationRecord, report: ImportReport) -> None:
    key = f"{record.station_id}/{record.reservation_id or record.id_token}"
    if db.get(StationRow, record.station_id) is None:
        report.skip("reservations", key, f"station {record.station_id!r} is not in chargetwin (not imported)")
        return
    too_long = _too_long({"id token": (record.id_token, 36)})
    if too_long:
        report.skip("reservations", key, too_long)
        return
    found = db.scalar(
        select(Reservation.id).where(
            Reservation.station_id == record.station_id,
            Reservation.id_token == record.id_token,
            Reservation.expires_at == record.expires_at,
        )
    )
    if found is not None:
        report.count("reservations", UNCHANGED)
        return
    used_by = None
    if record.used_by is not None:
        used_by = db.scalar(
            select(Transaction.id).where(
                Transaction.station_id == record.station_id, Transaction.charger_tx_id == record.used_by
            )
        )
    keep_id = record.reservation_id is not None and db.get(Reservation, record.reservation_id) is None
    db.add(
        Reservation(
            id=record.reservation_id if keep_id else None, station_id=record.station_id,
            evse_id=record.connector_id or None, id_token=record.id_token, id_token_type="ISO14443",
            group_id=record.group_id, expires_at=record.expires_at, status=record.status,
            created_at=record.created_at, ended_at=None, transaction_id=used_by, detail="imported",
        )
    )  # fmt: skip
    report.count("reservations", CREATED)


def _advance_sequences(db: Session) -> None:
    """Rows inserted with the source's ids leave PostgreSQL's sequences behind them: move each past the
    highest id, or the charger's next StartTransaction would collide. SQLite takes max(rowid) + 1 itself."""
    if db.get_bind().dialect.name != "postgresql":
        return
    for table in ("transactions", "reservations"):
        highest = db.scalar(text(f"SELECT max(id) FROM {table}"))  # a fixed table name
        if highest is not None:
            db.execute(
                text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :highest)"),
                {"table": table, "highest": highest},
            )
