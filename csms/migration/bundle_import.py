"""Import a verified bundle in one database transaction: new rows inserted, equal rows skipped (importing the same
bundle twice changes nothing), rows with a known key but other content reported as conflicts.

Conflicts refuse the whole import unless the caller chose a policy: ``keep`` leaves the target's row as it is,
``replace`` overwrites it with the bundle's. A dry run does all the work and rolls it back, so its report is
exactly what the import would do, constraint violations included. Ids are kept; on PostgreSQL the sequences
are moved past the imported ids afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any

from sqlalchemy import Column, Connection, Table, and_, func, insert, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError

from csms.migration import bundle_values
from csms.migration.bundle import BundleError, OpenBundle, TableFile
from csms.migration.bundle_tables import EXPORTED
from csms.store.models import Base

_BATCH = 500
_SHOWN_CONFLICTS = 20


class OnConflict(StrEnum):
    REFUSE = "refuse"
    KEEP = "keep"
    REPLACE = "replace"


@dataclass
class TableOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    conflicts: int = 0
    #: The first conflicting keys and the columns that differ.
    examples: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    dry_run: bool
    on_conflict: OnConflict
    tables: dict[str, TableOutcome] = field(default_factory=dict)

    @property
    def conflicts(self) -> int:
        return sum(outcome.conflicts for outcome in self.tables.values())

    @property
    def refused(self) -> bool:
        return self.conflicts > 0 and self.on_conflict is OnConflict.REFUSE

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "on_conflict": self.on_conflict.value,
            "refused": self.refused,
            "conflicts": self.conflicts,
            "tables": {name: vars(outcome) for name, outcome in self.tables.items()},
        }


class ImportRefused(BundleError):
    """Conflicting rows and no policy for them: nothing was written; ``report`` lists them."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"{report.conflicts} row(s) of the bundle have the key of a different row already in the database; "
            "nothing was imported (choose --on-conflict keep or replace)"
        )
        self.report = report


def import_bundle(
    connection: Connection, bundle: OpenBundle, *, dry_run: bool = False, on_conflict: OnConflict = OnConflict.REFUSE
) -> ImportReport:
    """Import ``bundle`` through ``connection`` (which must not be in a transaction) and return what it did.

    Raises :class:`ImportRefused` on conflicts under ``refuse`` and :class:`BundleError` for a bundle this schema
    cannot hold or a row the database refuses; in every such case nothing is written."""
    files = _files_by_table(bundle)
    report = ImportReport(dry_run=dry_run, on_conflict=on_conflict)
    transaction = connection.begin()
    try:
        for table in Base.metadata.sorted_tables:
            if table.name in files:
                outcome = report.tables.setdefault(table.name, TableOutcome())
                _import_table(connection, table, bundle.rows(files[table.name]), on_conflict, outcome)
        if report.refused:
            raise ImportRefused(report)
        if connection.dialect.name == "postgresql":
            _move_sequences(connection, [Base.metadata.tables[name] for name in files])
    except BaseException:
        transaction.rollback()
        raise
    if dry_run:
        transaction.rollback()
    else:
        transaction.commit()
    return report


def _files_by_table(bundle: OpenBundle) -> dict[str, TableFile]:
    files: dict[str, TableFile] = {}
    for entry in bundle.manifest.tables:
        table = Base.metadata.tables.get(entry.table)
        if table is None or entry.table not in EXPORTED:
            raise BundleError(
                f"the bundle holds table {entry.table!r}, which this chargetwin does not import "
                f"(made by chargetwin {bundle.manifest.chargetwin_version}, a newer schema?)"
            )
        unknown = sorted(set(entry.columns) - set(table.columns.keys()))
        if unknown:
            raise BundleError(f"table {entry.table}: columns {', '.join(unknown)} are unknown to this chargetwin")
        files[entry.table] = entry
    return files


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def _import_table(
    connection: Connection, table: Table, rows: Iterable[dict[str, Any]], policy: OnConflict, outcome: TableOutcome
) -> None:
    keys = list(table.primary_key.columns)
    for batch in _batches(rows):
        existing = _existing(connection, table, keys, batch)
        inserts: list[dict[str, Any]] = []
        for row in batch:
            key = _key(table, keys, row)
            current = existing.get(key)
            if current is None:
                inserts.append(_decoded(table, row))
                continue
            differing = sorted(name for name, value in row.items() if current.get(name) != value)
            if not differing:
                outcome.unchanged += 1
                continue
            outcome.conflicts += 1
            if len(outcome.examples) < _SHOWN_CONFLICTS:
                outcome.examples.append(f"{_describe(keys, key)}: {', '.join(differing)} differ")
            if policy is OnConflict.KEEP:
                outcome.kept += 1
            elif policy is OnConflict.REPLACE:
                _write(connection, table, update(table).where(_match(keys, row, table)), [_decoded(table, row)])
                outcome.updated += 1
        if inserts:
            _write(connection, table, insert(table), inserts)
            outcome.inserted += len(inserts)


def _key(table: Table, keys: list[Column[Any]], row: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return tuple(row[column.name] for column in keys)
    except KeyError as missing:
        raise BundleError(f"table {table.name}: a row lacks its key column {missing}") from None


def _describe(keys: list[Column[Any]], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{column.name}={value!r}" for column, value in zip(keys, key, strict=True))


def _decoded(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return {name: bundle_values.decode(table.columns[name], value) for name, value in row.items()}
    except bundle_values.BadValue as exc:
        raise BundleError(f"table {table.name}: {exc}") from None
    except KeyError as unknown:
        raise BundleError(f"table {table.name}: a row has the unknown column {unknown}") from None


def _match(keys: list[Column[Any]], row: dict[str, Any], table: Table) -> Any:
    decoded = _decoded(table, {column.name: row[column.name] for column in keys})
    return and_(*(column == decoded[column.name] for column in keys))


def _existing(
    connection: Connection, table: Table, keys: list[Column[Any]], batch: list[dict[str, Any]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The target's rows with the batch's keys, in their bundle form, by key."""
    wanted = [tuple(_decoded(table, {c.name: row.get(c.name) for c in keys}).values()) for row in batch]
    condition = keys[0].in_([k[0] for k in wanted]) if len(keys) == 1 else tuple_(*keys).in_(wanted)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for current in connection.execute(select(table).where(condition)):
        values = current._mapping
        encoded = {column.name: bundle_values.encode(column, values[column]) for column in table.columns}
        found[tuple(encoded[column.name] for column in keys)] = encoded
    return found


def _write(connection: Connection, table: Table, statement: Any, rows: list[dict[str, Any]]) -> None:
    try:
        connection.execute(statement, rows)
    except DBAPIError as exc:
        reason = str(exc.orig or exc).splitlines()[0]
        raise BundleError(
            f"table {table.name}: the database refused a bundle row ({reason}); it may collide with a row already "
            "there under another id; nothing was imported"
        ) from None


def _move_sequences(connection: Connection, tables: list[Table]) -> None:
    """Kept ids would otherwise be handed out again by the next insert."""
    for table in tables:
        column = table.autoincrement_column
        if column is None:
            continue
        highest = connection.execute(select(func.max(column))).scalar()
        connection.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, :column), :value, :called)"),
            {"table": table.name, "column": column.name, "value": highest or 1, "called": highest is not None},
        )
