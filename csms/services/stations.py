"""Stations: provisioning, registration (boot), liveness, port status and what else they report."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, Table, bindparam, case, func, insert, literal_column, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from csms.domain import events as ev
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201
from csms.services import configuration, diagnostics, display_messages, security_events, station_rows
from csms.services.config import CsmsConfig
from csms.services.errors import Conflict, Invalid, NotFound
from csms.services.passwords import hash_password
from csms.services.uow import UnitOfWork
from csms.store.bulk import Bulk, InsertIgnoringConflicts
from csms.store.models import (
    Connector,
    PendingRegistration,
    StationEvent,
    StatusChange,
    UtcDateTime,
)
from csms.store.models import Station as StationRow

POLICIES = ("accept", "pending", "reject")
BOOT_STATUS = {"accept": "Accepted", "pending": "Pending", "reject": "Rejected"}
VERSIONS = (OCPP16, OCPP201, OCPP21)
SECURITY_PROFILES = (1, 2, 3)
#: 2.0.1 BasicAuthPassword is a passwordString of 16-40 characters; the 1.6 security whitepaper's
#: AuthorizationKey carries 16-20 bytes (sent as at most 40 hexadecimal digits).
_PASSWORD_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    OCPP201: (re.compile(r"[A-Za-z0-9*\-_=:+|@.]{16,40}"), "16-40 characters of A-Z a-z 0-9 * - _ = : + | @ ."),
    OCPP16: (re.compile(r"[!-~]{16,20}"), "16-20 printable ASCII characters without spaces"),
}


def check_password(password: str | None, ocpp_version: str) -> None:
    """The spec's rule for a station's HTTP Basic password; None is "no password" (a profile-1 station
    without authentication, or profile 3). Every way of setting a password goes through it
    (:func:`provision`, :func:`update`, :func:`approve`).

    Raises:
        Invalid: the password breaks the rule of ``ocpp_version``.
    """
    if password is None:
        return
    pattern, rule = _PASSWORD_RULES.get(ocpp_version, _PASSWORD_RULES[OCPP201])
    if not pattern.fullmatch(password):
        raise Invalid(f"an OCPP {ocpp_version} station password must be {rule} (got {len(password)} characters)")


def _check_profile(profile: int, has_password: bool) -> None:
    if profile not in SECURITY_PROFILES:
        raise Invalid(f"security profile must be 1, 2 or 3, got {profile!r}")
    if profile == 2 and not has_password:
        raise Invalid("a security profile 2 station needs a password (TLS + HTTP Basic authentication)")


def provision(  # noqa: PLR0913 - one keyword-only option per stored field
    db: Session,
    station_id: str,
    *,
    ocpp_version: str,
    password: str | None,
    now: datetime,
    policy: str = "accept",
    site_id: str | None = None,
    password_hash: str | None = None,
    security_profile: int = 1,
) -> StationRow:
    """Create a station the operator expects.

    Raises:
        Conflict: a station with this id exists.  Invalid: bad version, policy or id.
    """
    if ocpp_version not in VERSIONS:
        raise Invalid(f"ocpp_version must be one of {', '.join(VERSIONS)}, got {ocpp_version!r}")
    if policy not in POLICIES:
        raise Invalid(f"registration policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if not station_id or len(station_id) > 48 or "/" in station_id:
        raise Invalid("station id must be 1-48 characters without '/'")
    check_password(password, ocpp_version)
    _check_profile(security_profile, bool(password or password_hash))
    if db.get(StationRow, station_id) is not None:
        raise Conflict(f"station {station_id!r} already exists")
    row = StationRow(
        id=station_id,
        ocpp_version=ocpp_version,
        password_hash=password_hash or (hash_password(password) if password else None),
        security_profile=security_profile,
        registration_policy=policy,
        created_at=now,
        site_id=site_id,
        auto_registered=False,
    )
    db.add(row)
    db.flush()
    return row


def note_pending(
    db: Session,
    station_id: str,
    *,
    ocpp_version: str,
    source: str | None,
    now: datetime,
    max_pending: int,
    max_per_source: int,
) -> bool:
    """An unknown station connected while auto-registration is on: note it for the operator's approval,
    within the caps (in all, and per source address). Its password is not looked at. False when a cap kept
    a new id out (an id already noted is always refreshed)."""
    row = db.get(PendingRegistration, station_id)
    if row is None:
        if not 0 < len(station_id) <= 48 or "/" in station_id:
            return False
        total = db.scalar(select(func.count()).select_from(PendingRegistration)) or 0
        from_source = (
            db.scalar(select(func.count()).select_from(PendingRegistration).where(PendingRegistration.source == source))
            or 0
        )
        if total >= max_pending or from_source >= max_per_source:
            return False
        db.add(
            PendingRegistration(
                station_id=station_id,
                ocpp_version=ocpp_version,
                source=source,
                attempts=1,
                first_seen_at=now,
                last_seen_at=now,
            )
        )
        return True
    row.attempts += 1
    row.last_seen_at = now
    row.source = source
    row.ocpp_version = ocpp_version
    return True


def list_pending(db: Session) -> list[PendingRegistration]:
    return list(db.scalars(select(PendingRegistration).order_by(PendingRegistration.first_seen_at)))


def approve(
    db: Session,
    station_id: str,
    *,
    password: str | None,
    security_profile: int,
    now: datetime,
    ocpp_version: str | None = None,
) -> StationRow:
    """The operator approves a pending registration with the credentials the station is known to have
    (profile 1/2: its password; profile 3: its certificate): the station is created, accepted at its next
    boot, and the registration is no longer pending.

    Raises:
        NotFound: no pending registration with this id.  Invalid: the credentials break the rules.
    """
    pending = db.get(PendingRegistration, station_id)
    if pending is None:
        raise NotFound(f"no pending registration {station_id!r}")
    if password is None and security_profile != 3:
        raise Invalid(f"approving a security profile {security_profile} station needs its password")
    row = provision(
        db,
        station_id,
        ocpp_version=ocpp_version or pending.ocpp_version,
        password=password,
        now=now,
        security_profile=security_profile,
    )
    row.auto_registered = True
    db.delete(pending)
    db.flush()
    return row


def get(db: Session, station_id: str) -> StationRow:
    return station_rows.get(db, station_id)


def list_stations(
    db: Session, organisation_id: int | None = None, station_ids: Iterable[str] | None = None
) -> list[StationRow]:
    """Every station (of one organisation, of the named ones only, when given)."""
    query = select(StationRow).order_by(StationRow.id)
    if organisation_id is not None:
        query = query.where(StationRow.organisation_id == organisation_id)
    if station_ids is not None:
        query = query.where(StationRow.id.in_(list(station_ids)))
    return list(db.scalars(query))


def versions(db: Session, station_ids: list[str]) -> dict[str, str]:
    """Each named station's OCPP version (unknown ids are left out)."""
    if not station_ids:
        return {}
    rows = db.execute(select(StationRow.id, StationRow.ocpp_version).where(StationRow.id.in_(station_ids)))
    return {station_id: version for station_id, version in rows}


