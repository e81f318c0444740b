"""The operator console's pages as people of different roles and organisations meet them, over real HTTP (the
app served by uvicorn on loopback, the gateway with an ``ocpp`` ChargePoint connected): what each role sees and
may do, the organisation boundary, CSRF on every form, console actions reaching the station and the audit trail;
then the same in Debian's chromium through Playwright, with every request that would leave loopback aborted.

Every HTTP test runs on SQLite and on PostgreSQL (``session_factory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from ocpp.v16 import call as call16
from sqlalchemy import select

from csms.api.routes.tariffs import EXAMPLE as TARIFF
from csms.gateway.server import Gateway
from csms.services import apikeys, organisations
from csms.services.config import CsmsConfig
from csms.store.models import AuditEntry, Cdr, User
from tests.csms.test_api import PASSWORD as STATION_PASSWORD
from tests.csms.test_api import charger
from tests.csms.test_console_signin import add_user, form_token, served, sign_in

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: A directory to keep the browser's screenshots in (docs/img refreshes the documentation's).
SCREENSHOTS_ENV = "CHARGETWIN_CONSOLE_SCREENSHOTS"


async def _setup(session_factory: Any, base: str) -> dict[str, str]:
    """Two organisations: ``org-a`` with a site, a station and users of several roles, ``org-b`` with a station
    of its own. Stations, site and token are made through the API with each organisation's owner key."""
    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        for slug in ("org-a", "org-b"):
            organisations.create(db, slug, None, now)
        key_a = apikeys.create(db, "a", now, role="owner", organisation="org-a")[1]
        key_b = apikeys.create(db, "b", now, role="owner", organisation="org-b")[1]
    for email, role, org in [
        ("owner@a.example", "owner", "org-a"),
        ("viewer@a.example", "viewer", "org-a"),
        ("operator@a.example", "operator", "org-a"),
        ("tech@a.example", "technician", "org-a"),
        ("owner@b.example", "owner", "org-b"),
    ]:
        add_user(session_factory, email, role, org)
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        a = {"Authorization": f"Bearer {key_a}"}
        b = {"Authorization": f"Bearer {key_b}"}
        for station, headers in (("cp-a", a), ("cp-b", b)):
            body = {"id": station, "password": STATION_PASSWORD, "ocpp_version": "1.6"}
            assert (await api.post("/api/v1/stations", json=body, headers=headers)).status_code == 201
        site = {
            "id": "depot-a",
            "name": "Depot A",
            "nodes": [{"id": "grid", "limit_kw": 22}],
            "evses": [{"station_id": "cp-a", "evse_id": n, "node": "grid"} for n in (1, 2)],
        }
        made = await api.post("/api/v1/sites", json=site, headers=a)
        assert made.status_code == 201, made.text
        assert (await api.post("/api/v1/tokens", json={"id_token": "TAG-1"}, headers=a)).status_code == 201
    return {"a": key_a, "b": key_b}


async def _charging(cp: Any, history: tuple[tuple[int, int, int], ...] = ()) -> int:
    """The charger reports connector 1 charging a session that draws 7.4 kW now; returns the transaction id.
    ``history``: (minutes ago, W, Wh) readings of the session reported first (it started before the first)."""
    now = datetime.now(UTC)
    began = now - timedelta(minutes=max((ago for ago, _, _ in history), default=0) + 10 if history else 0)
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
    await cp.call(call16.StatusNotification(connector_id=2, error_code="GroundFailure", status="Faulted"))
    started = await cp.call(
        call16.StartTransaction(connector_id=1, id_tag="TAG-1", meter_start=1000, timestamp=began.isoformat())
    )
    for ago, watts, wh in (*history, (0, 7400, 2500)):
        sample = [{"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"},
                  {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]  # fmt: skip
        meter = [{"timestamp": (now - timedelta(minutes=ago)).isoformat(), "sampled_value": sample}]
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=started.transaction_id, meter_value=meter))
    return int(started.transaction_id)


#: A session's readings over the last two hours: 11 kW, then 3.7 kW (then 7.4 kW now).
HISTORY = ((110, 11_000, 1200), (60, 3700, 1800))


@contextlib.asynccontextmanager
async def browser_of(base: str, email: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await sign_in(http, email)).status_code == 303
        yield http


