"""The console's operations pages as an operator meets them, over real HTTP (uvicorn on loopback, the gateway with
an ``ocpp`` ChargePoint connected over a WebSocket): the station list's filters and pages, its rows and the
station page changing live over Server-Sent Events as the charger reports (and only for the caller's
organisation), the station page's configuration, message log, sessions with cost and uptime, the alerts page's
buttons, NEVI uptime with its CSV export, and a site's load management. In chromium:
tests/csms/test_console_live_browser.py.

Every HTTP test runs on SQLite and on PostgreSQL (``session_factory``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
import websockets
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from sqlalchemy import select

from csms.api.app import create_app
from csms.api.live import LiveFeed
from csms.api.live import stream as live_stream
from csms.core.plugins.load_management import LoadManagement
from csms.runtime.server import Endpoints, run_server
from csms.services import alerts
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Alert, AuditEntry, ConnectionEvent, Station
from tests.csms.test_api import PASSWORD as STATION_PASSWORD
from tests.csms.test_api import Charger16, charger
from tests.csms.test_console_pages import _charging, _finished_session, _setup, _tariff, browser_of
from tests.csms.test_console_signin import add_user, form_token


@contextlib.asynccontextmanager
async def serving(session_factory: Any, gateway: Any) -> AsyncIterator[str]:
    """The app on a loopback port with a load manager planning the sites (as ``csms serve`` runs it)."""
    app = create_app(session_factory, gateway, None)
    load_management = LoadManagement()
    gateway.add_plugin(load_management)
    load_management.start()
    app.state.load_management = load_management
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


class SteeredCharger(Charger16):
    """The API tests' 1.6 charger that also takes the load manager's charging profiles."""

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **kwargs: Any) -> result16.SetChargingProfile:
        self.received.append(("SetChargingProfile", kwargs))
        return result16.SetChargingProfile(status="Accepted")


@contextlib.asynccontextmanager
async def steered_charger(gateway: Any, station_id: str) -> AsyncIterator[SteeredCharger]:
    auth = "Basic " + base64.b64encode(f"{station_id}:{STATION_PASSWORD}".encode()).decode()
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    async with websockets.connect(url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": auth}) as ws:
        cp = SteeredCharger(station_id, ws)
        runner = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="AC22"))
            assert boot.status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


class Events:
    """The events of one Server-Sent-Event stream, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.seen: list[tuple[str, str]] = []
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        event, data = "message", []
        async for line in self.response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "":
                if data:
                    self.seen.append((event, "\n".join(data)))
                    self._new.set()
                event, data = "message", []

    async def wait_for(self, name: str, needle: str = "", timeout: float = 10.0) -> str:
        async def find() -> str:
            while True:
                for event, data in self.seen:
                    if event == name and needle in data:
                        return data
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    def close(self) -> None:
        self._task.cancel()


@contextlib.asynccontextmanager
async def events(http: httpx.AsyncClient, url: str) -> AsyncIterator[Events]:
    async with http.stream("GET", url, timeout=httpx.Timeout(30, read=None)) as response:
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Events(response)
        try:
            yield stream
        finally:
            stream.close()


