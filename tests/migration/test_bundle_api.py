"""The same over the API: GET /api/v1/export streams the bundle, POST /api/v1/import takes one (dry run, 409 with
the report on conflicts, 422 for a bad bundle, 413 beyond the limit). SQLite and PostgreSQL."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import update

from csms.api.app import create_app
from csms.store.models import IdToken
from tests.csms.test_api import API_KEY

ZIP = {"Content-Type": "application/zip"}


@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(session_factory, gateway, API_KEY), raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=30) as c:
        yield c


def _tables(bundle: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(bundle))
    return {name: archive.read(name) for name in archive.namelist() if name != "manifest.json"}


async def test_import_then_export_over_the_api(client, small_bundle, engine):
    body = small_bundle.read_bytes()
    dry = await client.post("/api/v1/import", params={"dry_run": "true"}, content=body, headers=ZIP)
    assert dry.status_code == 200, dry.text
    assert dry.json()["tables"]["site_nodes"]["inserted"] == 2 and dry.json()["dry_run"] is True
    assert (await client.get("/api/v1/tokens")).json() == []

    done = await client.post("/api/v1/import", content=body, headers=ZIP)
    assert done.status_code == 200 and done.json()["tables"]["id_tokens"]["inserted"] == 1
    assert [t["id_token"] for t in (await client.get("/api/v1/tokens")).json()] == ["TAG-1"]

    exported = await client.get("/api/v1/export")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert "attachment" in exported.headers["content-disposition"]
    tables, sent = _tables(exported.content), _tables(body)
    trail = tables.pop("tables/audit_log.jsonl")
    assert trail.count(b'"action":"POST /api/v1/import"') == 2  # the dry run and the import, both audited
    assert tables == {name: rows for name, rows in sent.items() if name != "tables/audit_log.jsonl"}

    with engine.begin() as connection:
        connection.execute(update(IdToken).values(status="Blocked"))
    refused = await client.post("/api/v1/import", content=body, headers=ZIP)
    assert refused.status_code == 409
    assert refused.json()["report"]["tables"]["id_tokens"]["examples"] == ["id_token='TAG-1': status differ"]
    replaced = await client.post("/api/v1/import", params={"on_conflict": "replace"}, content=body, headers=ZIP)
    assert replaced.status_code == 200 and replaced.json()["tables"]["id_tokens"]["updated"] == 1
    assert (await client.get("/api/v1/tokens/TAG-1")).json()["status"] == "Accepted"


async def test_bad_bundles_are_422_and_too_large_is_413(client, small_bundle, monkeypatch):
    body = small_bundle.read_bytes()
    truncated = await client.post("/api/v1/import", content=body[:-200], headers=ZIP)
    assert truncated.status_code == 422 and "truncated" in truncated.json()["detail"]

    archive = zipfile.ZipFile(small_bundle)
    manifest = orjson.loads(archive.read("manifest.json"))
    newer = io.BytesIO()
    with zipfile.ZipFile(newer, "w") as out:
        out.writestr("manifest.json", orjson.dumps({**manifest, "format_version": 2}))
    answer = await client.post("/api/v1/import", content=newer.getvalue(), headers=ZIP)
    assert answer.status_code == 422 and "bundle format version 2" in answer.json()["detail"]

    monkeypatch.setattr("csms.api.routes.bundles.MAX_BUNDLE_BYTES", 1000)
    too_large = await client.post("/api/v1/import", content=body, headers=ZIP)
    assert too_large.status_code == 413
    assert (await client.post("/api/v1/import", content=body, headers=ZIP | {"Authorization": ""})).status_code in (
        401,
        403,
    )
