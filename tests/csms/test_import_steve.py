"""Importing a SteVe database: a real MariaDB holding SteVe's schema and sample rows, into chargetwin on SQLite
and PostgreSQL. What an operator would check after a migration: stations with their OCPP version and ports,
tags with their status, expiry and group, sessions with the right times and energy, reservations as history."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from csms.cli import main
from csms.migration import steve
from csms.services import authorization, imports
from csms.store.models import Connector, IdToken, MeterSample, Reservation, Station, Transaction

MARIADB_ADMIN_URL = os.environ.get("CHARGETWIN_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCHEMA = Path(__file__).with_name("steve_schema.sql")
NOW = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)

SAMPLE_ROWS = """
INSERT INTO address (address_pk, street, city) VALUES (1, 'Hauptstr. 1', 'Aachen');
INSERT INTO charge_box (charge_box_id, ocpp_protocol, registration_status, charge_point_vendor, charge_point_model,
  charge_point_serial_number, fw_version, address_pk) VALUES
  ('CB-1', 'ocpp1.6J', 'Accepted', 'ABB', 'Terra AC', 'S-001', '1.2.3', 1),
  ('CB-2', 'ocpp1.6S', 'Pending', 'Alfen', 'Eve', NULL, NULL, NULL),
  ('CB-OLD', 'ocpp1.5J', 'Accepted', 'Old', 'Box', NULL, NULL, NULL);
INSERT INTO connector (connector_pk, charge_box_id, connector_id) VALUES
  (1, 'CB-1', 1), (2, 'CB-1', 2), (3, 'CB-2', 1), (4, 'CB-OLD', 1);
INSERT INTO connector_status (connector_pk, status_timestamp, status, error_code) VALUES
  (1, '2026-01-11 10:00:00', 'Available', 'NoError'),
  (1, '2026-01-11 20:00:01', 'Charging', 'NoError'),
  (2, '2026-01-11 09:00:00', 'Faulted', 'GroundFailure');
INSERT INTO ocpp_tag (id_tag, parent_id_tag, expiry_date, max_active_transaction_count) VALUES
  ('FLEET', NULL, NULL, 1);
INSERT INTO ocpp_tag (id_tag, parent_id_tag, expiry_date, max_active_transaction_count) VALUES
  ('TAG-A', 'FLEET', '2027-01-01 00:00:00', 1),
  ('TAG-B', NULL, NULL, 0),
  ('TAG-C', 'FLEET', '2025-06-01 00:00:00', 3),
  ('TAG-FAR-TOO-LONG-FOR-AN-OCPP-ID-TOKEN-0001', NULL, NULL, 1);
INSERT INTO user (ocpp_tag_pk, address_pk, first_name, e_mail) VALUES (2, 1, 'Ada', 'ada@example.org');
INSERT INTO transaction_start (transaction_pk, connector_pk, id_tag, start_timestamp, start_value) VALUES
  (101, 1, 'TAG-A', '2026-01-10 08:00:00', '1000'),
  (102, 2, 'TAG-A', '2026-01-11 20:00:00', '200'),
  (103, 4, 'TAG-B', '2026-01-09 08:00:00', '0'),
  (104, 3, 'TAG-FAR-TOO-LONG-FOR-AN-OCPP-ID-TOKEN-0001', '2026-01-09 09:00:00', '0');
INSERT INTO transaction_stop (transaction_pk, event_timestamp, event_actor, stop_timestamp, stop_value, stop_reason)
VALUES
  (101, '2026-01-10 09:00:05', 'station', '2026-01-10 09:00:00', '5000', 'EVDisconnected'),
  (101, '2026-01-10 09:30:00', 'manual', '2026-01-10 09:10:00', '6500', 'Local');