def _audit(session_factory: Any) -> list[AuditEntry]:
    with session_factory() as db:
        return list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))


async def test_overview_and_station_page_by_role_and_organisation(session_factory, gateway):
    async with served(session_factory, gateway) as base:
        await _setup(session_factory, base)
        async with charger(gateway, "cp-a", "1.6") as cp:
            await _charging(cp)
            async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
                gone = await anonymous.get("/")
                assert gone.status_code == 303 and gone.headers["location"] == "/signin"
                for url in ("/console/stations/cp-a", "/console/audit", "/console/users", "/console/partials/sites"):
                    assert (await anonymous.get(url)).headers.get("location") == "/signin", url
                assert (await anonymous.get("/console/static/htmx.min.js")).status_code == 200  # public assets
                refresh = await anonymous.get("/console/partials/sites", headers={"HX-Request": "true"})
                assert refresh.status_code == 204 and refresh.headers["HX-Redirect"] == "/signin"  # a whole page

            async with browser_of(base, "owner@a.example") as owner:
                page = await owner.get("/")
                assert page.status_code == 200
                csp = page.headers["content-security-policy"]
                assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
                text = page.text
                assert "Depot A" in text and "cp-a" in text and "cp-b" not in text  # org-b's station is not shown
                assert "Charging 1" in text and "Faulted 1" in text  # per port, counted per site
                assert "1 active session" in text and "7.4 kW of 22.0 kW limit" in text
                assert 'sse-connect="/console/live/overview"' in text and 'src="/console/static/htmx.min.js"' in text
                assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing from elsewhere
                partial = await owner.get("/console/partials/sites")
                assert "7.4 kW" in partial.text and "<html" not in partial.text

                station = await owner.get("/console/stations/cp-a")
                assert station.status_code == 200 and "connected" in station.text
                for action in ("disconnect", "reset", "unlock", "remote-start", "remote-stop", "change-availability",
                               "trigger", "diagnostics", "firmware"):  # fmt: skip
                    assert f'action="/console/stations/cp-a/{action}"' in station.text
                # sign-out, the nine actions and fetching the 1.6 configuration
                assert station.text.count('name="csrf_token"') == 11
                assert "GroundFailure" in station.text and "TAG-1" in station.text
                # Another organisation's station is as absent as one that does not exist.
                assert (await owner.get("/console/stations/cp-b")).status_code == 404
                assert (await owner.get("/console/stations/nope")).status_code == 404

            async with browser_of(base, "owner@b.example") as other:
                page = (await other.get("/")).text
                assert "cp-b" in page and "cp-a" not in page and "Depot A" not in page

            async with browser_of(base, "viewer@a.example") as viewer:
                station = await viewer.get("/console/stations/cp-a")
                assert station.status_code == 200 and "/console/stations/cp-a/reset" not in station.text
                assert 'href="/console/audit"' not in station.text and "Audit entries" not in station.text
                token = form_token(station.text)  # the viewer's own, valid CSRF token (the sign-out form's)
                refused = await viewer.post("/console/stations/cp-a/reset", data={"csrf_token": token})
                assert refused.status_code == 403 and "commands" in refused.json()["detail"]

            async with browser_of(base, "tech@a.example") as tech:
                station = (await tech.get("/console/stations/cp-a")).text
                assert "/console/stations/cp-a/reset" not in station  # a technician does not send commands

            async with browser_of(base, "operator@a.example") as operator:
                station = (await operator.get("/console/stations/cp-a")).text
                assert "/console/stations/cp-a/reset" in station and 'href="/console/users"' not in station
            assert cp.received == []  # nothing refused reached the station


