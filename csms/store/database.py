"""Engine and session factory: SQLite file by default, PostgreSQL (or any SQLAlchemy URL) by URL."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

DEFAULT_URL = "sqlite:///chargetwin.db"
URL_ENV = "CHARGETWIN_DATABASE_URL"
#: In a SQLite connection's ``info``: the statement that begins its writing transactions (see ``_on_begin``), for a
#: writer that begins them at the driver (``csms.services.uow.transaction`` on its held connection).
SQLITE_BEGIN = "chargetwin_begin"


def resolve_url(url: str | None) -> str:
    """The URL to use: the argument, else ``$CHARGETWIN_DATABASE_URL``, else a SQLite file in the cwd.

    Plain ``postgresql://`` / ``postgres://`` URLs are pointed at the psycopg 3 driver we ship.
    """
    url = url or os.environ.get(URL_ENV) or DEFAULT_URL
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = resolve_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    # Python 3.11's sqlite3 binds None through its adaptation protocol, whose two failed attribute lookups on a
    # type object format an AttributeError each: ~230 ns per None bound (an unset phase, transaction, unit…),
    # about what the rest of binding and storing the value costs. A registered adapter for None is found first:
    # ``{}.get`` answers None (bound as NULL, as before) in C, ~30 ns (issue 13).
    sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    if not in_memory:
        path = url.removeprefix("sqlite:///")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if in_memory else None,
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info[SQLITE_BEGIN] = "BEGIN" if in_memory else "BEGIN IMMEDIATE"
        # Let SQLAlchemy, not pysqlite, issue BEGIN, so SAVEPOINTs work (SQLAlchemy's pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            # WAL: API readers do not block the writer. synchronous=NORMAL survives a process crash
            # (SIGKILL) without losing a commit; only an OS crash/power cut can drop the last commits.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE: take the write lock at BEGIN. With several writer threads (group commit, API, alert
        # monitor, webhook sender) a deferred transaction that read first and then writes fails at once with
        # SQLITE_BUSY_SNAPSHOT when another writer committed meanwhile; IMMEDIATE waits (timeout) instead.
        # Readers (sessions from ``read_only_factory``) keep a plain deferred BEGIN: in WAL mode they never
        # wait for the writer.
        # Straight to the driver: the statement through ``exec_driver_sql`` cost more than the rest of a small
        # group commit's statements (0.5 ms of SQLAlchemy's execution machinery per BEGIN, in virtual time one per
        # frame).
        driver = conn.connection.driver_connection
        if driver.in_transaction:
            return  # begun at the driver by the group commit's writer: SQLAlchemy's transaction joins it
        readonly = conn.get_execution_options().get("readonly", False)
        driver.execute("BEGIN" if readonly else conn.info[SQLITE_BEGIN])

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for reading only: on SQLite they do not take the write lock, so they never queue behind a
    group commit. (Writing through them is not prevented, only not serialised: do not.)"""
    engine: Engine = factory.kw["bind"]
    return sessionmaker(engine.execution_options(readonly=True), expire_on_commit=False)
