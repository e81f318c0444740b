"""Users over the API (issue 21): an organisation's owners and admins list, add, re-role, disable and re-link its
users; a platform admin does so everywhere; nobody reaches another organisation's users (404), makes a platform
admin without being one (403), leaves an organisation without an owner or disables themselves (409); every
change is in the audit trail. Real keys, a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from csms.api.app import create_app
from csms.services import apikeys, organisations, users


@contextlib.asynccontextmanager
async def api(session_factory: Any, gateway: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms", timeout=30) as c:
        yield c


def setup(session_factory: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    made: dict[str, Any] = {}
    with session_factory() as db, db.begin():
        organisations.create(db, "org-a", None, now)
        organisations.create(db, "org-b", None, now)
        made["owner_a"] = users.add(db, "owner@a.example", "owner", "org-a", now)[0].id
        made["owner_b"] = users.add(db, "owner@b.example", "owner", "org-b", now)[0].id
        for name, role, org in (("admin", "admin", "org-a"), ("operator", "operator", "org-a"),
                                ("platform", "platform-admin", None)):  # fmt: skip
            made[name] = {"Authorization": f"Bearer {apikeys.create(db, name, now, role=role, organisation=org)[1]}"}
    return made


async def test_an_organisations_admin_manages_its_users_and_no_others(session_factory, gateway):
    made = setup(session_factory)
    admin, operator, platform = made["admin"], made["operator"], made["platform"]
    async with api(session_factory, gateway) as client:
        created = await client.post("/api/v1/users", headers=admin, json={"email": "New@A.example", "role": "viewer"})
        assert created.status_code == 201, created.text
        new = created.json()
        assert (new["email"], new["role"], new["organisation"], new["disabled"]) == (
            "new@a.example", "viewer", "org-a", False)  # fmt: skip
        link = new["set_password_url"]
        assert link.startswith("http://csms/set-password/")
        assert (await client.get(link.removeprefix("http://csms"))).status_code == 200  # the link works

        listed = await client.get("/api/v1/users", headers=admin)
        assert sorted(u["email"] for u in listed.json()) == ["new@a.example", "owner@a.example"]
        everyone = await client.get("/api/v1/users", headers=platform)
        assert {u["email"] for u in everyone.json()} >= {"owner@a.example", "owner@b.example", "new@a.example"}

        # Another organisation's user answers as a missing one; naming another organisation is refused too.
        for answer in (
            await client.patch(f"/api/v1/users/{made['owner_b']}", headers=admin, json={"role": "viewer"}),
            await client.post(f"/api/v1/users/{made['owner_b']}/reset-link", headers=admin),
            await client.patch("/api/v1/users/999999", headers=admin, json={"disabled": True}),
        ):
            assert answer.status_code == 404 and answer.json()["detail"].startswith("user "), answer.text
        elsewhere = await client.post(
            "/api/v1/users", headers=admin, json={"email": "x@b.example", "role": "viewer", "organisation": "org-b"}
        )
        assert elsewhere.status_code == 404
        promoted = await client.post("/api/v1/users", headers=admin, json={"email": "x@a.example",
                                                                           "role": "platform-admin"})  # fmt: skip
        assert promoted.status_code == 403 and "platform admin" in promoted.json()["detail"]
        assert (await client.get("/api/v1/users", headers=operator)).status_code == 403  # no users permission

        # Change the role, disable, a new link (the old one stops working).
        user_id = new["id"]
        rerole = await client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"role": "operator"})
        assert rerole.status_code == 200 and rerole.json()["role"] == "operator"
        fresh = await client.post(f"/api/v1/users/{user_id}/reset-link", headers=admin)
        assert fresh.status_code == 200
        assert (await client.get(link.removeprefix("http://csms"))).status_code == 404
        disabled = await client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"disabled": True})
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True

        # The last owner stays an owner and enabled.
        for body in ({"role": "viewer"}, {"disabled": True}):
            last = await client.patch(f"/api/v1/users/{made['owner_a']}", headers=admin, json=body)
            assert last.status_code == 409 and "at least one owner" in last.json()["detail"]

        # The platform admin adds a user to any organisation.
        body = {"email": "ops@b.example", "role": "operator", "organisation": "org-b"}
        there = await client.post("/api/v1/users", headers=platform, json=body)
        assert there.status_code == 201 and there.json()["organisation"] == "org-b"

        trail = (await client.get("/api/v1/audit", headers=platform, params={"security_events": "false"})).json()
    actions = [(e["action"], e["status"]) for e in trail if "/users" in e["action"]]
    assert ("POST /api/v1/users", 201) in actions and ("PATCH /api/v1/users/{user_id}", 200) in actions
    assert ("POST /api/v1/users/{user_id}/reset-link", 200) in actions
    assert ("PATCH /api/v1/users/{user_id}", 404) in actions and ("POST /api/v1/users", 403) in actions
    changed = next(e for e in trail if e["action"] == "PATCH /api/v1/users/{user_id}" and e["status"] == 200)
    assert changed["after"] is not None and "link" not in str(changed["request"])


async def test_a_signed_in_owner_cannot_demote_or_disable_themselves(session_factory, gateway):
    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        organisations.create(db, "org-a", None, now)
        owner, link = users.add(db, "owner@a.example", "owner", "org-a", now)
        users.add(db, "second@a.example", "owner", "org-a", now)
        users.set_password_with_link(db, link, "owner password 1", now)
        signed = users.sign_in(db, "owner@a.example", "owner password 1", None, now)
    async with api(session_factory, gateway) as client:
        client.cookies.set("ct_session", signed.token or "")
        headers = {"X-CSRF-Token": signed.csrf or ""}
        for body in ({"role": "viewer"}, {"disabled": True}):
            answer = await client.patch(f"/api/v1/users/{owner.id}", headers=headers, json=body)
            assert answer.status_code == 409 and "yourself" in answer.json()["detail"], answer.text
        no_csrf = await client.patch(f"/api/v1/users/{owner.id}", json={"role": "viewer"})
        assert no_csrf.status_code == 403
