"""Load management over real WebSockets: the ``ocpp`` package's ChargePoint as independent chargers, the
gateway with its :class:`LoadManagement` plugin, a site with two stations behind a 30 kW limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from csms.core.plugins.load_management import LoadManagement
from csms.gateway.server import Gateway
from csms.services import authorization, sites, stations

LIMIT_KW = 30.0
V = 230.0


class Charger(ChargePoint16):
    def __init__(self, *args: Any, reject: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reject = reject
        self.profiles: list[dict[str, Any]] = []
        self.got = asyncio.Event()

    @on("SetChargingProfile")
    def on_set_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        self.got.set()
        return result16.SetChargingProfile(status="Rejected" if self.reject else "Accepted")

    def limit(self, connector_id: int, purpose: str) -> float | None:
        """The last limit sent for this connector and purpose."""
        for p in reversed(self.profiles):
            if p["connector_id"] == connector_id and p["charging_profile_purpose"] == purpose:
                return float(p["charging_schedule"]["charging_schedule_period"][0]["limit"])
        return None

    def tx_limit(self) -> float | None:
        return self.limit(1, "TxProfile")


@contextlib.asynccontextmanager
async def connect(gateway: Gateway, station_id: str, reject: bool = False) -> AsyncIterator[Charger]:
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = Charger(station_id, ws, reject=reject, response_timeout=10)
        runner = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            assert boot.status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


async def settle(*chargers: Charger, quiet_s: float = 0.3, timeout_s: float = 5.0) -> None:
    """Wait until no charger received a profile for ``quiet_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        counts = [len(c.profiles) for c in chargers]
        await asyncio.sleep(quiet_s)
        if [len(c.profiles) for c in chargers] == counts:
            return
    raise AssertionError("profiles kept coming")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
async def managed(gateway: Gateway, sqlite_factory) -> AsyncIterator[LoadManagement]:
    now = datetime.now(UTC)
    with sqlite_factory() as db:
        for sid in ("lm-a", "lm-b"):
            stations.provision(db, sid, ocpp_version="1.6", password=None, now=now)
        authorization.create(db, "TAG-A", now)
        authorization.create(db, "TAG-B", now)
        db.commit()
        sites.create(
            db,
            "garage",
            now=now,
            strategy="equal_share",
            interval_s=60.0,
            nodes=[{"id": "grid", "limit_kw": LIMIT_KW}],
            evses=[
                {"station_id": sid, "evse_id": 1, "node": "grid", "max_current_a": 32.0, "fallback_current_a": 6.0}
                for sid in ("lm-a", "lm-b")
            ],
        )
        db.commit()
    lm = LoadManagement()
    gateway.add_plugin(lm)
    lm.start()
    await gateway.scheduler.idle()
    yield lm


@pytest.fixture
def session_factory(sqlite_factory):  # the gateway fixture runs on the same SQLite file
    return sqlite_factory


async def plug_and_start(cp: Charger, tag: str, meter_start: int = 0) -> int:
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
    started = await cp.call(
        call16.StartTransaction(connector_id=1, id_tag=tag, meter_start=meter_start, timestamp=now_iso())
    )
    await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
    return started.transaction_id


def total_kw(*limits_a: float | None) -> float:
    return sum((a or 0.0) * 3 * V for a in limits_a) / 1000.0


async def test_profiles_within_the_limit_replan_on_stop_and_nothing_when_nothing_changed(gateway, managed):
    async with connect(gateway, "lm-a") as a, connect(gateway, "lm-b") as b:
        await settle(a, b)
        # online and idle: both get their TxDefaultProfile at the fallback
        assert a.limit(1, "TxDefaultProfile") == 6.0 and b.limit(1, "TxDefaultProfile") == 6.0
        tx_a = await plug_and_start(a, "TAG-A")
        await settle(a, b)
        assert a.tx_limit() == 32.0  # alone: its full rating (22 kW < 30 kW minus B's idle reserve? B is idle)
        assert a.profiles[-1]["transaction_id"] == tx_a
        tx_b = await plug_and_start(b, "TAG-B")
        await settle(a, b)
        assert total_kw(a.tx_limit(), b.tx_limit()) <= LIMIT_KW + 1e-6
        assert a.tx_limit() == pytest.approx(b.tx_limit(), abs=0.2)  # equal share
        assert b.profiles[-1]["transaction_id"] == tx_b

        # nothing changed: heartbeats and a re-plan by the same facts send nothing
        sent = (len(a.profiles), len(b.profiles))
        await a.call(call16.Heartbeat())
        await a.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await settle(a, b)
        assert (len(a.profiles), len(b.profiles)) == sent
        with contextlib.suppress(Exception):
            gateway_now = datetime.now(UTC).timestamp()
            managed.send(managed.manager.handle_timer(gateway_now + 120))
        await settle(a, b)
        assert (len(a.profiles), len(b.profiles)) == sent

        # B stops: A gets everything again
        await b.call(call16.StopTransaction(transaction_id=tx_b, meter_stop=1000, timestamp=now_iso()))
        await b.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await settle(a, b)
        assert a.tx_limit() == 32.0
    assert managed.failed == 0


