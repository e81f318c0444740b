"""Many rows in one statement, at the driver's speed.

SQLAlchemy Core spends several microseconds per row of an ``executemany`` building and processing its
parameters; for the rows every meter value brings (samples, sequence numbers, register moves) that is most of
the cost of storing them. :class:`Bulk` compiles its statement once per dialect and column set, converts only
the values whose column type asks for it (timestamps, once per distinct value in the call) with that type's
own bind processor, and hands the rows to the driver's ``executemany`` on the connection's current
transaction. Same SQL, same stored values as ``connection.execute(statement, rows)``.

On PostgreSQL an INSERT of many rows goes as multi-row ``VALUES`` statements instead (the compiled
statement's one row of placeholders repeated, ``ON CONFLICT`` and the rest unchanged), in chunks of a power of
two rows (at most :data:`MAX_ROWS_PER_STATEMENT`) so that the few distinct statements are prepared and reused
by psycopg. psycopg's ``executemany`` sends one statement per row (pipelined): its per-row Python work was
most of the difference between PostgreSQL and SQLite per meter value (issue 13).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from importlib import import_module
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Select, Table
from sqlalchemy.sql.dml import Insert, UpdateBase

from csms.store.models import UtcDateTime

Processor = Callable[[Any], Any]

#: Up to this many rows, parameters are converted row by row (below it, transposing them to columns costs more).
FEW_ROWS = 8
#: The most rows one multi-row INSERT carries (PostgreSQL); chunks are powers of two up to it.
MAX_ROWS_PER_STATEMENT = 256
_NAMED = re.compile(r"%\((\w+)\)s")


class _Prepared:
    """The statement compiled for one dialect and one set of row keys, with its parameters' order and their
    conversions."""

    __slots__ = ("_statements", "constants", "conversions", "multi", "names", "result_types", "results", "sql", "take")

    def __init__(self, sql: str, names: tuple[str, ...], take: Callable[[Any], tuple[Any, ...]]) -> None:
        #: The statement with positional placeholders (``?`` or ``%s``), one per entry of ``names``.
        self.sql = sql
        self.names = names
        #: A row's parameters in ``names`` order (:func:`_taker`: by key, or by place in a tuple).
        self.take = take
        #: (place in ``names``, the bind's type, its processor, the memo kept across calls or None) of the values
        #: that need converting. Places of one type share what was converted (a register move's first and last time
        #: are mostly one value); a UTC timestamp's stored form is kept for later calls and statements
        #: (:data:`_TIMESTAMPS`).
        self.conversions: list[tuple[int, object, Processor, dict[Any, Any] | None]] = []
        #: PostgreSQL INSERT: (text before the row, the row's placeholders, text after it).
        self.multi: tuple[str, str, str] | None = None
        #: Values the statement binds itself (a SELECT's ``LIMIT 1``), added to each row.
        self.constants: dict[str, Any] = {}
        #: The returned columns' types, and their result processors once the driver has said what it returns
        #: (None: the driver's value as it is), as SQLAlchemy's result applies them: a UTC timestamp read back
        #: aware, a SQLite boolean as a bool.
        self.result_types: list[Any] = []
        self.results: list[Processor | None] | None = None
        self._statements: dict[int, str] = {}

    def parameters(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Each row's parameters, converted (each distinct value of a converted column once per call: the samples
        of one reading share its timestamp; a UTC timestamp's text is kept for later statements, see
        :data:`_TIMESTAMPS`). Many rows go column by column, so that the loops over the rows run in C; a few (a
        commit of a frame or two, in virtual time) row by row, which costs less than transposing them."""
        if not self.conversions:
            return list(map(self.take, rows))
        if len(rows) <= FEW_ROWS:
            by_type: dict[object, dict[Any, Any]] = {}
            return [self._row(row, by_type) for row in rows]
        params: list[tuple[Any, ...]] = list(map(self.take, rows))
        columns = list(zip(*params, strict=True))
        memo: dict[object, dict[Any, Any]] = {}
        for place, type_, processor, kept in self.conversions:
            converted = memo.setdefault(type_, {None: None})
            column = columns[place]
            try:
                for value in set(column).difference(converted):
                    converted[value] = processor(value) if kept is None else _converted(kept, value, processor)
                columns[place] = tuple(map(converted.__getitem__, column))
            except TypeError:  # an unhashable value (a JSON document): each converted on its own
                columns[place] = tuple(None if value is None else processor(value) for value in column)
        return list(zip(*columns, strict=True))

    def _row(self, row: Any, memo: dict[object, dict[Any, Any]]) -> tuple[Any, ...]:
        """One row's parameters, converted; ``memo``: what this call converted so far, by type."""
        values = list(self.take(row))
        for place, type_, processor, kept in self.conversions:
            value = values[place]
            if value is None:
                continue
            if kept is not None:
                values[place] = _converted(kept, value, processor)
                continue
            converted = memo.setdefault(type_, {})
            try:
                text = converted.get(value, _MISSING)
                if text is _MISSING:
                    text = converted[value] = processor(value)
            except TypeError:  # an unhashable value (a JSON document)
                text = processor(value)
            values[place] = text
        return tuple(values)

    def multi_row(self, rows: int) -> str:
        """The INSERT for ``rows`` rows, with PostgreSQL's own numbered placeholders (``$1``…): psycopg's raw
        cursor sends it as it is, where its ordinary cursor would parse a long statement's ``%s`` on every call."""
        found = self._statements.get(rows)
        if found is None:
            assert self.multi is not None
            head, row, tail = self.multi
            parts = row.split("%s")
            width = len(self.names)
            values = (
                "".join(part + (f"${n * width + i + 1}" if i < width else "") for i, part in enumerate(parts))
                for n in range(rows)
            )
            found = self._statements[rows] = head + ", ".join(values) + tail
        return found


