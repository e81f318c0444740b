"""The permission table against the real API: every route of /openapi.json is declared, every role is let in
exactly where the table says (a request per role and route, with a real key of that role), the organisation
boundary answers 404 for another tenant's objects, and docs/security.md shows the table as it is in code."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from csms.api import permission_docs
from csms.api.app import create_app
from csms.api.permissions import PREFIX, PUBLIC, ROUTES
from csms.services import apikeys, organisations, security_events, users
from csms.services.roles import PLATFORM_ADMIN, ROLE_PERMISSIONS, ROLES
from csms.store.models import Alert, Transaction

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "station-password-1"


@contextlib.asynccontextmanager
async def api(session_factory: Any, gateway: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms", timeout=60) as c:
        yield c


def keys(session_factory: Any) -> dict[str, str]:
    """A key of every role: the organisation roles in ``acme``, the platform admin in the default one."""
    now = datetime.now(UTC)
    made = {}
    with session_factory() as db, db.begin():
        organisations.create(db, "acme", "ACME", now)
        for role in ROLES:
            org = None if role == PLATFORM_ADMIN else "acme"
            made[role] = apikeys.create(db, f"{role} key", now, role=role, organisation=org)[1]
    return made


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def concrete(path: str, op: dict[str, Any]) -> str:
    """The path with a plausible value for each parameter (an integer where the schema wants one)."""
    kinds = {p["name"]: p.get("schema", {}).get("type") for p in op.get("parameters", []) if p["in"] == "path"}
    return re.sub(r"\{(\w+)\}", lambda m: "1" if kinds.get(m.group(1)) == "integer" else "nope-1", path)


async def test_every_route_of_the_openapi_document_is_declared(sqlite_factory, gateway_on_sqlite):
    async with api(sqlite_factory, gateway_on_sqlite) as client:
        spec = (await client.get("/openapi.json")).json()
    served = {(method, path.removeprefix(PREFIX)) for method, path, _ in operations(spec)}
    undeclared = sorted(served - set(ROUTES))
    assert not undeclared, f"routes missing from csms/api/permissions.py ROUTES: {undeclared}"
    assert not sorted(set(ROUTES) - served), "ROUTES declares routes the API does not serve"


async def test_every_role_on_every_route(sqlite_factory, gateway_on_sqlite):
    """One request per role and route: refused with 403 exactly where the role lacks the route's permission."""
    made = keys(sqlite_factory)
    async with api(sqlite_factory, gateway_on_sqlite) as client:
        spec = (await client.get("/openapi.json")).json()
        wrong: list[str] = []
        for method, path, op in operations(spec):
            needed = ROUTES.get((method, path.removeprefix(PREFIX)))
            if needed is None:
                wrong.append(f"{method} {path}: not declared in csms/api/permissions.py ROUTES")
                continue
            if needed == PUBLIC:
                continue
            url = concrete(path, op)
            anonymous = await client.request(method, url)
            if anonymous.status_code != 401:
                wrong.append(f"{method} {path} without a key: {anonymous.status_code}")
            for role, key in made.items():
                json = {} if method in ("POST", "PUT", "PATCH") else None
                answer = await client.request(method, url, json=json, headers={"Authorization": f"Bearer {key}"})
                allowed = needed in ROLE_PERMISSIONS[role]
                refused = answer.status_code == 403 and "lacks the permission" in answer.text
                if allowed == refused or answer.status_code in (401, 500):
                    wrong.append(f"{method} {path} as {role}: {answer.status_code} {answer.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_the_matrix_in_docs_security_is_the_table_in_code():
    document = (ROOT / "docs" / "security.md").read_text()
    assert permission_docs.matrix() in document, (
        "docs/security.md's permission matrix is stale: ./run python -m csms.api.permission_docs docs/security.md"
    )


# ---- organisations ------------------------------------------------------------------------------------------
async def test_a_key_of_one_organisation_cannot_see_or_touch_another_ones_objects(session_factory, gateway):
    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        for slug in ("org-a", "org-b"):
            organisations.create(db, slug, None, now)
        key_a = apikeys.create(db, "a", now, role="owner", organisation="org-a")[1]
        key_b = apikeys.create(db, "b", now, role="owner", organisation="org-b")[1]
        viewer_a = apikeys.create(db, "a viewer", now, role="viewer", organisation="org-a")[1]
        platform = apikeys.create(db, "platform", now)[1]
    a, b = ({"Authorization": f"Bearer {k}"} for k in (key_a, key_b))
    async with api(session_factory, gateway) as client:
        made = [
            await client.post(
                "/api/v1/stations", headers=b, json={"id": "b-1", "password": PASSWORD, "ocpp_version": "1.6"}
            ),
            await client.post(
                "/api/v1/sites", headers=b, json={"id": "site-b", "nodes": [{"id": "grid", "limit_kw": 100}]}
            ),
            await client.post("/api/v1/tokens", headers=b, json={"id_token": "TAG-B"}),
            await client.post(
                "/api/v1/stations", headers=a, json={"id": "a-1", "password": PASSWORD, "ocpp_version": "1.6"}
            ),
        ]
        assert [r.status_code for r in made] == [201] * 4, [r.text for r in made]

        assert [s["id"] for s in (await client.get("/api/v1/stations", headers=a)).json()] == ["a-1"]
        assert (await client.get("/api/v1/sites", headers=a)).json() == []
        assert (await client.get("/api/v1/tokens", headers=a)).json() == []
        assert [s["id"] for s in (await client.get("/api/v1/stations", headers=b)).json()] == ["b-1"]

        # Another tenant's object answers exactly like one that does not exist: ids cannot be probed.
        for url in ("/api/v1/stations/b-1", "/api/v1/sites/site-b", "/api/v1/tokens/TAG-B"):
            theirs = await client.get(url, headers=a)
            missing = await client.get(url.replace("b", "z"), headers=a)
            assert theirs.status_code == missing.status_code == 404
            assert theirs.json()["detail"] == missing.json()["detail"].replace("z", "b")
        touches = [
            await client.patch("/api/v1/stations/b-1", headers=a, json={"registration_policy": "reject"}),
            await client.post("/api/v1/stations/b-1/reset", headers=a, json={}),
            await client.patch("/api/v1/sites/site-b", headers=a, json={"name": "mine"}),
            await client.patch("/api/v1/tokens/TAG-B", headers=a, json={"status": "Blocked"}),
            await client.get("/api/v1/stations/b-1/outages", headers=a),
        ]
        assert [r.status_code for r in touches] == [404] * 5
        station = (await client.get("/api/v1/stations/b-1", headers=b)).json()
        assert station["registration_policy"] == "accept"  # nothing changed
        assert (await client.get("/api/v1/tokens/TAG-B", headers=b)).json()["status"] == "Accepted"

        # What hangs off a station follows it: its transactions, alerts and security events.
        with session_factory() as db, db.begin():
            db.add(Transaction(id=7, station_id="b-1", charger_tx_id="tx-7", started_at=now, status="Active"))
            db.add(Alert(id=5, rule="offline", station_id="b-1", severity="major", raised_at=now))
            security_events.record(db, type="TamperDetectionActivated", at=now, station_id="b-1", origin="station")
        for url in ("/api/v1/transactions", "/api/v1/alerts", "/api/v1/security-events"):
            assert (await client.get(url, headers=a)).json() == []
            assert len((await client.get(url, headers=b)).json()) == 1
        theirs = await client.get("/api/v1/transactions/7", headers=a)
        assert theirs.status_code == 404 and theirs.json()["detail"] == "transaction 7 not found"
        assert (await client.get("/api/v1/transactions/8", headers=a)).json()["detail"] == "transaction 8 not found"
        acknowledged = await client.post("/api/v1/alerts/5/acknowledge", headers=a, json={"by": "a"})
        assert acknowledged.status_code == 404 and acknowledged.json()["detail"] == "alert 5 not found"
        assert (await client.get("/api/v1/alerts", headers=b)).json()[0]["acknowledged_at"] is None

        # Objects named in a body are held to the same boundary.
        named = [
            await client.post("/api/v1/tariff-assignments", headers=a, json={"tariff_id": "T", "station_id": "b-1"}),
            await client.post("/api/v1/stations/a-1/remote-start", headers=a, json={"id_token": "TAG-B"}),
            await client.post("/api/v1/stations/a-1/remote-stop", headers=a, json={"transaction_id": 7}),
            await client.post(
                "/api/v1/sites",
                headers=a,
                json={
                    "id": "site-a",
                    "nodes": [{"id": "grid", "limit_kw": 50}],
                    "evses": [{"station_id": "b-1", "evse_id": 1, "node": "grid"}],
                },
            ),
        ]
        assert [(r.status_code, r.json()["detail"]) for r in named] == [
            (404, "station 'b-1' not found"),
            (404, "id token 'TAG-B' not found"),
            (404, "transaction 7 not found"),
            (404, "station 'b-1' not found"),
        ]

        denied = await client.post("/api/v1/tokens", headers={"Authorization": f"Bearer {viewer_a}"}, json={})
        assert denied.status_code == 403 and "viewer" in denied.json()["detail"]
        everything = await client.get("/api/v1/stations", headers={"Authorization": f"Bearer {platform}"})
        assert sorted(s["id"] for s in everything.json()) == ["a-1", "b-1"]  # the platform admin sees all


async def test_a_console_session_is_held_to_the_same_table(session_factory, gateway):
    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        _, link = users.add(db, "viewer@example.com", "viewer", None, now)
        users.set_password_with_link(db, link, "viewer password 1", now)
        signed = users.sign_in(db, "viewer@example.com", "viewer password 1", None, now)
    assert signed.token is not None and signed.csrf is not None
    async with api(session_factory, gateway) as client:
        client.cookies.set("ct_session", signed.token)
        assert (await client.get("/api/v1/stations")).status_code == 200
        refused = await client.post("/api/v1/tokens", json={"id_token": "T"}, headers={"X-CSRF-Token": signed.csrf})
        assert refused.status_code == 403 and "lacks the permission tokens" in refused.json()["detail"]


@pytest.fixture
async def gateway_on_sqlite(sqlite_factory: Any) -> AsyncIterator[Any]:
    from csms.gateway.server import Gateway
    from csms.services.config import CsmsConfig

    gw = Gateway(sqlite_factory, CsmsConfig(call_timeout_s=2.0))
    await gw.start("127.0.0.1", 0)
    yield gw
    await gw.stop()


# ---- every route that names an object, every list ------------------------------------------------------------
#: What organisation B owns, one object of each kind a route can name; every id carries the marker ``zz9b``.
MARK = "zz9b"
B_OBJECTS: dict[str, str | int] = {
    "station_id": "zz9b-st",
    "site_id": "zz9b-site",
    "id_token": "ZZ9B-TAG",
    "tariff_id": "zz9b-tariff",
    "account_id": "zz9b-acct",
    "vehicle_id": "zz9b-veh",
    "property_id": "zz9b-prop",
    "transaction_id": 9901,
    "alert_id": 9902,
    "exclusion_id": 9903,
    "reservation_id": 9904,
    "transfer_id": 9905,
    "entry_id": 9906,
    "number": "INV-2026-099999",
    "assignment_id": 9907,
    "user_id": 9908,
}
#: Path parameters that name a part of the object before them in the path (a site's node, a station's EVSE).
SUB_PARAMS = {"node_id": "grid", "evse_id": 1, "action": "Reset", "message_id": 1, "unit": "u1"}
#: Query values for the lists that need some (a period covering B's session).
LIST_QUERY = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "by": "station"}


