"""The shared test databases (tests/databases.py) hand every test the state a new database would have."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from csms.store import migrate
from csms.store.database import make_engine, resolve_url
from tests.databases import PostgresPool, migrated_sqlite


def _rows_and_next_id(url: str) -> tuple[int, int]:
    engine = create_engine(resolve_url(url))
    with engine.begin() as conn:
        count = conn.execute(text("SELECT count(*) FROM connection_events")).scalar_one()
        insert = "INSERT INTO connection_events (station_id, kind, at) VALUES ('cp-1', 'connected', '2026-01-15')"
        conn.execute(text(insert))
        next_id = conn.execute(text("SELECT max(id) FROM connection_events")).scalar_one()
    engine.dispose()
    return count, next_id


def test_a_copy_of_the_sqlite_template_is_migrated_and_empty(tmp_path):
    first = migrated_sqlite(tmp_path / "a.db")
    assert _rows_and_next_id(first) == (0, 1)
    second = migrated_sqlite(tmp_path / "b.db")  # the first copy's row went nowhere else
    assert _rows_and_next_id(second) == (0, 1)
    engine = make_engine(second)
    assert migrate.current(engine) is not None
    engine.dispose()


@pytest.mark.postgres
def test_the_reused_postgres_database_comes_back_empty_with_restarted_sequences(postgres_pool: PostgresPool):
    url = postgres_pool.fresh(migrated=True)
    assert _rows_and_next_id(url) == (0, 1)
    assert _rows_and_next_id(postgres_pool.fresh(migrated=True)) == (0, 1)
    engine = create_engine(resolve_url(url))
    with engine.begin() as conn:  # a test that changes the schema gets the migrated one back next time
        conn.execute(text("ALTER TABLE connection_events ADD COLUMN extra INTEGER"))
    engine.dispose()
    assert _rows_and_next_id(postgres_pool.fresh(migrated=True)) == (0, 1)
    engine = create_engine(resolve_url(postgres_pool.url))
    with engine.connect() as conn:
        columns = conn.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = 'connection_events'")
        )
        assert "extra" not in columns.scalars().all()
    engine.dispose()
    empty = postgres_pool.fresh(migrated=False)
    engine = create_engine(resolve_url(empty))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one() == 0
    engine.dispose()
