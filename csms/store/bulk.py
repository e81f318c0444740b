"""Many rows in one statement, at the driver's speed.

SQLAlchemy Core spends several microseconds per row of an ``executemany`` building and processing its
parameters; for the rows every meter value brings (samples, sequence numbers, register moves) that is most of
the cost of storing them. :class:`Bulk` compiles its statement once per dialect and column set, converts only
the values whose column type asks for it (timestamps, once per distinct value in the call) with that type's
own bind processor, and hands the rows to the driver's ``executemany`` on the connection's current
transaction. Same SQL, same stored values as ``connection.execute(statement, rows)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import Insert, UpdateBase

Processor = Callable[[Any], Any]


class _Prepared:
    __slots__ = ("names", "positional", "processors", "sql")

    def __init__(self, sql: str, names: tuple[str, ...], positional: bool, processors: dict[str, Processor]) -> None:
        self.sql = sql
        self.names = names
        self.positional = positional
        self.processors = processors


class Bulk:
    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, tuple[str, ...]], _Prepared] = {}

    def _prepare(self, connection: Connection, keys: tuple[str, ...]) -> _Prepared:
        dialect = connection.dialect
        found = self._prepared.get((dialect.name, keys))
        if found is None:
            columns = list(keys) if isinstance(self.statement, Insert) else None
            compiled = self.statement.compile(dialect=dialect, column_keys=columns)
            names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
            processors: dict[str, Processor] = {}
            for name in set(names):
                processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            found = self._prepared[(dialect.name, keys)] = _Prepared(
                compiled.string, names, dialect.positional, processors
            )
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