async def test_console_actions_need_the_csrf_token_reach_the_station_and_are_audited(session_factory, gateway):
    async with served(session_factory, gateway) as base:
        await _setup(session_factory, base)
        async with charger(gateway, "cp-a", "1.6") as cp, browser_of(base, "operator@a.example") as operator:
            tx = await _charging(cp)
            token = form_token((await operator.get("/console/stations/cp-a")).text)
            forged = await operator.post("/console/stations/cp-a/reset", data={"csrf_token": "forged", "type": "hard"})
            assert forged.status_code == 403 and "reload the page" in forged.text
            missing = await operator.post("/console/stations/cp-a/reset", data={"type": "hard"})
            assert missing.status_code == 403
            assert cp.received == []

            done = await operator.post(
                "/console/stations/cp-a/reset",
                data={"csrf_token": token, "type": "hard"},
                headers={"HX-Request": "true"},
            )
            assert done.status_code == 200 and "reset: the station answered Accepted" in done.text
            assert "<html" not in done.text  # htmx swaps the result in
            stopping = {"csrf_token": token, "transaction_id": str(tx)}
            stop = await operator.post("/console/stations/cp-a/remote-stop", data=stopping)
            assert stop.status_code == 200 and "answered Accepted" in stop.text  # a whole page without htmx
            assert "<html" in stop.text
            assert cp.received == [("Reset", {"type": "Hard"}), ("RemoteStopTransaction", {"transaction_id": tx})]
            bad = await operator.post("/console/stations/cp-a/unlock", data={"csrf_token": token, "evse_id": "0"})
            assert bad.status_code == 422 and "evse_id" in bad.text
            # Another organisation's station: the same 404 as the API's, nothing sent.
            other = await operator.post("/console/stations/cp-b/reset", data={"csrf_token": token})
            assert other.status_code == 404
            assert len(cp.received) == 2

        entries = [e for e in _audit(session_factory) if e.action.startswith("POST /console/")]
        assert [(e.action, e.status) for e in entries] == [
            ("POST /console/stations/{station_id}/reset", 403),
            ("POST /console/stations/{station_id}/reset", 403),
            ("POST /console/stations/{station_id}/reset", 200),
            ("POST /console/stations/{station_id}/remote-stop", 200),
            ("POST /console/stations/{station_id}/unlock", 422),
            ("POST /console/stations/{station_id}/reset", 404),
        ]
        reset = entries[2]
        assert reset.actor_name == "operator@a.example" and reset.actor.startswith("user:")
        assert reset.station_id == "cp-a" and reset.object_type == "stations" and reset.object_id == "cp-a"
        assert reset.request == {"type": "hard"}  # the form's fields, never its CSRF token


