"""Unit of work: one database transaction plus writes gathered for set-based statements.

The transaction runs on a SQLAlchemy Core connection. The ORM session that the rarer reports need (a boot,
a status change, a transaction's start or end) is opened on that same connection only when one asks for
:attr:`UnitOfWork.session`, so a batch of meter values and heartbeats never pays for the ORM.

Services add high-volume rows (meter samples, the message log, 2.0.1 sequence numbers, connection events) and
moves of running transactions to lists here, and note stations that were seen; :meth:`flush_batches` writes
each list with one multi-row statement (``executemany``, :class:`~csms.store.bulk.Bulk`) just before the
commit, instead of one statement per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, insert, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from csms.domain.events import Sample
from csms.services.live_transactions import LiveTransactions
from csms.store.bulk import Bulk, InsertIgnoringConflicts
from csms.store.database import SQLITE_BEGIN
from csms.store.models import ConnectionEvent, MessageLogEntry, MeterSample, Station, TransactionEvent

#: Opens a database session (``csms.store.database.make_session_factory``).
SessionFactory = sessionmaker[Session]

_METER_SAMPLES: Table = MeterSample.__table__  # type: ignore[assignment]  # declarative: a Table
_MESSAGE_LOG: Table = MessageLogEntry.__table__  # type: ignore[assignment]
_TRANSACTION_EVENTS: Table = TransactionEvent.__table__  # type: ignore[assignment]
_STATIONS: Table = Station.__table__  # type: ignore[assignment]
_CONNECTION_EVENTS: Table = ConnectionEvent.__table__  # type: ignore[assignment]
#: A reading stored already (a replay) is skipped: the table's unique index says what one reading is.
_INSERT_SAMPLES = InsertIgnoringConflicts(_METER_SAMPLES)
#: The columns of a queued ``meter_samples`` row, in its order: the station, transaction and EVSE, then the
#: sample's own fields (a row is ``(station_id, transaction_id, evse_id) + sample``, built in C).
SAMPLE_COLUMNS = ("station_id", "transaction_id", "evse_id", *Sample._fields)
_INSERT_LOG = Bulk(insert(_MESSAGE_LOG))
_INSERT_TRANSACTION_EVENTS = Bulk(insert(_TRANSACTION_EVENTS))
_INSERT_CONNECTION_EVENTS = Bulk(insert(_CONNECTION_EVENTS))
_MARK_SEEN = Bulk(
    update(_STATIONS)
    .where(_STATIONS.c.id == bindparam("of_station"))
    .values(last_seen_at=bindparam("at", type_=_STATIONS.c.last_seen_at.type))
)


class UnitOfWork:
    def __init__(
        self, connection: Connection, factory: SessionFactory | None = None, live: LiveTransactions | None = None
    ) -> None:
        self.connection = connection
        #: The running transactions as this batch sees them (the processor's cache, kept across batches).
        self.live = live if live is not None else LiveTransactions()
        self._factory = factory
        self._session: Session | None = None
        #: ``meter_samples`` rows, each a tuple of :data:`SAMPLE_COLUMNS`.
        self.meter_rows: list[tuple[Any, ...]] = []
        self.log_rows: list[dict[str, Any]] = []
        #: Message log rows written in this transaction, by station (whenever the queue was flushed).
        self.logged: dict[str, int] = {}
        self.event_rows: list[dict[str, Any]] = []
        #: ``connection_events`` rows (a batch of reconnections, or every connection ending at a stop).
        self.connection_rows: list[dict[str, Any]] = []
        #: Parameters of the statement given to :meth:`move`, by statement, in the order reported.
        self.moves: dict[Bulk, list[dict[str, Any]]] = {}
        #: (station id, when) for ``stations.last_seen_at``, in the order reported.
        self.seen: list[tuple[str, datetime]] = []

    @property
    def session(self) -> Session:
        """The ORM session on this transaction's connection, opened on first use."""
        if self._session is None:
            self.flush_batches()  # what the ORM reads must include the queued writes
            if not self.connection.in_transaction():
                # Begun at the driver (a held SQLite writer): SQLAlchemy's transaction first, so that the session
                # joins it and its close leaves it alone, where a session that began it would roll it back.
                self.connection.begin()
            if self._factory is None:
                self._session = Session(bind=self.connection, expire_on_commit=False)
            else:
                self._session = self._factory(bind=self.connection)
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def read_connection(self) -> Connection:
        """The transaction's connection for a Core statement that must see everything this batch wrote so far,
        as the ORM session would (:attr:`session`): the queued rows and the session's pending changes are
        written first (a Core statement bypasses the ORM's autoflush)."""
        self.flush_batches()
        return self.connection

    def move(self, statement: Bulk, params: dict[str, Any]) -> None:
        """Queue one execution of a prepared UPDATE, run with the others of its kind at the flush."""
        self.moves.setdefault(statement, []).append(params)

    def _discard_gathered(self) -> None:
        self.meter_rows, self.log_rows, self.seen, self.event_rows, self.moves = [], [], [], [], {}
        self.connection_rows = []

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """The block's work rolls back alone if it raises (the exception goes on): its statements (a
        SAVEPOINT) and the rows it gathered for the set-based writes. Kept when it ends normally."""
        session = self.session
        self.flush_batches()  # earlier calls' rows must not roll back with this block: what is gathered now is its own
        nested = session.begin_nested()
        session.connection()  # the SAVEPOINT now (the ORM emits it lazily): it must cover the Core statements too
        try:
            yield
            nested.commit()
        except BaseException:
            nested.rollback()
            self._discard_gathered()
            self.live.clear()  # it may hold what the block read or moved
            raise

    def flush_batches(self) -> None:
        if self.seen:
            self._write_seen()
        connection = self.connection
        if self.event_rows:
            _INSERT_TRANSACTION_EVENTS.execute(connection, self.event_rows)
            self.event_rows = []
        if self.moves:
            for statement, rows in self.moves.items():
                statement.execute(connection, rows)
            self.moves = {}
        if self.meter_rows:
            _INSERT_SAMPLES[connection.dialect.name].execute(connection, self.meter_rows, SAMPLE_COLUMNS)
            self.meter_rows = []
        if self.log_rows:
            _INSERT_LOG.execute(connection, self.log_rows)
            logged = self.logged
            for row in self.log_rows:
                station = row["station_id"]
                logged[station] = logged.get(station, 0) + 1
            self.log_rows = []
        if self.connection_rows:
            _INSERT_CONNECTION_EVENTS.execute(connection, self.connection_rows)
            self.connection_rows = []
        if self._session is not None:
            self._session.flush()

    def _write_seen(self) -> None:
        latest: dict[str, datetime] = {}
        for station_id, at in self.seen:  # the last report of a station wins, as row-by-row updates would
            latest[station_id] = at
        _MARK_SEEN.execute(self.connection, [{"of_station": sid, "at": at} for sid, at in latest.items()])
        self.seen = []

    def commit(self) -> None:
        self.flush_batches()
        if self._session is not None:
            self._session.close()
        if self.connection.in_transaction():
            self.connection.commit()
        else:  # begun at the driver, and no Core statement or ORM session began SQLAlchemy's on top of it
            self.connection.connection.driver_connection.commit()  # type: ignore[union-attr]


