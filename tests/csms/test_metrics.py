"""``GET /metrics`` of a running ``csms serve`` (PostgreSQL) with real chargers, read with prometheus-client's
parser, and the shipped Grafana dashboard checked against the names it exposes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from ocpp.v16 import call as call16
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker
from websockets.exceptions import InvalidStatus

from csms.alerts import AlertEngine, AlertRules
from csms.core.host import CsmsHost
from csms.core.plugins.alerts import AlertMonitor
from csms.core.plugins.load_management import LoadManagement
from csms.domain import events as ev
from csms.gateway.server import Gateway
from csms.runtime.metrics import Metrics
from csms.runtime.server import Endpoints
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store.models import Station
from tests.alerts.test_live import PASSWORD, station
from tests.alerts.test_webhooks import SECRET, Receiver
from tests.csms.test_host import T0 as HOST_T0
from tests.csms.test_host import connect, heartbeat
from tests.loadmgmt.test_manager import T0, managed
from tests.manual_scheduler import ManualScheduler
from tests.support.live import eventually, live_csms

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "chargetwin.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(endpoints: Endpoints) -> tuple[str, Samples]:
    async with httpx.AsyncClient() as anyone:  # no API key: Prometheus scrapes without one
        response = await anyone.get(f"http://127.0.0.1:{endpoints.api_port}/metrics")
    assert response.status_code == 200
    return response.text, parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def refused_handshake(endpoints: Endpoints, station_id: str, password: str) -> int:
    auth = "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()
    url = endpoints.ocpp_url.format(station_id=station_id)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": auth}):
            pass
    return refused.value.response.status_code


async def mute_station(endpoints: Endpoints, client: httpx.AsyncClient, station_id: str) -> Any:
    """A 1.6 charger that boots and then answers nothing."""
    body = {"id": station_id, "password": PASSWORD, "ocpp_version": "1.6"}
    assert (await client.post("/stations", json=body)).status_code == 201
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    ws = await websockets.connect(
        endpoints.ocpp_url.format(station_id=station_id),
        subprotocols=["ocpp1.6"],
        additional_headers={"Authorization": auth},
    )
    await ws.send(orjson.dumps([2, "b1", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "M"}]))
    assert orjson.loads(await ws.recv())[2]["status"] == "Accepted"
    return ws


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_metrics_count_what_stations_and_the_csms_did(database_url):
    rules = AlertRules(faulted_after_s=0.2)
    with Receiver(failures=1) as receiver:
        async with live_csms(database_url, alert_rules=rules) as (endpoints, client):
            hook = await client.post("/webhooks", json={"url": receiver.url, "secret": SECRET, "events": ["alert.*"]})
            assert hook.status_code == 201, hook.text
            assert await refused_handshake(endpoints, "ghost", PASSWORD) == 401
            async with station(endpoints, client, "cp16", "1.6") as cp16, station(endpoints, client, "cp201", "2.0.1"):
                assert await refused_handshake(endpoints, "cp16", "not-the-password-1") == 401
                await cp16.call(call16.Heartbeat())
                await cp16._connection.send('[2,"bad-1","Heartbeat",{')  # not JSON: FormationViolation
                await cp16.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
                reset = await client.post("/stations/cp16/reset", json={"type": "soft"})
                assert reset.json()["outcome"] == "result"
                mute = await mute_station(endpoints, client, "cp-mute")
                waiting = asyncio.create_task(client.post("/stations/cp-mute/reset?timeout=30", json={}))

                async def one_pending() -> Samples | None:
                    _, samples = await scrape(endpoints)
                    return samples if value(samples, "chargetwin_pending_calls", state="outstanding") == 1 else None

                await eventually(one_pending)

                async def alert_announced() -> Samples | None:
                    _, samples = await scrape(endpoints)
                    return samples if value(samples, "chargetwin_alerts_open", kind="faulted") == 1 else None

                await eventually(alert_announced)
                await cp16.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))

                async def webhooks_tried() -> Samples | None:
                    _, samples = await scrape(endpoints)
                    attempts = "chargetwin_webhook_attempts_total"
                    tried = {o: value(samples, attempts, outcome=o) for o in ("failed", "delivered")}
                    lagged = value(samples, "chargetwin_event_loop_lag_seconds_count") > 0
                    # the raised alert's first attempt fails (its retry is >= 8 s away); the resolution gets through
                    return samples if tried["failed"] == 1 and tried["delivered"] >= 1 and lagged else None

                await eventually(webhooks_tried)
                text, samples = await scrape(endpoints)
                await mute.close()
                assert (await waiting).json()["outcome"] == "cancelled"

    def connected(version: str) -> float:
        return value(samples, "chargetwin_stations_connected", ocpp_version=version, security_profile="1")

    assert (connected("1.6"), connected("2.0.1")) == (2, 1)  # cp16 and cp-mute; cp201
    frames = "chargetwin_ocpp_frames_total"
    assert value(samples, frames, direction="in", action="BootNotification", type="CALL") == 3
    assert value(samples, frames, direction="out", action="BootNotification", type="CALLRESULT") == 3
    assert value(samples, frames, direction="in", action="Heartbeat", type="CALL") == 1
    assert value(samples, frames, direction="in", action="unknown", type="malformed") == 1
    assert value(samples, frames, direction="out", action="Reset", type="CALL") == 2  # cp16, cp-mute
    assert value(samples, frames, direction="in", action="Reset", type="CALLRESULT") == 1
    assert value(samples, frames, direction="out", action="unknown", type="CALLERROR") == 1
    assert value(samples, "chargetwin_ocpp_callerrors_total", direction="out", code="FormationViolation") == 1
    assert value(samples, "chargetwin_handshake_refusals_total", reason="unknown_station") == 1
    assert value(samples, "chargetwin_handshake_refusals_total", reason="bad_password") == 1
    assert value(samples, "chargetwin_commit_batch_calls_count") > 0
    assert value(samples, "chargetwin_commit_batch_calls_sum") == 6  # 3 boots, a heartbeat, 2 statuses
    assert value(samples, "chargetwin_commit_duration_seconds_sum") > 0
    assert value(samples, "chargetwin_db_pool_size") == 10
    assert value(samples, "chargetwin_db_pool_connections", state="idle") >= 1
    assert "cp16" not in text and PASSWORD not in text  # no station ids, no secrets


def _dashboard_exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return own + [e for child in node.values() for e in _dashboard_exprs(child)]
    if isinstance(node, list):
        return [e for child in node for e in _dashboard_exprs(child)]
    return []


SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def render(factory: sessionmaker[Session], load_management: LoadManagement | None = None) -> tuple[str, str]:
    """A server's metrics, built on a gateway that never started."""
    gateway = Gateway(factory, CsmsConfig())
    try:
        metrics = Metrics(
            gateway,
            factory.kw["bind"],
            load_management=load_management or LoadManagement(),
            monitor=AlertMonitor(AlertEngine()),
        )
        body, content_type = metrics.render()
    finally:
        gateway.scheduler.shutdown()
    return body.decode(), content_type


