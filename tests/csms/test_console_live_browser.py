"""The console's live pages in Debian's chromium through Playwright, offline (every request that would leave
loopback is aborted): an operator watches the station list while a charger (the ``ocpp`` package's ChargePoint)
connects over a WebSocket to the served CSMS and sees it come online and report without a reload, resets it
from its page, follows a site's load chart as points arrive, acknowledges and resolves an alert; the pages at a
phone's 390×844 do not overflow sideways and fold the menu; a viewer's station page has no buttons and the API
refuses the viewer's command (403). With ``CHARGETWIN_CONSOLE_SCREENSHOTS`` set, docs/img's screenshots are
written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.gateway.server import Gateway
from csms.services import alerts
from csms.services.config import CsmsConfig
from tests.csms.test_console_operations import serving, steered_charger
from tests.csms.test_console_pages import CHROMIUM, IN_CI, SCREENSHOTS_ENV, _charging, _setup, _tariff
from tests.csms.test_console_signin import PASSWORD

PHONE = {"width": 390, "height": 844}
PHONE_PAGES = ("/", "/console/stations", "/console/stations/cp-a", "/console/alerts", "/console/uptime",
               "/console/sites/depot-a/load", "/console/transactions")  # fmt: skip


def _overflow(page: Any) -> int:
    """How far the page is wider than the window (CSS pixels; 0: no sideways scrolling)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))


