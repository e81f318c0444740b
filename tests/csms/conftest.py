"""Fixtures of the CSMS protocol tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from csms.store import migrate
from csms.store.database import make_engine, make_session_factory


@pytest.fixture
def sqlite_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite file only: for protocol tests whose outcome does not depend on the backend."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()
