"""The unit of work's savepoint and transaction: what a failed block leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from csms.services import stations
from csms.services.uow import SAMPLE_COLUMNS, UnitOfWork, held_connection, transaction
from csms.store import migrate, models
from csms.store.database import make_engine, make_session_factory
from tests.csms.helpers import failing_commits

NOW = datetime(2027, 1, 15, 8, tzinfo=UTC)


def voltage_sample(station_id: str, at: datetime) -> dict[str, Any]:
    """A ``meter_samples`` row as the services queue it."""
    return {
        "station_id": station_id,
        "transaction_id": None,
        "evse_id": 0,
        "timestamp": at,
        "measurand": "Voltage",
        "phase": None,
        "location": None,
        "context": None,
        "unit": "V",
        "value": 230.0,
    }


def gather(uow: UnitOfWork, station_id: str) -> None:
    row = voltage_sample(station_id, NOW)
    uow.meter_rows.append(tuple(row[column] for column in SAMPLE_COLUMNS))
    uow.log_rows.append({"station_id": station_id, "direction": "in", "action": "Heartbeat", "frame": "[]", "at": NOW})
    uow.seen.append((station_id, NOW))


def test_a_failed_savepoint_rolls_back_its_statements_and_its_gathered_rows(sqlite_factory):
    with transaction(sqlite_factory) as uow:
        stations.provision(uow.session, "kept", ocpp_version="1.6", password=None, now=NOW)
        gather(uow, "kept")
        with pytest.raises(RuntimeError), uow.savepoint():
            stations.provision(uow.session, "lost", ocpp_version="1.6", password=None, now=NOW)
            gather(uow, "lost")
            raise RuntimeError("the call failed")
        assert uow.meter_rows == [] and uow.log_rows == [] and uow.seen == []
        with uow.savepoint():
            stations.provision(uow.session, "also kept", ocpp_version="2.0.1", password=None, now=NOW)
            gather(uow, "also kept")
        assert [r[0] for r in uow.meter_rows] == ["also kept"]  # written at the flush
    with sqlite_factory() as db:
        assert [s.id for s in stations.list_stations(db)] == ["also kept", "kept"]
        assert sorted(db.scalars(select(models.MeterSample.station_id))) == ["also kept", "kept"]
        assert sorted(db.scalars(select(models.MessageLogEntry.station_id))) == ["also kept", "kept"]
        assert all(s.last_seen_at == NOW for s in stations.list_stations(db))


def test_the_orm_session_opens_only_when_asked_for(sqlite_factory):
    with transaction(sqlite_factory) as uow:
        gather(uow, "nobody")
        assert not uow.has_session
    with transaction(sqlite_factory) as uow:
        gather(uow, "somebody")
        stations.provision(uow.session, "somebody", ocpp_version="1.6", password=None, now=NOW)
        assert uow.meter_rows == []  # the queued rows went first, so the ORM reads them
    with sqlite_factory() as db:
        assert sorted(db.scalars(select(models.MeterSample.station_id))) == ["nobody", "somebody"]


def test_a_transaction_commits_when_the_block_ends_and_rolls_back_when_it_raises(sqlite_factory):
    with transaction(sqlite_factory) as uow:
        stations.provision(uow.session, "committed", ocpp_version="1.6", password=None, now=NOW)
    with pytest.raises(RuntimeError), transaction(sqlite_factory) as uow:
        stations.provision(uow.session, "rolled back", ocpp_version="1.6", password=None, now=NOW)
        raise RuntimeError("the batch failed")
    with sqlite_factory() as db:
        assert [s.id for s in stations.list_stations(db)] == ["committed"]


def test_the_sqlite_writer_keeps_one_connection_and_a_failed_commit_leaves_it_usable(sqlite_factory):
    """The group commit's writer holds its SQLite connection (its page cache stays warm across commits). A COMMIT
    that fails must not leave the driver's transaction, and so the write lock, open on it: the next batch on the
    same connection, and any other writer, go on."""
    failing = failing_commits(sqlite_factory)
    held = held_connection(failing)
    assert held is not None
    with pytest.raises(OperationalError), transaction(failing, connection=held) as uow:
        stations.provision(uow.session, "lost", ocpp_version="1.6", password=None, now=NOW)
    assert not held.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
    with transaction(sqlite_factory) as uow:  # another connection: the write lock is free
        stations.provision(uow.session, "kept", ocpp_version="1.6", password=None, now=NOW)
    held.close()
    again = held_connection(sqlite_factory)
    assert again is not None
    with transaction(sqlite_factory, connection=again) as uow:
        gather(uow, "kept")
    with transaction(sqlite_factory, connection=again) as uow:  # the same connection, one commit after another
        gather(uow, "kept again")
    again.close()
    with sqlite_factory() as db:
        assert [s.id for s in stations.list_stations(db)] == ["kept"]
        assert sorted(db.scalars(select(models.MeterSample.station_id))) == ["kept", "kept again"]


@pytest.mark.parametrize("in_memory", [False, True])
def test_a_held_sqlite_writer_begins_at_the_driver_and_stores_what_sqlalchemys_transaction_stored(
    sqlite_factory, in_memory
):
    """On its held SQLite connection the writer begins each transaction at the driver (no SQLAlchemy transaction
    for a batch of queued rows); a Core read or the ORM session begins SQLAlchemy's on top of it, which then commits
    both; a savepoint rolls back alone; a batch that raises stores nothing and leaves the connection usable."""
    factory = sqlite_factory
    if in_memory:
        engine = make_engine("sqlite://")
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
    held = held_connection(factory)
    assert held is not None
    driver = held.connection.dbapi_connection
    with transaction(factory, connection=held) as uow:
        gather(uow, "rows only")
        uow.flush_batches()
        assert driver.in_transaction and not held.in_transaction()  # type: ignore[union-attr]
    assert not driver.in_transaction  # type: ignore[union-attr]
    with transaction(factory, connection=held) as uow:
        stations.provision(uow.session, "orm", ocpp_version="1.6", password=None, now=NOW)
        assert held.in_transaction()
        with pytest.raises(RuntimeError), uow.savepoint():
            stations.provision(uow.session, "savepoint", ocpp_version="1.6", password=None, now=NOW)
            raise RuntimeError("the call failed")
    with transaction(factory, connection=held) as uow:
        gather(uow, "core")
        assert uow.read_connection().execute(select(models.Station.id)).scalars().all() == ["orm"]
    with pytest.raises(RuntimeError), transaction(factory, connection=held) as uow:
        gather(uow, "lost")
        stations.provision(uow.session, "lost", ocpp_version="1.6", password=None, now=NOW)
        raise RuntimeError("the batch failed")
    with pytest.raises(RuntimeError), transaction(factory, connection=held) as uow:
        gather(uow, "lost too")
        uow.flush_batches()
        raise RuntimeError("the batch failed before any SQLAlchemy transaction")
    assert not driver.in_transaction and not held.in_transaction()  # type: ignore[union-attr]
    with transaction(factory, connection=held) as uow:
        gather(uow, "after")
    with factory() as db:
        assert [s.id for s in stations.list_stations(db)] == ["orm"]
        assert sorted(db.scalars(select(models.MeterSample.station_id))) == ["after", "core", "rows only"]
    held.close()