def _browse(base: str, shots: Path, run: Callable[[Coroutine[Any, Any, Any]], Any], charger: Any) -> dict[str, Any]:
    """``run`` runs a coroutine on the test's event loop (the charger lives there); ``charger`` the steps."""
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

    def sign_in(page: Any, email: str) -> None:
        page.route("**/*", loopback_only)
        page.goto(base + "/signin")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button")
        page.wait_for_url(base + "/")

    seen: dict[str, Any] = {"errors": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            navigations: list[str] = []
            page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
            sign_in(page, "operator@a.example")

            # The station list: cp-a is offline; the charger connects and reports, the row follows live.
            page.goto(base + "/console/stations")
            row = page.locator("#row-cp-a")
            seen["before"] = row.inner_text()
            page.wait_for_function("() => document.querySelector('[sse-connect]')['htmx-internal-data']"
                                   ".sseEventSource.readyState === 1")  # fmt: skip
            loads = len(navigations)
            run(charger.connect())
            row.locator("td.conn.on").wait_for(timeout=10_000)
            run(charger.status(1, "Available"))
            row.locator("text=1/1 Available").wait_for(timeout=10_000)
            seen["online"] = row.inner_text()
            seen["reloaded"] = len(navigations) - loads  # the page never navigated meanwhile
            page.screenshot(path=shots / "console-stations.png", full_page=True)

            # Its page: live connectors, and a Reset with the station's answer.
            page.click("#row-cp-a a >> text=cp-a")
            page.wait_for_url(base + "/console/stations/cp-a")
            page.wait_for_function("() => document.querySelector('[sse-connect]')['htmx-internal-data']"
                                   ".sseEventSource.readyState === 1")  # fmt: skip
            run(charger.status(2, "Faulted", "GroundFailure"))
            page.locator("#connectors >> text=GroundFailure").wait_for(timeout=10_000)
            page.select_option("select[name=type]", "soft")
            page.click("button:has-text('Reset')")
            page.locator("#action-result .result").wait_for()
            seen["reset"] = page.inner_text("#action-result")
            seen["url_after_reset"] = page.url
            page.screenshot(path=shots / "console-station-live.png", full_page=True)

            # The overview hears the charging session start.
            page.goto(base + "/")
            page.wait_for_function("() => document.querySelector('[sse-connect]')['htmx-internal-data']"
                                   ".sseEventSource.readyState === 1")  # fmt: skip
            run(charger.charge())
            page.locator("[data-site=depot-a] >> text=1 active session").wait_for(timeout=10_000)

            # A site's load management: points arrive over SSE.
            page.goto(base + "/console/sites/depot-a/load")
            page.locator("#load-chart canvas").wait_for()
            page.wait_for_function("() => Number(document.querySelector('#load-chart').dataset.points || 0) >= 4",
                                   timeout=30_000)  # fmt: skip
            seen["load_legend"] = page.inner_text("#load-chart")
            page.screenshot(path=shots / "console-load.png", full_page=True)

            # Alerts: acknowledge, then resolve.
            page.goto(base + "/console/alerts")
            page.click("button:has-text('Acknowledge')")
            page.wait_for_url(base + "/console/alerts")
            seen["acknowledged"] = page.inner_text("#alerts")
            page.screenshot(path=shots / "console-alerts.png", full_page=True)
            page.click("button:has-text('Resolve')")
            page.locator("text=No open alerts.").wait_for()

            page.goto(base + "/console/uptime")
            page.screenshot(path=shots / "console-uptime.png", full_page=True)

            # A phone: no page scrolls sideways; the menu folds behind a button.
            phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
            phone.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            sign_in(phone, "operator@a.example")
            seen["phone_overflow"] = {}
            for path in PHONE_PAGES:
                phone.goto(base + path)
                phone.wait_for_load_state("load")
                seen["phone_overflow"][path] = _overflow(phone)
            phone.goto(base + "/console/stations/cp-a")
            seen["menu_hidden"] = not phone.locator("header nav").is_visible()
            phone.screenshot(path=shots / "console-phone-station.png", full_page=False)
            phone.click("label.menu-button")
            seen["menu_shown"] = phone.locator("header nav >> text=Stations").is_visible()
            phone.screenshot(path=shots / "console-phone-menu.png", full_page=False)
            phone.click("label.menu-button")
            phone.goto(base + "/console/stations")
            phone.screenshot(path=shots / "console-phone-stations.png", full_page=False)

            # A viewer: no buttons on the station page, and the API refuses the command itself.
            viewer = browser.new_page(viewport={"width": 1280, "height": 800})
            sign_in(viewer, "viewer@a.example")
            viewer.goto(base + "/console/stations/cp-a")
            seen["viewer_buttons"] = viewer.locator("#station-state ~ * button, .actions button").count()
            seen["viewer_reset"] = viewer.locator("button:has-text('Reset')").count()
            seen["viewer_api"] = viewer.evaluate(
                """async () => {
                    const csrf = document.querySelector('input[name=csrf_token]').value;
                    const r = await fetch('/api/v1/stations/cp-a/reset', {method: 'POST', credentials: 'same-origin',
                        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                        body: JSON.stringify({type: 'hard'})});
                    return {status: r.status, body: await r.json()};
                }"""
            )
            viewer.screenshot(path=shots / "console-station-viewer.png", full_page=True)
            # Another organisation's station by URL: the same 404 as a station that does not exist.
            other = viewer.goto(base + "/console/stations/cp-b")
            seen["other_org"] = (other.status if other else None, viewer.locator("body").inner_text())
        finally:
            browser.close()
    seen["sent"], seen["left"] = sent, left
    return seen


class Charger:
    """The steps the browser asks for, on the test's loop: connect (BootNotification), report, charge."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.stack = contextlib.AsyncExitStack()
        self.cp: Any = None

    async def connect(self) -> None:
        self.cp = await self.stack.enter_async_context(steered_charger(self.gateway, "cp-a"))

    async def status(self, connector: int, status: str, error: str = "NoError") -> None:
        await self.cp.call(call16.StatusNotification(connector_id=connector, error_code=error, status=status))

    async def charge(self) -> None:
        await _charging(self.cp)


async def test_live_console_in_chromium(sqlite_factory, tmp_path):
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"Debian's chromium is required under CI=true ({CHROMIUM} is missing)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(sqlite_factory, CsmsConfig(call_timeout_s=5.0))
    await gateway.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    charger = Charger(gateway)
    try:
        async with serving(sqlite_factory, gateway) as base:
            keys = await _setup(sqlite_factory, base)
            await _tariff(base, keys["a"])
            async with httpx.AsyncClient(base_url=base, timeout=30) as api:
                patched = await api.patch("/api/v1/sites/depot-a", json={"strategy": "equal_share"},
                                          headers={"Authorization": f"Bearer {keys['a']}"})  # fmt: skip
                assert patched.status_code == 200
            with sqlite_factory() as db, db.begin():
                alerts.raise_alert(db, "connector_faulted", "cp-a", 2, "critical", datetime.now(UTC),
                                   {"error_code": "GroundFailure"})  # fmt: skip

            def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
                return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

            try:
                seen = await asyncio.to_thread(_browse, base, shots, run, charger)
            finally:
                await charger.stack.aclose()
            received = [action for action, _ in charger.cp.received]
    finally:
        await gateway.stop()
    assert seen["left"] == [] and not [u for u in seen["sent"] if urlsplit(u).hostname != "127.0.0.1"]
    assert "offline" in seen["before"]
    assert "online" in seen["online"] and "1/1 Available" in seen["online"] and "Acme AC22" in seen["online"]
    assert seen["reloaded"] == 0  # it came online without a reload
    assert any(u.endswith("/console/static/htmx-ext-sse.min.js") for u in seen["sent"])
    assert "reset: the station answered Accepted" in seen["reset"] and seen["url_after_reset"].endswith("/cp-a")
    assert "Reset" in received
    assert "site import" in seen["load_legend"] and "allocated cp-a/1" in seen["load_legend"]
    assert "operator@a.example" in seen["acknowledged"]
    assert seen["phone_overflow"] == dict.fromkeys(PHONE_PAGES, 0), seen["phone_overflow"]
    assert seen["menu_hidden"] and seen["menu_shown"]
    assert seen["viewer_reset"] == 0 and seen["viewer_buttons"] == 0
    assert seen["viewer_api"]["status"] == 403 and "commands" in seen["viewer_api"]["body"]["detail"]
    assert received.count("Reset") == 1  # the viewer's command never reached the station
    assert seen["other_org"] == (404, '{"detail":"station \'cp-b\' not found"}')  # as if it did not exist
    assert seen["errors"] == []  # no CSP violation, no failed load
