"""The schema ``csms db upgrade`` builds on a new SQLite database, replayed without Alembic (the embedded CSMS).

Every virtual-time run creates its embedded CSMS on an empty in-memory SQLite database and migrated it with
Alembic: the 35 migrations compiled by SQLAlchemy, ~0.3 s of CPU and Alembic's import (Mako, Pygments) at each
run's start, to build the same database every time. ``sqlite-schema.json`` holds what they build: the statements
of ``sqlite_master`` in its order (tables, indexes, the audit log's triggers, as SQLite stored them after every
``ALTER``), the rows the migrations insert (``alembic_version``, the default organisation), and the SHA-256 of
the migrations it was taken from. :func:`upgrade_empty` replays it when the migrations are still those, and
otherwise runs them (a migration added and the snapshot not taken again: slower, never another schema).

``tests/test_sqlite_schema.py`` compares the snapshot with a fresh ``upgrade``; take it again with
``python -m csms.store.sqlite_schema``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
SNAPSHOT = Path(__file__).parent / "sqlite-schema.json"


def migrations_digest() -> str:
    """SHA-256 of the migration scripts and their environment (file names and contents)."""
    digest = hashlib.sha256()
    files = [MIGRATIONS / "env.py", MIGRATIONS / "script.py.mako", *sorted((MIGRATIONS / "versions").glob("*.py"))]
    for path in files:
        digest.update(path.relative_to(MIGRATIONS).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def statements(connection: Connection) -> list[str]:
    """What rebuilds this SQLite database: ``sqlite_master``'s statements in its order (the indexes SQLite makes
    for a table's constraints come with the table), then each table's rows as ``INSERT`` statements."""
    driver = connection.connection.driver_connection
    assert driver is not None
    master = driver.execute("SELECT type, name, sql FROM sqlite_master ORDER BY rowid").fetchall()
    out = [sql for _type, name, sql in master if sql is not None and not name.startswith("sqlite_")]
    for kind, table, _sql in master:
        if kind != "table" or table.startswith("sqlite_"):
            continue
        columns = [row[1] for row in driver.execute(f'PRAGMA table_info("{table}")')]
        values = " || ',' || ".join(f'quote("{column}")' for column in columns)
        rows = driver.execute(f"SELECT 'INSERT INTO \"{table}\" VALUES(' || {values} || ')' FROM \"{table}\"")
        out += [insert for (insert,) in rows]
    return out


def load() -> dict[str, Any] | None:
    try:
        snapshot: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return snapshot


def upgrade_empty(engine: Engine) -> None:
    """``migrate.upgrade(engine)`` for an empty SQLite database: the snapshot replayed when it is of the
    migrations there are, else the migrations run."""
    snapshot = load()
    if snapshot is None or snapshot["migrations"] != migrations_digest():
        from csms.store import migrate  # Alembic: only when the snapshot is not of these migrations

        migrate.upgrade(engine)
        return
    with engine.begin() as connection:
        for statement in snapshot["statements"]:
            connection.exec_driver_sql(statement)


def take() -> dict[str, Any]:
    """A snapshot of what the migrations build on a new in-memory SQLite database."""
    from csms.store import migrate
    from csms.store.database import make_engine

    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        return {"migrations": migrations_digest(), "statements": statements(connection)}


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(take(), indent=1) + "\n", encoding="utf-8")
    print(f"{SNAPSHOT}: taken")
