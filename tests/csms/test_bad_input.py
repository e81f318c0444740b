"""Bad input (issue 21): over-long fields are refused with 422 by the API and the console alike, markup stored in
a field is shown as text on every console page that shows the field (no stored XSS), a forged session cookie is
no session (401 on the API), and every refused write — 401, 403, 404 of another organisation's object, 422 — is
in the audit trail. Real HTTP (uvicorn on loopback), SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from csms.services import apikeys
from csms.store.models import AuditEntry
from tests.csms.test_console_pages import _setup, browser_of
from tests.csms.test_console_signin import form_token, served

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


def _trail(session_factory: Any) -> list[tuple[str, int, str]]:
    with session_factory() as db:
        return [(e.action, e.status, e.actor) for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


async def test_markup_is_text_long_fields_are_refused_and_every_refusal_is_audited(session_factory, gateway):
    async with served(session_factory, gateway) as base:
        keys = await _setup(session_factory, base)  # org-a (site depot-a, station cp-a, token TAG-1), org-b (cp-b)
        a = {"Authorization": f"Bearer {keys['a']}"}
        with session_factory() as db, db.begin():
            viewer = apikeys.create(db, "viewer", datetime.now(UTC), role="viewer", organisation="org-a")[1]
            platform_key = apikeys.create(db, "platform", datetime.now(UTC))[1]
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            stored = [
                await api.patch("/api/v1/sites/depot-a", headers=a, json={"name": SCRIPT}),
                await api.post("/api/v1/tokens", headers=a, json={"id_token": IMG, "group_id": SCRIPT}),
            ]
            assert [r.status_code for r in stored] == [200, 201], [r.text for r in stored]

            too_long = [
                ("POST", "/api/v1/tokens", {"id_token": "T" * 37}),
                ("PATCH", "/api/v1/sites/depot-a", {"name": "n" * 101}),
                ("POST", "/api/v1/users", {"email": "a" * 250 + "@a.example", "role": "viewer"}),
                ("POST", "/api/v1/fleet/drivers", {"id": "D-1", "name": "d" * 201}),
                (
                    "POST",
                    "/api/v1/exclusions",
                    {
                        "station_id": "cp-a",
                        "start": "2026-01-01T00:00:00Z",
                        "end": "2026-01-01T01:00:00Z",
                        "cause": "maintenance",
                        "note": "x" * 501,
                    },
                ),
            ]
            platform = {"Authorization": f"Bearer {platform_key}"}
            location = {"address": "Dock 4", "city": "Amsterdam", "country": "NLD", "latitude": "52.37000",
                        "longitude": "4.89000", "time_zone": "Europe/Amsterdam"}  # fmt: skip
            too_long += [
                ("PUT", "/api/v1/tariffs/T-1", {"currency": "X" * 50, "elements": [{"price_components": []}]}),
                ("PUT", "/api/v1/ocpi/locations/L-1", {**location, "name": "n" * 256}),
                ("PUT", "/api/v1/ocpi/locations/L-1", {**location, "time_zone": "Europe/" + "A" * 300}),
            ]
            for method, url, body in too_long:
                headers = platform if "/ocpi/" in url else a
                answer = await api.request(method, url, headers=headers, json=body)
                assert answer.status_code == 422, (url, answer.status_code, answer.text[:200])

            refusals = [
                await api.post("/api/v1/tokens", json={"id_token": "NOKEY"}),  # 401: no credentials
                await api.post("/api/v1/tokens", json={"id_token": "V"}, headers={"Authorization": f"Bearer {viewer}"}),
                await api.post("/api/v1/stations/cp-b/reset", json={}, headers=a),  # another organisation's: 404
            ]
            assert [r.status_code for r in refusals] == [401, 403, 404], [r.text for r in refusals]
        async with httpx.AsyncClient(base_url=base, timeout=30, cookies={"ct_session": "forged"}) as forged:
            assert (await forged.post("/api/v1/tokens", json={"id_token": "F"})).status_code == 401
            assert (await forged.get("/api/v1/stations")).status_code == 401

        async with browser_of(base, "owner@a.example") as owner:
            urls = ("/", "/console/sites/depot-a", "/console/tokens", "/console/audit", "/console/transactions")
            pages = {url: (await owner.get(url)).text for url in urls}
            for url, text in pages.items():
                assert SCRIPT not in text and IMG not in text, f"{url} shows markup from a stored field"
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["/"]  # the site's name, as text
            assert "&lt;img src=x onerror=alert(2)&gt;" in pages["/console/tokens"]
            token = form_token(pages["/console/tokens"])
            long_key = await owner.post("/console/api-keys", data={"csrf_token": token, "name": "k" * 101,
                                                                   "role": "viewer"})  # fmt: skip
            assert long_key.status_code == 422
            long_user = await owner.post("/console/users", data={"csrf_token": token, "email": "u" * 300 + "@a.example",
                                                                 "role": "viewer"})  # fmt: skip
            assert long_user.status_code == 422

    trail = _trail(session_factory)
    refused = {(action, status) for action, status, _ in trail if status >= 400}
    for expected in [
        ("POST /api/v1/tokens", 422),
        ("PATCH /api/v1/sites/{site_id}", 422),
        ("POST /api/v1/users", 422),
        ("POST /api/v1/fleet/drivers", 422),
        ("POST /api/v1/exclusions", 422),
        ("POST /api/v1/tokens", 401),
        ("POST /api/v1/tokens", 403),
        ("POST /api/v1/stations/{station_id}/reset", 404),
        ("POST /console/api-keys", 422),
        ("POST /console/users", 422),
    ]:
        assert expected in refused, f"the refusal {expected} is not in the audit trail"
    anonymous = [entry for entry in trail if entry[:2] == ("POST /api/v1/tokens", 401)]
    assert len(anonymous) == 2 and {actor for _, _, actor in anonymous} == {"anonymous"}
