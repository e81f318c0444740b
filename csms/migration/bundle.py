"""The chargetwin bundle: everything an operator owns, as one self-describing archive (docs/design/migration.md).

A bundle is a zip archive holding ``tables/<table>.jsonl`` (one canonical JSON object per row, sorted keys, rows
in primary-key order) and ``manifest.json`` (format and version, who made it and when, per file the rows,
columns and SHA-256). Entries carry a fixed time stamp, so two exports of the same data differ only in the
manifest's ``created_at``. :func:`export` writes one from a database snapshot; :func:`open_bundle` reads one
back and refuses it before anything is written when it is not a bundle, comes from a newer format, or a file is
missing, truncated or altered.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Connection, Engine, String, Table, select

from csms.migration import bundle_values
from csms.migration.bundle_tables import EXCLUDED, exported_tables
from csms.store.models import Base

FORMAT = "chargetwin-bundle"
#: Raised when the layout or the meaning of a file changes; a reader refuses any newer version.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: equal data gives equal archives
_CHUNK = 1 << 16


class BundleError(Exception):
    """A bundle that cannot be read or imported: the message says why; nothing was written."""


@dataclass(frozen=True)
class TableFile:
    table: str
    file: str
    rows: int
    sha256: str
    columns: list[str]


@dataclass(frozen=True)
class Manifest:
    format_version: int
    chargetwin_version: str
    schema_revision: str | None
    created_at: str
    tables: list[TableFile]
    excluded: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "format_version": self.format_version,
            "chargetwin_version": self.chargetwin_version,
            "schema_revision": self.schema_revision,
            "created_at": self.created_at,
            "tables": [vars(entry) for entry in self.tables],
            "excluded": self.excluded,
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def chargetwin_version() -> str:
    try:
        return package_metadata.version("chargetwin")
    except package_metadata.PackageNotFoundError:
        return "unknown"


# ---- export ---------------------------------------------------------------------------------------------------
def export(connection: Connection, out: IO[bytes], now: datetime) -> Manifest:
    """Write a bundle of everything ``connection`` sees to ``out``. Run it in one transaction (a snapshot)."""
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(connection).get_current_revision()
    entries: list[TableFile] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in exported_tables(Base.metadata):
            entries.append(_write_table(connection, table, archive))
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            chargetwin_version=chargetwin_version(),
            schema_revision=revision,
            created_at=now.isoformat(),
            tables=entries,
            excluded=dict(sorted(EXCLUDED.items())),
        )
        archive.writestr(_entry(MANIFEST), manifest.to_json())
    return manifest


def export_database(engine: Engine, out: IO[bytes], now: datetime) -> Manifest:
    """:func:`export` of one consistent snapshot, taken while the CSMS may keep writing."""
    options: dict[str, Any] = {"readonly": True}  # SQLite: a deferred BEGIN, a WAL snapshot without the write lock
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        return export(connection, out, now)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _write_table(connection: Connection, table: Table, archive: zipfile.ZipFile) -> TableFile:
    name = f"tables/{table.name}.jsonl"
    digest = hashlib.sha256()
    rows = 0
    columns = list(table.columns)
    with archive.open(_entry(name), "w", force_zip64=True) as member:
        for row in connection.execution_options(yield_per=2000).execute(_ordered(connection, table)):
            values = row._mapping
            line = orjson.dumps(
                {column.name: bundle_values.encode(column, values[column]) for column in columns},
                option=orjson.OPT_SORT_KEYS,
            )
            line += b"\n"
            member.write(line)
            digest.update(line)
            rows += 1
    return TableFile(table.name, name, rows, digest.hexdigest(), sorted(column.name for column in columns))


def _ordered(connection: Connection, table: Table) -> Any:
    """Rows in primary-key order, strings compared byte-wise on every backend (PostgreSQL's default collation
    sorts by language rules, SQLite by bytes)."""
    postgres = connection.dialect.name == "postgresql"
    keys = [
        column.collate("C") if postgres and isinstance(column.type, String) else column
        for column in table.primary_key.columns
    ]
    return select(table).order_by(*keys)


# ---- reading ----------------------------------------------------------------------------------------------------
class OpenBundle:
    """A bundle whose manifest, files, counts and checksums were verified. Use as a context manager."""

    def __init__(self, archive: zipfile.ZipFile, manifest: Manifest) -> None:
        self._archive = archive
        self.manifest = manifest

    def __enter__(self) -> OpenBundle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._archive.close()

    def rows(self, entry: TableFile) -> Iterator[dict[str, Any]]:
        """The rows of one table, as JSON objects (values still in their bundle form)."""
        for number, line in enumerate(_lines(self._archive, entry.file), start=1):
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise BundleError(f"{entry.file} line {number} is not JSON") from None
            if not isinstance(row, dict):
                raise BundleError(f"{entry.file} line {number} is not a JSON object")
            yield row


def open_bundle(source: str | Path | IO[bytes]) -> OpenBundle:
    """Open and verify a bundle (see the module's docstring); :class:`BundleError` says what is wrong."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise BundleError(f"not a readable bundle (a zip archive): {exc}; was it truncated?") from None
    try:
        manifest = _read_manifest(archive)
        for entry in manifest.tables:
            _verify(archive, entry)
    except BaseException:
        archive.close()
        raise
    return OpenBundle(archive, manifest)


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    try:
        with archive.open(name) as member:
            yield from member
    except KeyError:
        raise BundleError(f"the bundle lacks {name}, which its manifest lists") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise BundleError(f"{name} is damaged ({exc}); the bundle was truncated or altered") from None


def _verify(archive: zipfile.ZipFile, entry: TableFile) -> None:
    digest = hashlib.sha256()
    rows = 0
    for line in _lines(archive, entry.file):
        digest.update(line)
        rows += 1
    if digest.hexdigest() != entry.sha256:
        raise BundleError(f"{entry.file}: checksum mismatch (the file was altered or truncated); nothing imported")
    if rows != entry.rows:
        raise BundleError(f"{entry.file}: {rows} rows, the manifest says {entry.rows}; nothing imported")


def _read_manifest(archive: zipfile.ZipFile) -> Manifest:
    try:
        document = orjson.loads(archive.read(MANIFEST))
    except KeyError:
        raise BundleError(f"not a chargetwin bundle: no {MANIFEST}") from None
    except (orjson.JSONDecodeError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise BundleError(f"{MANIFEST} is damaged: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleError(f"not a chargetwin bundle: {MANIFEST} does not say format {FORMAT!r}")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{MANIFEST}: format_version {version!r} is not a version number")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {version} (made by chargetwin {document.get('chargetwin_version')}) is newer "
            f"than this chargetwin ({chargetwin_version()}) reads (up to {FORMAT_VERSION}): upgrade chargetwin first"
        )
    try:
        tables = [_table_file(entry) for entry in document["tables"]]
        return Manifest(
            format_version=version,
            chargetwin_version=str(document["chargetwin_version"]),
            schema_revision=document.get("schema_revision"),
            created_at=str(document["created_at"]),
            tables=tables,
            excluded=dict(document.get("excluded") or {}),
        )
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{MANIFEST} is incomplete or malformed ({exc})") from None


def _table_file(entry: Any) -> TableFile:
    table = TableFile(**entry)
    fields = (table.table, table.file, table.sha256)
    if not all(isinstance(value, str) for value in fields) or not isinstance(table.rows, int):
        raise TypeError(f"a table entry has a field of the wrong type: {entry!r}")
    if not isinstance(table.columns, list) or not all(isinstance(name, str) for name in table.columns):
        raise TypeError(f"a table entry's columns are not a list of names: {entry!r}")
    return table