async def _provision(base: str, key: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        for station in ids:
            body = {"id": station, "password": STATION_PASSWORD, "ocpp_version": "1.6"}
            made = await api.post("/api/v1/stations", json=body, headers={"Authorization": f"Bearer {key}"})
            assert made.status_code == 201, made.text


def _listed(page: str) -> list[str]:
    return re.findall(r'<tr data-station="([^"]+)">', page)


async def test_station_list_filters_pages_and_rows_that_change_live(session_factory, gateway):
    async with serving(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)
        await _provision(base, keys["a"], [f"ext-{n:02d}" for n in range(1, 31)])
        async with browser_of(base, "viewer@a.example") as viewer, browser_of(base, "owner@b.example") as other:
            first = await viewer.get("/console/stations")
            assert first.status_code == 200 and "31 of 31 stations" in first.text and "page 1 of 2" in first.text
            assert len(_listed(first.text)) == 25 and "cp-b" not in first.text  # org-b's station is not listed
            second = _listed((await viewer.get("/console/stations", params={"page": 2})).text)
            assert len(second) == 6 and not set(second) & set(_listed(first.text))
            assert _listed((await viewer.get("/console/stations", params={"q": "ext-1"})).text) == [
                f"ext-{n}" for n in range(10, 20)
            ]
            assert _listed((await viewer.get("/console/stations", params={"site": "depot-a"})).text) == ["cp-a"]
            assert _listed((await viewer.get("/console/stations", params={"connection": "online"})).text) == []
            assert (await viewer.get("/console/stations", params={"connection": "sideways"})).status_code == 422

            async with (
                events(viewer, "/console/live/stations") as mine,
                events(other, "/console/live/stations") as theirs,
            ):
                async with charger(gateway, "cp-a", "1.6") as cp:
                    row = await mine.wait_for("row-cp-a", ">online<")  # it connected: the row comes over SSE
                    assert '<tr data-station="cp-a">' in row and "Acme AC22" in row
                    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
                    row = await mine.wait_for("row-cp-a", "1/1 Available")
                    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
                    await mine.wait_for("row-cp-a", "1/1 Preparing")
                    preparing = await viewer.get("/console/stations", params={"status": "Preparing"})
                    assert _listed(preparing.text) == ["cp-a"]  # a state beyond the five is offered once seen
                    assert "<option selected>Preparing</option>" in preparing.text
                    await _charging(cp)
                    row = await mine.wait_for("row-cp-a", "2/1 Faulted")
                    assert "1/1 Charging" in row
                    online = (await viewer.get("/console/stations", params={"connection": "online"})).text
                    assert _listed(online) == ["cp-a"]
                    by_vendor = await viewer.get("/console/stations", params={"vendor": "acme ac22"})
                    assert _listed(by_vendor.text) == ["cp-a"]
                    faulted = await viewer.get("/console/stations", params={"status": "Faulted"})
                    assert _listed(faulted.text) == ["cp-a"]
                    offline = await viewer.get("/console/stations", params={"connection": "offline", "q": "cp-"})
                    assert _listed(offline.text) == []
                await mine.wait_for("row-cp-a", ">offline<")
                assert not [e for e in theirs.seen if "cp-a" in e[0] + e[1]]  # another organisation hears nothing

        async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
            assert (await anonymous.get("/console/live/stations")).headers["location"] == "/signin"
            assert (await anonymous.get("/console/stations")).headers["location"] == "/signin"


async def test_the_station_page_live_with_configuration_messages_sessions_and_uptime(session_factory, gateway):
    async with serving(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)
        await _tariff(base, keys["a"])
        async with (
            charger(gateway, "cp-a", "1.6") as cp,
            browser_of(base, "operator@a.example") as operator,
            browser_of(base, "tech@a.example") as tech,
            browser_of(base, "viewer@a.example") as viewer,
        ):
            done = await _finished_session(cp)
            async with events(viewer, "/console/live/stations/cp-a") as live:
                await cp.call(call16.StatusNotification(connector_id=2, error_code="NoError", status="Unavailable"))
                state = await live.wait_for("station", "Unavailable")
                assert "connected" in state and 'id="connectors"' in state
            assert (await viewer.get("/console/live/stations/cp-b")).status_code == 404  # another organisation's

            page = (await operator.get("/console/stations/cp-a")).text
            assert 'sse-connect="/console/live/stations/cp-a"' in page
            sessions = re.search(r'<table id="sessions">(.*?)</table>', page, re.S).group(1)
            assert f"<td>{done}</td>" in sessions and "11.000" in sessions and "EUR" in sessions
            port_uptime = re.search(r'<table id="port-uptime">(.*?)</table>', page, re.S).group(1)
            assert re.findall(r"<tr><td>(\d+)</td>", port_uptime) == ["1", "2"]
            assert "Recent OCPP messages" not in page  # an operator lacks the diagnostics permission
            assert "fetch-configuration" not in page  # and the configuration one

            token = form_token((await tech.get("/console/stations/cp-a")).text)
            fetched = await tech.post("/console/stations/cp-a/fetch-configuration", data={"csrf_token": token},
                                          headers={"HX-Request": "true"})  # fmt: skip
            assert fetched.status_code == 200 and "with 1 keys" in fetched.text
            assert ("GetConfiguration", {}) in cp.received
            page = (await viewer.get("/console/stations/cp-a")).text  # read by anyone who may see the station
            configuration = re.search(r'<table id="configuration">(.*?)</table>', page, re.S).group(1)
            assert "HeartbeatInterval" in configuration and ">300<" in configuration

            technician = (await tech.get("/console/stations/cp-a")).text
            messages = re.search(r'<table id="messages">(.*?)</table>', technician, re.S).group(1)
            assert "GetConfiguration" in messages and "StopTransaction" in messages and "BootNotification" in messages
            api = await tech.get("/api/v1/stations/cp-a/messages", params={"limit": 5})
            assert api.status_code == 200 and len(api.json()) == 5
            assert api.json()[0]["id"] > api.json()[-1]["id"]  # newest first
            assert (await viewer.get("/api/v1/stations/cp-a/messages")).status_code == 403
            viewer_page = (await viewer.get("/console/stations/cp-a")).text
            assert "Recent OCPP messages" not in viewer_page and "fetch-configuration" not in viewer_page
            refused = await viewer.post("/console/stations/cp-a/fetch-configuration",
                                        data={"csrf_token": form_token(viewer_page)})  # fmt: skip
            assert refused.status_code == 403


async def test_alerts_page_acknowledge_and_resolve(session_factory, gateway):
    async with serving(session_factory, gateway) as base:
        await _setup(session_factory, base)
        now = datetime.now(UTC)
        with session_factory() as db, db.begin():
            details = {"error_code": "GroundFailure"}
            mine = alerts.raise_alert(db, "connector_faulted", "cp-a", 2, "critical", now, details)
            theirs = alerts.raise_alert(db, "station_offline", "cp-b", None, "warning", now, {})
            assert mine is not None and theirs is not None
            mine_id, theirs_id = mine.id, theirs.id
        async with browser_of(base, "viewer@a.example") as viewer:
            page = (await viewer.get("/console/alerts")).text
            assert f'data-alert="{mine_id}"' in page and f'data-alert="{theirs_id}"' not in page
            assert "GroundFailure" in page and "Acknowledge</button>" not in page  # a viewer has no buttons
            refused = await viewer.post(f"/console/alerts/{mine_id}/acknowledge", data={"csrf_token": form_token(page)})
            assert refused.status_code == 403
        async with browser_of(base, "operator@a.example") as operator:
            page = (await operator.get("/console/alerts")).text
            assert "Acknowledge</button>" in page and "Resolve</button>" in page
            token = form_token(page)
            forged = await operator.post(f"/console/alerts/{mine_id}/acknowledge", data={"csrf_token": "forged"})
            assert forged.status_code == 403
            other = await operator.post(f"/console/alerts/{theirs_id}/acknowledge", data={"csrf_token": token})
            assert other.status_code == 404  # another organisation's alert is as absent as a missing one
            acked = await operator.post(f"/console/alerts/{mine_id}/acknowledge", data={"csrf_token": token})
            assert acked.status_code == 303 and acked.headers["location"] == "/console/alerts"
            page = (await operator.get("/console/alerts")).text
            assert "operator@a.example" in page and "Acknowledge</button>" not in page and "Resolve</button>" in page
            resolved = await operator.post(f"/console/alerts/{mine_id}/resolve", data={"csrf_token": token},
                                           headers={"HX-Request": "true"})  # fmt: skip
            assert resolved.status_code == 200 and "resolved" in resolved.text
            assert "No open alerts." in (await operator.get("/console/alerts")).text
            everything = (await operator.get("/console/alerts", params={"show": "all"})).text
            assert f'data-alert="{mine_id}"' in everything
            again = await operator.post(f"/console/alerts/{mine_id}/resolve", data={"csrf_token": token})
            assert again.status_code == 409
        with session_factory() as db:
            row = db.get(Alert, mine_id)
            assert row.acknowledged_by == "operator@a.example" and row.resolved_by == "operator@a.example"
            assert db.get(Alert, theirs_id).acknowledged_at is None
            audited = [(e.action, e.status) for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))
                       if e.action.startswith("POST /console/alerts")]  # fmt: skip
        assert ("POST /console/alerts/{alert_id}/acknowledge", 303) in audited
        assert ("POST /console/alerts/{alert_id}/resolve", 200) in audited