_MISSING = object()
#: The stored form of UTC timestamps, by dialect and type, kept from one statement to the next: in virtual time a
#: commit carries a frame or two, whose readings, ``last_seen_at`` and the next frames of the instant share a
#: timestamp. Only for :class:`~csms.store.models.UtcDateTime` and its kinds, which store equal datetimes (one
#: instant, whatever their zones) as one value (a text, or :class:`~csms.store.models.UtcMicroseconds`' integer);
#: a plain DateTime stores an aware value's wall time, which equal datetimes do not share.
_TIMESTAMPS: dict[tuple[str, type], dict[Any, Any]] = {}
#: The timestamps kept at most (then forgotten at once).
MEMO_LIMIT = 4096


def _converted(kept: dict[Any, Any], value: Any, processor: Processor) -> Any:
    text = kept.get(value, _MISSING)
    if text is _MISSING:
        if len(kept) >= MEMO_LIMIT:
            kept.clear()  # a long run's instants are not all kept
        text = kept[value] = processor(value)
    return text


def _taker(items: list[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A row's values at ``items`` (keys or places) as a tuple, in C for two or more."""
    if len(items) > 1:
        return itemgetter(*items)
    if items:
        only = items[0]
        return lambda row: (row[only],)
    return lambda row: ()


def _split_values(positional: str, width: int) -> tuple[str, str, str] | None:
    """``INSERT … VALUES (%s, %s::INTEGER) …`` as (head, row, tail), or None when the statement does not have one
    plain VALUES row holding all its ``width`` placeholders."""
    start = positional.find(" VALUES (")
    if not width or start < 0 or positional.count(" VALUES (") != 1:
        return None
    start += len(" VALUES ")
    depth = 0
    for end in range(start, len(positional)):
        depth += {"(": 1, ")": -1}.get(positional[end], 0)
        if depth == 0:
            break
    else:
        return None
    row = positional[start : end + 1]
    if row.count("%s") != width or positional.count("%s") != width:  # every placeholder in the row
        return None
    return positional[:start], row, positional[end + 1 :]


class Bulk:
    def __init__(self, statement: UpdateBase | Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, tuple[str, ...], bool], _Prepared] = {}

    def _prepare(self, connection: Connection, keys: tuple[str, ...], by_place: bool) -> _Prepared:
        """``keys``: the rows' keys (a dict's, or, ``by_place``, the names of a tuple's values in order)."""
        dialect = connection.dialect
        found = self._prepared.get((dialect.name, keys, by_place))
        if found is None:
            columns = list(keys) if isinstance(self.statement, Insert) else None
            # for_executemany: no RETURNING of the generated key (PostgreSQL's compiler adds it for one row).
            compiled = self.statement.compile(dialect=dialect, column_keys=columns, for_executemany=True)
            if dialect.positional:
                sql, names = compiled.string, tuple(compiled.positiontup or ())
            else:  # named placeholders (psycopg's %(name)s) as positional ones, so that rows go as tuples
                sql, names = _NAMED.sub("%s", compiled.string), tuple(_NAMED.findall(compiled.string))
            found = _Prepared(sql, names, _taker([keys.index(name) for name in names] if by_place else list(names)))
            found.constants = {name: compiled.binds[name].effective_value for name in names if name not in keys}
            found.result_types = [column.type.dialect_impl(dialect) for column in self.statement.exported_columns]
            for place, name in enumerate(names):
                type_ = compiled.binds[name].type
                processor = type_.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    kept = None
                    if isinstance(type_, UtcDateTime):
                        kept = _TIMESTAMPS.setdefault((dialect.name, type(type_)), {})
                    found.conversions.append((place, type_, processor, kept))
            if dialect.name == "postgresql" and isinstance(self.statement, Insert):
                found.multi = _split_values(sql, len(names))
            self._prepared[(dialect.name, keys, by_place)] = found
        return found

    def execute(self, connection: Connection, rows: Sequence[Any], keys: tuple[str, ...] | None = None) -> None:
        """Run the statement once per row in ``connection``'s transaction. Rows are dicts with the same keys,
        or, with ``keys``, tuples of those columns' values in that order (no dict built per row)."""
        if not rows:
            return
        prepared = self._prepare(connection, tuple(rows[0]) if keys is None else keys, keys is not None)
        params = prepared.parameters(rows)
        if prepared.multi is not None and len(params) > 1:
            _insert_multi_row(connection, prepared, params)
            return
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(prepared.sql, params)
        finally:
            cursor.close()

    def execute_one(self, connection: Connection, row: dict[str, Any]) -> int:
        """Run the statement for one row now, in ``connection``'s transaction; the number of rows it changed."""
        prepared = self._prepare(connection, tuple(row), False)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(prepared.sql, prepared.parameters([row])[0])
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def fetch_one(self, connection: Connection, row: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run a statement with ``RETURNING`` (or a SELECT) for one row now, on ``connection``; the first row it
        returned (None: it changed or found none), its values processed as SQLAlchemy's result would."""
        found = self._fetch(connection, row, all_rows=False)
        return found[0] if found else None

    def fetch_all(self, connection: Connection, row: dict[str, Any]) -> list[tuple[Any, ...]]:
        """:meth:`fetch_one`, every row."""
        return self._fetch(connection, row, all_rows=True)

    def _fetch(self, connection: Connection, row: dict[str, Any], *, all_rows: bool) -> list[tuple[Any, ...]]:
        prepared = self._prepare(connection, tuple(row), False)
        if prepared.constants:
            row = prepared.constants | row
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(prepared.sql, prepared.parameters([row])[0])
            if all_rows:
                found = cursor.fetchall()
            else:
                one = cursor.fetchone()
                found = [] if one is None else [one]
            results = prepared.results
            if results is None:  # the processors depend on the driver's types (PostgreSQL's numeric ones)
                dialect = connection.dialect
                results = prepared.results = [
                    type_.result_processor(dialect, described[1])
                    for type_, described in zip(prepared.result_types, cursor.description, strict=True)
                ]
        finally:
            cursor.close()
        if not any(results):
            return [tuple(values) for values in found]
        return [
            tuple(value if process is None else process(value) for process, value in zip(results, values, strict=True))
            for values in found
        ]


def _insert_multi_row(connection: Connection, prepared: _Prepared, params: list[tuple[Any, ...]]) -> None:
    from psycopg import RawCursor  # only here: SQLite deployments and the twin never import the driver

    cursor = RawCursor(connection.connection.driver_connection)  # type: ignore[arg-type]
    try:
        done = 0
        while done < len(params):
            size = min(MAX_ROWS_PER_STATEMENT, 1 << ((len(params) - done).bit_length() - 1))
            cursor.execute(prepared.multi_row(size), list(chain.from_iterable(params[done : done + size])))
            done += size
    finally:
        cursor.close()


class InsertIgnoringConflicts(dict[str, "Bulk"]):
    """``INSERT … ON CONFLICT DO NOTHING`` into ``table`` as a :class:`Bulk`, by dialect name, built on first
    use: the statement is the dialect's own (``sqlalchemy.dialects.<name>.insert``), and the PostgreSQL
    dialect's import (~20 ms) is not paid by a process on SQLite (a virtual-time run)."""

    def __init__(self, table: Table) -> None:
        super().__init__()
        self.table = table

    def __missing__(self, dialect: str) -> Bulk:
        insert = import_module(f"sqlalchemy.dialects.{dialect}").insert
        bulk = self[dialect] = Bulk(insert(self.table).on_conflict_do_nothing())
        return bulk
