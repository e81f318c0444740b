"""The audit trail end to end: changes made through the API (with their before and after), refusals, commands
sent to a real connected charger (the ``ocpp`` package's ChargePoint), sign-ins, CLI commands, the search with
its filters, the CSV export, the security events beside the entries, and the database refusing any UPDATE or
DELETE of an entry. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from csms.api.app import create_app
from csms.services import apikeys, organisations, security_events
from csms.store.models import AuditEntry
from tests.csms.test_api import PASSWORD, charger

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def api(session_factory: Any, gateway: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms", timeout=30) as c:
        yield c


def make_keys(session_factory: Any) -> dict[str, tuple[int, str]]:
    now = datetime.now(UTC)
    made = {}
    with session_factory() as db, db.begin():
        organisations.create(db, "acme", None, now)
        organisations.create(db, "other", None, now)
        for name, role, org in (
            ("ops", "owner", "acme"),
            ("watcher", "viewer", "acme"),
            ("rival", "owner", "other"),
            ("root", "platform-admin", None),
        ):
            row, key = apikeys.create(db, name, now, role=role, organisation=org)
            made[name] = (row.id, key)
    return made


def bearer(made: dict[str, tuple[int, str]], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {made[name][1]}"}


async def entries(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_changes_refusals_and_commands_are_audited(session_factory, gateway):
    made = make_keys(session_factory)
    ops, watcher = bearer(made, "ops"), bearer(made, "watcher")
    async with api(session_factory, gateway) as client:
        body = {"id": "cp-1", "password": PASSWORD, "ocpp_version": "1.6"}
        created = await client.post("/api/v1/stations", json=body, headers={**ops, "X-Request-ID": "req-create-1"})
        assert created.status_code == 201
        changed = await client.patch("/api/v1/stations/cp-1", json={"registration_policy": "pending"}, headers=ops)
        assert changed.status_code == 200
        refused = await client.post("/api/v1/tokens", json={"id_token": "T-1"}, headers=watcher)
        assert refused.status_code == 403
        invalid = await client.patch("/api/v1/stations/cp-1", json={"registration_policy": "maybe"}, headers=ops)
        assert invalid.status_code == 422
        anonymous = await client.post("/api/v1/tokens", json={"id_token": "T-2"})
        assert anonymous.status_code == 401
        await client.patch("/api/v1/stations/cp-1", json={"registration_policy": "accept"}, headers=ops)
        async with charger(gateway, "cp-1", "1.6") as cp:
            reset = await client.post("/api/v1/stations/cp-1/reset", json={"type": "hard"}, headers=ops)
            assert reset.status_code == 200, reset.text
            assert ("Reset", {"type": "Hard"}) in cp.received

        rows = await entries(client, bearer(made, "root"), security_events="false")
    ops_id, watcher_id = made["ops"][0], made["watcher"][0]
    by_action = [(r["action"], r["status"], r["actor"]) for r in rows]
    assert by_action[:7] == [
        ("POST /api/v1/stations/{station_id}/reset", 200, f"key:{ops_id}"),
        ("PATCH /api/v1/stations/{station_id}", 200, f"key:{ops_id}"),
        ("POST /api/v1/tokens", 401, "anonymous"),
        ("PATCH /api/v1/stations/{station_id}", 422, f"key:{ops_id}"),
        ("POST /api/v1/tokens", 403, f"key:{watcher_id}"),
        ("PATCH /api/v1/stations/{station_id}", 200, f"key:{ops_id}"),
        ("POST /api/v1/stations", 201, f"key:{ops_id}"),
    ]
    command, _, _, refused_change, refused_write, change, create = rows[:7]
    assert command["request"] == {"type": "hard"} and command["station_id"] == "cp-1"  # the command's payload
    assert (command["object_type"], command["object_id"]) == ("stations", "cp-1")
    assert change["before"] == {"stations:cp-1": {"registration_policy": "accept"}}
    assert change["after"] == {"stations:cp-1": {"registration_policy": "pending"}}
    assert change["actor_name"] == "ops" and change["client"] == "127.0.0.1"
    assert refused_change["before"] is None and refused_change["after"] is None  # nothing changed
    assert refused_write["after"] is None and refused_write["organisation_id"] == create["organisation_id"]
    # Secrets never reach the trail: the password sent and the hash stored are masked.
    assert create["request"]["password"] == "********" and create["request_id"] == "req-create-1"
    assert create["after"]["stations:cp-1"]["password_hash"] == "********"
    assert create["after"]["stations:cp-1"]["organisation_id"] == create["organisation_id"]
    assert PASSWORD not in str(rows)


async def test_search_filters_export_and_organisations(session_factory, gateway):
    made = make_keys(session_factory)
    ops, rival = bearer(made, "ops"), bearer(made, "rival")
    async with api(session_factory, gateway) as client:
        for station_id, who in (("a-1", ops), ("a-2", ops), ("b-1", rival)):
            body = {"id": station_id, "password": PASSWORD, "ocpp_version": "2.0.1"}
            assert (await client.post("/api/v1/stations", json=body, headers=who)).status_code == 201
        await client.post("/api/v1/tokens", json={"id_token": "TAG-9"}, headers=ops)
        with session_factory() as db, db.begin():
            security_events.record(
                db, type="TamperDetectionActivated", at=datetime.now(UTC), station_id="a-1", origin="station"
            )
            security_events.record(db, type="InvalidFirmwareSignature", at=datetime.now(UTC), station_id="b-1")

        mine = await entries(client, ops)
        assert {r["station_id"] for r in mine if r["kind"] == "audit"} == {"a-1", "a-2", None}
        assert all(r["station_id"] != "b-1" for r in mine)  # the other organisation's entries and events stay out
        assert [(r["kind"], r["action"]) for r in await entries(client, ops, station_id="a-1")] == [
            ("security_event", "TamperDetectionActivated"),
            ("audit", "POST /api/v1/stations"),
        ]
        tokens = await entries(client, ops, object_type="id_tokens", object_id="TAG-9")
        assert [r["object_id"] for r in tokens] == ["TAG-9"]
        by_user = await entries(client, ops, user="ops")
        assert len(by_user) == 3 and all(r["actor"] == f"key:{made['ops'][0]}" for r in by_user)
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert await entries(client, ops, since=later) == []
        assert len(await entries(client, ops, until=later, security_events="false")) == 3
        assert len(await entries(client, bearer(made, "root"), security_events="false")) == 4

        exported = await client.get("/api/v1/audit", headers=ops, params={"format": "csv", "station_id": "a-2"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["kind"], r["action"], r["object_id"]) for r in table] == [("audit", "POST /api/v1/stations", "a-2")]
        viewer = await client.get("/api/v1/audit", headers=bearer(made, "watcher"))
        assert viewer.status_code == 403  # viewers do not read the audit trail
        bad = await client.get("/api/v1/audit", headers=ops, params={"since": "yesterday"})
        assert bad.status_code == 422 and "since" in bad.text


async def test_sign_ins_and_cli_commands_are_audited(session_factory, gateway, database_url):
    env = {**os.environ, "CHARGETWIN_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "csms.cli", "users", "add", "ann@example.com", "--role", "admin"]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    async with api(session_factory, gateway) as client:
        page = await client.get("/signin")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        wrong = await client.post("/signin", data={"csrf_token": token, "email": "ann@example.com", "password": "x"})
        assert wrong.status_code == 401
    with session_factory() as db:
        rows = list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    cli, signin = rows
    assert cli.actor.startswith("cli:") and cli.action == "csms users add" and cli.status == 0
    assert cli.object_type == "users" and cli.after is not None
    (user,) = cli.after.values()
    assert user["email"] == "ann@example.com" and user["role"] == "admin" and user["link_hash"] == "********"
    assert (signin.actor, signin.actor_name, signin.action, signin.status) == (
        "anonymous",
        "ann@example.com",
        "POST /signin",
        401,
    )
    assert signin.request is None  # a form with a password is never kept


def test_the_audit_log_is_append_only(session_factory, database_url):
    with session_factory() as db, db.begin():
        db.add(AuditEntry(at=datetime.now(UTC), actor="cli:test", action="csms test", status=0))
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with session_factory() as db, pytest.raises(DBAPIError, match="append-only"):
            db.execute(text(statement))
            db.commit()
    if database_url.startswith("postgresql"):
        with session_factory() as db, pytest.raises(DBAPIError, match="append-only"):
            db.execute(text("TRUNCATE audit_log"))
            db.commit()
    with session_factory() as db:
        assert [e.actor for e in db.scalars(select(AuditEntry))] == ["cli:test"]


async def test_a_change_whose_audit_entry_cannot_be_written_is_rolled_back(session_factory, gateway, monkeypatch):
    """The change and its entry are one transaction: when writing the entry fails (after it was flushed), the
    client gets a 500 and neither the change nor the entry is in the database. Both kinds of endpoint: the one
    whose session the trail commits, and the ``async`` one running its own transactions."""
    from csms.services import audit as audit_service
    from csms.store.models import FirmwareFile, IdToken

    made = make_keys(session_factory)
    ops = bearer(made, "ops")
    real = audit_service.record
    failing = {"on": True}

    def record(db: Any, *args: Any, **kwargs: Any) -> AuditEntry:
        entry = real(db, *args, **kwargs)
        if failing["on"]:
            raise RuntimeError("the audit write failed")
        return entry

    monkeypatch.setattr(audit_service, "record", record)
    app = create_app(session_factory, gateway, None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # the client sees the 500 the server sends
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", timeout=30) as client:
        token = await client.post("/api/v1/tokens", json={"id_token": "LOST-1"}, headers=ops)
        firmware = await client.post("/api/v1/firmware-files", params={"name": "lost.bin"}, content=b"x", headers=ops)
        assert (token.status_code, firmware.status_code) == (500, 500), (token.text, firmware.text)
        with session_factory() as db:
            assert db.get(IdToken, "LOST-1") is None and db.get(FirmwareFile, "lost.bin") is None
            assert db.scalar(select(AuditEntry).where(AuditEntry.action.like("%/tokens"))) is None
        failing["on"] = False
        kept = await client.post("/api/v1/tokens", json={"id_token": "KEPT-1"}, headers=ops)
        assert kept.status_code == 201
        rows = await entries(client, ops, security_events="false")
    assert [(r["action"], r["status"]) for r in rows] == [("POST /api/v1/tokens", 201)]
    assert rows[0]["after"]["id_tokens:KEPT-1"]["id_token"] == "KEPT-1"