async def test_trigger_diagnostics_firmware_and_disconnect_buttons(session_factory, gateway):
    """The station page's Trigger message, Get diagnostics, Update firmware and Disconnect buttons run the API's
    routes: the station gets the OCPP call (a one-time upload URL, the stored firmware's download URL) or its
    connection is closed, by role."""
    async with served(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            stored = await api.post("/api/v1/firmware-files?name=fw-2.bin", content=b"\x7fFW",
                                    headers={"Authorization": f"Bearer {keys['a']}"})  # fmt: skip
            assert stored.status_code == 201, stored.text
        async with charger(gateway, "cp-a", "1.6") as cp:
            async with browser_of(base, "operator@a.example") as operator:
                page = (await operator.get("/console/stations/cp-a")).text
                token = form_token(page)
                assert "/console/stations/cp-a/trigger" in page and "/console/stations/cp-a/firmware" not in page
                data = {"csrf_token": token, "message": "StatusNotification", "evse_id": "1"}
                sent = await operator.post("/console/stations/cp-a/trigger", data=data, headers={"HX-Request": "1"})
                assert "trigger: the station answered Accepted" in sent.text
                bad = await operator.post("/console/stations/cp-a/trigger", data={**data, "message": "Nope"})
                assert bad.status_code == 422 and "message" in bad.text
            async with browser_of(base, "tech@a.example") as tech:  # diagnostics and firmware are a technician's
                page = (await tech.get("/console/stations/cp-a")).text
                assert "/console/stations/cp-a/reset" not in page and "<option>fw-2.bin</option>" in page
                token = form_token(page)
                logs = await tech.post("/console/stations/cp-a/diagnostics", data={"csrf_token": token})
                assert "diagnostics: the station answered" in logs.text
                fw = await tech.post("/console/stations/cp-a/firmware", data={"csrf_token": token, "name": "fw-2.bin"})
                assert "firmware: the station answered" in fw.text
            async with browser_of(base, "viewer@a.example") as viewer:
                page = (await viewer.get("/console/stations/cp-a")).text
                assert "/console/stations/cp-a/trigger" not in page and "/console/stations/cp-a/firmware" not in page
            async with browser_of(base, "operator@a.example") as operator:
                token = form_token((await operator.get("/console/stations/cp-a")).text)
                closed = await operator.post("/console/stations/cp-a/disconnect", data={"csrf_token": token})
                assert "disconnect: the connection is closed" in closed.text
                await asyncio.wait_for(cp._connection.wait_closed(), 5)
                assert cp._connection.close_code == 1008 and not gateway.is_connected("cp-a")
                again = await operator.post("/console/stations/cp-a/disconnect", data={"csrf_token": token})
                assert "disconnect: the station was not connected" in again.text
            names = [name for name, _ in cp.received]
            assert names == ["TriggerMessage", "GetDiagnostics", "UpdateFirmware"]
            assert cp.received[0][1] == {"requested_message": "StatusNotification", "connector_id": 1}
            assert "/api/v1/uploads/diagnostics/" in cp.received[1][1]["location"]
            assert "/api/v1/firmware/fw-2.bin?token=" in cp.received[2][1]["location"]


async def test_audit_and_users_pages(session_factory, gateway):
    async with served(session_factory, gateway) as base:
        await _setup(session_factory, base)
        async with browser_of(base, "operator@a.example") as operator:
            assert (await operator.get("/console/audit")).status_code == 403
            assert (await operator.get("/console/users")).status_code == 403
            token = form_token((await operator.get("/")).text)
            refused = await operator.post("/console/users", data={"csrf_token": token, "email": "x@a.example",
                                                                   "role": "viewer"})  # fmt: skip
            assert refused.status_code == 403
        async with browser_of(base, "owner@b.example") as other:
            token = form_token((await other.get("/")).text)
            await other.post("/console/stations/cp-b/reset", data={"csrf_token": token})  # not connected: 409

        async with browser_of(base, "owner@a.example") as owner:
            page = await owner.get("/console/audit")
            assert page.status_code == 200
            assert "POST /api/v1/sites" in page.text and "POST /console/stations" not in page.text  # b's is not a's
            assert 'href="/api/v1/audit?format=csv' in page.text
            only = await owner.get("/console/audit", params={"station_id": "cp-a", "since": "2000-01-01"})
            assert "POST /api/v1/tokens" not in only.text and "POST /api/v1/stations" in only.text
            elsewhere = await owner.get("/console/audit", params={"station_id": "cp-b"})
            assert "No entries." in elsewhere.text  # another organisation's station's entries stay hidden
            searched = await owner.get("/console/audit", params={"q": "tokens"})
            assert "POST /api/v1/tokens" in searched.text and "POST /api/v1/sites" not in searched.text
            bad = await owner.get("/console/audit", params={"since": "yesterday"})
            assert bad.status_code == 422 and "since" in bad.text
            csv_url = re.search(r'href="(/api/v1/audit\?[^"]+)"', page.text).group(1).replace("&amp;", "&")
            csv = await owner.get(csv_url)
            assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
            assert "POST /api/v1/sites" in csv.text and "/console/stations" not in csv.text

            users_page = await owner.get("/console/users")
            assert users_page.status_code == 200
            assert "viewer@a.example" in users_page.text and "owner@b.example" not in users_page.text
            assert "platform-admin" not in users_page.text and ">org-a<" in users_page.text
            token = form_token(users_page.text)
            forged = await owner.post("/console/users", data={"csrf_token": "x", "email": "new@a.example",
                                                               "role": "viewer"})  # fmt: skip
            assert forged.status_code == 403
            admin = await owner.post("/console/users", data={"csrf_token": token, "email": "boss@a.example",
                                                              "role": "platform-admin"})  # fmt: skip
            assert admin.status_code == 403
            taken = await owner.post("/console/users", data={"csrf_token": token, "email": "owner@b.example",
                                                              "role": "viewer"})  # fmt: skip
            assert taken.status_code == 409
            made = await owner.post("/console/users", data={"csrf_token": token, "email": "New@a.example",
                                                             "role": "finance"})  # fmt: skip
            assert made.status_code == 200
            link = re.search(r'id="one-time-link">([^<]+)<', made.text).group(1)
            assert link.startswith(base + "/set-password/")
            async with httpx.AsyncClient(timeout=30) as newcomer:
                assert "new@a.example" in (await newcomer.get(link)).text
            with session_factory() as db:
                new = db.scalars(select(User).where(User.email == "new@a.example")).one()
                other_owner = db.scalars(select(User).where(User.email == "owner@b.example")).one()
                viewer = db.scalars(select(User).where(User.email == "viewer@a.example")).one()
            assert new.role == "finance" and new.organisation_id == viewer.organisation_id

            assert (
                await owner.post(f"/console/users/{other_owner.id}/disable", data={"csrf_token": token})
            ).status_code == 404
            async with browser_of(base, "viewer@a.example") as victim:
                assert (await victim.get("/")).status_code == 200
                no_csrf = await owner.post(f"/console/users/{viewer.id}/disable", data={"csrf_token": "x"})
                assert no_csrf.status_code == 403
                gone = await owner.post(f"/console/users/{viewer.id}/disable", data={"csrf_token": token})
                assert gone.status_code == 303
                assert (await victim.get("/")).headers.get("location") == "/signin"  # their session ended
            enabled = await owner.post(f"/console/users/{viewer.id}/enable", data={"csrf_token": token})
            promoted = await owner.post(f"/console/users/{new.id}/role", data={"csrf_token": token, "role": "operator"})
            assert enabled.status_code == promoted.status_code == 303
            beyond = await owner.post(
                f"/console/users/{new.id}/role", data={"csrf_token": token, "role": "platform-admin"}
            )
            assert beyond.status_code == 403  # an owner grants no more than an owner has
            relinked = await owner.post(f"/console/users/{new.id}/reset-link", data={"csrf_token": token})
            fresh = re.search(r'id="one-time-link">([^<]+)<', relinked.text).group(1)
            assert fresh.startswith(base + "/set-password/") and fresh != link
            async with httpx.AsyncClient(timeout=30) as newcomer:
                assert "new@a.example" in (await newcomer.get(fresh)).text
            with session_factory() as db:
                assert db.get(User, viewer.id).disabled is False and db.get(User, new.id).role == "operator"
        add_user(session_factory, "admin@a.example", "admin", "org-a")
        async with browser_of(base, "admin@a.example") as admin:
            token = form_token((await admin.get("/console/users")).text)
            with session_factory() as db:
                owner_a = db.scalars(select(User).where(User.email == "owner@a.example")).one()
            last = await admin.post(f"/console/users/{owner_a.id}/disable", data={"csrf_token": token})
            assert last.status_code == 409 and "at least one owner" in last.text
        actions = [(e.action, e.status) for e in _audit(session_factory) if e.action.startswith("POST /console/users")]
        assert ("POST /console/users", 200) in actions and ("POST /console/users/{user_id}/disable", 303) in actions
        assert ("POST /console/users/{user_id}/role", 303) in actions and (
            "POST /console/users/{user_id}/role",
            403,
        ) in actions
        assert ("POST /console/users/{user_id}/reset-link", 200) in actions


async def _tariff(base: str, key: str) -> None:
    """The API's example tariff, the default of cp-a."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        a = {"Authorization": f"Bearer {key}"}
        assert (await api.put("/api/v1/tariffs/STANDARD", json=TARIFF, headers=a)).status_code == 201
        patched = await api.patch("/api/v1/stations/cp-a", json={"tariff_id": "STANDARD"}, headers=a)
        assert patched.status_code == 200


async def _finished_session(cp: Any, history: tuple[tuple[int, int, int], ...] = ()) -> int:
    """A session of 11 kWh (1 000 → 12 000 Wh) that has ended now; its id."""
    done = await _charging(cp, history)
    stamp = datetime.now(UTC).isoformat()
    await cp.call(call16.StopTransaction(meter_stop=12_000, timestamp=stamp, transaction_id=done))
    return done


async def test_transactions_with_cdr_cost_and_a_sites_power_chart(session_factory, gateway):
    async with served(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)
        await _tariff(base, keys["a"])
        async with charger(gateway, "cp-a", "1.6") as cp:
            running = await _finished_session(cp)
            again = await _charging(cp, HISTORY)
        with session_factory() as db:
            cdr = db.scalars(select(Cdr).where(Cdr.transaction_id == running)).one()
        async with browser_of(base, "viewer@a.example") as viewer:
            page = await viewer.get("/console/transactions")
            assert page.status_code == 200
            rows = re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", page.text, re.S)
            assert [int(i) for i, _ in rows] == [again, running]  # newest first, org-b's none
            finished = rows[1][1]
            assert "11.000" in finished  # kWh: 12 000 - 1 000 Wh
            assert f"{cdr.total_cost_excl_vat} {cdr.currency}" in finished
            assert f"{cdr.total_cost_incl_vat} {cdr.currency}" in finished
            assert "running" in rows[0][1]
            assert "cp-a" in (await viewer.get("/console/transactions", params={"station_id": "cp-a"})).text
            empty = await viewer.get("/console/transactions", params={"station_id": "cp-b"})
            assert "None." in empty.text  # another organisation's station's sessions stay hidden

            site = await viewer.get("/console/sites/depot-a", params={"hours": 3})
            assert site.status_code == 200 and 'src="/console/static/uPlot.iife.min.js"' in site.text
            chart = json.loads(html.unescape(re.search(r'data-chart="([^"]+)"', site.text).group(1)))
            assert len(chart["t"]) == 36 and chart["t"][1] - chart["t"][0] == 300  # 3 hours of 5-minute slots
            power, limit = chart["series"]
            values = power["values"]
            assert values[0] == 0 and values[-1] == 7.4  # before the session; its draw now (the stopped one's is over)
            assert 11.0 in values and 3.7 in values and values.index(11.0) < values.index(3.7)
            assert set(limit["values"]) == {22.0}
            assert (await viewer.get("/console/sites/depot-a", params={"hours": 0})).status_code == 422
        async with browser_of(base, "owner@b.example") as other:
            assert (await other.get("/console/sites/depot-a")).status_code == 404
            assert "cp-a" not in (await other.get("/console/transactions")).text


# ---- in a real browser, offline ----------------------------------------------------------------------------
def _browse(base: str, shots: Path) -> dict[str, Any]:
    """Sign in, look at the overview and a station, reset it; every request that would leave loopback is
    aborted and counted."""
    from playwright.sync_api import Route, sync_playwright

    sent: list[str] = []
    left: list[str] = []
    loopback = urlsplit(base).hostname

    def loopback_only(route: Route) -> None:
        sent.append(route.request.url)
        if urlsplit(route.request.url).hostname == loopback:
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort("internetdisconnected")

    seen: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.route("**/*", loopback_only)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(base + "/")
            page.fill("#email", "owner@a.example")
            page.fill("#password", "correct horse battery")
            page.click("button")
            page.wait_for_url(base + "/")
            page.locator("[data-site=depot-a]").wait_for()
            seen["htmx"] = page.evaluate("typeof htmx")
            page.wait_for_function(
                "() => document.querySelector('[sse-connect]')['htmx-internal-data'].sseEventSource.readyState === 1"
            )  # htmx's SSE extension holds the overview's stream open
            page.screenshot(path=shots / "console-overview.png", full_page=True)
            page.click("text=cp-a")
            page.wait_for_url(base + "/console/stations/cp-a")
            page.screenshot(path=shots / "console-station.png", full_page=True)
            page.select_option("select[name=type]", "hard")
            page.click("button:has-text('Reset')")
            page.locator("#action-result .result").wait_for()
            seen["result"] = page.inner_text("#action-result")
            seen["url_after_action"] = page.url  # htmx swapped the result in, no navigation
            page.screenshot(path=shots / "console-station-action.png", full_page=True)
            page.goto(base + "/console/sites/depot-a?hours=3")
            page.locator("#power-chart canvas").wait_for()
            seen["chart_legend"] = page.inner_text("#power-chart")
            page.screenshot(path=shots / "console-site.png", full_page=True)
            page.goto(base + "/console/transactions")
            page.screenshot(path=shots / "console-transactions.png", full_page=True)
            page.goto(base + "/console/audit?station_id=cp-a")
            page.screenshot(path=shots / "console-audit.png", full_page=True)
            page.goto(base + "/console/users")
            page.fill("input[name=email]", "new@a.example")
            page.select_option("select[name=role]", "operator")
            page.click("button:has-text('Add user')")
            page.locator("#one-time-link").wait_for()
            page.screenshot(path=shots / "console-users.png", full_page=True)
            page.goto(base + "/console/tokens")
            page.fill("input[name=id_token]", "TAG-2")
            page.fill("input[name=group_id]", "staff")
            page.click("button:has-text('Add token')")
            page.wait_for_url(base + "/console/tokens")
            page.click("#tokens tr:has-text('TAG-2') button:has-text('Block')")
            page.locator("#tokens tr:has-text('TAG-2'):has-text('Blocked')").wait_for()
            page.fill("form[action='/console/drivers'] input[name=id]", "D-17")
            page.fill("form[action='/console/drivers'] input[name=name]", "Sam Okafor")
            page.fill("form[action='/console/drivers'] input[name=cost_centre]", "CC-NORTH")
            page.click("button:has-text('Add driver')")
            page.locator("#drivers tr:has-text('Sam Okafor')").wait_for()
            seen["tokens"] = page.inner_text("#tokens")
            page.screenshot(path=shots / "console-tokens.png", full_page=True)
            page.goto(base + "/console/tariffs")
            page.fill("input[name=id]", "DAYTIME")
            page.fill("input[name=energy]", "0.35")
            page.fill("input[name=flat]", "0.50")
            page.fill("input[name=vat]", "20")
            page.click("button:has-text('Save tariff')")
            page.locator("#tariffs tr:has-text('DAYTIME')").wait_for()
            seen["tariffs"] = page.inner_text("#tariffs")
            page.screenshot(path=shots / "console-tariffs.png", full_page=True)
            page.goto(base + "/console/api-keys")
            page.fill("input[name=name]", "billing export")
            page.select_option("select[name=role]", "finance")
            page.click("button:has-text('Add key')")
            page.locator("#new-key").wait_for()
            seen["keys"] = page.inner_text("#keys")
            page.screenshot(path=shots / "console-api-keys.png", full_page=True)
            seen["errors"] = errors
        finally:
            browser.close()
    seen["sent"], seen["left"] = sent, left
    return seen


async def test_the_console_in_chromium_offline(sqlite_factory, tmp_path):
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"Debian's chromium is required under CI=true ({CHROMIUM} is missing)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(sqlite_factory, CsmsConfig(call_timeout_s=5.0))
    await gateway.start("127.0.0.1", 0)
    try:
        async with served(sqlite_factory, gateway) as base:
            keys = await _setup(sqlite_factory, base)
            await _tariff(base, keys["a"])
            async with charger(gateway, "cp-a", "1.6") as cp:
                await _finished_session(cp, ((50, 11_000, 1500), (20, 11_000, 7000)))
                await _charging(cp, HISTORY)
                seen = await asyncio.to_thread(_browse, base, shots)
                assert cp.received == [("Reset", {"type": "Hard"})]
    finally:
        await gateway.stop()
    assert seen["left"] == [] and not [u for u in seen["sent"] if urlsplit(u).hostname != "127.0.0.1"]
    assert any(u.endswith("/console/static/htmx.min.js") for u in seen["sent"])
    assert seen["htmx"] == "object"  # the vendored script ran under the page's CSP
    assert any(u.endswith("/console/live/overview") for u in seen["sent"])  # and opened the overview's stream
    assert "reset: the station answered Accepted" in seen["result"]
    assert seen["url_after_action"].endswith("/console/stations/cp-a")
    assert seen["errors"] == []  # no CSP violation, no failed load
    assert "sessions (kW)" in seen["chart_legend"] and "site limit" in seen["chart_legend"]  # uPlot drew it
    assert any(u.endswith("/console/static/uPlot.iife.min.js") for u in seen["sent"])
    assert "TAG-2\tISO14443\tBlocked\tstaff" in seen["tokens"] and "TAG-1" in seen["tokens"]
    assert "0.50 per session, 0.35 per kWh" in seen["tariffs"]
    assert "billing export\tfinance\torg-a\tactive" in seen["keys"]


def test_every_vendored_asset_is_listed_with_its_licence():
    assets = ROOT / "csms" / "api" / "static" / "console"
    listing = (assets / "README.md").read_text()
    for path in assets.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in listing, f"{path.name} is not listed in {assets / 'README.md'}"
    for licence in ("htmx.LICENSE", "uPlot.LICENSE"):
        assert (assets / licence).stat().st_size > 100