def engine_of(factory: SessionFactory) -> Engine:
    bind = factory.kw["bind"]
    return bind if isinstance(bind, Engine) else bind.engine


#: The page cache of the writer's own SQLite connection, in KiB (SQLite's default: 2,000). The pages every group
#: commit touches (each station's end of the two ``meter_samples`` indexes, its transaction's and its own row) are
#: some 2–4 MB for a few hundred stations: with the default they were read back from the file every commit.
WRITER_CACHE_KIB = 16384


def held_connection(factory: SessionFactory) -> Connection | None:
    """A connection to run every :func:`transaction` of a writer on, or None to check one out for each.

    Held when the engine has one connection anyway (a StaticPool: in-memory SQLite, the twin's virtual time with
    a transaction per frame instant): the checkout and its return cost 3/4 of an empty transaction. Held too for a
    SQLite file: each connection has its own page cache, which stays valid from one commit to the next only while
    no other connection writes, and the pool handed the writer its idle connections in turn (first in, first
    out), each with a cache gone stale since its last turn — so every commit read its pages back from the file
    (issue 13). A pool of server connections (PostgreSQL) is checked out per transaction (its pre-ping and
    reconnects)."""
    engine = engine_of(factory)
    if isinstance(engine.pool, StaticPool):
        return engine.connect()
    if engine.dialect.name != "sqlite":
        return None
    connection = engine.connect()
    # To the driver: through SQLAlchemy the statement would begin a transaction.
    connection.connection.driver_connection.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")  # type: ignore[union-attr]
    return connection


@contextmanager
def transaction(
    factory: SessionFactory, live: LiveTransactions | None = None, connection: Connection | None = None
) -> Iterator[UnitOfWork]:
    """One database transaction: the set-based writes and a commit when the block ends, a rollback if it
    raises (and then ``live`` forgets what it learnt meanwhile). On ``connection`` when given (it stays
    open), else on one of the engine's, returned after."""
    held = connection is not None
    begin = _driver_begin(connection) if connection is not None else None
    opened: AbstractContextManager[Connection] = (
        nullcontext(connection) if connection is not None else engine_of(factory).connect()
    )
    with opened as connection:
        if begin is None:
            connection.begin()
        else:
            connection.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
        uow = UnitOfWork(connection, factory, live)
        try:
            yield uow
            uow.commit()
        except BaseException:
            if uow.has_session:
                uow.session.close()
            connection.rollback()
            if held and not connection.invalidated:
                # A failed COMMIT leaves SQLAlchemy's transaction closed and the driver's open (a checked-out
                # connection is rolled back by the pool when it goes back; a held one never goes back).
                connection.connection.rollback()
            uow.live.clear()
            raise


def _driver_begin(connection: Connection) -> str | None:
    """The statement to begin a transaction with at the driver on this held connection, or None to begin
    SQLAlchemy's. A held SQLite connection begins at the driver, as the engine's "begin" listener would, without
    SQLAlchemy's transaction objects (~6 µs a commit; in virtual time a commit per frame instant); a Core statement
    or the ORM session begins SQLAlchemy's on top of it when one runs (the listener then joins it). Not when
    something listens for SQLAlchemy's commits or rollbacks, which a transaction at the driver would not tell."""
    dispatch = connection.dispatch
    if dispatch.commit or dispatch.rollback:
        return None
    begin: str | None = connection.info.get(SQLITE_BEGIN)
    return begin
