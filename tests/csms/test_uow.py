"""The unit of work's savepoint and transaction: what a failed block leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.services import stations
from csms.services.uow import UnitOfWork, transaction

NOW = datetime(2027, 1, 15, 8, tzinfo=UTC)


def gather(uow: UnitOfWork, station_id: str) -> None:
    uow.meter_rows.append({"station_id": station_id})
    uow.log_rows.append({"station_id": station_id})
    uow.seen.append((station_id, NOW))


def test_a_failed_savepoint_rolls_back_its_statements_and_its_gathered_rows(sqlite_factory):
    with sqlite_factory() as db:
        uow = UnitOfWork(db)
        stations.provision(db, "kept", ocpp_version="1.6", password=None, now=NOW)
        gather(uow, "kept")
        with pytest.raises(RuntimeError), uow.savepoint():
            stations.provision(db, "lost", ocpp_version="1.6", password=None, now=NOW)
            gather(uow, "lost")
            raise RuntimeError("the call failed")
        with uow.savepoint():
            stations.provision(db, "also kept", ocpp_version="2.0.1", password=None, now=NOW)
            gather(uow, "also kept")
        assert [r["station_id"] for r in uow.meter_rows] == ["kept", "also kept"]
        assert [r["station_id"] for r in uow.log_rows] == ["kept", "also kept"]
        assert [s for s, _ in uow.seen] == ["kept", "also kept"]
        assert [s.id for s in stations.list_stations(db)] == ["also kept", "kept"]


def test_a_transaction_commits_when_the_block_ends_and_rolls_back_when_it_raises(sqlite_factory):
    with transaction(sqlite_factory) as uow:
        stations.provision(uow.session, "committed", ocpp_version="1.6", password=None, now=NOW)
    with pytest.raises(RuntimeError), transaction(sqlite_factory) as uow:
        stations.provision(uow.session, "rolled back", ocpp_version="1.6", password=None, now=NOW)
        raise RuntimeError("the batch failed")
    with sqlite_factory() as db:
        assert [s.id for s in stations.list_stations(db)] == ["committed"]