def count_accepted(db: Session) -> int:
    """How many stations the CSMS has accepted at their last boot."""
    return len(db.scalars(select(StationRow.id).where(StationRow.registration_status == "Accepted")).all())


#: Changes after which the station's live connection must end: it was admitted on what no longer holds.
RECONNECT_ON = frozenset({"password", "security_profile", "ocpp_version"})


def update(db: Session, station_id: str, changes: dict[str, Any]) -> StationRow:
    """The operator's changes. A policy other than accept also drops the stored Accepted: the station's
    next connection must boot again and be answered by the new policy (B02: only a station whose last boot
    was Accepted may skip the boot after a reconnect)."""
    row = get(db, station_id)
    if "registration_policy" in changes:
        if changes["registration_policy"] not in POLICIES:
            raise Invalid(f"registration_policy must be one of {', '.join(POLICIES)}")
        row.registration_policy = changes["registration_policy"]
        if row.registration_policy != "accept" and row.registration_status == "Accepted":
            row.registration_status = None
    if "ocpp_version" in changes:
        if changes["ocpp_version"] not in VERSIONS:
            raise Invalid(f"ocpp_version must be one of {', '.join(VERSIONS)}")
        row.ocpp_version = changes["ocpp_version"]
    if "password" in changes:
        check_password(changes["password"], row.ocpp_version)
        row.password_hash = hash_password(changes["password"]) if changes["password"] is not None else None
        row.previous_password_hash, row.previous_password_expires_at = None, None  # the operator re-keyed it
    if "site_id" in changes:
        row.site_id = changes["site_id"]
    if "security_profile" in changes:
        row.security_profile = changes["security_profile"]
        row.pending_security_profile = None  # the operator's word replaces an upgrade in flight
    _check_profile(row.security_profile, row.password_hash is not None)
    db.flush()
    return row


