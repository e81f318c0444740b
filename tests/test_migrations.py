"""The migration history stays one straight line, and the models match what it builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import TypeDecorator

from csms.store import migrate, sqlite_schema
from csms.store.database import make_engine
from csms.store.models import Base


def test_one_head():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1, f"several migration heads {heads}: point the newer one's down_revision at the other"


def test_every_column_type_of_the_models_can_be_cached():
    """SQLAlchemy keeps no compiled statement naming a column of a TypeDecorator class that does not declare
    ``cache_ok`` itself (a subclass does not inherit it): every such query would be compiled again and warn."""
    uncached = sorted(
        f"{table.name}.{column.name}: {type(column.type).__name__}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        for kind in type(column.type).__mro__
        if issubclass(kind, TypeDecorator) and kind is not TypeDecorator and "cache_ok" not in kind.__dict__
    )
    assert uncached == []


def test_models_match_the_migrated_schema(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/m.db")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations differ; generate a migration: {diff}"


def _database(engine) -> tuple[list, list, dict]:
    """The tables in sqlite_master's order, everything in it in its order, and every table's rows."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        master = driver.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall()
        rows = {
            name: driver.execute(f'SELECT * FROM "{name}"').fetchall() for kind, name, _, _ in master if kind == "table"
        }
    return [name for kind, name, _, _ in master if kind == "table"], master, rows


def test_the_sqlite_snapshot_is_of_these_migrations():
    """The embedded CSMS replays csms/store/sqlite-schema.json instead of migrating: it must be what the
    migrations build now (after a new migration or an SQLAlchemy or Alembic upgrade, take it again:
    python -m csms.store.sqlite_schema)."""
    snapshot, now = sqlite_schema.load(), sqlite_schema.take()
    assert snapshot is not None
    assert snapshot["migrations"] == now["migrations"], "take the snapshot again: python -m csms.store.sqlite_schema"
    assert snapshot["statements"] == now["statements"], "python -m csms.store.sqlite_schema"


def test_new_databases_have_the_same_schema_in_the_same_order_in_every_process():
    """A batch migration re-creates a table's indexes (``sites`` has two): in the same order whatever the
    process's hash seed, so two new databases dump the same schema (and the snapshot taken again is the same)."""
    script = "import json; from csms.store import sqlite_schema; print(json.dumps(sqlite_schema.take()['statements']))"
    root = Path(__file__).parents[1]
    dumps = []
    for seed in ("1", "5", "8"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root)
        assert done.returncode == 0, done.stderr
        dumps.append(json.loads(done.stdout))
    sites = [s.split(" ON ")[0] for s in dumps[0] if s.startswith("CREATE INDEX") and " ON sites " in s]
    assert sites == ["CREATE INDEX ix_sites_meter_station_id", "CREATE INDEX ix_sites_organisation_id"], sites
    assert dumps[1] == dumps[0] and dumps[2] == dumps[0]


def test_the_replayed_snapshot_is_the_migrated_database():
    migrated, replayed = make_engine("sqlite://"), make_engine("sqlite://")
    migrate.upgrade(migrated)
    sqlite_schema.upgrade_empty(replayed)
    tables, master, rows = _database(replayed)
    assert (tables, master, rows) == _database(migrated)
    assert [name for kind, name, _, _ in master if kind == "trigger"], "the audit log's triggers"
    assert rows["alembic_version"] and rows["organisations"]


def test_without_a_snapshot_of_these_migrations_they_run(tmp_path, monkeypatch):
    stale = tmp_path / "stale.json"
    stale.write_text('{"migrations": "0", "statements": ["CREATE TABLE wrong (x)"]}')
    monkeypatch.setattr(sqlite_schema, "SNAPSHOT", stale)
    migrated, fallback = make_engine("sqlite://"), make_engine("sqlite://")
    migrate.upgrade(migrated)
    sqlite_schema.upgrade_empty(fallback)
    assert _database(fallback) == _database(migrated)