INSERT INTO connector_meter_value (connector_pk, transaction_pk, value_timestamp, value, reading_context, format,
  measurand, location, unit, phase) VALUES
  (1, 101, '2026-01-10 08:30:00', '3000', 'Sample.Periodic', 'Raw', 'Energy.Active.Import.Register', 'Outlet', 'Wh',
   NULL),
  (1, 101, '2026-01-10 08:30:00', '11000', 'Sample.Periodic', 'Raw', 'Power.Active.Import', 'Outlet', 'W', NULL),
  (1, 101, '2026-01-10 09:10:00', '6500', 'Transaction.End', 'Raw', 'Energy.Active.Import.Register', 'Outlet',
   'Wh', NULL),
  (1, 101, '2026-01-10 08:45:00', 'MIIBsignature', 'Sample.Periodic', 'SignedData', NULL, NULL, NULL, NULL),
  (2, 102, '2026-01-11 20:30:00', '3.2', 'Sample.Periodic', 'Raw', 'Energy.Active.Import.Register', NULL, 'kWh',
   NULL),
  (1, NULL, '2026-01-11 07:00:00', '900', 'Sample.Clock', 'Raw', NULL, NULL, NULL, NULL);
INSERT INTO reservation (reservation_pk, connector_pk, transaction_pk, id_tag, start_datetime, expiry_datetime,
  status) VALUES
  (7, 1, 101, 'TAG-A', '2026-01-10 07:30:00', '2026-01-10 08:30:00', 'USED'),
  (8, 3, NULL, 'TAG-C', '2026-01-11 07:00:00', '2026-01-11 08:00:00', 'CANCELLED');
