"""The console's id tokens, tariffs and API keys pages (issue 21) over real HTTP (uvicorn on loopback): each
organisation sees and changes only its own, the buttons follow the role, every form needs its CSRF token, bad
input is refused (422) and markup is shown as text, a forged session cookie is not a session, and every form —
refused ones too — leaves an audit entry. SQLite and PostgreSQL (``session_factory``)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from csms.services import authorization
from csms.store.models import ApiKey, AuditEntry, IdToken, TariffRow
from tests.csms.test_console_pages import _setup, browser_of
from tests.csms.test_console_signin import form_token, served

SCRIPT = "<script>alert(1)</script>"


def _audit(session_factory: Any) -> list[tuple[str, int]]:
    with session_factory() as db:
        return [(e.action, e.status) for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


async def test_tokens_tariffs_and_keys_pages_by_role_and_organisation(session_factory, gateway):
    async with served(session_factory, gateway) as base:
        await _setup(session_factory, base)  # org-a has the token TAG-1
        async with browser_of(base, "viewer@a.example") as viewer:
            page = await viewer.get("/console/tokens")
            assert page.status_code == 200 and "TAG-1" in page.text
            assert "Add token" not in page.text and "Block" not in page.text  # a viewer gets no buttons
            assert 'href="/console/tokens"' in page.text and 'href="/console/api-keys"' not in page.text
            assert "Save tariff" not in (await viewer.get("/console/tariffs")).text
            assert (await viewer.get("/console/api-keys")).status_code == 403
            token = form_token(page.text)
            refused = await viewer.post("/console/tokens", data={"csrf_token": token, "id_token": "V-1"})
            assert refused.status_code == 403

        async with browser_of(base, "owner@b.example") as other:
            assert "TAG-1" not in (await other.get("/console/tokens")).text
            assert "Add driver" in (await other.get("/console/tokens")).text
            token = form_token((await other.get("/console/tokens")).text)
            blocked = await other.post("/console/tokens/TAG-1/status", data={"csrf_token": token, "status": "Blocked"})
            assert blocked.status_code == 404  # another organisation's token is not there
            made = await other.post("/console/tariffs", data={"csrf_token": token, "id": "B-TARIFF",
                                                              "currency": "EUR", "energy": "0.5"})  # fmt: skip
            assert made.status_code == 303

        async with browser_of(base, "owner@a.example") as owner:
            page = await owner.get("/console/tokens")
            token = form_token(page.text)
            assert "Add token" in page.text and "Block" in page.text
            forged = await owner.post("/console/tokens", data={"csrf_token": "x", "id_token": "NEW-1"})
            assert forged.status_code == 403
            added = await owner.post("/console/tokens", data={"csrf_token": token, "id_token": "NEW-1",
                                                              "group_id": "staff"})  # fmt: skip
            assert added.status_code == 303
            too_long = await owner.post("/console/tokens", data={"csrf_token": token, "id_token": "X" * 37})
            assert too_long.status_code == 422 and "id_token" in too_long.text
            marked = await owner.post("/console/tokens", data={"csrf_token": token, "id_token": SCRIPT})
            assert marked.status_code == 303
            listed = (await owner.get("/console/tokens")).text
            assert SCRIPT not in listed and "&lt;script&gt;alert(1)&lt;/script&gt;" in listed  # text, not markup
            blocked = await owner.post("/console/tokens/NEW-1/status", data={"csrf_token": token, "status": "Blocked"})
            assert blocked.status_code == 303
            driver = await owner.post("/console/drivers", data={"csrf_token": token, "id": "D-1", "name": SCRIPT,
                                                                "cost_centre": "CC-1"})  # fmt: skip
            assert driver.status_code == 303
            bad_driver = await owner.post("/console/drivers", data={"csrf_token": token, "id": "D 2", "name": "x"})
            assert bad_driver.status_code == 422
            listed = (await owner.get("/console/tokens")).text
            assert "D-1" in listed and "CC-1" in listed and SCRIPT not in listed

            tariffs = await owner.get("/console/tariffs")
            assert "B-TARIFF" not in tariffs.text
            saved = await owner.post("/console/tariffs", data={"csrf_token": token, "id": "A-STANDARD",
                                                               "currency": "EUR", "energy": "0.30", "flat": "1.00",
                                                               "vat": "20"})  # fmt: skip
            assert saved.status_code == 303
            listed = (await owner.get("/console/tariffs")).text
            assert "A-STANDARD" in listed and "1.00 per session, 0.30 per kWh" in listed
            theirs = await owner.post("/console/tariffs", data={"csrf_token": token, "id": "B-TARIFF",
                                                                "currency": "EUR", "energy": "0.1"})  # fmt: skip
            assert theirs.status_code == 404  # repricing another organisation's tariff: it is not there
            bad = await owner.post("/console/tariffs", data={"csrf_token": token, "id": "<b>", "currency": "EUR",
                                                             "energy": "0.1"})  # fmt: skip
            assert bad.status_code == 422
            assert (await owner.post("/console/tariffs/B-TARIFF/delete", data={"csrf_token": token})).status_code == 404

            keys = await owner.get("/console/api-keys")
            assert keys.status_code == 200 and ">b<" not in keys.text  # org-b's key is not listed
            promoted = await owner.post("/console/api-keys", data={"csrf_token": token, "name": "root",
                                                                   "role": "platform-admin"})  # fmt: skip
            assert promoted.status_code == 403
            created = await owner.post("/console/api-keys", data={"csrf_token": token, "name": "ops tool",
                                                                  "role": "operator"})  # fmt: skip
            assert created.status_code == 200 and 'id="new-key"' in created.text
            key = created.text.split('id="new-key">')[1].split("<")[0]
            async with httpx.AsyncClient(base_url=base) as api:
                works = await api.get("/api/v1/tokens", headers={"Authorization": f"Bearer {key}"})
                assert works.status_code == 200 and "NEW-1" in works.text and "TAG-1" in works.text
                with session_factory() as db:
                    key_id = db.scalar(select(ApiKey.id).where(ApiKey.name == "ops tool"))
                    b_key = db.scalar(select(ApiKey.id).where(ApiKey.name == "b"))
                revoked = await owner.post(f"/console/api-keys/{key_id}/revoke", data={"csrf_token": token})
                assert revoked.status_code == 303
                assert (await api.get("/api/v1/tokens", headers={"Authorization": f"Bearer {key}"})).status_code == 401
            assert (
                await owner.post(f"/console/api-keys/{b_key}/revoke", data={"csrf_token": token})
            ).status_code == 404

            deleted = await owner.post("/console/tariffs/A-STANDARD/delete", data={"csrf_token": token})
            assert deleted.status_code == 303

        async with browser_of(base, "owner@b.example") as other:
            assert "D-1" not in (await other.get("/console/tokens")).text  # org-a's driver stays org-a's

        # A forged or stale cookie is no session: the API answers 401, the pages send the browser to sign in.
        async with httpx.AsyncClient(base_url=base, cookies={"ct_session": "forged"}) as forged:
            assert (await forged.get("/api/v1/tokens")).status_code == 401
            assert (await forged.get("/console/tokens")).status_code == 303
            refused_write = await forged.post("/console/tokens", data={"csrf_token": "x", "id_token": "F-1"})
            assert refused_write.status_code in (303, 401)

    with session_factory() as db:
        assert authorization.get(db, "NEW-1").status == "Blocked"
        assert db.get(IdToken, "TAG-1").status == "Accepted"  # org-b could not block it
        assert db.get(TariffRow, "A-STANDARD") is None and db.get(TariffRow, "B-TARIFF") is not None
        assert db.get(IdToken, "F-1") is None
    trail = _audit(session_factory)
    expected_entries = [
        ("POST /console/tokens", 303),
        ("POST /console/tokens", 403),
        ("POST /console/tokens", 422),
        ("POST /console/tokens/{id_token}/status", 404),
        ("POST /console/tariffs", 404),
        ("POST /console/api-keys", 403),
        ("POST /console/api-keys", 200),
        ("POST /console/api-keys/{key_id}/revoke", 303),
        ("POST /console/tariffs/{tariff_id}/delete", 303),
    ]
    for expected in expected_entries:
        assert expected in trail, f"{expected} is not in the audit trail"
    assert any(action == "POST /console/tokens" and code in (303, 401) for action, code in trail[-1:])
