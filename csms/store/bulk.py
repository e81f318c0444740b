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
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import Insert, UpdateBase

Processor = Callable[[Any], Any]

#: The most rows one multi-row INSERT carries (PostgreSQL); chunks are powers of two up to it.
MAX_ROWS_PER_STATEMENT = 256
_NAMED = re.compile(r"%\((\w+)\)s")


class _Prepared:
    __slots__ = ("_statements", "multi", "names", "positional", "processors", "sql")

    def __init__(self, sql: str, names: tuple[str, ...], positional: bool, processors: dict[str, Processor]) -> None:
        self.sql = sql
        self.names = names
        self.positional = positional
        self.processors = processors
        #: PostgreSQL INSERT: (text before the row, the row's placeholders, text after it, names in order).
        self.multi: tuple[str, str, str, tuple[str, ...]] | None = None
        self._statements: dict[int, str] = {}

    def multi_row(self, rows: int) -> str:
        """The INSERT for ``rows`` rows, with PostgreSQL's own numbered placeholders (``$1``…): psycopg's raw
        cursor sends it as it is, where its ordinary cursor would parse a long statement's ``%s`` on every call."""
        found = self._statements.get(rows)
        if found is None:
            assert self.multi is not None
            head, row, tail, names = self.multi
            parts = row.split("%s")
            width = len(names)
            values = (
                "".join(part + (f"${n * width + i + 1}" if i < width else "") for i, part in enumerate(parts))
                for n in range(rows)
            )
            found = self._statements[rows] = head + ", ".join(values) + tail
        return found


def _split_values(sql: str) -> tuple[str, str, str, tuple[str, ...]] | None:
    """``INSERT … VALUES (%(a)s, %(b)s::INTEGER) …`` as (head, row, tail, names) with positional ``%s``
    placeholders, or None when the statement does not have one plain VALUES row."""
    names = tuple(_NAMED.findall(sql))
    positional = _NAMED.sub("%s", sql)
    start = positional.find(" VALUES (")
    if not names or start < 0 or positional.count(" VALUES (") != 1:
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
    if row.count("%s") != len(names) or positional.count("%s") != len(names):  # every placeholder in the row
        return None
    return positional[:start], row, positional[end + 1 :], names


class Bulk:
    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, tuple[str, ...]], _Prepared] = {}

    def _prepare(self, connection: Connection, keys: tuple[str, ...]) -> _Prepared:
        dialect = connection.dialect
        found = self._prepared.get((dialect.name, keys))
        if found is None:
            columns = list(keys) if isinstance(self.statement, Insert) else None
            # for_executemany: no RETURNING of the generated key (PostgreSQL's compiler adds it for one row).
            compiled = self.statement.compile(dialect=dialect, column_keys=columns, for_executemany=True)
            names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
            processors: dict[str, Processor] = {}
            for name in set(names):
                processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            found = self._prepared[(dialect.name, keys)] = _Prepared(
                compiled.string, names, dialect.positional, processors
            )
            if dialect.name == "postgresql" and isinstance(self.statement, Insert) and not dialect.positional:
                found.multi = _split_values(compiled.string)
        return found

    def execute(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per row (all rows have the same keys) in ``connection``'s transaction."""
        if not rows:
            return
        prepared = self._prepare(connection, tuple(rows[0]))
        if prepared.processors:
            memo: Memo = {}  # the samples of one reading share its timestamp
            converted = [_converted(row, prepared.processors, memo) for row in rows]
        else:
            converted = list(rows)
        if prepared.multi is not None and len(converted) > 1:
            _insert_multi_row(connection, prepared, converted)
            return
        names = prepared.names
        params: Sequence[Any] = (
            [tuple(row[name] for name in names) for row in converted] if prepared.positional else converted
        )
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(prepared.sql, params)
        finally:
            cursor.close()

    def execute_one(self, connection: Connection, row: dict[str, Any]) -> int:
        """Run the statement for one row now, in ``connection``'s transaction; the number of rows it changed."""
        prepared = self._prepare(connection, tuple(row))
        if prepared.processors:
            row = dict(row)
            for name, processor in prepared.processors.items():
                if row.get(name) is not None:
                    row[name] = processor(row[name])
        params: Any = tuple(row[name] for name in prepared.names) if prepared.positional else row
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(prepared.sql, params)
            return int(cursor.rowcount)
        finally:
            cursor.close()


def _insert_multi_row(connection: Connection, prepared: _Prepared, rows: list[dict[str, Any]]) -> None:
    from psycopg import RawCursor  # only here: SQLite deployments and the twin never import the driver

    assert prepared.multi is not None
    names = prepared.multi[3]
    cursor = RawCursor(connection.connection.driver_connection)  # type: ignore[arg-type]
    try:
        done = 0
        while done < len(rows):
            size = min(MAX_ROWS_PER_STATEMENT, 1 << ((len(rows) - done).bit_length() - 1))
            chunk = rows[done : done + size]
            cursor.execute(prepared.multi_row(size), [row[name] for row in chunk for name in names])
            done += size
    finally:
        cursor.close()


Memo = dict[tuple[str, Any], Any]


def _converted(row: dict[str, Any], processors: dict[str, Processor], memo: Memo) -> dict[str, Any]:
    out = dict(row)
    for name, processor in processors.items():
        value = out.get(name)
        if value is not None:
            key = (name, value)
            found = memo.get(key)
            if found is None:
                found = memo[key] = processor(value)
            out[name] = found
    return out
