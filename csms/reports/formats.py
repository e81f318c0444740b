"""Rows to files, written as they come: CSV and JSON Lines line by line, Parquet one row group per ``batch``
rows (pyarrow), so an export of any size holds one batch in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any, Literal

import orjson

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "parquet")
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def csv_lines(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """The header, then one line per row (RFC 4180 quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(row.get(c)) for c in columns])
        yield buffer.getvalue()


def jsonl_lines(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps({c: _cell(row.get(c)) for c in columns}) + b"\n"


def write_parquet(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], out: IO[bytes], batch: int = 10_000
) -> int:
    """Write ``rows`` to ``out`` as Parquet (types inferred per column from the first batch; times stay
    timestamps with their UTC zone); returns the row count."""
    import pyarrow as pa  # ~0.3 s to import: only when a Parquet file is asked for
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    count = 0
    chunk: list[Mapping[str, Any]] = []

    def flush() -> None:
        nonlocal writer, schema
        table = pa.Table.from_pylist([{c: _parquet_cell(r.get(c)) for c in columns} for r in chunk], schema=schema)
        if writer is None:
            schema = _nullable(table.schema)
            table = table.cast(schema)
            writer = pq.ParquetWriter(out, schema)
        writer.write_table(table)
        chunk.clear()

    for row in rows:
        chunk.append(row)
        count += 1
        if len(chunk) >= batch:
            flush()
    if chunk or writer is None:
        if not chunk and writer is None:
            schema = pa.schema([(c, pa.string()) for c in columns])
        flush()
    assert writer is not None
    writer.close()
    return count


def _parquet_cell(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _nullable(schema: Any) -> Any:
    """A column all null in the first batch is typed string (pyarrow would say null, refusing later values)."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in schema])
