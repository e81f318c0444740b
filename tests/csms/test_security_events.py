"""Security events: stored once, repeats folded, searchable over the API and the CLI, and raising the station's
alert and a webhook delivery. SQLite and PostgreSQL (the ``session_factory`` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from csms.api.app import create_app
from csms.services import security_events, stations, webhooks
from csms.store.models import Alert, WebhookDelivery

API_KEY = "test-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)


def provision(db, station_id: str = "CP-1") -> None:
    stations.provision(db, station_id, ocpp_version="2.0.1", password=None, security_profile=3, now=T0)


def test_an_event_is_stored_and_raises_the_alert_and_a_webhook(session_factory):
    with session_factory() as db, db.begin():
        provision(db)
        webhooks.create(db, "http://127.0.0.1:9/hook", "s3cret-s3cret", ["security_event.*"], T0)
        security_events.record(
            db, type="bad_certificate", at=T0, station_id="CP-1", source="127.0.0.1", detail={"reason": "expired"}
        )
    with session_factory() as db:
        (event,) = security_events.list_events(db)
        assert (event.type, event.origin, event.station_id, event.source) == (
            "bad_certificate", "csms", "CP-1", "127.0.0.1",
        )  # fmt: skip
        alert = db.query(Alert).one()
        assert alert.rule == "security_event"
        assert alert.details["type"] == "bad_certificate"
        delivery = db.query(WebhookDelivery).one()
        assert delivery.event_type == "security_event.recorded"
        assert delivery.payload["data"]["detail"] == {"reason": "expired"}


def test_unknown_ids_and_station_reports_raise_no_csms_alert(session_factory):
    with session_factory() as db, db.begin():
        provision(db)
        security_events.record(db, type="unknown_station", at=T0, station_id="NOBODY", source="10.0.0.9")
        security_events.record(
            db, type="TamperDetectionActivated", at=T0, station_id="CP-1", origin="station", detail={"techInfo": "lid"}
        )
    with session_factory() as db:
        assert db.query(Alert).count() == 0  # station reports reach the alert engine through their report
        assert len(security_events.list_events(db)) == 2


def test_repeats_within_a_minute_are_one_row_that_counts_them(session_factory):
    with session_factory() as db, db.begin():
        for second in range(0, 50, 10):
            security_events.record(
                db, type="bad_password", at=T0 + timedelta(seconds=second), station_id="CP-9", source="10.0.0.7"
            )
        security_events.record(db, type="bad_password", at=T0 + timedelta(seconds=5), station_id="CP-9", source="x")
        security_events.record(
            db, type="bad_password", at=T0 + timedelta(seconds=200), station_id="CP-9", source="10.0.0.7"
        )
    with session_factory() as db:
        rows = security_events.list_events(db, station_id="CP-9")
        assert len(rows) == 3
        first = next(r for r in rows if r.at == T0)
        assert first.detail["repeats"] == 4
        assert first.detail["last_at"] == (T0 + timedelta(seconds=40)).isoformat()


@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, API_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=10) as c:
        yield c


async def test_the_api_filters_and_orders_newest_first(session_factory, client):
    with session_factory() as db, db.begin():
        provision(db)
        security_events.record(db, type="bad_password", at=T0, station_id="CP-1", source="10.0.0.1")
        security_events.record(db, type="csr_rejected", at=T0 + timedelta(hours=1), station_id="CP-1")
        security_events.record(
            db, type="unknown_station", at=T0 + timedelta(hours=2), station_id="X", source="10.0.0.2"
        )

    everything = (await client.get("/api/v1/security-events")).json()
    assert [e["type"] for e in everything] == ["unknown_station", "csr_rejected", "bad_password"]

    one_station = (await client.get("/api/v1/security-events", params={"station_id": "CP-1"})).json()
    assert {e["type"] for e in one_station} == {"csr_rejected", "bad_password"}

    since = (T0 + timedelta(minutes=30)).isoformat()
    recent = (await client.get("/api/v1/security-events", params={"since": since, "type": "csr_rejected"})).json()
    assert [e["type"] for e in recent] == ["csr_rejected"]

    bad = await client.get("/api/v1/security-events", params={"origin": "somebody"})
    assert bad.status_code == 422
    unauthenticated = await client.get("/api/v1/security-events", headers={"Authorization": ""})
    assert unauthenticated.status_code == 401

    types = (await client.get("/api/v1/security-events/types")).json()
    assert "bad_certificate" in types


def test_the_cli_lists_events_as_a_table_and_as_json(sqlite_url, session_factory):
    del session_factory
    env = {**os.environ, "CHARGETWIN_DATABASE_URL": sqlite_url}

    def csms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "csms.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
        )

    assert csms("db", "upgrade").returncode == 0
    from csms.store.database import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as db, db.begin():
        security_events.record(db, type="bad_password", at=T0, station_id="CP-7", source="10.1.1.1")
        security_events.record(
            db, type="bad_password", at=T0 + timedelta(seconds=1), station_id="CP-7", source="10.1.1.1"
        )
    engine.dispose()

    table = csms("security-events", "--station", "CP-7")
    assert table.returncode == 0, table.stderr
    header, line = table.stdout.splitlines()
    assert header.split()[:6] == ["AT", "TYPE", "ORIGIN", "STATION", "SOURCE", "COUNT"]
    assert line.split()[1:6] == ["bad_password", "csms", "CP-7", "10.1.1.1", "2"]

    as_json = json.loads(csms("security-events", "--json", "--type", "bad_password").stdout)
    assert as_json[0]["detail"]["repeats"] == 1
    assert csms("security-events", "--station", "nobody").stdout.splitlines()[1:] == []
