"""Relational model of the CSMS (SQLAlchemy 2.x, typed ``Mapped`` columns, UTC timestamps).

Relationships are not mapped on purpose: services query what they need explicitly, so no hidden lazy load
can run inside the group-commit worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import expression

from csms.domain import meter
from csms.domain.transaction import TransactionStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The organisation every row made before tenants belongs to (seeded by migration 5f2c8e1a9d04).
DEFAULT_ORGANISATION_ID = 1

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time zone type: SQLAlchemy stores the wall time and reads back a naive datetime, which
    then cannot be compared with the aware ones the services work with. Store UTC, read back UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class UtcMicroseconds(UtcDateTime):
    """:class:`UtcDateTime` stored on SQLite as whole microseconds since 1970 (an INTEGER) instead of its text.

    For the meter samples' time, which is in the table and both its indexes: 8 bytes instead of 26 characters
    in each, compared as integers (about 8 % of SQLite's work per stored sample, issue 13). Elsewhere a
    timestamp with time zone as UtcDateTime. The same order and the same instants as the text it replaces."""

    # Declared on each TypeDecorator class (SQLAlchemy does not inherit it): without it no statement that names
    # the column is kept in the compiled cache, and every such query warns.
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(BigInteger() if dialect.name == "sqlite" else self.impl_instance)

    def process_bind_param(self, value: datetime | None, dialect: Any) -> Any:
        if value is None or dialect.name != "sqlite":
            return super().process_bind_param(value, dialect)
        if value.tzinfo is None:  # a naive time is UTC's, as UtcDateTime stores it
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _MICROSECOND

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None or dialect.name != "sqlite":
            return super().process_result_value(value, dialect)
        return _EPOCH + timedelta(microseconds=value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    ocpp_version: Mapped[str] = mapped_column(String(8))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    #: OCPP security profile: 1 Basic auth (ws or wss), 2 TLS + Basic auth, 3 TLS with a client certificate.
    security_profile: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: A rotation's replaced password: still admitted until the station first connects with the new one or
    #: until it expires (the station accepted the new one and reconnects with it; see docs/security.md).
    previous_password_hash: Mapped[str | None] = mapped_column(String(200))
    previous_password_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: A profile upgrade the station accepted: it becomes ``security_profile`` once the station connects at it.
    pending_security_profile: Mapped[int | None] = mapped_column(Integer)
    #: What the operator decided: accept / pending / reject. Boot answers follow it.
    registration_policy: Mapped[str] = mapped_column(String(16), default="accept")
    #: The last status we answered a BootNotification with (None: never booted).
    registration_status: Mapped[str | None] = mapped_column(String(16))
    auto_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    vendor: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(50))
    serial_number: Mapped[str | None] = mapped_column(String(50))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    firmware_status: Mapped[str | None] = mapped_column(String(40))
    diagnostics_status: Mapped[str | None] = mapped_column(String(40))
    site_id: Mapped[str | None] = mapped_column(String(48))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_boot_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class PendingRegistration(Base):
    """An unknown station that connected while auto-registration is on. It is refused until an operator
    approves it (:func:`csms.services.stations.approve`), which creates its :class:`Station` with the
    credentials the operator gives; whatever password it offered is never kept."""

    __tablename__ = "pending_registrations"

    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    ocpp_version: Mapped[str] = mapped_column(String(8))
    #: The address it last connected from (per-source caps count these).
    source: Mapped[str | None] = mapped_column(String(64), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Connector(Base):
    """A port: (evse_id, connector_id). OCPP 1.6 connector N is stored as EVSE N, connector 1; 0/0 is the
    whole station."""

    __tablename__ = "connectors"
    __table_args__ = (UniqueConstraint("station_id", "evse_id", "connector_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), index=True)
    evse_id: Mapped[int] = mapped_column(Integer)
    connector_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(24))
    error_code: Mapped[str | None] = mapped_column(String(50))
    info: Mapped[str | None] = mapped_column(String(500))
    vendor_error_code: Mapped[str | None] = mapped_column(String(50))
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class StatusChange(Base):
    """Every status report, in the order received: uptime is computed from this history."""

    __tablename__ = "status_history"
    __table_args__ = (Index("ix_status_history_port_time", "station_id", "evse_id", "connector_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    evse_id: Mapped[int] = mapped_column(Integer)
    connector_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    error_code: Mapped[str | None] = mapped_column(String(50))
    info: Mapped[str | None] = mapped_column(String(500))
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConnectionEvent(Base):
    """WebSocket connects and disconnects, as the gateway saw them."""

    __tablename__ = "connection_events"
    __table_args__ = (Index("ix_connection_events_station_time", "station_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(16))  # connected | disconnected
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    detail: Mapped[str | None] = mapped_column(String(200))


class IdToken(Base):
    __tablename__ = "id_tokens"

    id_token: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_type: Mapped[str] = mapped_column(String(20), default="ISO14443")
    status: Mapped[str] = mapped_column(String(16), default="Accepted")
    expiry: Mapped[datetime | None] = mapped_column(UtcDateTime())
    group_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class ContractRoot(Base):
    """A root the CSMS trusts for ISO 15118 contract certificates (a mobility operator's or the V2G root),
    installed by the operator. ``fingerprint``: SHA-256 of the DER certificate, hex."""

    __tablename__ = "contract_roots"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # MO | V2G
    subject: Mapped[str] = mapped_column(String(500))
    not_after: Mapped[datetime] = mapped_column(UtcDateTime())
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Transaction(Base):
    """One charging session. ``id`` is the 1.6 transactionId; ``charger_tx_id`` the 2.0.1 one (or str(id))."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("station_id", "charger_tx_id"),
        Index("ix_transactions_station_started", "station_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    charger_tx_id: Mapped[str] = mapped_column(String(36))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    id_token: Mapped[str | None] = mapped_column(String(36))
    auth_status: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    meter_start_wh: Mapped[float | None] = mapped_column(Float)
    meter_start_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: True when meter_start_wh came from the charger's own start value (1.6 meterStart), not a sample.
    meter_start_explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    meter_stop_wh: Mapped[float | None] = mapped_column(Float)
    last_meter_wh: Mapped[float | None] = mapped_column(Float)
    last_meter_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default=TransactionStatus.ACTIVE.value)  # TransactionStatus
    offline_events: Mapped[int] = mapped_column(Integer, default=0)
    last_seq_no: Mapped[int | None] = mapped_column(Integer)
    remote_start_id: Mapped[int | None] = mapped_column(Integer)

    @property
    def energy_wh(self) -> float:
        return meter.session_energy_wh(self.meter_start_wh, self.meter_stop_wh, self.last_meter_wh)


class TransactionEvent(Base):
    """2.0.1 TransactionEvent sequence numbers seen per transaction: a duplicate is recognised by its seqNo."""

    __tablename__ = "transaction_events"
    __table_args__ = (UniqueConstraint("transaction_id", "seq_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id", ondelete="CASCADE"))
    seq_no: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(10))
    trigger_reason: Mapped[str | None] = mapped_column(String(40))
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    #: transactionInfo.chargingState when the event gave one (Charging, SuspendedEV, …): what pricing calls
    #: charging and what parking.
    charging_state: Mapped[str | None] = mapped_column(String(16))


class MeterSample(Base):
    __tablename__ = "meter_samples"
    __table_args__ = (Index("ix_meter_samples_tx", "transaction_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    transaction_id: Mapped[int | None] = mapped_column(Integer)
    evse_id: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(UtcMicroseconds())
    measurand: Mapped[str] = mapped_column(String(48))
    phase: Mapped[str | None] = mapped_column(String(8))
    location: Mapped[str | None] = mapped_column(String(8))
    context: Mapped[str | None] = mapped_column(String(24))
    unit: Mapped[str | None] = mapped_column(String(20))  # 2.0.1 unitOfMeasure.unit: string[0..20]
    value: Mapped[float] = mapped_column(Float)


# One row per reading: a replayed MeterValues (its answer lost in a crash, or an offline backlog sent again)
# inserts nothing new (``csms.services.uow``: INSERT … ON CONFLICT DO NOTHING). An unset phase, location or
# context counts as equal to another unset one, hence coalesce. It leads with the time: readings arrive in time
# order from all stations at once, so a group commit's entries share the index's last pages (led by the station,
# each station's reading was a page of its own to write at every commit: issue 13).
Index(
    "ux_meter_samples_reading",
    MeterSample.timestamp,
    MeterSample.station_id,
    MeterSample.evse_id,
    MeterSample.measurand,
    func.coalesce(MeterSample.phase, ""),
    func.coalesce(MeterSample.location, ""),
    func.coalesce(MeterSample.context, ""),
    unique=True,
)


class StationEvent(Base):
    """What stations report besides status and transactions: security events, firmware/log status, device
    events (NotifyEvent), vendor data transfers."""

    __tablename__ = "station_events"
    __table_args__ = (Index("ix_station_events_station_time", "station_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(40))
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SecurityEventRow(Base):
    """A security event: reported by a station (SecurityEventNotification, ``origin`` "station") or detected by
    the CSMS (a refused handshake, a bad certificate, a rejected CSR…, ``origin`` "csms"). ``station_id`` is
    the id a connection claimed (it may name no known station); ``source`` the peer address."""

    __tablename__ = "security_events"
    __table_args__ = (
        Index("ix_security_events_at", "at"),
        Index("ix_security_events_station_at", "station_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    type: Mapped[str] = mapped_column(String(50))
    origin: Mapped[str] = mapped_column(String(8))
    station_id: Mapped[str | None] = mapped_column(String(48))
    source: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class StationVariable(Base):
    """Device-model variables (2.0.1 NotifyReport) and configuration keys (1.6 GetConfiguration)."""

    __tablename__ = "station_variables"
    __table_args__ = (UniqueConstraint("station_id", "component", "evse_id", "variable", "instance", "attribute"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    component: Mapped[str] = mapped_column(String(50))
    evse_id: Mapped[int] = mapped_column(Integer, default=0)
    variable: Mapped[str] = mapped_column(String(50))
    #: The variable's instance ("" when it has none), e.g. ItemsPerMessage's GetVariables.
    instance: Mapped[str] = mapped_column(String(50), default="", server_default="")
    attribute: Mapped[str] = mapped_column(String(16), default="Actual")
    value: Mapped[str | None] = mapped_column(Text)
    readonly: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class MessageLogEntry(Base):
    """The last frames per station, both directions (bounded: older rows are pruned)."""

    __tablename__ = "ocpp_messages"
    __table_args__ = (Index("ix_ocpp_messages_station_id", "station_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    action: Mapped[str | None] = mapped_column(String(50))
    frame: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )
    #: One of the roles of csms/api/permissions.py; keys made before roles are platform-admin keys.
    role: Mapped[str] = mapped_column(String(20), server_default="platform-admin")


# ---- uptime, alerts, webhooks, diagnostics -----------------------------------------------------------------
class ExclusionWindowRow(Base):
    """A period whose outage minutes may be excluded from uptime (cause, declared when and by whom)."""

    __tablename__ = "uptime_exclusions"
    __table_args__ = (Index("ix_uptime_exclusions_station_start", "station_id", "start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    #: None: every port of the station.
    evse_id: Mapped[int | None] = mapped_column(Integer)
    start: Mapped[datetime] = mapped_column(UtcDateTime())
    end: Mapped[datetime] = mapped_column(UtcDateTime())
    cause: Mapped[str] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(String(500))
    declared_at: Mapped[datetime] = mapped_column(UtcDateTime())
    declared_by: Mapped[str | None] = mapped_column(String(100))


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_open", "rule", "station_id", "evse_id", "resolved_at"),
        Index("ix_alerts_raised", "raised_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(40))
    station_id: Mapped[str] = mapped_column(String(48))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(100))  # None: resolved automatically
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AlertRuleSetting(Base):
    """Operator overrides of an alert rule: on/off, severity, threshold (seconds, %, or count per rule)."""

    __tablename__ = "alert_rules"

    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    severity: Mapped[str | None] = mapped_column(String(16))
    threshold: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(200))
    #: Event types it wants: ["*"], ["alert.*"], ["alert.raised", "firmware.status"] ...
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookDelivery(Base):
    """One event for one webhook (written in the same transaction as the event: an outbox)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[float | None] = mapped_column(Float)


class FileTransfer(Base):
    """A diagnostics/log upload we asked for, or a firmware update we sent, with its last reported status.

    The URL handed to the station carries a random token; only its SHA-256 is stored.
    """

    __tablename__ = "file_transfers"
    __table_args__ = (Index("ix_file_transfers_station", "station_id", "kind", "requested_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))  # diagnostics | firmware
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[int | None] = mapped_column(Integer)
    firmware_name: Mapped[str | None] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    call_status: Mapped[str | None] = mapped_column(String(40))  # the station's answer to our call
    status: Mapped[str | None] = mapped_column(String(40))  # the last status notification
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Diagnostics only: what the station uploaded.
    file_name: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class FirmwareFile(Base):
    __tablename__ = "firmware_files"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


# ---- load management: sites, their electrical tree, EVSE assignments, site meter readings ------------------
class Site(Base):
    """A site under load management. Its tree is :class:`SiteNode` rows (one root: the grid connection)."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    #: none | equal_share | priority | deadline | optimal
    strategy: Mapped[str] = mapped_column(String(16), default="none")
    interval_s: Mapped[float] = mapped_column(Float, default=60.0)
    #: Phase-to-neutral voltage of the site (V).
    voltage: Mapped[float] = mapped_column(Float, default=230.0)
    #: Kept free at the grid connection, on top of each node's own margin.
    safety_margin_kw: Mapped[float] = mapped_column(Float, default=0.0)
    #: Token groups in priority order (strategy ``priority``).
    priority_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: A station whose connector-0 / EVSE-0 MeterValues are this site's grid meter.
    meter_station_id: Mapped[str | None] = mapped_column(String(48), index=True)
    #: True when that meter sees the EVs too (the CSMS subtracts their measured draw).
    meter_includes_ev: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the site pays its utility (load management plans with it): ``{"tz", "currency", "periods":
    #: [{"from": "HH:MM", "price": "0.12"}], "demand_charge_per_kw": "15"}``; None: not known.
    utility_tariff: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Demand response: the VEN of ``csms serve`` speaks for this site (its events lower the site's limit).
    openadr_enrolled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=expression.false())
    #: The OpenADR resource id the VTN's events name this site by (None: the site's id).
    openadr_resource_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class SiteNode(Base):
    """A grid connection, panel or feeder: per-phase limits (A) and/or a kW limit."""

    __tablename__ = "site_nodes"
    __table_args__ = (UniqueConstraint("site_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    #: The node's name within its site (``grid``, ``panel-a`` …).
    key: Mapped[str] = mapped_column(String(48))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("site_nodes.id", ondelete="CASCADE"))
    limit_kw: Mapped[float | None] = mapped_column(Float)
    limit_l1_a: Mapped[float | None] = mapped_column(Float)
    limit_l2_a: Mapped[float | None] = mapped_column(Float)
    limit_l3_a: Mapped[float | None] = mapped_column(Float)
    safety_margin_kw: Mapped[float] = mapped_column(Float, default=0.0)


class SiteEvse(Base):
    """An EVSE assigned to a node of a site, with its wiring and the limits load management needs."""

    __tablename__ = "site_evses"
    __table_args__ = (UniqueConstraint("station_id", "evse_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("site_nodes.id", ondelete="CASCADE"))
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    evse_id: Mapped[int] = mapped_column(Integer)
    #: Site phases the EVSE's L1, L2, L3 are wired to, in order: "L1L2L3", "L2L3L1" (rotation), "L2" …
    phases: Mapped[str] = mapped_column(String(6), default="L1L2L3")
    max_current_a: Mapped[float] = mapped_column(Float, default=32.0)
    min_current_a: Mapped[float] = mapped_column(Float, default=6.0)
    fallback_current_a: Mapped[float] = mapped_column(Float, default=6.0)
    dc: Mapped[bool] = mapped_column(Boolean, default=False)
    max_power_kw: Mapped[float | None] = mapped_column(Float)


class SiteMeterReading(Base):
    """The site's grid-connection meter: per-phase currents and/or a total power, from the API or a meter
    station's EVSE-0 MeterValues."""

    __tablename__ = "site_meter_readings"
    __table_args__ = (Index("ix_site_meter_readings_site_time", "site_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(60))  # api | station:{id}
    power_w: Mapped[float | None] = mapped_column(Float)
    current_l1_a: Mapped[float | None] = mapped_column(Float)
    current_l2_a: Mapped[float | None] = mapped_column(Float)
    current_l3_a: Mapped[float | None] = mapped_column(Float)
    includes_ev: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SiteCurtailment(Base):
    """A step of a demand-response event the VEN accepted: the site's grid limit lowered from ``start`` to
    ``end`` (kept so that whichever node plans the site, now or after a take-over or restart, obeys it)."""

    __tablename__ = "site_curtailments"
    __table_args__ = (UniqueConstraint("site_id", "event_id"), Index("ix_site_curtailments_end", "end"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    #: ``{OpenADR event id}#{interval}``.
    event_id: Mapped[str] = mapped_column(String(200))
    start: Mapped[datetime] = mapped_column(UtcDateTime())
    end: Mapped[datetime] = mapped_column(UtcDateTime())
    limit_kw: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BuildingForecastRow(Base):
    """A site's building load learnt by time of day (:class:`csms.loadmgmt.forecast.BuildingForecast`): stored
    when a slot was learnt, read by a starting process so it plans with what it learnt before."""

    __tablename__ = "building_forecasts"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    #: ``BuildingForecast.record()``: slot length, weight, the last slot filed, mean and highest per slot/phase
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IssuedCertificate(Base):
    """A certificate the CSMS's CA signed for a station (SignCertificate), and what became of it."""

    __tablename__ = "issued_certificates"
    __table_args__ = (Index("ix_issued_certificates_station", "station_id", "not_after"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    #: ChargingStationCertificate or V2GCertificate.
    certificate_type: Mapped[str] = mapped_column(String(32))
    #: Lower-case hex, as OCPP writes serial numbers.
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())
    not_after: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: CertificateSigned: sending, Accepted, Rejected (by the station) or failed (no answer after the retries).
    delivery: Mapped[str] = mapped_column(String(16), default="sending")
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    pem: Mapped[str] = mapped_column(Text)


class InstalledCertificate(Base):
    """A certificate a station reported installed (GetInstalledCertificateIds), by its OCPP hash data."""

    __tablename__ = "installed_certificates"
    __table_args__ = (Index("ix_installed_certificates_station", "station_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    certificate_type: Mapped[str] = mapped_column(String(32))
    hash_algorithm: Mapped[str] = mapped_column(String(8))
    issuer_name_hash: Mapped[str] = mapped_column(String(128))
    issuer_key_hash: Mapped[str] = mapped_column(String(128))
    serial_number: Mapped[str] = mapped_column(String(40))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DisplayMessageRow(Base):
    """A message the CSMS set on a station's display (2.0.1 SetDisplayMessage; 1.6 through DataTransfer), or one
    the station reported (NotifyDisplayMessages). ``message_id`` is the CSMS's id for it on that station."""

    __tablename__ = "display_messages"
    __table_args__ = (UniqueConstraint("station_id", "message_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(16))
    state: Mapped[str | None] = mapped_column(String(16))
    start_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    text: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(8))
    #: sending, the station's answer (Accepted, Rejected, NotSupportedMessageFormat, …), reported, cleared.
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class EvChargingNegotiation(Base):
    """ISO 15118 smart charging on one EVSE (2.0.1 K15–K18): the EV's last needs, the last TxProfile the station
    accepted for it, and the EV's last schedule with the CSMS's verdict. One row per EVSE, renewed by each
    negotiation (a new transaction starts it afresh)."""

    __tablename__ = "ev_charging_negotiations"
    __table_args__ = (UniqueConstraint("station_id", "evse_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    evse_id: Mapped[int] = mapped_column(Integer)
    #: The charger's transaction id the negotiation belongs to (None: none running when the needs came).
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    needs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    needs_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The ChargingProfileType the station accepted last for this EVSE's transaction (TxProfile).
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    profile_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ev_schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ev_schedule_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Accepted | Rejected, and why it was rejected.
    ev_schedule_status: Mapped[str | None] = mapped_column(String(16))
    ev_schedule_reason: Mapped[str | None] = mapped_column(String(300))


class Reservation(Base):
    """A reservation the CSMS made: ``id`` is the reservationId it sends (chosen here, unique). ``evse_id``
    None reserves any port (1.6 connector 0). ``status``: pending (ReserveNow sent), active (Accepted), the
    station's refusal (rejected, faulted, occupied, unavailable), failed (no answer), then cancelled,
    expired, removed (2.0.1 ReservationStatusUpdate) or used (a transaction named it)."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_station", "station_id", "created_at"),
        Index("ix_reservations_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_type: Mapped[str | None] = mapped_column(String(20))
    id_token: Mapped[str] = mapped_column(String(36))
    id_token_type: Mapped[str] = mapped_column(String(20))
    group_id: Mapped[str | None] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Our id of the transaction that used it.
    transaction_id: Mapped[int | None] = mapped_column(BigId)
    #: Why it is in its status, in words (the station's answer, a CALLERROR, a transaction after expiry).
    detail: Mapped[str | None] = mapped_column(String(200))


class VariableMonitorRow(Base):
    """A 2.0.1 variable monitor the CSMS set on a station (SetVariableMonitoring), with the station's answer and
    the id the station gave it."""

    __tablename__ = "variable_monitors"
    __table_args__ = (Index("ix_variable_monitors_station", "station_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    #: The station's id for the monitor (None when it refused it).
    monitor_id: Mapped[int | None] = mapped_column(Integer)
    component: Mapped[str] = mapped_column(String(50))
    evse_id: Mapped[int] = mapped_column(Integer, default=0)
    variable: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(24))
    value: Mapped[float] = mapped_column(Float)
    severity: Mapped[int] = mapped_column(Integer)
    transaction: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The station's answer (Accepted, UnknownComponent, UnknownVariable, UnsupportedMonitorType, Rejected,
    #: Duplicate), or cleared.
    status: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LocalListState(Base):
    """A station's local authorization list as the CSMS keeps it: the version the station last confirmed, which
    tokens belong on it, and the limits the station reported. The entries themselves are
    :class:`LocalListEntryRow` rows; the changes still to send are the difference between those and the tokens
    (:mod:`csms.services.local_lists`)."""

    __tablename__ = "local_lists"

    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    #: The version the station accepted last (0: no list sent yet).
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: Which tokens go on the list: every token (None) or the tokens of one group.
    token_group: Mapped[str | None] = mapped_column(String(36))
    #: The station must get a Full list next (it answered VersionMismatch, or the entries are unknown).
    needs_full: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When a token change first left the station's list behind (None: in step as far as the CSMS knows).
    out_of_step_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The version the station last reported (GetLocalListVersion; 1.6 -1: no local list).
    reported_version: Mapped[int | None] = mapped_column(Integer)
    #: The station's answer to the last SendLocalList (Accepted, Failed, VersionMismatch, NotSupported), or why
    #: none came (timeout, CALLERROR, refused: too large).
    last_status: Mapped[str | None] = mapped_column(String(200))
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Limits read from the station (1.6 LocalAuthListMaxLength / SendLocalListMaxLength; 2.0.1
    #: LocalAuthListCtrlr Entries / ItemsPerMessage / BytesPerMessage); None: not reported.
    max_entries: Mapped[int | None] = mapped_column(Integer)
    items_per_message: Mapped[int | None] = mapped_column(Integer)
    bytes_per_message: Mapped[int | None] = mapped_column(Integer)
    capabilities_read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LocalListEntryRow(Base):
    """One token on a station's local list, as the station accepted it."""

    __tablename__ = "local_list_entries"

    station_id: Mapped[str] = mapped_column(ForeignKey("local_lists.station_id", ondelete="CASCADE"), primary_key=True)
    id_token: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    expiry: Mapped[datetime | None] = mapped_column(UtcDateTime())
    group_id: Mapped[str | None] = mapped_column(String(36))


# ---- billing --------------------------------------------------------------------------------------------------
class BillingAccount(Base):
    """Who pays: a driver, a fleet or a property. Postpaid accounts get a monthly invoice; prepaid ones a
    balance topped up in advance. Amounts are integers of the currency's minor unit."""

    __tablename__ = "billing_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # driver | fleet | property
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    billing: Mapped[str] = mapped_column(String(10))  # postpaid | prepaid
    currency: Mapped[str] = mapped_column(String(3))
    payment_method: Mapped[str] = mapped_column(String(20), default="bank_transfer")
    address: Mapped[str | None] = mapped_column(Text)
    vat_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class AccountToken(Base):
    """An id token whose sessions an account pays for."""

    __tablename__ = "account_tokens"

    id_token: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("billing_accounts.id", ondelete="CASCADE"), index=True)


class LedgerEntry(Base):
    """One debit or credit of an account, never edited: a mistake is undone by a reversal (its negation, naming
    the entry it reverses). ``amount_minor`` > 0 is owed by the account (a charge, a fee), < 0 is paid or
    credited (a payment, a top-up, a reversal of a charge)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("billing_accounts.id", ondelete="RESTRICT"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(16))  # charge | fee | statement | payment | top_up | reversal | adjustment
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    vat_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # the VAT included in amount_minor
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(300))
    #: What it is about: a transaction id, a payment reference, an invoice number.
    reference: Mapped[str | None] = mapped_column(String(100), index=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_by: Mapped[str | None] = mapped_column(String(100))


class PaymentHold(Base):
    """An ad-hoc payment at a charger's payment terminal: the amount pre-authorised on the driver's card for
    one session (its id token), then what was captured of it when the session's CDR was made; the rest is
    released. ``status``: held | captured | released | declined."""

    __tablename__ = "payment_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id_token: Mapped[str] = mapped_column(String(36), unique=True)
    station_id: Mapped[str] = mapped_column(String(64))
    processor: Mapped[str] = mapped_column(String(32))
    #: The card as the terminal named it to the processor (a payment-method token, never a card number).
    card_reference: Mapped[str] = mapped_column(String(36))
    #: The processor's reference of the authorisation ('' when it was declined).
    authorisation: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    #: The running cost (incl. VAT) at which the session is stopped so that it, with its fee, stays inside the hold.
    stop_at_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    decline_reason: Mapped[str | None] = mapped_column(String(100))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id", ondelete="SET NULL"))
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What the session cost beyond the hold (not captured; a person settles it).
    over_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Invoice(Base):
    """A numbered invoice (numbers without gaps per year: INV-2026-000001) of a postpaid account's month."""

    __tablename__ = "invoices"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("billing_accounts.id", ondelete="RESTRICT"), index=True)
    period_start: Mapped[datetime] = mapped_column(UtcDateTime())
    period_end: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    net_minor: Mapped[int] = mapped_column(BigInteger)
    vat_minor: Mapped[int] = mapped_column(BigInteger)
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class InvoiceItem(Base):
    """Which ledger entry an invoice bills (each at most once; the ledger itself is never written again)."""

    __tablename__ = "invoice_items"

    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), primary_key=True)
    invoice_number: Mapped[str] = mapped_column(ForeignKey("invoices.number"), index=True)


class PaymentFee(Base):
    """The processing fee a payment method costs, disclosed as a line on every receipt and invoice."""

    __tablename__ = "payment_fees"

    method: Mapped[str] = mapped_column(String(20), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    fixed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    percent: Mapped[str] = mapped_column(String(12), default="0")  # a Decimal, kept exact as text


# ---- fleet ----------------------------------------------------------------------------------------------------
class FleetDriver(Base):
    __tablename__ = "fleet_drivers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    cost_centre: Mapped[str | None] = mapped_column(String(40))
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class FleetVehicle(Base):
    """A depot's vehicle: its battery and power limits, the token (or ISO 15118 contract id) that identifies it
    at a charger, its driver and cost centre, and the time zone its departure plan is written in."""

    __tablename__ = "fleet_vehicles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    vin: Mapped[str | None] = mapped_column(String(17), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    battery_kwh: Mapped[float] = mapped_column(Float)
    max_ac_kw: Mapped[float | None] = mapped_column(Float)
    max_dc_kw: Mapped[float | None] = mapped_column(Float)
    id_token: Mapped[str | None] = mapped_column(String(36), unique=True)
    emaid: Mapped[str | None] = mapped_column(String(40), unique=True)
    driver_id: Mapped[str | None] = mapped_column(ForeignKey("fleet_drivers.id", ondelete="SET NULL"))
    cost_centre: Mapped[str | None] = mapped_column(String(40))
    depot_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    tz: Mapped[str] = mapped_column(String(40), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class FleetDeparture(Base):
    """A departure in a vehicle's plan: weekly (``weekday`` 0 = Monday) or a one-off override on ``on_date``,
    which replaces that day's weekly departures. Local time of the vehicle's zone; a target SoC or energy."""

    __tablename__ = "fleet_departures"
    __table_args__ = (UniqueConstraint("vehicle_id", "weekday", "on_date", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("fleet_vehicles.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int | None] = mapped_column(Integer)
    on_date: Mapped[str | None] = mapped_column(String(10))
    time: Mapped[str] = mapped_column(String(5))
    target_soc_pct: Mapped[float | None] = mapped_column(Float)
    target_kwh: Mapped[float | None] = mapped_column(Float)


class FleetTelematics(Base):
    """A state of charge the vehicle's telematics reported (for AC chargers, which do not know it)."""

    __tablename__ = "fleet_telematics"
    __table_args__ = (Index("ix_fleet_telematics_vehicle_at", "vehicle_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("fleet_vehicles.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    soc_pct: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(40), default="api")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


# ---- multifamily ----------------------------------------------------------------------------------------------
class Property(Base):
    """A multifamily property: its garage is a site; residents are billed per unit by cost recovery (the
    property's utility rate plus a margin) or a flat monthly fee with an energy allowance."""

    __tablename__ = "mf_properties"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"), unique=True)
    tz: Mapped[str] = mapped_column(String(40), default="UTC")
    currency: Mapped[str] = mapped_column(String(3))
    billing_mode: Mapped[str] = mapped_column(String(16))  # cost_recovery | flat_fee
    #: Decimal amounts kept exact as text: per kWh, percent, per month, kWh.
    utility_rate: Mapped[str] = mapped_column(String(20))
    margin_pct: Mapped[str] = mapped_column(String(12), default="0")
    flat_fee: Mapped[str] = mapped_column(String(20), default="0")
    allowance_kwh: Mapped[str] = mapped_column(String(20), default="0")
    vat_pct: Mapped[str] = mapped_column(String(12), default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class PropertyUnit(Base):
    __tablename__ = "mf_units"
    __table_args__ = (UniqueConstraint("property_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    property_id: Mapped[str] = mapped_column(ForeignKey("mf_properties.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_accounts.id", ondelete="SET NULL"))


class Invitation(Base):
    """An onboarding code (stored as its SHA-256) that creates a resident, a visitor or a staff member with
    their token and access pass when redeemed."""

    __tablename__ = "mf_invitations"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    property_id: Mapped[str] = mapped_column(ForeignKey("mf_properties.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("mf_units.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # resident | visitor | staff
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    pass_days: Mapped[int | None] = mapped_column(Integer)  # visitors: how long the pass lasts
    max_kwh: Mapped[float | None] = mapped_column(Float)  # visitors: energy the pass allows
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    redeemed_token: Mapped[str | None] = mapped_column(String(36))


class AccessPass(Base):
    """Who may charge in a property's garage: a token, as resident, visitor or staff, in a validity window and,
    optionally, local hours of the day and an energy cap."""

    __tablename__ = "mf_passes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    property_id: Mapped[str] = mapped_column(ForeignKey("mf_properties.id", ondelete="CASCADE"), index=True)
    id_token: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("mf_units.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(10))
    holder: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime())
    hours: Mapped[str | None] = mapped_column(String(11))  # local "HH:MM-HH:MM"
    max_kwh: Mapped[float | None] = mapped_column(Float)


# ---- tariffs --------------------------------------------------------------------------------------------------
class TariffRow(Base):
    """An OCPI 2.2.1 tariff as the operator last set it (``body``, the OCPI JSON); every change is a new version."""

    __tablename__ = "tariffs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The organisation (tenant) it belongs to; rows made before tenants belong to the default one.
    organisation_id: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_ORGANISATION_ID, server_default="1", index=True
    )


class TariffVersion(Base):
    """Price history: each version of a tariff, from when it was set (never edited)."""

    __tablename__ = "tariff_versions"

    tariff_id: Mapped[str] = mapped_column(ForeignKey("tariffs.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())


class Cdr(Base):
    """An OCPI 2.2.1 CDR: a finished session priced by the tariff that applied (``body``, the OCPI JSON).

    One per transaction; amounts and volumes are exact decimals kept as text.
    """

    __tablename__ = "cdrs"

    id: Mapped[str] = mapped_column(String(39), primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id", ondelete="CASCADE"), unique=True)
    tariff_id: Mapped[str] = mapped_column(String(36))
    tariff_version: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    total_energy: Mapped[str] = mapped_column(String(24))  # kWh
    total_time: Mapped[str] = mapped_column(String(24))  # hours
    total_parking_time: Mapped[str] = mapped_column(String(24))  # hours
    total_cost_excl_vat: Mapped[str] = mapped_column(String(24))
    total_cost_incl_vat: Mapped[str] = mapped_column(String(24))
    #: Why the session needs a person's look (a meter that ran backwards or stopped); empty: none.
    review_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TariffAssignment(Base):
    """Which tariff applies where and to whom: a site, a station or one EVSE, for a driver group or for all."""

    __tablename__ = "tariff_assignments"
    __table_args__ = (UniqueConstraint("site_id", "station_id", "evse_id", "group_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tariff_id: Mapped[str] = mapped_column(ForeignKey("tariffs.id", ondelete="RESTRICT"), index=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    group_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


# ---- OCPI 2.2.1 (the CPO role) ----------------------------------------------------------------------------------
class OcpiParty(Base):
    """A roaming partner (an eMSP, a hub): who it is, the token it calls us with (its SHA-256 only: tokens are 32
    random bytes), the token we call it with, and its endpoints as its version details listed them.
    ``status``: pending (token A issued or received, no handshake yet), registered, unregistered."""

    __tablename__ = "ocpi_parties"
    __table_args__ = (UniqueConstraint("country_code", "party_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    #: SHA-256 of the token the party calls us with; ``token_kind`` A only opens versions and credentials.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_kind: Mapped[str | None] = mapped_column(String(1))
    #: The token we call the party with (its token A before we register with it, then B or C).
    peer_token: Mapped[str | None] = mapped_column(String(255))
    versions_url: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[str | None] = mapped_column(String(10))
    endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    roles: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Push changes (EVSE status, sessions) to the party's receiver interfaces; else it pulls.
    push: Mapped[bool] = mapped_column(Boolean, default=True)
    #: What the party was last sent (or had when it registered) of each location and tariff: ``location:ID`` /
    #: ``tariff:ID`` → SHA-256 of the object without its timestamps and statuses; None until first looked at.
    pushed: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    #: When its tokens sender was last pulled (the next periodic pull asks for ``date_from`` this).
    tokens_pulled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: The organisation whose stations, sites and tariffs the party sees and is sent (None: the platform's own
    #: party, every organisation's).
    organisation_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OcpiLocation(Base):
    """What OCPI needs of a location that the CSMS's sites do not hold: address and coordinates. ``id`` is a
    site's id (its stations are the location's EVSEs) or, for a station in no site, the station's id."""

    __tablename__ = "ocpi_locations"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(45))
    city: Mapped[str] = mapped_column(String(45))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(3))
    latitude: Mapped[str] = mapped_column(String(10))
    longitude: Mapped[str] = mapped_column(String(11))
    time_zone: Mapped[str] = mapped_column(String(255))
    publish: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OcpiEvse(Base):
    """An EVSE the OCPI locations module published at a location, kept once it is gone: OCPI 2.2.1 never deletes
    an EVSE, it lists it with status REMOVED (:mod:`csms.ocpi.locations`). ``body`` is the EVSE object as last
    published; ``removed_at`` when the CPO found it gone (its station decommissioned, deleted or moved to another
    location), None while it is published. ``organisation_id`` is its station's (a party of an organisation sees
    only its own), kept after the station is deleted."""

    __tablename__ = "ocpi_evses"

    location_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class OcpiToken(Base):
    """A token an eMSP pushed (the OCPI Token object in ``body``), used to authorise its drivers."""

    __tablename__ = "ocpi_tokens"
    __table_args__ = (
        UniqueConstraint("country_code", "party_id", "uid", "type"),
        Index("ix_ocpi_tokens_uid", "uid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    party: Mapped[int] = mapped_column(ForeignKey("ocpi_parties.id", ondelete="CASCADE"), index=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    uid: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[str] = mapped_column(String(36))
    group_id: Mapped[str | None] = mapped_column(String(36))
    valid: Mapped[bool] = mapped_column(Boolean)
    whitelist: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime())


class OcpiCommand(Base):
    """A command an eMSP sent (START_SESSION …): where its result goes, and what became of it."""

    __tablename__ = "ocpi_commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    party: Mapped[int] = mapped_column(ForeignKey("ocpi_parties.id", ondelete="CASCADE"), index=True)
    command: Mapped[str] = mapped_column(String(24))
    response_url: Mapped[str] = mapped_column(String(500))
    station_id: Mapped[str | None] = mapped_column(String(48))
    #: START_SESSION: the remoteStartId sent, so the transaction it started is known to be this party's.
    remote_start_id: Mapped[int | None] = mapped_column(Integer, index=True)
    authorization_reference: Mapped[str | None] = mapped_column(String(36))
    token_uid: Mapped[str | None] = mapped_column(String(36))
    #: The eMSP's id of what the command names: RESERVE_NOW's reservation_id, STOP_SESSION's session_id.
    reference: Mapped[str | None] = mapped_column(String(36))
    #: RESERVE_NOW: our reservation's id (CANCEL_RESERVATION finds it by the eMSP's ``reference``).
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OcpiPush(Base):
    """The outbox of pushes to parties (EVSE status, sessions, command results), written in the transaction
    that caused them and sent by the runtime's worker with back-off."""

    __tablename__ = "ocpi_pushes"
    __table_args__ = (Index("ix_ocpi_pushes_due", "status", "next_attempt_at"), UniqueConstraint("party", "key"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    party: Mapped[int] = mapped_column(ForeignKey("ocpi_parties.id", ondelete="CASCADE"), index=True)
    module: Mapped[str] = mapped_column(String(16))
    #: The party the push is for when the receiver is a hub (the routing headers' OCPI-to); None: the receiver.
    to_country_code: Mapped[str | None] = mapped_column(String(2))
    to_party_id: Mapped[str | None] = mapped_column(String(3))
    #: What may be pushed to a party only once (``cdr:{id}``); None: no such limit.
    key: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(6))
    url: Mapped[str] = mapped_column(String(1000))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: pending, delivered, abandoned (no retry left)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# ---- organisations (tenants), console users and their sessions ---------------------------------------------
class Organisation(Base):
    """A tenant: its users and API keys see and touch only its stations, sites, tokens, tariffs and accounts."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: What the CLI names it by (``--org SLUG``).
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class User(Base):
    """A person who signs in to the console (or calls the API with the console's session cookie)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Lower case; the sign-in name.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    organisation_id: Mapped[int] = mapped_column(Integer, index=True)
    role: Mapped[str] = mapped_column(String(20))
    #: argon2id; None until the user set a password through their one-time link.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Base32 TOTP secret (RFC 6238) when the second factor is on; the last time step used (no replay).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    #: SHA-256 of the pending one-time set-password link, and when it expires.
    link_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConsoleSession(Base):
    """A signed-in browser: only the SHA-256 of the cookie's value is stored."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    #: The synchronizer token every form and every unsafe request made with this session must carry.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    client: Mapped[str | None] = mapped_column(String(64))


class SignInFailure(Base):
    """Failed sign-ins per e-mail address (known or not, so a lock-out tells nothing about who exists)."""

    __tablename__ = "signin_failures"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


# ---- the audit trail ----------------------------------------------------------------------------------------
class AuditEntry(Base):
    """One change or refusal: who (a user, a key, the CLI, or anonymous), in which organisation, what (the
    request's method and route, or the CLI command), on which object, its before and after, when (UTC), from
    where, under which request id. Append-only: the database refuses UPDATE and DELETE (triggers, migration
    7c3e9a5b1f62)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_station_at", "station_id", "at"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: ``user:ID``, ``key:ID`` (``key:fixed``), ``cli:OS-USER`` or ``anonymous``.
    actor: Mapped[str] = mapped_column(String(100))
    #: The user's e-mail, the key's name, or the e-mail a failed sign-in named.
    actor_name: Mapped[str | None] = mapped_column(String(254))
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: ``POST /api/v1/stations/{station_id}/reset``, ``POST /signin``, ``csms users add`` …
    action: Mapped[str] = mapped_column(String(200))
    #: The HTTP status answered (0: a CLI command, which either committed or wrote nothing).
    status: Mapped[int] = mapped_column(Integer)
    object_type: Mapped[str | None] = mapped_column(String(50))
    object_id: Mapped[str | None] = mapped_column(String(200))
    station_id: Mapped[str | None] = mapped_column(String(48))
    #: ``{"table:key": {column: value}}`` of every row the request changed, before and after (secrets masked).
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The request's JSON body as sent (secrets masked; cut at 16 KiB): a command's payload.
    request: Mapped[Any | None] = mapped_column(JSON)
    client: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
