"""Test databases made fast without changing what a test is given.

A test asks for an empty database or a migrated one. Running the Alembic history for every test (0.3–1 s)
and creating and dropping a PostgreSQL database for every test (``DROP DATABASE`` forces a checkpoint: 1–2 s on
a shared disk) were most of the suite's database time, so:

- SQLite: the history runs once per process into a template file; a test gets a copy of it.
- PostgreSQL: each process (xdist worker) keeps one database and resets it before every test: emptied rows
  and restarted sequences when the test wants it migrated and the schema is still exactly the migrated one,
  otherwise a new ``public`` schema (and the history run again when wanted). Other connections to it are ended
  first, as ``DROP DATABASE … WITH (FORCE)`` did.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from csms.store import migrate
from csms.store.database import make_engine, resolve_url

_sqlite_template: Path | None = None


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite file at ``path`` holding the migrated schema (a copy of this process's template)."""
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="ct-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "template.db"
        engine = make_engine(f"sqlite:///{template}")
        migrate.upgrade(engine)
        engine.dispose()  # the last connection closing folds the WAL back into the file
        _sqlite_template = template
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


# The schema as the columns, indexes and constraints it has: equal fingerprints mean a test left it as migrated.
_FINGERPRINT = """
SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT conrelid::regclass::text || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'version:' || version_num FROM alembic_version
"""


def _fingerprint(connection: Connection) -> str | None:
    if connection.execute(text("SELECT to_regclass('public.alembic_version')")).scalar() is None:
        return None
    rows = sorted(str(row[0]) for row in connection.execute(text(_FINGERPRINT)))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


_END_OTHERS = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"


class PostgresPool:
    """This process's reusable PostgreSQL database (see the module's docstring)."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url = admin_url
        self.name = name
        self.url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
        self._admin: Engine | None = None
        self._db: Engine | None = None
        self._migrated: str | None = None  # the fingerprint of the migrated schema, once known
        self._seeded: dict[str, list[dict[str, object]]] = {}  # rows the migrations wrote (the default organisation)

    def _engines(self) -> tuple[Engine, Engine]:
        if self._admin is None or self._db is None:
            self._admin = create_engine(resolve_url(self.admin_url), isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            self._db = create_engine(resolve_url(self.url), poolclass=NullPool)
        return self._admin, self._db

    def fresh(self, *, migrated: bool) -> str:
        """Reset the database (empty, or migrated with no rows) and return its URL."""
        admin, db = self._engines()
        with admin.connect() as conn:
            conn.execute(text(_END_OTHERS), {"name": self.name})
        with db.begin() as conn:
            if migrated and self._migrated is not None and _fingerprint(conn) == self._migrated:
                _delete_rows(conn, self._seeded)
                return self.url
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        if migrated:
            engine = make_engine(self.url)
            migrate.upgrade(engine)
            engine.dispose()
            with db.connect() as conn:
                self._migrated = _fingerprint(conn)
                self._seeded = _seeded_rows(conn)
        return self.url

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
        if self._admin is not None:
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self._admin.dispose()


def _tables(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
        ).scalars()
    )


def _seeded_rows(conn: Connection) -> dict[str, list[dict[str, object]]]:
    """The rows a migration wrote into the new database (the default organisation), by table."""
    seeded = {}
    for table in _tables(conn):
        rows = [dict(row._mapping) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
        if rows:
            seeded[table] = rows
    return seeded


def _delete_rows(conn: Connection, seeded: dict[str, list[dict[str, object]]]) -> None:
    """Every table but Alembic's emptied and every sequence restarted, then the rows the migrations wrote put
    back: the state right after the migration."""
    conn.execute(text("SET LOCAL session_replication_role = replica"))  # no foreign-key order to follow
    for table in _tables(conn):
        conn.execute(text(f'DELETE FROM "{table}"'))
    conn.execute(
        text(
            "SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false) "
            "FROM pg_sequences WHERE schemaname = 'public'"
        )
    )
    for table, rows in seeded.items():
        columns = list(rows[0])
        names = ", ".join(f'"{c}"' for c in columns)
        values = ", ".join(f":{c}" for c in columns)
        conn.execute(text(f'INSERT INTO "{table}" ({names}) VALUES ({values})'), rows)
        if "id" in columns:
            conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM \"{table}\"))")
            )


def pool_name() -> str:
    return f"ct_{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}_pool"
