"""Read a SteVe database (the open-source OCPP 1.6 CSMS, MySQL/MariaDB) into import records.

What is read: ``charge_box`` (stations: id, protocol, registration status, vendor, model, serial, firmware),
``connector`` with its latest ``connector_status``, ``ocpp_tag`` (id tags: parent → group, expiry,
``max_active_transaction_count`` 0 → Blocked), ``transaction_start`` with its latest ``transaction_stop`` and
its ``connector_meter_value`` rows (sessions with their samples), ``reservation`` (history). What is not,
and why, goes into the report (docs/design/migration.md, "From SteVe and from spreadsheets").

SteVe's TIMESTAMP columns are read in UTC (the session's time zone is set to +00:00); its DATETIME columns
(a reservation's start and expiry) have no zone and are taken as UTC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from csms.ocpp.versions import OCPP16
from csms.services.imports import (
    ENERGY_REGISTER,
    ImportReport,
    PortState,
    Records,
    ReservationRecord,
    SampleRecord,
    SessionRecord,
    StationRecord,
    TokenRecord,
)

REQUIRED_TABLES = (
    "charge_box", "connector", "connector_status", "ocpp_tag", "transaction_start", "transaction_stop",
    "connector_meter_value", "reservation",
)  # fmt: skip
#: SteVe tables with no place in chargetwin, and why (counted in the report when they hold rows).
IGNORED_TABLES = {
    "user": "SteVe's users (names, e-mail, phone) are people, chargetwin keeps no personal data of drivers",
    "address": "postal addresses of users and charge boxes: chargetwin keeps no addresses",
    "user_ocpp_tag": "which user owns which tag: chargetwin has no driver accounts (the tags themselves are imported)",
    "charging_profile": "charging profiles: chargetwin's load manager plans its own limits per site",
    "connector_charging_profile": "profile assignments: see charging_profile",
    "transaction_stop_failed": "stops SteVe could not match to a transaction",
}
#: SteVe's ocpp_protocol → chargetwin version; 1.2 and 1.5 have no place here.
PROTOCOLS = {"ocpp1.6J": OCPP16, "ocpp1.6S": OCPP16}
POLICIES = {"Accepted": "accept", "Pending": "pending", "Rejected": "reject"}
_SAMPLE_LIMITS = {"measurand": 48, "phase": 8, "location": 8, "context": 24, "unit": 20}


class SteveError(Exception):
    """The source cannot be read as a SteVe database (unreachable, or a table is missing)."""


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(text_value: str | None) -> float | None:
    try:
        return None if text_value is None else float(text_value)
    except ValueError:
        return None


def read(url: str, now: datetime) -> tuple[Records, ImportReport]:
    """Everything importable from the SteVe database at ``url`` (a SQLAlchemy URL, e.g.
    ``mysql+pymysql://user:pw@host:3306/stevedb``), read in one consistent snapshot.

    Raises:
        SteveError: unreachable, or not a SteVe schema.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SteveError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        raise SteveError(f"SteVe runs on MySQL or MariaDB: give a mysql+pymysql:// URL, not {parsed.drivername}://")
    engine = create_engine(parsed, connect_args={"init_command": "SET time_zone = '+00:00'"})
    try:
        with engine.connect() as connection, connection.begin():
            tables = set(inspect(connection).get_table_names())
            missing = [t for t in REQUIRED_TABLES if t not in tables]
            if missing:
                raise SteveError(f"not a SteVe database: table(s) {', '.join(missing)} missing")
            report = ImportReport(source=f"SteVe database {engine.url.database}")
            return _SteveReader(connection, report, now).read(tables), report
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise SteveError(f"cannot read the SteVe database: {reason}") from None
    finally:
        engine.dispose()


class _SteveReader:
    def __init__(self, connection: Connection, report: ImportReport, now: datetime) -> None:
        self.connection = connection
        self.report = report
        self.now = now
        #: connector_pk → (charge_box_id, connector_id)
        self.ports: dict[int, tuple[str, int]] = {}
        self.stations: set[str] = set()

    def _rows(self, sql: str) -> list[Any]:
        return list(self.connection.execute(text(sql)))

    def read(self, tables: set[str]) -> Records:
        records = Records()
        records.stations = self._stations(tables)
        records.tokens = self._tokens()
        records.sessions = self._sessions()
        records.reservations = self._reservations()
        for table, why in IGNORED_TABLES.items():
            if table in tables:
                count = self.connection.execute(text(f"SELECT count(*) FROM `{table}`")).scalar() or 0
                if count:
                    self.report.not_imported.append(f"{table}: {count} row(s): {why}")
        return records

    def _stations(self, tables: set[str]) -> list[StationRecord]:
        ports = self._latest_status()
        columns = {c["name"] for c in inspect(self.connection).get_columns("charge_box")}
        hashed = "auth_password" in columns  # newer SteVe: a BCrypt hash per charge box
        rows = self._rows(
            "SELECT charge_box_id, ocpp_protocol, registration_status, charge_point_vendor, charge_point_model, "
            "charge_point_serial_number, fw_version" + (", auth_password" if hashed else ", NULL")
            + " FROM charge_box ORDER BY charge_box_id"
        )  # fmt: skip
        found = []
        for cb_id, protocol, registration, vendor, model, serial, firmware, password_hash in rows:
            version = PROTOCOLS.get(protocol) if protocol is not None else OCPP16
            if version is None:
                self.report.skip("stations", cb_id, f"speaks {protocol}: chargetwin speaks OCPP 1.6J and 2.0.1 only")
                continue
            if protocol is None:
                self.report.notes.append(f"station {cb_id}: SteVe never saw it connect; imported as OCPP 1.6")
            elif protocol.endswith("S"):
                self.report.notes.append(f"station {cb_id}: OCPP 1.6 over SOAP; set it to 1.6J (WebSocket) to connect")
            if password_hash:
                self.report.notes.append(
                    f"station {cb_id}: SteVe's BCrypt password hash is not carried over (chargetwin verifies argon2)"
                )
            self.stations.add(cb_id)
            found.append(
                StationRecord(
                    station_id=cb_id, ocpp_version=version, policy=POLICIES.get(registration, "accept"),
                    vendor=vendor, model=model, serial_number=serial, firmware_version=firmware,
                    ports=tuple(ports.get(cb_id, ())),
                )
            )  # fmt: skip
        return found

    def _latest_status(self) -> dict[str, list[PortState]]:
        for pk, cb_id, connector_id in self._rows("SELECT connector_pk, charge_box_id, connector_id FROM connector"):
            self.ports[pk] = (cb_id, connector_id)
        latest: dict[int, Any] = {}
        history = 0
        for row in self._rows(
            "SELECT connector_pk, status_timestamp, status, error_code, error_info FROM connector_status "
            "ORDER BY connector_pk, status_timestamp"
        ):
            latest[row[0]] = row
            history += 1
        if history:
            self.report.not_imported.append(
                f"connector_status: {history} status report(s): only each connector's latest status is kept; "
                "uptime history on chargetwin starts at the cut-over"
            )
        by_station: dict[str, list[PortState]] = defaultdict(list)
        for pk, (cb_id, connector_id) in sorted(self.ports.items(), key=lambda item: item[1]):
            status = latest.get(pk)
            by_station[cb_id].append(
                PortState(connector_id, status[2], status[3], status[4], _utc(status[1]))
                if status is not None
                else PortState(connector_id)
            )
        return by_station

    def _tokens(self) -> list[TokenRecord]:
        tokens = []
        unlimited = []
        for id_tag, parent, expiry, max_active in self._rows(
            "SELECT id_tag, parent_id_tag, expiry_date, max_active_transaction_count FROM ocpp_tag ORDER BY id_tag"
        ):
            if max_active != 1 and max_active != 0:
                unlimited.append(id_tag)
            status = "Blocked" if max_active == 0 else "Accepted"
            tokens.append(TokenRecord(id_tag, status=status, expiry=_utc(expiry), group_id=parent))
        if unlimited:
            self.report.notes.append(
                "max_active_transaction_count other than 0 or 1 is not enforced by chargetwin (tags "
                + ", ".join(unlimited) + ")"
            )  # fmt: skip
        return tokens

    def _sessions(self) -> list[SessionRecord]:
        stops: dict[int, Any] = {}
        for row in self._rows(
            "SELECT transaction_pk, stop_timestamp, stop_value, stop_reason FROM transaction_stop "
            "ORDER BY transaction_pk, event_timestamp"
        ):
            stops[row[0]] = row  # the latest stop event wins, as SteVe's own `transaction` view has it
        samples = self._samples()
        sessions = []
        for pk, connector_pk, id_tag, started, start_value in self._rows(
            "SELECT transaction_pk, connector_pk, id_tag, start_timestamp, start_value FROM transaction_start "
            "ORDER BY transaction_pk"
        ):
            cb_id, connector_id = self.ports[connector_pk]
            if cb_id not in self.stations:
                self.report.skip("sessions", f"{cb_id}/{pk}", "its station is not imported")
                continue
            stop = stops.get(pk)
            sessions.append(
                SessionRecord(
                    station_id=cb_id, charger_tx_id=str(pk), transaction_id=pk, connector_id=connector_id,
                    id_token=id_tag, started_at=_utc(started) or self.now, meter_start_wh=_number(start_value),
                    stopped_at=_utc(stop[1]) if stop else None, meter_stop_wh=_number(stop[2]) if stop else None,
                    stop_reason=stop[3] if stop else None, samples=tuple(samples.get(pk, ())),
                )
            )  # fmt: skip
        return sessions

    def _samples(self) -> dict[int, list[SampleRecord]]:
        by_transaction: dict[int, list[SampleRecord]] = defaultdict(list)
        dropped = outside = 0
        for tx, at, value, context, fmt, measurand, location, unit, phase in self._rows(
            "SELECT transaction_pk, value_timestamp, value, reading_context, format, measurand, location, unit, phase "
            "FROM connector_meter_value ORDER BY transaction_pk, value_timestamp"
        ):
            if tx is None:
                outside += 1
                continue
            number = _number(value) if fmt != "SignedData" else None
            fields = {"measurand": measurand, "phase": phase, "location": location, "context": context, "unit": unit}
            if number is None or at is None or _too_long(fields.items()):
                dropped += 1
                continue
            by_transaction[tx].append(
                SampleRecord(
                    timestamp=_utc(at) or self.now, value=number, measurand=measurand or ENERGY_REGISTER,
                    unit=unit or "Wh", phase=phase, location=location, context=context,
                )
            )  # fmt: skip
        if outside:
            self.report.not_imported.append(f"connector_meter_value: {outside} reading(s) outside any transaction")
        if dropped:
            self.report.not_imported.append(
                f"connector_meter_value: {dropped} reading(s) signed, not numeric or with over-long fields"
            )
        return by_transaction

    def _reservations(self) -> list[ReservationRecord]:
        found = []
        for pk, connector_pk, tx, id_tag, start, expiry, status in self._rows(
            "SELECT reservation_pk, connector_pk, transaction_pk, id_tag, start_datetime, expiry_datetime, status "
            "FROM reservation ORDER BY reservation_pk"
        ):
            cb_id, connector_id = self.ports[connector_pk]
            key = f"{cb_id}/{pk}"
            mapped = self._reservation_status(status, _utc(expiry))
            if cb_id not in self.stations or mapped is None or expiry is None:
                self.report.skip("reservations", key, "its station is not imported" if cb_id not in self.stations
                                 else f"status {status!r} or expiry {expiry!r} has no meaning here")  # fmt: skip
                continue
            found.append(
                ReservationRecord(
                    station_id=cb_id, id_token=id_tag, created_at=_utc(start) or _utc(expiry) or self.now,
                    expires_at=_utc(expiry) or self.now, status=mapped, reservation_id=pk,
                    connector_id=connector_id, used_by=None if tx is None else str(tx),
                )
            )  # fmt: skip
        return found

    def _reservation_status(self, status: str, expiry: datetime | None) -> str | None:
        if status == "ACCEPTED":
            return "active" if expiry is not None and expiry > self.now else "expired"
        # WAITING: SteVe sent ReserveNow and never had the answer.
        return {"USED": "used", "CANCELLED": "cancelled", "WAITING": "failed"}.get(status)


def _too_long(fields: Iterable[tuple[str, str | None]]) -> bool:
    return any(value is not None and len(value) > _SAMPLE_LIMITS[name] for name, value in fields)
