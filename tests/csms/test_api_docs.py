"""The API's documentation as an operator reads it: every request body in ``/openapi.json`` has an example the
schema accepts, and ``/docs`` (Swagger UI) and ``/redoc`` render in headless Chromium with the network cut off.

The browser test runs a real ``csms serve`` and Debian's ``chromium`` through Playwright (``./run tests``
installs chromium when it is missing); it skips without chromium, except under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import pytest

from csms.api.app import create_app

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "docs-test-key-0123456789"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Where to keep the screenshot of /docs for docs/operations.md: set to docs/img/api-docs.png to refresh it.
SCREENSHOT_ENV = "CHARGETWIN_DOCS_SCREENSHOT"
#: Operations that take no body by design; any other POST/PUT/PATCH must declare one (with an example).
BODILESS = {
    ("post", "/api/v1/certificates/{serial}/revoke"),
    ("post", "/api/v1/stations/{station_id}/certificates/installed/refresh"),
    ("post", "/api/v1/stations/{station_id}/reservations/{reservation_id}/cancel"),
    ("post", "/api/v1/stations/{station_id}/display-messages/{message_id}/clear"),
    ("post", "/api/v1/stations/{station_id}/clear-cache"),
    ("post", "/api/v1/users/{user_id}/reset-link"),
    ("post", "/api/v1/stations/{station_id}/disconnect"),
    ("post", "/api/v1/properties/{property_id}/units/{unit}/statement/posting"),  # the month is a query parameter
}


async def _openapi() -> dict[str, Any]:
    app = create_app(None, None, API_KEY)  # type: ignore[arg-type]  # the document needs neither
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _examples(media: dict[str, Any], components: dict[str, Any]) -> list[Any]:
    """The examples a reader sees for one body: on the media type, on its schema, or on the model it names."""
    found = [media["example"]] if "example" in media else []
    found += [e["value"] for e in media.get("examples", {}).values()]
    schema = media.get("schema", {})
    for candidate in [schema, *schema.get("anyOf", [])]:
        target = candidate
        if "$ref" in candidate:
            target = components["schemas"][candidate["$ref"].rsplit("/", 1)[1]]
        found += target.get("examples", [])
    return found


async def test_every_request_body_has_an_example_that_its_schema_accepts() -> None:
    document = await _openapi()
    components = document["components"]
    missing, invalid, undeclared, checked = [], [], [], 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                if method in ("post", "put", "patch") and (method, path) not in BODILESS:
                    undeclared.append(f"{method.upper()} {path}")
                continue
            for content_type, media in body["content"].items():
                examples = _examples(media, components)
                if not examples:
                    missing.append(f"{method.upper()} {path} ({content_type})")
                if content_type != "application/json":
                    continue
                validator = jsonschema_rs.Draft202012Validator({**media["schema"], "components": components})
                for example in examples:
                    checked += 1
                    invalid += [f"{method.upper()} {path}: {e.message}" for e in validator.iter_errors(example)]
    assert not missing, f"request bodies without an example: {missing}"
    assert not invalid, f"examples their own schema refuses: {invalid}"
    assert not undeclared, f"operations that read a body the OpenAPI does not declare: {undeclared}"
    assert checked >= 30  # every JSON body of the API, not an empty walk


# ---- the pages in a real browser, offline -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_api(tmp_path: Path) -> Iterator[str]:
    """A real ``csms serve`` on loopback (SQLite), its API's base URL."""
    api_port = _free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--host", "127.0.0.1", "--log-level", "warning"]
    command += ["--ocpp-port", "0", "--api-port", str(api_port)]
    command += ["--database-url", f"sqlite:///{tmp_path / 'docs.db'}"]
    env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "csms serve did not answer within 60 s"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        assert "Traceback" not in err, err


@pytest.fixture
def offline_page() -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page that can reach loopback only, and the URL of every request it sent to the network
    (one its page's Content-Security-Policy blocked never gets there)."""
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"Debian's chromium is required under CI=true ({CHROMIUM} is missing; ./run tests installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import Route, sync_playwright

    sent: list[str] = []

    def loopback_only(route: Route) -> None:
        sent.append(route.request.url)
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        # A dead proxy for everything but loopback: a page that reaches for a CDN gets nothing, as on an offline site.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", loopback_only)
            yield page, sent
        finally:
            browser.close()


def _left_loopback(sent: list[str]) -> list[str]:
    return [url for url in sent if urlsplit(url).hostname != "127.0.0.1"]


def test_docs_and_redoc_render_offline_in_chromium(
    served_api: str, offline_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    page, sent = offline_page

    page.goto(served_api + "/docs")
    page.locator(".opblock-tag", has_text="stations").first.wait_for(timeout=20_000)
    create_station = page.locator(".opblock-post", has_text="/api/v1/stations").first
    create_station.locator(".opblock-summary").click()
    # The request body's example, as a reader sees it before "Try it out".
    create_station.locator(".body-param__example", has_text="s3cret-pass-0042").wait_for(timeout=10_000)
    assert page.locator(".opblock").count() >= 50  # the operations list, not an error box
    assert page.locator(".errors-wrapper").count() == 0
    page.screenshot(path=os.environ.get(SCREENSHOT_ENV) or tmp_path / "api-docs.png")

    page.goto(served_api + "/redoc")
    page.get_by_role("heading", name="chargetwin CSMS").first.wait_for(timeout=20_000)
    page.locator("[role=menuitem]", has_text="stations").first.wait_for(timeout=10_000)

    assert not _left_loopback(sent), f"requests that left loopback: {_left_loopback(sent)}"
    assert any(url.endswith("/docs-assets/swagger-ui-bundle.js") for url in sent)
    assert any(url.endswith("/docs-assets/redoc.standalone.js") for url in sent)
