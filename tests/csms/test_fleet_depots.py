"""Fleet depots: departure plans in the vehicle's zone (weekly, one-off overrides, DST), telematics SoC with the
energy delivered since, the needs that reach the load manager when a van plugs in (over real WebSockets with the
``ocpp`` package's ChargePoint), and the "ready by departure" board with its reasons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.core.plugins.fleet import FleetNeeds
from csms.core.plugins.load_management import LoadManagement
from csms.services import authorization, fleet, sites, stations
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import MeterSample, Transaction
from tests.csms.test_loadmgmt_gateway import connect, now_iso, settle
from tests.support.api import api_client

AMS = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # a Monday evening, 21:00 in Amsterdam


@pytest.fixture
def session_factory(sqlite_factory):  # the gateway fixture runs on the same SQLite file
    return sqlite_factory


@pytest.fixture
def depot(sqlite_factory):
    with sqlite_factory() as db:
        for token in ("VAN1CARD", "VAN2CARD", "VAN3CARD"):
            authorization.create(db, token, T0)
        fleet.create_driver(db, "D-1", name="Sam", cost_centre="CC-N")
        fleet.create_vehicle(db, "VAN-1", now=T0, name="van 1", battery_kwh=100.0, max_ac_kw=11.0, id_token="VAN1CARD",
                             driver_id="D-1", vin="W1V3KCFZ0RP000001", tz="Europe/Amsterdam")  # fmt: skip
        fleet.create_vehicle(db, "VAN-2", now=T0, name="van 2", battery_kwh=100.0, max_ac_kw=11.0,
                             id_token="VAN2CARD", tz="Europe/Amsterdam")  # fmt: skip
        fleet.create_vehicle(db, "VAN-3", now=T0, name="van 3", battery_kwh=60.0, id_token="VAN3CARD")
        db.commit()
    return sqlite_factory


def test_the_next_departure_follows_the_weekly_plan_overrides_and_local_time(depot):
    with depot() as db:
        fleet.set_weekly_plan(db, "VAN-1", [{"weekday": d, "time": "06:30", "target_soc_pct": 90} for d in range(5)])
        van = fleet.get_vehicle(db, "VAN-1")
        nxt = fleet.next_departure(db, van, T0)
        assert nxt is not None and nxt.at == datetime(2026, 12, 8, 6, 30, tzinfo=AMS) and nxt.planned == "weekly"
        fleet.add_override(db, "VAN-1", {"date": "2026-12-08", "time": "04:00", "target_kwh": 50}, now=T0)
        nxt = fleet.next_departure(db, van, T0)
        assert (nxt.at, nxt.target_kwh, nxt.planned) == (datetime(2026, 12, 8, 4, tzinfo=AMS), 50.0, "override")
        friday_night = datetime(2026, 12, 11, 20, tzinfo=UTC)
        assert fleet.next_departure(db, van, friday_night).at == datetime(2026, 12, 14, 6, 30, tzinfo=AMS)  # Monday
        # 06:30 local is 05:30 UTC in winter and 04:30 UTC in summer: the plan is in the vehicle's zone.
        assert fleet.next_departure(db, van, datetime(2026, 7, 6, 20, tzinfo=UTC)).at == datetime(
            2026, 7, 7, 4, 30, tzinfo=UTC
        )


def test_bad_fleet_input_is_refused_with_a_reason(depot):
    with depot() as db:
        with pytest.raises(Invalid, match="in the past"):
            fleet.add_override(db, "VAN-1", {"date": "2026-12-01", "time": "06:00", "target_kwh": 10}, now=T0)
        with pytest.raises(Invalid, match="one target"):
            fleet.set_weekly_plan(
                db, "VAN-1", [{"weekday": 0, "time": "06:00", "target_kwh": 10, "target_soc_pct": 80}]
            )
        with pytest.raises(Invalid, match="HH:MM"):
            fleet.set_weekly_plan(db, "VAN-1", [{"weekday": 0, "time": "25:00", "target_kwh": 10}])
        with pytest.raises(Invalid, match="between 0 and 100"):
            fleet.record_soc(db, vehicle_id="VAN-1", soc_pct=120, at=T0, now=T0)
        with pytest.raises(NotFound, match="VIN"):
            fleet.record_soc(db, vin="W1V3KCFZ0RP999999", soc_pct=50, at=T0, now=T0)
        with pytest.raises(Invalid, match="future"):
            fleet.record_soc(db, vehicle_id="VAN-1", soc_pct=50, at=T0 + timedelta(hours=1), now=T0)
        with pytest.raises(Conflict, match="VAN-1"):
            fleet.create_vehicle(db, "VAN-9", now=T0, name="dup", battery_kwh=50, id_token="VAN1CARD")
        with pytest.raises(Invalid, match="VIN"):
            fleet.create_vehicle(db, "VAN-9", now=T0, name="bad", battery_kwh=50, vin="IOQ")


def test_needs_add_the_energy_delivered_since_the_telematics_reading(depot):
    with depot() as db:
        fleet.set_weekly_plan(db, "VAN-1", [{"weekday": 1, "time": "06:30", "target_soc_pct": 90}])
        fleet.record_soc(db, vehicle_id="VAN-1", soc_pct=40, at=T0, now=T0)
        session = Transaction(station_id="x", charger_tx_id="1", evse_id=1, id_token="VAN1CARD", started_at=T0,
                              meter_start_wh=0, last_meter_wh=10_000, last_meter_at=T0 + timedelta(hours=1),
                              status="active")  # fmt: skip
        needs = fleet.needs(db, fleet.get_vehicle(db, "VAN-1"), T0 + timedelta(hours=1), session)
        assert needs.soc_pct == 50.0 and needs.energy_needed_wh == pytest.approx(40_000)  # 90 % - 50 % of 100 kWh
        stale = fleet.needs(db, fleet.get_vehicle(db, "VAN-1"), T0 + timedelta(hours=8), None)
        assert stale.notes == ("telematics SoC is 8.0 h old",)


def test_energy_since_the_reading_comes_from_the_stored_meter_samples(depot):
    """A van that charged slowly, then fast: what it took after the telematics reading is read off the meter's
    register around the reading, not spread evenly over the session."""
    with depot() as db:
        fleet.set_weekly_plan(db, "VAN-1", [{"weekday": 1, "time": "06:30", "target_soc_pct": 90}])
        fleet.record_soc(db, vehicle_id="VAN-1", soc_pct=40, at=T0 + timedelta(minutes=30), now=T0 + timedelta(hours=1))
        session = Transaction(station_id="x", charger_tx_id="1", evse_id=1, id_token="VAN1CARD", started_at=T0,
                              meter_start_wh=0, last_meter_wh=10_000, last_meter_at=T0 + timedelta(hours=1),
                              status="active")  # fmt: skip
        stations.provision(db, "x", ocpp_version="1.6", password=None, now=T0)
        db.add(session)
        db.flush()
        register = {"station_id": "x", "transaction_id": session.id, "evse_id": 1, "unit": "Wh", "location": "Outlet"}
        for minutes, wh in ((0, 0), (20, 1_000), (40, 3_000), (60, 10_000)):
            at = T0 + timedelta(minutes=minutes)
            db.add(MeterSample(**register, measurand="Energy.Active.Import.Register", timestamp=at, value=wh))
        db.flush()
        needs = fleet.needs(db, fleet.get_vehicle(db, "VAN-1"), T0 + timedelta(hours=1), session)
        # the register at 00:30 is 2,000 Wh (half-way from 1,000 to 3,000): 8 kWh since, 8 % of 100 kWh
        assert needs.soc_pct == 48.0 and needs.energy_needed_wh == pytest.approx(42_000)


@pytest.fixture
async def served(gateway, depot) -> AsyncIterator[tuple[httpx.AsyncClient, LoadManagement]]:
    now = datetime.now(UTC)
    with depot() as db:
        for sid in ("dp-a", "dp-b"):
            stations.provision(db, sid, ocpp_version="1.6", password=None, now=now)
        sites.create(db, "depot", now=now, strategy="deadline", interval_s=60.0,
                     nodes=[{"id": "grid", "limit_kw": 16.0}],
                     evses=[{"station_id": s, "evse_id": 1, "node": "grid", "max_current_a": 16.0,
                             "fallback_current_a": 6.0} for s in ("dp-a", "dp-b")])  # fmt: skip
        today = now.astimezone(AMS)
        soon, later = (today + timedelta(hours=2)), (today + timedelta(hours=9))
        fleet.add_override(
            db, "VAN-1", {"date": soon.date().isoformat(), "time": soon.strftime("%H:%M"), "target_kwh": 20}, now=now
        )
        fleet.add_override(
            db, "VAN-2", {"date": later.date().isoformat(), "time": later.strftime("%H:%M"), "target_kwh": 20}, now=now
        )
        db.commit()
    lm = LoadManagement()
    gateway.add_plugin(lm)
    plugin = FleetNeeds(lm)
    gateway.add_plugin(plugin)
    lm.start()
    await gateway.scheduler.idle()
    async with api_client(depot, gateway, load_management=lm, fleet=plugin) as client:
        yield client, lm


async def start(cp, tag: str) -> None:
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
    await cp.call(call16.StartTransaction(connector_id=1, id_tag=tag, meter_start=0, timestamp=now_iso()))
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))


async def test_a_plugged_vans_schedule_reaches_the_plan_and_the_board_says_who_will_be_ready(gateway, served):
    client, _ = served
    async with connect(gateway, "dp-a") as a, connect(gateway, "dp-b") as b:
        await settle(a, b)
        await start(a, "VAN1CARD")  # leaves in 2 h
        await start(b, "VAN2CARD")  # leaves in 9 h
        await settle(a, b)
        await asyncio.sleep(0.2)
        assert a.tx_limit() is not None and b.tx_limit() is not None
        assert a.tx_limit() > b.tx_limit()  # the deadline strategy serves the earlier departure first
        rows = {r["vehicle_id"]: r for r in (await client.get("/api/v1/fleet/board")).json()}
        assert rows["VAN-1"]["station_id"] == "dp-a" and rows["VAN-1"]["energy_needed_kwh"] == 20.0
        assert rows["VAN-1"]["status"] in ("on_track", "at_risk", "will_miss")
        assert rows["VAN-3"]["status"] == "no_departure"
        # 16 kW for two vans: van 1 cannot get 20 kWh in 2 h unless it has nearly all of it
        assert rows["VAN-1"]["deliverable_kwh"] == pytest.approx(rows["VAN-1"]["power_kw"] * 2, rel=0.05)

        # Van 2's dispatcher moves its departure to within the hour: the plan turns round.
        soon = datetime.now(UTC).astimezone(AMS) + timedelta(minutes=50)
        moved = {"date": soon.date().isoformat(), "time": soon.strftime("%H:%M"), "target_kwh": 20}
        assert (await client.post("/api/v1/fleet/vehicles/VAN-2/overrides", json=moved)).status_code == 201
        for _ in range(50):
            await asyncio.sleep(0.1)
            if b.tx_limit() > a.tx_limit():
                break
        assert b.tx_limit() > a.tx_limit()
        soc = await client.post(
            "/api/v1/fleet/telematics", json={"vin": "W1V3KCFZ0RP000001", "soc_pct": 55, "at": now_iso()}
        )
        assert soc.status_code == 202 and soc.json()["vehicle_id"] == "VAN-1"
        past = {"date": "2026-01-01", "time": "06:00", "target_kwh": 5}
        refused = await client.post("/api/v1/fleet/vehicles/VAN-2/overrides", json=past)
        assert refused.status_code == 422 and "past" in refused.text
        bad_soc = await client.post(
            "/api/v1/fleet/telematics", json={"vehicle_id": "VAN-1", "soc_pct": 140, "at": now_iso()}
        )
        assert bad_soc.status_code == 422 and "between 0 and 100" in bad_soc.text


def test_sessions_are_allocated_to_vehicle_and_cost_centre(depot):
    from csms.services import usage_reports

    with depot() as db:
        stations.provision(db, "dp-c", ocpp_version="1.6", password=None, now=T0)
        for i, token in enumerate(("VAN1CARD", "VAN2CARD", "VAN1CARD")):
            db.add(Transaction(station_id="dp-c", charger_tx_id=str(i), evse_id=1, id_token=token,
                               started_at=T0 + timedelta(hours=i), stopped_at=T0 + timedelta(hours=i, minutes=30),
                               meter_start_wh=0, meter_stop_wh=5_000 * (i + 1), status="completed"))  # fmt: skip
        db.commit()
        end = T0 + timedelta(days=1)
        by_vehicle = {r["vehicle"]: r["energy_kwh"] for r in usage_reports.usage(db, T0, end, "vehicle")}
        by_centre = {r["cost_centre"]: r["energy_kwh"] for r in usage_reports.usage(db, T0, end, "cost_centre")}
    assert by_vehicle == {"VAN-1": 20.0, "VAN-2": 10.0}
    assert by_centre == {"CC-N": 20.0, "(none)": 10.0}  # van 1's driver carries the cost centre