async def test_a_rejected_profile_is_planned_at_its_fallback(gateway, managed):
    async with connect(gateway, "lm-a") as a, connect(gateway, "lm-b", reject=True) as b:
        await settle(a, b)
        await plug_and_start(a, "TAG-A")
        await plug_and_start(b, "TAG-B")
        await settle(a, b)
        assert managed.failed > 0
        planner = managed.manager.planners["garage"]
        reserved = planner.reserved_a()
        assert reserved[("lm-b", 1)] >= 6.0
        # A gets what the limit leaves beside B's reserve (B never accepted more than its fallback)
        assert total_kw(a.tx_limit(), reserved[("lm-b", 1)]) <= LIMIT_KW + 1e-6
        assert a.tx_limit() >= 32.0 - 1e-6 or total_kw(a.tx_limit(), reserved[("lm-b", 1)]) > LIMIT_KW - 1.0


async def test_offline_station_is_planned_at_its_fallback(gateway, managed):
    async with connect(gateway, "lm-a") as a:
        await settle(a)
        await plug_and_start(a, "TAG-A")
        await settle(a)
        planner = managed.manager.planners["garage"]
        assert planner.reserved_a() == {("lm-b", 1): 6.0}  # B never connected
        assert total_kw(a.tx_limit(), 6.0) <= LIMIT_KW + 1e-6


async def test_api_meter_reading_replans(gateway, managed):
    async with connect(gateway, "lm-a") as a:
        await settle(a)
        await plug_and_start(a, "TAG-A")
        await settle(a)
        assert a.tx_limit() == 32.0
        managed.site_reading("garage", power_w=20_000.0, currents_a=None, includes_ev=False)
        await settle(a)
        # 30 kW − 20 kW building − B's 6 A fallback reserve
        assert total_kw(a.tx_limit(), 6.0) + 20.0 <= LIMIT_KW + 1e-6
        assert a.tx_limit() > 6.0


async def test_the_building_forecast_is_stored_when_a_slot_is_learnt_and_a_new_process_starts_with_it(
    gateway, managed, sqlite_factory
):
    """The plugin writes a site's forecast once a 15-minute slot of it is learnt (not on every reading), on the
    store's thread; a LoadManagement started afterwards (a restarted process) plans with it."""
    from csms.services.load_memory import read_forecasts

    now = gateway.scheduler.now()
    slot = now - now % 900 - 3 * 900  # a slot three quarters of an hour ago, then the next one's first reading
    for minute in range(15):  # the meter's readings of that slot, as the plugin hands them on (at their time)
        managed.manager.site_reading("garage", slot + 60 * minute, currents_a=(12.0, 12.0, 12.0))
        managed.send([])
    await gateway.scheduler.idle()
    with sqlite_factory() as db:
        assert read_forecasts(db, ["garage"]) == {}  # the slot is still open: nothing learnt, nothing written
    managed.manager.site_reading("garage", slot + 900, currents_a=(12.0, 12.0, 12.0))
    managed.send([])
    await gateway.scheduler.idle()
    with sqlite_factory() as db:
        (stored,) = read_forecasts(db, ["garage"]).values()
    assert stored == managed.manager.forecasts["garage"].record()
    assert stored["mean"][int(slot % 86_400 // 900)] == [12.0, 12.0, 12.0]
    restarted = LoadManagement()
    gateway.add_plugin(restarted)
    restarted.start()
    await gateway.scheduler.idle()
    forecast = restarted.manager.planners["garage"].forecast
    assert forecast is not managed.manager.forecasts["garage"]
    assert forecast.highest_a(slot + 86_400, slot + 86_400 + 600) == (12.0, 12.0, 12.0)  # tomorrow at that time