def own_b(db: Any, org: int) -> None:
    """One object of every kind, of organisation ``org``, named as in :data:`B_OBJECTS`."""
    from csms.store import models as m

    at = datetime(2026, 1, 10, 8, tzinfo=UTC)
    ids: Any = B_OBJECTS
    db.add(m.Station(id=ids["station_id"], ocpp_version="1.6", created_at=at, organisation_id=org))
    db.add(m.Site(id=ids["site_id"], created_at=at, updated_at=at, organisation_id=org))
    db.add(m.IdToken(id_token=ids["id_token"], created_at=at, updated_at=at, organisation_id=org))
    db.add(m.TariffRow(id=ids["tariff_id"], version=1, currency="EUR", body={}, created_at=at, updated_at=at,
                       organisation_id=org))  # fmt: skip
    db.add(m.BillingAccount(id=ids["account_id"], kind="driver", name="B", billing="postpaid", currency="EUR",
                            created_at=at, organisation_id=org))  # fmt: skip
    db.add(m.FleetDriver(id="zz9b-driver", name="B", organisation_id=org))
    db.add(m.User(id=ids["user_id"], email="zz9b@example.com", role="owner", organisation_id=org, created_at=at))
    db.add(m.Property(id=ids["property_id"], name="B", currency="EUR", billing_mode="flat_fee", utility_rate="0.3",
                      created_at=at, organisation_id=org))  # fmt: skip
    db.add(m.FirmwareFile(name="zz9b-fw.bin", size=1, sha256="0" * 64, content=b"x", created_at=at,
                          organisation_id=org))  # fmt: skip
    db.flush()
    db.add(m.FleetVehicle(id=ids["vehicle_id"], name="B", battery_kwh=60, driver_id="zz9b-driver", created_at=at,
                          organisation_id=org))  # fmt: skip
    db.add(m.Connector(station_id=ids["station_id"], evse_id=1, connector_id=1))
    db.add(m.StatusChange(station_id=ids["station_id"], evse_id=1, connector_id=1, status="Available",
                          timestamp=at, received_at=at))  # fmt: skip
    db.add(m.Transaction(id=ids["transaction_id"], station_id=ids["station_id"], charger_tx_id="zz9b-tx", evse_id=1,
                         id_token=ids["id_token"], started_at=at, status="Active"))  # fmt: skip
    db.add(m.Alert(id=ids["alert_id"], rule="offline", station_id=ids["station_id"], severity="major", raised_at=at))
    db.add(m.ExclusionWindowRow(id=ids["exclusion_id"], station_id=ids["station_id"], start=at, end=at, cause="x",
                                declared_at=at))  # fmt: skip
    db.add(m.Reservation(id=ids["reservation_id"], station_id=ids["station_id"], id_token=ids["id_token"],
                         id_token_type="ISO14443", expires_at=at, status="active", created_at=at))  # fmt: skip
    db.add(m.FileTransfer(id=ids["transfer_id"], station_id=ids["station_id"], kind="diagnostics",
                          token_hash=MARK * 8, requested_at=at, expires_at=at))  # fmt: skip
    db.add(m.LedgerEntry(id=ids["entry_id"], account_id=ids["account_id"], at=at, kind="charge", amount_minor=100,
                         currency="EUR", description="B", recorded_at=at))  # fmt: skip
    db.add(m.Invoice(number=ids["number"], account_id=ids["account_id"], period_start=at, period_end=at,
                     issued_at=at, currency="EUR", net_minor=1, vat_minor=0, gross_minor=1, lines=[]))  # fmt: skip
    db.add(m.TariffAssignment(id=ids["assignment_id"], tariff_id=ids["tariff_id"], station_id=ids["station_id"],
                              created_at=at))  # fmt: skip


