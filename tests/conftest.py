"""Shared fixtures: a real database per test (a SQLite file, or the worker's PostgreSQL database reset to the
state of a new one: tests/databases.py) and a running gateway.

PostgreSQL tests need the server at ``$CHARGETWIN_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test).
Elsewhere they skip when it does not answer; under ``CI=true`` they fail instead, so CI never hides a gap.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from csms.store import migrate
from csms.store.database import make_engine, make_session_factory, resolve_url
from tests.databases import PostgresPool, migrated_sqlite, pool_name

POSTGRES_ADMIN_URL = os.environ.get("CHARGETWIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_counter = itertools.count()


def _postgres_available() -> bool:
    try:
        engine = create_engine(resolve_url(POSTGRES_ADMIN_URL), connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


_PG_OK: bool | None = None


def require_postgres() -> None:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _postgres_available()
    if not _PG_OK:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but {POSTGRES_ADMIN_URL} does not answer")
        pytest.skip("PostgreSQL not available")


def fresh_postgres_url() -> Iterator[str]:
    """Create a throw-away database, yield its URL, drop it afterwards."""
    require_postgres()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    name = f"ct_{worker}_{os.getpid()}_{next(_counter)}"
    admin = create_engine(resolve_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_pool() -> Iterator[PostgresPool]:
    """This worker's reusable PostgreSQL database (tests/databases.py: a reset instead of CREATE/DROP DATABASE)."""
    require_postgres()
    pool = PostgresPool(POSTGRES_ADMIN_URL, pool_name())
    yield pool
    pool.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """Each test using this runs twice: on a SQLite file and on a PostgreSQL database with nothing in it.

    A test that also uses ``engine`` gets the schema already migrated (a copy of a template, a reset of the
    worker's migrated database), so the ``engine`` fixture's own upgrade finds nothing left to do; any other
    test gets an empty database, as before."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "csms.db"
        yield migrated_sqlite(path) if migrated else f"sqlite:///{path}"
    else:
        pool: PostgresPool = request.getfixturevalue("postgres_pool")
        yield pool.fresh(migrated=migrated)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/csms.db"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


@pytest.fixture
async def gateway(session_factory: sessionmaker[Session]) -> AsyncIterator:
    """A running gateway on an ephemeral loopback port (``gateway.port``)."""
    from csms.gateway.server import Gateway
    from csms.services.config import CsmsConfig

    gw = Gateway(session_factory, CsmsConfig(call_timeout_s=5.0))
    await gw.start("127.0.0.1", 0)
    yield gw
    await gw.stop()
