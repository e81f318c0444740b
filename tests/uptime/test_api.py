"""Uptime, outages, exclusion windows, alert and webhook endpoints on the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from csms.api.app import create_app
from csms.domain.events import port_state
from csms.services import alerts, stations, uptime
from csms.store.models import ConnectionEvent, Transaction
from csms.uptime import Period

API_KEY = "test-key-0123456789"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def at(hh: int, mm: int = 0) -> datetime:
    return datetime(2025, 3, 1, hh, mm, tzinfo=UTC)


@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, API_KEY)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=10) as c:
        yield c


@pytest.fixture
def history(session_factory) -> None:
    """cp-1 port 1: Faulted 10:00-11:00, offline 14:00-14:30; port 2: two empty sessions 16:00, 17:00."""
    with session_factory() as db:
        stations.provision(db, "cp-1", ocpp_version="1.6", password=None, now=T0 - timedelta(days=30))
        db.flush()

        def status(evse: int, when: datetime, value: str) -> None:
            stations.status(db, "cp-1", _status(evse, value, when), when)

        status(1, T0 - timedelta(days=1), "Available")
        status(2, T0 - timedelta(days=1), "Available")
        status(1, at(10), "Faulted")
        status(1, at(11), "Available")
        for when, kind in ((T0 - timedelta(days=1), "connected"), (at(14), "disconnected"), (at(14, 30), "connected")):
            db.add(ConnectionEvent(station_id="cp-1", kind=kind, at=when))
        for hh in (16, 17):
            db.add(
                Transaction(
                    station_id="cp-1",
                    charger_tx_id=f"t{hh}",
                    evse_id=2,
                    connector_id=1,
                    started_at=at(hh),
                    stopped_at=at(hh, 5),
                    meter_start_wh=100,
                    meter_stop_wh=100,
                    status="completed",
                )
            )
        db.commit()


def _status(evse: int, value: str, when: datetime):
    from csms.domain.events import StatusReported

    return StatusReported(
        evse, 1, value, port_state(value), when, error_code="GroundFailure" if value == "Faulted" else "NoError"
    )


def test_service_reads_the_history(session_factory, history):
    with session_factory() as db:
        rows = uptime.port_uptime(db, Period(at(0), at(23, 59) + timedelta(minutes=1)))
    assert [(r["evse_id"], r["outage_minutes"]) for r in rows] == [(1, 90.0), (2, 510.0)]
    assert rows[0]["uptime_pct"] == round((1440 - 90) / 1440 * 100, 3)


async def test_uptime_and_outages_json_and_csv(client, history):
    params = {"period_start": "2025-03-01T00:00:00Z", "period_end": "2025-03-02T00:00:00Z"}
    rows = (await client.get("/api/v1/uptime", params=params)).json()
    port1 = next(r for r in rows if r["evse_id"] == 1)
    assert (port1["basis_minutes"], port1["outage_minutes"], port1["excluded_minutes"]) == (1440, 90, 0)
    response = await client.get("/api/v1/uptime", params={**params, "format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["station_id"], r["evse_id"], r["outage_minutes"]) for r in table] == [
        ("cp-1", "1", "90.0"),
        ("cp-1", "2", "510.0"),
    ]

    outages = (await client.get("/api/v1/stations/cp-1/outages", params=params)).json()
    # Port 2 is also offline 14:00-14:30 (a station-wide cause), then unable to deliver from 16:00.
    assert [(o["evse_id"], o["start"][11:16], o["end"][11:16], o["cause"]) for o in outages] == [
        (1, "10:00", "11:00", "faulted"),
        (1, "14:00", "14:30", "offline"),
        (2, "14:00", "14:30", "offline"),
        (2, "16:00", "00:00", "unable_to_deliver"),
    ]
    exported = (await client.get("/api/v1/stations/cp-1/outages", params={**params, "format": "csv"})).text
    assert exported.splitlines()[0] == (
        "station_id,evse_id,start,end,duration_minutes,cause,excluded,exclusion_cause,exclusion_id"
    )
    assert (await client.get("/api/v1/stations/nope/outages", params=params)).status_code == 404
    bad = {"period_start": "2025-03-02T00:00:00Z", "period_end": "2025-03-01T00:00:00Z"}
    assert (await client.get("/api/v1/uptime", params=bad)).status_code == 422
    assert (await client.get("/api/v1/uptime", params={"period_start": "2025-03-01T00:00:00Z"})).status_code == 422
    assert (await client.get("/api/v1/uptime")).status_code == 200  # the trailing twelve months


async def test_exclusion_windows(client, history):
    params = {"period_start": "2025-03-01T00:00:00Z", "period_end": "2025-03-02T00:00:00Z"}
    body = {
        "station_id": "cp-1",
        "evse_id": 1,
        "start": "2025-03-01T10:00:00Z",
        "end": "2025-03-01T10:30:00Z",
        "cause": "utility_outage",
        "note": "grid",
    }
    created = await client.post("/api/v1/exclusions", json=body)
    assert created.status_code == 201, created.text
    window = created.json()
    # Declared now, i.e. after the fact: fine for a utility outage, not for scheduled maintenance.
    late = await client.post(
        "/api/v1/exclusions",
        json={**body, "start": "2025-03-01T10:30:00Z", "end": "2025-03-01T11:00:00Z", "cause": "scheduled_maintenance"},
    )
    assert late.status_code == 201
    port1 = next(r for r in (await client.get("/api/v1/uptime", params=params)).json() if r["evse_id"] == 1)
    assert (port1["outage_minutes"], port1["excluded_minutes"]) == (90, 30)
    outages = (await client.get("/api/v1/stations/cp-1/outages", params=params)).json()
    assert [(o["start"][11:16], o["excluded"], o["exclusion_cause"], o["exclusion_id"]) for o in outages[:2]] == [
        ("10:00", True, "utility_outage", window["id"]),
        ("10:30", False, None, None),
    ]
    assert len((await client.get("/api/v1/exclusions?station_id=cp-1")).json()) == 2
    # A window ended early counts only until then; one is never lengthened; an unknown one is 404.
    ended = await client.post(f"/api/v1/exclusions/{window['id']}/end", json={"end": "2025-03-01T10:10:00Z"})
    assert ended.status_code == 200 and ended.json()["end"].startswith("2025-03-01T10:10"), ended.text
    port1 = next(r for r in (await client.get("/api/v1/uptime", params=params)).json() if r["evse_id"] == 1)
    assert (port1["outage_minutes"], port1["excluded_minutes"]) == (90, 10)
    later = await client.post(f"/api/v1/exclusions/{window['id']}/end", json={"end": "2025-03-01T12:00:00Z"})
    assert later.json()["end"].startswith("2025-03-01T10:10"), later.text
    assert (await client.post("/api/v1/exclusions/999999/end", json={"end": "2025-03-01T12:00:00Z"})).status_code == 404
    assert (await client.post(f"/api/v1/exclusions/{window['id']}/end", json={"end": "soon"})).status_code == 422
    assert (await client.delete(f"/api/v1/exclusions/{window['id']}")).status_code == 204
    assert (await client.delete(f"/api/v1/exclusions/{window['id']}")).status_code == 404
    for wrong in ({**body, "cause": "bad_luck"}, {**body, "end": body["start"]}, {**body, "station_id": "nope"}):
        assert (await client.post("/api/v1/exclusions", json=wrong)).status_code in (404, 422)


async def test_alerts_and_rules_endpoints(client, session_factory, now):
    with session_factory() as db:
        row = alerts.raise_alert(db, "offline", "cp-9", None, "critical", now, {"offline_since": 1.0})
        assert alerts.raise_alert(db, "offline", "cp-9", None, "critical", now, {}) is None  # one open per key
        db.commit()
    listed = (await client.get("/api/v1/alerts?open=true")).json()
    assert [(a["id"], a["rule"]) for a in listed] == [(row.id, "offline")]
    ack = await client.post(f"/api/v1/alerts/{row.id}/acknowledge", json={"by": "ana"})
    assert (ack.json()["acknowledged_by"], ack.json()["resolved_at"]) == ("ana", None)
    done = await client.post(f"/api/v1/alerts/{row.id}/resolve", json={"by": "ana"})
    assert done.json()["resolved_by"] == "ana"
    assert (await client.post(f"/api/v1/alerts/{row.id}/resolve")).status_code == 409
    assert (await client.post("/api/v1/alerts/999999/acknowledge")).status_code == 404
    assert (await client.get("/api/v1/alerts?open=true")).json() == []

    rules = {r["rule"]: r for r in (await client.get("/api/v1/alert-rules")).json()}
    assert rules["faulted"]["threshold"] == 300
    changed = await client.put("/api/v1/alert-rules/faulted", json={"threshold": 120, "severity": "warning"})
    faulted = next(r for r in changed.json() if r["rule"] == "faulted")
    assert (faulted["threshold"], faulted["severity"], faulted["enabled"]) == (120, "warning", True)
    off = await client.put("/api/v1/alert-rules/security_event", json={"enabled": False})
    assert not next(r for r in off.json() if r["rule"] == "security_event")["enabled"]
    assert (await client.put("/api/v1/alert-rules/nope", json={})).status_code == 404
    assert (await client.put("/api/v1/alert-rules/boot_rejected", json={"threshold": 3})).status_code == 422


async def test_webhooks_crud(client):
    body = {"url": "http://127.0.0.1:1/hook", "secret": "s" * 16, "events": ["alert.*"]}
    created = (await client.post("/api/v1/webhooks", json=body)).json()
    assert "secret" not in created
    hook_id = created["id"]
    patched = await client.patch(f"/api/v1/webhooks/{hook_id}", json={"active": False})
    assert patched.json()["active"] is False
    assert (await client.get(f"/api/v1/webhooks/{hook_id}/deliveries")).json() == []
    assert (await client.post("/api/v1/webhooks", json={**body, "url": "ftp://x/y"})).status_code == 422
    assert (await client.post("/api/v1/webhooks", json={**body, "secret": "short"})).status_code == 422
    assert (await client.delete(f"/api/v1/webhooks/{hook_id}")).status_code == 204
    assert (await client.get(f"/api/v1/webhooks/{hook_id}")).status_code == 404