async def test_every_route_naming_another_organisations_object_answers_404(session_factory, gateway):
    """For every route of the OpenAPI document whose path names an object: a key of organisation A (an owner:
    every permission of the organisation) gets 404 for B's object, never 403 and never data; and every such
    path parameter is one the organisation boundary knows (a new route cannot slip through)."""
    from csms.api.auth import TENANT_PARAMS
    from csms.services.roles import Permission

    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        organisations.create(db, "org-a", None, now)
        org_b = organisations.create(db, "org-b", None, now)
        key_a = apikeys.create(db, "a", now, role="owner", organisation="org-a")[1]
        own_b(db, org_b.id)
    assert set(B_OBJECTS) == set(TENANT_PARAMS) - {"driver_id", "depot_id"}, "a scoped parameter without a case"
    a = {"Authorization": f"Bearer {key_a}"}
    async with api(session_factory, gateway) as client:
        spec = (await client.get("/openapi.json")).json()
        wrong, tried = [], 0
        for method, path, _ in operations(spec):
            needed = ROUTES[(method, path.removeprefix(PREFIX))]
            names = re.findall(r"\{(\w+)\}", path)
            if not names or needed in (PUBLIC, Permission.PLATFORM):
                continue
            unknown = [n for n in names if n not in B_OBJECTS and n not in SUB_PARAMS]
            if unknown or not any(n in B_OBJECTS for n in names):
                wrong.append(f"{method} {path}: {unknown or names} not held to the organisation boundary")
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: str({**SUB_PARAMS, **B_OBJECTS}[m.group(1)]), path)
            json = {} if method in ("POST", "PUT", "PATCH") else None
            answer = await client.request(method, url, json=json, headers=a)
            tried += 1
            if answer.status_code != 404:
                wrong.append(f"{method} {url}: {answer.status_code} {answer.text[:160]}")
    assert not wrong, "\n".join(wrong)
    assert tried >= 60