async def test_uptime_page_and_its_csv_export(session_factory, gateway):
    async with serving(session_factory, gateway) as base:
        await _setup(session_factory, base)
        async with charger(gateway, "cp-a", "1.6") as cp:
            await cp.call(
                call16.StatusNotification(
                    connector_id=1,
                    error_code="NoError",
                    status="Available",
                    timestamp=(datetime.now(UTC) - timedelta(hours=3)).isoformat(),
                )
            )
            faulted_at = (datetime.now(UTC) - timedelta(hours=2)).isoformat()  # an outage for two hours now
            await cp.call(call16.StatusNotification(connector_id=2, error_code="GroundFailure", status="Faulted",
                                                    timestamp=faulted_at))  # fmt: skip
        with session_factory() as db, db.begin():  # provisioned and connected three hours ago
            three_hours_ago = datetime.now(UTC) - timedelta(hours=3, minutes=1)
            db.get(Station, "cp-a").created_at = three_hours_ago
            first = db.scalars(select(ConnectionEvent).where(ConnectionEvent.station_id == "cp-a")
                               .order_by(ConnectionEvent.id)).first()  # fmt: skip
            first.at = three_hours_ago
        async with browser_of(base, "viewer@a.example") as viewer:
            page = await viewer.get("/console/uptime")
            assert page.status_code == 200
            rows = re.findall(r'<tr><td><a href="/console/stations/([^"]+)">[^<]+</a></td><td>(\d+)</td>', page.text)
            assert rows == [("cp-a", "1"), ("cp-a", "2")]
            csv_url = re.search(r'href="(/console/uptime\.csv\?[^"]+)"', page.text).group(1).replace("&amp;", "&")
            exported = await viewer.get(csv_url)
            assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
            table = list(csv.DictReader(io.StringIO(exported.text)))
            assert [(r["station_id"], r["evse_id"]) for r in table] == [("cp-a", "1"), ("cp-a", "2")]
            faulted = next(r for r in table if r["evse_id"] == "2")
            assert 119 < float(faulted["outage_minutes"]) <= 121 and float(faulted["uptime_pct"]) < 100
            assert (await viewer.get("/console/uptime", params={"station_id": "cp-b"})).status_code == 404
            assert (await viewer.get("/console/uptime", params={"period": "12m"})).status_code == 200
        async with browser_of(base, "owner@b.example") as other:
            assert "cp-a" not in (await other.get("/console/uptime.csv")).text