def must_reconnect(changes: dict[str, Any]) -> bool:
    """Do these changes (of :func:`update`) end the station's live connection? Its credentials, profile or
    version changed, or it is rejected. (Pending takes effect at its next boot: B02.FR.06 keeps a Pending
    station connected.)"""
    return bool(RECONNECT_ON & changes.keys()) or changes.get("registration_policy") == "reject"


def connectors(db: Session, station_ids: list[str] | None = None) -> list[Connector]:
    query = select(Connector).order_by(Connector.station_id, Connector.evse_id, Connector.connector_id)
    if station_ids is not None:
        query = query.where(Connector.station_id.in_(station_ids))
    return list(db.scalars(query))


# ---- reports from the station --------------------------------------------------------------------------
_STATIONS: Table = StationRow.__table__  # type: ignore[assignment]  # declarative: a Table


def _sql_text(constant: str) -> ColumnElement[str]:
    """One of this module's constant words as an SQL literal (a bind parameter would need a value per row)."""
    return literal_column(f"'{constant}'", String)


#: A boot: what the station says it is, the registration its policy gives (:data:`BOOT_STATUS`, in SQL), and when.
_BOOTED = Bulk(
    sql_update(_STATIONS)
    .where(_STATIONS.c.id == bindparam("of_station"))
    .values(
        vendor=bindparam("new_vendor"),
        model=bindparam("new_model"),
        serial_number=bindparam("new_serial_number"),
        firmware_version=bindparam("new_firmware_version"),
        registration_status=case(
            *(
                (_STATIONS.c.registration_policy == _sql_text(policy), _sql_text(status))
                for policy, status in BOOT_STATUS.items()
            )
        ),
        last_boot_at=bindparam("at", type_=UtcDateTime()),
        last_seen_at=bindparam("at", type_=UtcDateTime()),
    )
    .returning(_STATIONS.c.registration_status)
)


def boot(
    uow: UnitOfWork, station_id: str, report: ev.BootReported, now: datetime, config: CsmsConfig
) -> ev.BootDecision:
    """The station's row takes the boot at once, with one prepared statement (no ORM load and flush: a reconnect
    storm is a boot per station); a copy of the row this batch's ORM session holds is read again when used."""
    booted = _BOOTED.fetch_one(
        uow.read_connection(),
        {
            "of_station": station_id,
            "new_vendor": report.vendor,
            "new_model": report.model,
            "new_serial_number": report.serial_number,
            "new_firmware_version": report.firmware_version,
            "at": now,
        },
    )
    if booted is None:
        raise NotFound(f"station {station_id!r} not found")
    status: str = booted[0]
    if uow.has_session:
        held = uow.session.identity_map.get(identity_key(StationRow, station_id))
        if held is not None:
            uow.session.expire(held)
    interval = {
        "Accepted": config.heartbeat_interval_s,
        "Pending": config.pending_interval_s,
        "Rejected": config.rejected_interval_s,
    }[status]
    return ev.BootDecision(status, interval, now)


def seen(uow: UnitOfWork, station_id: str, now: datetime) -> None:
    """The station showed it is alive; written for the whole batch at once (:meth:`UnitOfWork.flush_batches`)."""
    uow.seen.append((station_id, now))


_CONNECTORS: Table = Connector.__table__  # type: ignore[assignment]  # declarative: a Table
_STATUS_HISTORY: Table = StatusChange.__table__  # type: ignore[assignment]
_PORT_KEY = (
    (_CONNECTORS.c.station_id == bindparam("of_station"))
    & (_CONNECTORS.c.evse_id == bindparam("of_evse"))
    & (_CONNECTORS.c.connector_id == bindparam("of_connector"))
)
#: The port takes a report unless it holds a newer one (a status replayed after a reconnect may be older).
_UPDATE_PORT = Bulk(
    sql_update(_CONNECTORS)
    .where(
        _PORT_KEY,
        _CONNECTORS.c.status_at.is_(None) | (_CONNECTORS.c.status_at <= bindparam("at", type_=UtcDateTime())),
    )
    .values(
        status=bindparam("new_status"),
        error_code=bindparam("new_error_code"),
        info=bindparam("new_info"),
        vendor_error_code=bindparam("new_vendor_error_code"),
        status_at=bindparam("new_status_at", type_=UtcDateTime()),
    )
)
#: A port seen for the first time (the unique key makes a port that exists, holding a newer report, keep it).
_INSERT_PORT = InsertIgnoringConflicts(_CONNECTORS)
_INSERT_STATUS_CHANGE = Bulk(insert(_STATUS_HISTORY))


