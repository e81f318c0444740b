"""Fixtures of the CSMS protocol tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from tests.databases import migrated_sqlite


@pytest.fixture
def sqlite_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite file only: for protocol tests whose outcome does not depend on the backend."""
    engine = make_engine(migrated_sqlite(Path(sqlite_url.removeprefix("sqlite:///"))))
    migrate.upgrade(engine)  # a copy of the migrated template: finds nothing to do
    yield make_session_factory(engine)
    engine.dispose()