async def test_load_management_page_and_its_live_points(session_factory, gateway):
    async with serving(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            patched = await api.patch("/api/v1/sites/depot-a", json={"strategy": "equal_share"},
                                      headers={"Authorization": f"Bearer {keys['a']}"})  # fmt: skip
            assert patched.status_code == 200, patched.text
        async with browser_of(base, "viewer@a.example") as viewer, steered_charger(gateway, "cp-a") as cp:
            page = await viewer.get("/console/sites/depot-a/load")
            assert page.status_code == 200 and 'data-live-chart="/console/live/sites/depot-a/load"' in page.text
            async with events(viewer, "/console/live/sites/depot-a/load") as live:
                await _charging(cp)
                found, points = None, []
                for _ in range(8):
                    points.append(json.loads(await live.wait_for("load", timeout=15)))
                    live.seen.clear()
                    if points[-1]["import_kw"] == 7.4 and points[-1]["evses"]["cp-a/1"]:
                        found = points[-1]
                        break
                assert found is not None, points
                assert found["limit_kw"] == 22.0 and found["source"] == "sessions"
                assert 0 < found["evses"]["cp-a/1"] <= 22.0  # the equal-share plan's allocation
            async with browser_of(base, "owner@b.example") as other:
                assert (await other.get("/console/sites/depot-a/load")).status_code == 404
                assert (await other.get("/console/live/sites/depot-a/load")).status_code == 404


async def test_a_201_station_page_shows_its_device_model_as_reported(session_factory, gateway):
    async with serving(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            body = {"id": "cp-201", "password": STATION_PASSWORD, "ocpp_version": "2.0.1"}
            made = await api.post("/api/v1/stations", json=body, headers={"Authorization": f"Bearer {keys['a']}"})
            assert made.status_code == 201
        async with charger(gateway, "cp-201", "2.0.1") as cp, browser_of(base, "viewer@a.example") as viewer:
            report = [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
                 "variable_attribute": [{"type": "Actual", "value": "120", "mutability": "ReadWrite"}]},
                {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
                 "variable_attribute": [{"type": "MaxSet", "value": "22000", "mutability": "ReadOnly"}]},
            ]  # fmt: skip
            stamp = datetime.now(UTC).isoformat()
            await cp.call(call201.NotifyReport(request_id=1, generated_at=stamp, seq_no=0, report_data=report))
            page = (await viewer.get("/console/stations/cp-201")).text
            assert "<h2>Device model</h2>" in page and "fetch-configuration" not in page  # 2.0.1: as reported
            table = re.search(r'<table id="configuration">(.*?)</table>', page, re.S).group(1)
            rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>\s*"
                              r'<td class="value">([^<]*)</td><td>([^<]*)</td>', table)  # fmt: skip
            assert ("EVSE", "1", "Power", "MaxSet", "22000", "yes") in rows, table
            assert ("OCPPCommCtrlr", "", "HeartbeatInterval", "Actual", "120", "no") in rows