"""


def _statements(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in body.split(";") if part.strip()]


@pytest.fixture
def steve_url() -> Iterator[str]:
    """A scratch SteVe database on the local MariaDB, dropped afterwards."""
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"MariaDB is required under CI=true but {MARIADB_ADMIN_URL} does not answer: {exc}")
        pytest.skip("MariaDB not available")
    name = f"steve_test_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}`"))
    url = f"{MARIADB_ADMIN_URL.rstrip('/')}/{name}"
    fill = create_engine(url, connect_args={"init_command": "SET time_zone = '+00:00'"})
    try:
        with fill.begin() as connection:
            for statement in _statements(SCHEMA.read_text()) + _statements(SAMPLE_ROWS):
                connection.execute(text(statement))
        yield url
    finally:
        fill.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def _import(factory: sessionmaker[Session], url: str) -> imports.ImportReport:
    records, report = steve.read(url, NOW)
    with factory() as db, db.begin():
        imports.apply(db, records, report, NOW)
    return report


def _at(text_value: str) -> datetime:
    return datetime.fromisoformat(text_value).replace(tzinfo=UTC)


def test_steve_fleet_arrives_with_its_history(steve_url: str, session_factory: sessionmaker[Session]) -> None:
    report = _import(session_factory, steve_url)

    with session_factory() as db:
        stations = {s.id: s for s in db.scalars(select(Station))}
        assert set(stations) == {"CB-1", "CB-2"}  # the OCPP 1.5 box stays behind
        cb1 = stations["CB-1"]
        assert (cb1.ocpp_version, cb1.registration_policy, cb1.vendor) == ("1.6", "accept", "ABB")
        assert cb1.model == "Terra AC"
        assert (cb1.serial_number, cb1.firmware_version, cb1.password_hash) == ("S-001", "1.2.3", None)
        assert stations["CB-2"].registration_policy == "pending"
        connectors = db.scalars(select(Connector).filter_by(station_id="CB-1"))
        ports = {(c.evse_id, c.status, c.error_code) for c in connectors}
        assert ports == {(1, "Charging", "NoError"), (2, "Faulted", "GroundFailure")}

        tokens = {t.id_token: t for t in db.scalars(select(IdToken))}
        assert (tokens["TAG-A"].status, tokens["TAG-A"].group_id) == ("Accepted", "FLEET")
        assert tokens["TAG-A"].expiry == _at("2027-01-01T00:00:00")
        assert tokens["TAG-B"].status == "Blocked"
        assert authorization.authorize(db, "TAG-C", NOW).status == "Expired"
        assert authorization.authorize(db, "TAG-A", NOW).group_id == "FLEET"

        finished = db.get(Transaction, 101)  # the charger's transactionId is kept
        assert finished is not None and finished.status == "completed"
        assert (finished.started_at, finished.stopped_at) == (_at("2026-01-10T08:00:00"), _at("2026-01-10T09:10:00"))
        assert finished.energy_wh == 5500  # the latest stop event (6500 Wh) minus the start (1000 Wh)
        assert (finished.stop_reason, finished.id_token, finished.evse_id) == ("Local", "TAG-A", 1)
        samples = db.scalars(
            select(MeterSample).filter_by(transaction_id=101).order_by(MeterSample.timestamp, MeterSample.measurand)
        ).all()
        assert [(s.measurand, s.value) for s in samples] == [
            ("Energy.Active.Import.Register", 3000),
            ("Power.Active.Import", 11000),
            ("Energy.Active.Import.Register", 6500),
        ]  # the signed reading and the one outside any transaction stay behind
        running = db.get(Transaction, 102)
        assert running is not None and running.status == "active" and running.stopped_at is None
        assert running.energy_wh == 3000  # 3.2 kWh on the register since the start at 200 Wh
        assert db.get(Transaction, 103) is None

        reservations = {r.id: r for r in db.scalars(select(Reservation))}
        assert (reservations[7].status, reservations[7].transaction_id, reservations[7].evse_id) == ("used", 101, 1)
        assert reservations[8].status == "cancelled"
        assert reservations[7].expires_at == _at("2026-01-10T08:30:00")

    assert report.counts["stations"] == {"created": 2, "unchanged": 0, "skipped": 1}
    assert report.counts["sessions"] == {"created": 2, "unchanged": 0, "skipped": 2}
    assert report.counts["tokens"] == {"created": 4, "unchanged": 0, "skipped": 1}
    assert any(s.key == "CB-2/104" and "longer than the 36 characters" in s.reason for s in report.skipped)
    assert any(s.key == "CB-OLD" and "ocpp1.5J" in s.reason for s in report.skipped)
    assert report.needs_password == ["CB-1", "CB-2"]
    assert any(line.startswith("user: 1 row") for line in report.not_imported)
    assert any(line.startswith("address: 1 row") for line in report.not_imported)
    assert any("SOAP" in note and "CB-2" in note for note in report.notes)

    again = _import(session_factory, steve_url)
    assert all(c["created"] == 0 for c in again.counts.values()), again.counts
    assert again.counts["tokens"]["unchanged"] == 4
    with session_factory() as db:
        assert db.scalar(select(func.count()).select_from(Transaction)) == 2
        assert db.scalar(select(func.count()).select_from(MeterSample)) == 4
        assert db.scalar(select(func.count()).select_from(Reservation)) == 2
        # The next transaction the CSMS opens does not collide with the ids kept from SteVe.
        fresh = Transaction(station_id="CB-1", charger_tx_id="new", started_at=NOW)
        db.add(fresh)
        db.flush()
        assert fresh.id > 102


def test_cli_dry_run_then_import(steve_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = f"sqlite:///{tmp_path}/csms.db"
    assert main(["import-steve", steve_url, "--dry-run", "--database-url", database]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing written" in out and "stations: 2 created, 0 unchanged, 1 skipped" in out
    assert main(["stations", "list", "--database-url", database]) == 0
    assert "CB-1" not in capsys.readouterr().out

    assert main(["import-steve", steve_url, "--database-url", database]) == 0
    out = capsys.readouterr().out
    assert "connect without authentication" in out and "CB-1, CB-2" in out
    assert main(["tokens", "list", "--database-url", database]) == 0
    assert "TAG-A" in capsys.readouterr().out


def test_cli_refuses_what_is_not_steve(steve_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = f"sqlite:///{tmp_path}/csms.db"
    missing = steve_url.rsplit("/", 1)[0] + "/no_such_steve_db"
    assert main(["import-steve", missing, "--database-url", database]) == 2
    assert "cannot read the SteVe database" in capsys.readouterr().err
    assert main(["import-steve", "sqlite:///steve.db", "--database-url", database]) == 2
    assert "give a mysql+pymysql:// URL" in capsys.readouterr().err
    admin = create_engine(steve_url)
    with admin.begin() as connection:
        connection.execute(text("DROP TABLE reservation"))
    admin.dispose()
    assert main(["import-steve", steve_url, "--database-url", database]) == 2
    assert "not a SteVe database: table(s) reservation missing" in capsys.readouterr().err
