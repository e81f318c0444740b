"""Sites through the HTTP API and the store, on SQLite and PostgreSQL; the meter station's EVSE-0 MeterValues
become site readings (service level and end to end through the gateway)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.api.app import create_app
from csms.domain import events as ev
from csms.loadmgmt.topology import Evse
from csms.services import sites, transactions
from csms.services.uow import transaction
from tests.csms.test_api import API_KEY, charger, provision


@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, API_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=10) as c:
        yield c


def depot(**extra) -> dict:
    return {
        "id": "depot",
        "name": "Depot",
        "strategy": "equal_share",
        "safety_margin_kw": 5,
        "priority_groups": ["fleet"],
        "nodes": [
            {"id": "grid", "limit_kw": 400, "phase_limits_a": [630, 630, 630]},
            {"id": "panel-a", "parent": "grid", "phase_limits_a": [125, 125, 125]},
            {"id": "feeder-1", "parent": "panel-a", "limit_kw": 50},
        ],
        "evses": [
            {"station_id": "ac-1", "evse_id": 1, "node": "feeder-1", "phases": "L2", "fallback_current_a": 8},
            {"station_id": "ac-1", "evse_id": 2, "node": "feeder-1", "phases": "L2L3L1"},
            {
                "station_id": "dc-1",
                "evse_id": 1,
                "node": "panel-a",
                "dc": True,
                "max_current_a": 250,
                "max_power_kw": 150,
            },
        ],
        **extra,
    }


async def test_create_get_list_and_the_planner_topology(client, session_factory):
    await provision(client, "ac-1", "1.6")
    await provision(client, "dc-1", "2.0.1")
    created = await client.post("/api/v1/sites", json=depot())
    assert created.status_code == 201, created.text
    body = created.json()
    assert [n["id"] for n in body["nodes"]] == ["grid", "panel-a", "feeder-1"]
    assert body["nodes"][1]["parent"] == "grid" and body["nodes"][1]["phase_limits_a"] == [125, 125, 125]
    assert {(e["station_id"], e["evse_id"], e["node"], e["phases"]) for e in body["evses"]} == {
        ("ac-1", 1, "feeder-1", "L2"),
        ("ac-1", 2, "feeder-1", "L2L3L1"),
        ("dc-1", 1, "panel-a", "L1L2L3"),
    }
    assert (await client.get("/api/v1/sites/depot")).json() == body
    assert [s["id"] for s in (await client.get("/api/v1/sites")).json()] == ["depot"]
    assert (await client.get("/api/v1/stations/ac-1")).status_code == 200
    with session_factory() as db:
        site = sites.topology(db, "depot")
    assert site.root.id == "grid" and site.root.safety_margin_kw == 5
    assert site.root.children[0].children[0].limit_kw == 50
    assert site.evse(("ac-1", 1)) == Evse("ac-1", 1, phases=(1,), fallback_current_a=8.0)
    assert site.evse(("ac-1", 2)).phases == (1, 2, 0)
    assert site.evse(("dc-1", 1)).dc and site.evse(("dc-1", 1)).max_power_w == 150_000
    assert site.priority_groups == ("fleet",)


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"strategy": "fastest"}, 422, "strategy"),
        ({"nodes": [{"id": "a"}, {"id": "b"}]}, 422, "exactly one node without a parent"),
        ({"nodes": [{"id": "grid"}, {"id": "x", "parent": "nowhere"}], "evses": []}, 422, "parent 'nowhere'"),
        (
            {"nodes": [{"id": "grid"}, {"id": "x", "parent": "y"}, {"id": "y", "parent": "x"}], "evses": []},
            422,
            "cycle",
        ),
        ({"nodes": [{"id": "grid", "phase_limits_a": [1, 2]}], "evses": []}, 422, "phase_limits_a"),
        ({"evses": [{"station_id": "ghost", "evse_id": 1, "node": "grid"}]}, 422, "station 'ghost' not found"),
        ({"evses": [{"station_id": "ac-1", "evse_id": 1, "node": "attic"}]}, 422, "node 'attic'"),
        ({"evses": [{"station_id": "ac-1", "evse_id": 1, "node": "grid", "phases": "L4"}]}, 422, "phases"),
        ({"evses": [{"station_id": "ac-1", "evse_id": 1, "node": "grid", "min_current_a": 40}]}, 422, "min_current_a"),
        ({"meter_station_id": "ghost"}, 422, "meter_station_id"),
        ({"surprise": 1}, 422, "surprise"),
    ],
)
async def test_invalid_sites_are_4xx_with_reasons(client, change, status, reason):
    await provision(client, "ac-1", "1.6")
    await provision(client, "dc-1", "2.0.1")
    response = await client.post("/api/v1/sites", json=depot(**change))
    assert response.status_code == status, response.text
    assert reason in response.text
    assert (await client.get("/api/v1/sites/depot")).status_code == 404  # nothing half-created


async def test_patch_nodes_and_assignments(client):
    await provision(client, "ac-1", "1.6")
    await provision(client, "dc-1", "2.0.1")
    await provision(client, "ac-2", "1.6")
    assert (await client.post("/api/v1/sites", json=depot())).status_code == 201
    assert (await client.post("/api/v1/sites", json=depot())).status_code == 409
    patched = await client.patch("/api/v1/sites/depot", json={"strategy": "deadline", "interval_s": 30})
    assert patched.status_code == 200 and patched.json()["strategy"] == "deadline"
    assert patched.json()["interval_s"] == 30 and patched.json()["name"] == "Depot"
    assert (await client.patch("/api/v1/sites/depot", json={"strategy": None})).status_code == 422
    assert (await client.patch("/api/v1/sites/nope", json={"strategy": "none"})).status_code == 404
    node = await client.put(
        "/api/v1/sites/depot/nodes/panel-b", json={"parent": "grid", "phase_limits_a": [63, 63, 63]}
    )
    assert node.status_code == 200, node.text
    cycle = await client.put("/api/v1/sites/depot/nodes/panel-a", json={"parent": "feeder-1"})
    assert cycle.status_code == 422 and "cycle" in cycle.text
    assigned = await client.put("/api/v1/sites/depot/evses/ac-2/1", json={"node": "panel-b", "phases": "L3"})
    assert assigned.status_code == 200, assigned.text
    assert ("ac-2", 1, "panel-b") in {(e["station_id"], e["evse_id"], e["node"]) for e in assigned.json()["evses"]}
    other = {"id": "other", "nodes": [{"id": "grid", "limit_kw": 10}]}
    assert (await client.post("/api/v1/sites", json=other)).status_code == 201
    clash = await client.put("/api/v1/sites/other/evses/ac-2/2", json={"node": "grid"})
    assert clash.status_code == 409 and "belongs to site 'depot'" in clash.text
    assert (await client.delete("/api/v1/sites/depot/evses/ac-2/1")).status_code == 204
    assert (await client.put("/api/v1/sites/other/evses/ac-2/2", json={"node": "grid"})).status_code == 200
    assert (await client.delete("/api/v1/sites/depot/evses/ac-2/1")).status_code == 404


async def test_meter_readings_are_validated_and_listed(client):
    await provision(client, "ac-1", "1.6")
    await provision(client, "dc-1", "2.0.1")
    assert (await client.post("/api/v1/sites", json=depot())).status_code == 201
    url = "/api/v1/sites/depot/meter-readings"
    t = datetime.now(UTC) - timedelta(minutes=1)
    ok = await client.post(url, json={"timestamp": t.isoformat(), "currents_a": [40, 35.5, 20]})
    assert ok.status_code == 201, ok.text
    assert ok.json()["current_l2_a"] == 35.5 and ok.json()["source"] == "api"
    kw = await client.post(url, json={"timestamp": (t + timedelta(seconds=10)).isoformat(), "power_kw": 42})
    assert kw.json()["power_w"] == 42_000
    for bad, reason in [
        ({"timestamp": t.isoformat()}, "power_w or currents_a"),
        ({"timestamp": t.isoformat(), "power_w": -1}, "greater than or equal"),
        ({"timestamp": t.isoformat(), "currents_a": [1, 2]}, "currents_a"),
        ({"timestamp": t.isoformat(), "power_w": 1, "power_kw": 1}, "not both"),
        ({"timestamp": (t + timedelta(days=1)).isoformat(), "power_w": 1}, "future"),
        ({"timestamp": "yesterday", "power_w": 1}, "timestamp"),
        ({"timestamp": t.isoformat(), "power_w": "NaN"}, "power_w"),
    ]:
        response = await client.post(url, json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert reason in response.text, (bad, response.text)
    assert (
        await client.post("/api/v1/sites/nope/meter-readings", json={"timestamp": t.isoformat(), "power_w": 1})
    ).status_code == 404
    listed = (await client.get(url)).json()
    assert [r["power_w"] for r in listed] == [42_000, None]


def test_meter_station_evse0_samples_become_site_readings(session_factory, now):
    with session_factory() as db:
        from csms.services import stations

        stations.provision(db, "meter-1", ocpp_version="1.6", password=None, now=now)
        stations.provision(db, "ac-9", ocpp_version="1.6", password=None, now=now)
        sites.create(db, "s", now=now, nodes=[{"id": "grid", "limit_kw": 100}], meter_station_id="meter-1")
        db.commit()
    samples = (
        ev.Sample(now, "Power.Active.Import", 12_500.0, unit="W"),
        ev.Sample(now, "Current.Import", 20.0, unit="A", phase="L1"),
        ev.Sample(now, "Current.Import", 18.0, unit="A", phase="L2"),
        ev.Sample(now, "Current.Import", 16.0, unit="A", phase="L3"),
        ev.Sample(now, ev.ENERGY_REGISTER, 1e6, unit="Wh"),
        ev.Sample(now + timedelta(seconds=60), "Power.Active.Import", 9000.0, unit="W"),
    )
    with transaction(session_factory) as uow:
        transactions.meter_values(uow, "meter-1", ev.MeterValuesReported(0, samples), csms_assigned=True, now=now)
        transactions.meter_values(uow, "ac-9", ev.MeterValuesReported(0, samples), csms_assigned=True, now=now)
        transactions.meter_values(uow, "meter-1", ev.MeterValuesReported(1, samples), csms_assigned=True, now=now)
    with session_factory() as db:
        rows = sites.readings(db, "s")
    assert [(r.power_w, r.current_l1_a, r.current_l3_a, r.source) for r in rows] == [
        (9000.0, None, None, "station:meter-1"),
        (12_500.0, 20.0, 16.0, "station:meter-1"),
    ]


async def test_meter_station_end_to_end_through_the_gateway(client, gateway):
    await provision(client, "meter-1", "1.6")
    site = {"id": "s", "nodes": [{"id": "grid", "limit_kw": 100}], "meter_station_id": "meter-1"}
    assert (await client.post("/api/v1/sites", json=site)).status_code == 201
    t = datetime.now(UTC).replace(microsecond=0)
    async with charger(gateway, "meter-1", "1.6") as cp:
        await cp.call(
            call16.MeterValues(
                connector_id=0,
                meter_value=[
                    {
                        "timestamp": t.isoformat(),
                        "sampledValue": [
                            {"value": "31.5", "measurand": "Power.Active.Import", "unit": "kW"},
                            {"value": "45.0", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                        ],
                    }
                ],
            )
        )
    (reading,) = (await client.get("/api/v1/sites/s/meter-readings")).json()
    assert reading["power_w"] == 31_500 and reading["current_l1_a"] == 45.0
    assert reading["source"] == "station:meter-1"