async def test_a_live_stream_merges_a_burst_renders_once_and_ends_when_the_process_stops():
    feed = LiveFeed()
    rendered: list[dict[str, set[str]]] = []

    async def render(changes: dict[str, set[str]]) -> list[tuple[str, str]]:
        rendered.append(changes)
        return [(f"row-{station}", "a\nb") for station in sorted(changes)]

    received: list[str] = []

    async def read() -> None:
        async for text in live_stream(feed, render, coalesce_s=0.05):
            received.append(text)

    reader = asyncio.create_task(read())
    while not feed.subscribers:
        await asyncio.sleep(0.01)
    for _ in range(50):  # a burst of one station's reports, and one of another's
        feed.publish("cp-1", frozenset({"status"}))
    feed.publish("cp-2", frozenset({"power"}))
    while not rendered:
        await asyncio.sleep(0.01)
    assert rendered == [{"cp-1": {"status"}, "cp-2": {"power"}}]  # one render for the burst
    assert received[1:] == ["event: row-cp-1\ndata: a\ndata: b\n\n", "event: row-cp-2\ndata: a\ndata: b\n\n"]
    feed.close()
    await asyncio.wait_for(reader, 2)  # the stream ended by itself
    assert not feed.subscribers and len(rendered) == 1


async def test_csms_serve_stops_promptly_with_a_console_stream_open(sqlite_url):
    stop = asyncio.Event()
    ready: asyncio.Future[Endpoints] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(run_server(database_url=sqlite_url, ocpp_port=0, api_port=0, log_level="warning",
                                            stop=stop, on_ready=ready.set_result, handle_signals=False,
                                            shutdown_grace_s=10.0))  # fmt: skip
    endpoints = await asyncio.wait_for(ready, 30)
    add_user(make_session_factory(make_engine(sqlite_url)), "owner@example.com", "owner")
    base = endpoints.api_url.removesuffix("/api/v1")
    async with browser_of(base, "owner@example.com") as owner, events(owner, "/console/live/stations") as live:
        await asyncio.sleep(0.2)
        began = asyncio.get_running_loop().time()
        stop.set()
        await asyncio.wait_for(server, 30)
        took = asyncio.get_running_loop().time() - began
        await asyncio.wait_for(live._task, 5)  # the stream ended with the server
    assert took < 3.0, took  # not the API server's 5 s graceful-stop bound waiting for the browser