def status(db: Session | Connection, station_id: str, report: ev.StatusReported, now: datetime) -> None:
    """The port's status (unless it holds a newer one) and the report in the history, written at once in the
    transaction of ``db`` with two prepared statements (a status report comes with every plug, start and stop:
    the ORM's load-then-flush cost ten times as much)."""
    if isinstance(db, Session):
        db.flush()  # the rows the session holds first (the port's station may be new in it)
        connection = db.connection()
    else:
        connection = db
    timestamp = report.timestamp or now
    port = {"of_station": station_id, "of_evse": report.evse_id, "of_connector": report.connector_id}
    fields = {
        "status": report.status,
        "error_code": report.error_code,
        "info": report.info,
        "vendor_error_code": report.vendor_error_code,
    }
    moved = _UPDATE_PORT.execute_one(
        connection,
        {**port, "at": timestamp, **{f"new_{k}": v for k, v in fields.items()}, "new_status_at": timestamp},
    )
    if not moved:
        _INSERT_PORT[connection.dialect.name].execute_one(
            connection,
            {
                "station_id": station_id,
                "evse_id": report.evse_id,
                "connector_id": report.connector_id,
                **fields,
                "status_at": timestamp,
            },
        )
    _INSERT_STATUS_CHANGE.execute_one(
        connection,
        {
            "station_id": station_id,
            "evse_id": report.evse_id,
            "connector_id": report.connector_id,
            "status": report.status,
            "error_code": report.error_code,
            "info": report.info,
            "timestamp": timestamp,
            "received_at": now,
        },
    )


def notice(db: Session, station_id: str, report: ev.StationNotice, now: datetime) -> None:
    row = get(db, station_id)
    if report.kind == "security_event":  # SecurityEventNotification (2.0.1, and 1.6's security extension)
        _station_security_event(db, station_id, report, now)
        return
    if report.kind == "firmware_status":
        row.firmware_status = report.data.get("status")
    elif report.kind == "diagnostics_status":
        row.diagnostics_status = report.data.get("status")
    elif report.kind == "report":
        configuration.remember_report(db, station_id, report.data.get("reportData", []), now)
    elif report.kind == "display_messages":
        display_messages.reported(db, station_id, report.data.get("messageInfo", []), now)
    if report.kind in diagnostics.NOTICE_KINDS:  # follow the upload/update request to its last status
        diagnostics.track_status(db, station_id, report.kind, report.data, now)
    db.add(StationEvent(station_id=station_id, kind=report.kind, timestamp=report.timestamp or now, data=report.data))


def _station_security_event(db: Session, station_id: str, report: ev.StationNotice, now: datetime) -> None:
    data = report.data
    detail = {"techInfo": data["techInfo"]} if data.get("techInfo") is not None else {}
    security_events.record(
        db,
        type=str(data.get("type", "unknown")),
        at=report.timestamp or now,
        station_id=station_id,
        detail=detail,
        origin="station",
    )


def flag_implausible(
    db: Session, station_id: str, report_kind: str, values: list[dict[str, Any]], now: datetime
) -> None:
    """Values a report carried that cannot be true (:mod:`csms.domain.plausibility`), kept as evidence."""
    db.add(
        StationEvent(
            station_id=station_id,
            kind="implausible_values",
            timestamp=now,
            data={"report": report_kind, "values": values},
        )
    )


def charging_needs(db: Session, station_id: str, report: ev.ChargingNeedsReported, now: datetime) -> None:
    """Kept as a station event: load management reads the needs from the committed report."""
    get(db, station_id)
    db.add(StationEvent(station_id=station_id, kind="ev_charging_needs", timestamp=now, data=report.data))


def vendor_data(
    db: Session, station_id: str, report: ev.VendorDataReceived, now: datetime, config: CsmsConfig
) -> ev.DataTransferDecision:
    db.add(
        StationEvent(
            station_id=station_id,
            kind="data_transfer",
            timestamp=now,
            data={"vendorId": report.vendor_id, "messageId": report.message_id, "data": report.data},
        )
    )
    if report.vendor_id not in config.known_vendors:
        return ev.DataTransferDecision("UnknownVendorId")
    if report.message_id == "Echo":
        return ev.DataTransferDecision("Accepted", report.data)
    return ev.DataTransferDecision("UnknownMessageId")


def connection_changed(uow: UnitOfWork, station_id: str, kind: str, now: datetime, detail: str | None = None) -> None:
    uow.connection_rows.append({"station_id": station_id, "kind": kind, "at": now, "detail": detail})
    if kind == "connected":
        seen(uow, station_id, now)
