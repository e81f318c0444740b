"""Bundles that must be refused — truncated, altered, newer, not a bundle, over conflicting or colliding rows —
each with one clear line and exit status 2, and nothing written; the conflict policies and the dry run do what
they say. SQLite and PostgreSQL (the ``engine`` fixture: a migrated, empty database)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, update

from csms.cli import main
from csms.store.models import Base, Connector, IdToken, SiteNode, Station

#: Rows a new database holds from its migrations: the default organisation.
_SEEDED = {"organisations": 1}


def _counts(engine: Engine) -> dict[str, int]:
    """Rows per table beyond those the migrations wrote."""
    with engine.connect() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one() - _SEEDED.get(name, 0)
            for name, table in Base.metadata.tables.items()
        }


def _rewrite(source: Path, target: Path, change: Any) -> Path:
    """A copy of ``source`` with ``change(name, data) -> data`` applied to each member."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info)))
    return target


def _import(url: str, bundle: Path, *options: str) -> int:
    return main(["import", str(bundle), "--database-url", url, *options])


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _manifest(change: Any) -> Any:
    def rewrite(name: str, data: bytes) -> bytes:
        return orjson.dumps(change(orjson.loads(data))) if name == "manifest.json" else data

    return rewrite


def test_a_truncated_bundle_is_refused(engine, small_bundle, tmp_path, capsys):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(small_bundle.read_bytes()[: small_bundle.stat().st_size // 2])
    assert _import(_url(engine), cut) == 2
    assert "truncated" in capsys.readouterr().err
    assert sum(_counts(engine).values()) == 0


def test_an_altered_file_fails_its_checksum(engine, small_bundle, tmp_path, capsys):
    def tamper(name: str, data: bytes) -> bytes:
        return data.replace(b'"Accepted"', b'"Blocked"') if name == "tables/id_tokens.jsonl" else data

    assert _import(_url(engine), _rewrite(small_bundle, tmp_path / "t.zip", tamper)) == 2
    assert "tables/id_tokens.jsonl: checksum mismatch" in capsys.readouterr().err
    assert sum(_counts(engine).values()) == 0


def test_a_bundle_of_a_newer_format_is_refused_by_name(engine, small_bundle, tmp_path, capsys):
    newer = _rewrite(small_bundle, tmp_path / "n.zip", _manifest(lambda m: {**m, "format_version": 99}))
    assert _import(_url(engine), newer) == 2
    assert "bundle format version 99" in capsys.readouterr().err
    assert sum(_counts(engine).values()) == 0
    broken = _rewrite(small_bundle, tmp_path / "b.zip", _manifest(lambda m: {**m, "tables": [{"table": 1}]}))
    assert _import(_url(engine), broken) == 2
    assert "manifest.json is incomplete or malformed" in capsys.readouterr().err


def test_a_file_that_is_no_bundle_is_refused(engine, tmp_path, capsys):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert _import(_url(engine), other) == 2
    assert "not a chargetwin bundle" in capsys.readouterr().err
    assert _import(_url(engine), tmp_path / "missing.zip") == 2


def test_dry_run_reports_and_writes_nothing_then_the_import_is_idempotent(engine, small_bundle, capsys):
    assert _import(_url(engine), small_bundle, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was written" in out
    assert any(line.split()[:2] == ["site_nodes", "2"] for line in out.splitlines())
    assert sum(_counts(engine).values()) == 0

    assert _import(_url(engine), small_bundle) == 0
    first = _counts(engine)
    assert first["site_nodes"] == 2 and first["meter_samples"] == 1 and first["firmware_files"] == 1
    assert first["local_list_entries"] == 1  # a two-column primary key
    capsys.readouterr()
    assert _import(_url(engine), small_bundle) == 0
    assert _counts(engine) == first
    second = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["site_nodes", "0", "0", "2", "0", "0"] for line in second)
    assert any(line.split() == ["local_list_entries", "0", "0", "1", "0", "0"] for line in second)


def _token_status(engine: Engine) -> str:
    with engine.connect() as connection:
        return connection.execute(select(IdToken.status).where(IdToken.id_token == "TAG-1")).scalar_one()


def test_conflicting_rows_are_refused_unless_a_policy_is_chosen(engine, small_bundle, capsys):
    assert _import(_url(engine), small_bundle) == 0
    with engine.begin() as connection:
        connection.execute(update(IdToken).values(status="Blocked"))
        connection.execute(update(SiteNode).where(SiteNode.id == 2).values(limit_l1_a=40.0))
    before = _counts(engine)
    capsys.readouterr()

    assert _import(_url(engine), small_bundle) == 2
    captured = capsys.readouterr()
    assert "2 row(s) of the bundle have the key of a different row" in captured.err
    assert "conflict in id_tokens: id_token='TAG-1': status differ" in captured.out
    assert _token_status(engine) == "Blocked" and _counts(engine) == before

    assert _import(_url(engine), small_bundle, "--on-conflict", "keep") == 0
    assert _token_status(engine) == "Blocked"
    assert _import(_url(engine), small_bundle, "--on-conflict", "replace") == 0
    assert _token_status(engine) == "Accepted"
    with engine.connect() as connection:
        assert connection.execute(select(SiteNode.limit_l1_a).where(SiteNode.id == 2)).scalar_one() == 63.0


def test_a_row_colliding_under_another_id_is_refused_and_nothing_is_half_written(engine, small_bundle, capsys):
    from datetime import UTC, datetime

    with engine.begin() as connection:
        connection.execute(Station.__table__.insert().values(id="CP-1", ocpp_version="2.0.1",
                                                             created_at=datetime(2026, 1, 1, tzinfo=UTC)))  # fmt: skip
        connection.execute(Connector.__table__.insert().values(id=99, station_id="CP-1", evse_id=1, connector_id=1))
    before = _counts(engine)
    assert _import(_url(engine), small_bundle, "--on-conflict", "keep") == 2
    assert "table connectors: the database refused a bundle row" in capsys.readouterr().err
    assert _counts(engine) == before


def test_a_bundle_naming_an_unknown_table_is_refused(engine, small_bundle, tmp_path, capsys):
    def add_table(manifest: dict[str, Any]) -> dict[str, Any]:
        entry = {"table": "gadgets", "file": "tables/id_tokens.jsonl", "rows": 1, "columns": ["id"], "sha256": ""}
        source = next(e for e in manifest["tables"] if e["table"] == "id_tokens")
        return {**manifest, "tables": [*manifest["tables"], {**entry, "sha256": source["sha256"]}]}

    assert _import(_url(engine), _rewrite(small_bundle, tmp_path / "u.zip", _manifest(add_table))) == 2
    assert "table 'gadgets', which this chargetwin does not import" in capsys.readouterr().err


def test_values_keep_their_exact_form(small_bundle):
    archive = zipfile.ZipFile(small_bundle)
    sample = orjson.loads(archive.read("tables/meter_samples.jsonl"))
    assert sample["value"] == 0.1 + 0.2 and sample["timestamp"] == "2026-01-15T22:00:00.123456+00:00"
    event = archive.read("tables/station_events.jsonl")
    assert b'"data":{"a":[1.5,null],"z":1}' in event
    assert orjson.loads(archive.read("tables/firmware_files.jsonl"))["content"] == "AP8Q"
    assert io.BytesIO(archive.read("manifest.json")).read().startswith(b"{")
