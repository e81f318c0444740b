"""A real run's database (SQLite) → bundle → PostgreSQL → bundle → SQLite → bundle: the same bytes each time,
importing twice changes nothing, and PostgreSQL's sequences continue after the imported ids."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, insert, select

from csms.cli import main
from csms.migration.bundle import open_bundle
from csms.migration.bundle_import import import_bundle
from csms.store.database import make_engine
from csms.store.models import ConnectionEvent, Transaction
from tests.databases import migrated_sqlite
from tests.migration.conftest import export_to


def _rows(bundle: Path) -> dict[str, int]:
    manifest = orjson.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    return {entry["table"]: entry["rows"] for entry in manifest["tables"]}


@pytest.mark.postgres
def test_sqlite_to_postgres_and_back_gives_the_same_bundle(scenario_bundle, postgres_pool, tmp_path, capsys):
    rows = _rows(scenario_bundle)
    assert rows["transactions"] >= 6 and rows["meter_samples"] > 1000 and rows["status_history"] > 0

    postgres = postgres_pool.fresh(migrated=True)
    assert main(["import", str(scenario_bundle), "--database-url", postgres]) == 0
    assert "meter_samples" in capsys.readouterr().out
    from_postgres = export_to(postgres, tmp_path / "postgres.zip")
    assert from_postgres.read_bytes() == scenario_bundle.read_bytes()

    sqlite = migrated_sqlite(tmp_path / "back.db")
    assert main(["import", str(from_postgres), "--database-url", sqlite]) == 0
    assert export_to(sqlite, tmp_path / "back.zip").read_bytes() == scenario_bundle.read_bytes()

    engine = make_engine(postgres)
    try:
        with open_bundle(scenario_bundle) as bundle, engine.connect() as connection:
            again = import_bundle(connection, bundle)
        assert sum(t.inserted + t.updated + t.conflicts for t in again.tables.values()) == 0
        assert sum(t.unchanged for t in again.tables.values()) == sum(rows.values())
        with engine.begin() as connection:
            highest = connection.execute(select(func.max(ConnectionEvent.id))).scalar_one()
            new = connection.execute(
                insert(ConnectionEvent)
                .values(station_id="x", kind="connected", at=func.now())
                .returning(ConnectionEvent.id)
            ).scalar_one()
            assert new == highest + 1
            assert connection.execute(select(func.count()).select_from(Transaction)).scalar() == rows["transactions"]
    finally:
        engine.dispose()