async def test_load_management_plans_and_violations_per_site(sqlite_factory):
    manager = managed()  # site "s": cp0 and cp1 behind one limit
    plugged = ev.StatusReported(1, 1, "Preparing", ev.port_state("Preparing"), None)
    [profile] = manager.committed("cp0", [(plugged, None)], T0 + 10)
    manager.call_result(profile, "Rejected", T0 + 11)  # cp0's firmware will not be steered
    body, _ = render(sqlite_factory, LoadManagement(manager))
    samples = parse(body)
    assert value(samples, "chargetwin_loadmgmt_plans_total", site="s") == manager.planners["s"].plans > 0
    assert value(samples, "chargetwin_loadmgmt_violations_total", site="s", reason="rejected") == 1


async def test_the_grafana_dashboard_uses_only_exposed_metrics(sqlite_factory):
    body, content_type = render(sqlite_factory)
    assert content_type.startswith("text/plain")
    exposed = {
        family.name + suffix for family in text_string_to_metric_families(body) for suffix in SUFFIXES[family.type]
    }
    exprs = _dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in re.findall(r"\bchargetwin_[a-z0-9_]+", expr)}
    assert used - exposed == set()
    families = {name.removesuffix(suffix) for name in used for suffix in ("_total", "_bucket") if name.endswith(suffix)}
    assert {"chargetwin_ocpp_frames", "chargetwin_commit_duration_seconds", "chargetwin_handshake_refusals"} <= families


def test_a_commit_of_answers_alone_is_not_a_batch_of_no_stations(session_factory):
    """A station's answer to a CSMS call is committed (its ``last_seen_at``) on its own when no station sent a
    frame meanwhile: that commit is no batch of stations and answers no charger, so the batch histograms (and
    the dashboard's commits per second, calls per commit) count only the commits of station frames."""
    with session_factory() as db:
        stations.provision(db, "a", ocpp_version="1.6", password=None, now=datetime.fromtimestamp(HOST_T0, UTC))
        db.commit()
    scheduler = ManualScheduler(HOST_T0)
    csms = CsmsHost(session_factory, CsmsConfig(message_log_per_station=0), scheduler)
    gateway = Gateway(session_factory, CsmsConfig())
    try:
        metrics = Metrics(gateway, session_factory.kw["bind"])
        csms.commit_observer = metrics
        a, wire = connect(csms, "a")
        csms.receive(a, heartbeat("hb"))
        scheduler.advance(HOST_T0 + 1)  # one commit of one station's call
        later = HOST_T0 + 1 + CsmsConfig().heartbeat_interval_s
        scheduler.advance(later)
        csms.call("a", "Reset", {"type": "Soft"})
        call = wire.frames[-1]
        csms.receive(a, orjson.dumps([3, call.unique_id, {"status": "Accepted"}]).decode())
        batches = csms.processor.batches
        scheduler.advance(later + 1)
        assert csms.processor.batches == batches + 1  # the answer was committed on its own
        with session_factory() as db:
            row = db.get(Station, "a")
            assert row is not None and row.last_seen_at.timestamp() == later
        sample = metrics.registry.get_sample_value
        for name in ("commit_batch_stations", "commit_batch_calls", "commit_duration_seconds"):
            assert sample(f"chargetwin_{name}_count") == 1, name
        assert sample("chargetwin_commit_batch_stations_sum") == sample("chargetwin_commit_batch_calls_sum") == 1
    finally:
        gateway.scheduler.shutdown()