async def test_no_list_shows_another_organisations_rows(session_factory, gateway):
    """Every GET without a path parameter (the lists and reports), as A: nothing of B's; as the platform admin:
    B's rows, so the list would have shown them."""
    from csms.services.roles import Permission

    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        organisations.create(db, "org-a", None, now)
        org_b = organisations.create(db, "org-b", None, now)
        key_a = apikeys.create(db, "a", now, role="owner", organisation="org-a")[1]
        platform = apikeys.create(db, "platform", now)[1]
        own_b(db, org_b.id)
    a, p = ({"Authorization": f"Bearer {k}"} for k in (key_a, platform))
    async with api(session_factory, gateway) as client:
        spec = (await client.get("/openapi.json")).json()
        wrong, shown = [], set()
        for method, path, op in operations(spec):
            route = path.removeprefix(PREFIX)
            if method != "GET" or "{" in path or ROUTES[(method, route)] in (PUBLIC, Permission.PLATFORM):
                continue
            required = [q["name"] for q in op.get("parameters", []) if q["in"] == "query" and q.get("required")]
            params = {name: LIST_QUERY[name] for name in required}
            theirs = await client.get(path, params=params, headers=a)
            everything = await client.get(path, params=params, headers=p)
            if theirs.status_code != 200 or everything.status_code != 200:
                wrong.append(f"GET {route}: {theirs.status_code} / {everything.status_code} {theirs.text[:120]}")
            elif MARK.encode() in theirs.content.lower():
                wrong.append(f"GET {route} shows organisation B's rows to A: {theirs.text[:200]}")
            if MARK.encode() in everything.content.lower():
                shown.add(route)
    assert not wrong, "\n".join(wrong)
    expected = {"/stations", "/sites", "/tokens", "/tariffs", "/accounts", "/transactions", "/alerts", "/uptime",
                "/exclusions", "/reservations", "/invoices", "/fleet/vehicles", "/fleet/board", "/firmware-files",
                "/tariff-assignments", "/reports/usage", "/reports/sessions", "/users"}  # fmt: skip
    assert expected <= shown, f"B's rows were not in the platform's view of {sorted(expected - shown)}"
