"""ISO 15118 smart charging through OCPP 2.0.1 (K15–K18) over real WebSockets: the ``ocpp`` package's 2.0.1
ChargePoint speaks for the EV; the gateway runs load management for a site behind an 11 kW grid limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.api.app import create_app
from csms.core.plugins.load_management import LoadManagement
from csms.gateway.server import Gateway
from csms.services import authorization, sites, stations

V = 230.0
GRID_KW = 11.0
SITE_A = GRID_KW * 1000 / (3 * V)  # what the grid allows per phase
NEEDED_WH = 20_000.0
DEPARTURE_H = 3.0
NEEDED_A = NEEDED_WH / DEPARTURE_H / (3 * V)  # the least that meets the departure
EV_MAX_A = 32.0
API_KEY = "iso15118-test-key-0123456789"


class Car(ChargePoint):
    """A 2.0.1 station whose EV speaks ISO 15118: it takes every TxProfile and keeps it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tx_profiles: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @on("SetChargingProfile")
    def on_set_profile(self, evse_id: int, charging_profile: dict[str, Any]) -> Any:
        if charging_profile["charging_profile_purpose"] == "TxProfile":
            self.tx_profiles.put_nowait(charging_profile)
        return result201.SetChargingProfile(status="Accepted")

    async def next_tx_profile(self, timeout_s: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.tx_profiles.get(), timeout_s)


@contextlib.asynccontextmanager
async def connect(gateway: Gateway, station_id: str) -> AsyncIterator[Car]:
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    async with websockets.connect(url, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        car = Car(station_id, ws, response_timeout=10)
        runner = asyncio.create_task(car.start())
        try:
            boot = await car.call(
                call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            )
            assert boot.status == "Accepted"
            yield car
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


def iso(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


async def start_transaction(car: Car, tx_id: str) -> None:
    await car.call(call201.StatusNotification(timestamp=iso(), connector_status="Occupied", evse_id=1, connector_id=1))
    await car.call(
        call201.TransactionEvent(
            event_type="Started",
            timestamp=iso(),
            trigger_reason="Authorized",
            seq_no=0,
            transaction_info={"transaction_id": tx_id, "charging_state": "Charging"},
            id_token={"id_token": "EV-1", "type": "ISO14443"},
            evse={"id": 1, "connector_id": 1},
        )
    )


def needs(departure_s: float = DEPARTURE_H * 3600, energy_wh: float = NEEDED_WH) -> call201.NotifyEVChargingNeeds:
    params = {
        "energy_amount": int(energy_wh),
        "ev_min_current": 6,
        "ev_max_current": int(EV_MAX_A),
        "ev_max_voltage": 400,
    }
    return call201.NotifyEVChargingNeeds(
        evse_id=1,
        max_schedule_tuples=5,
        charging_needs={
            "requested_energy_transfer": "AC_three_phase",
            "departure_time": iso(departure_s),
            "ac_charging_parameters": params,
        },
    )


def ev_schedule(profile: dict[str, Any], scale: float) -> call201.NotifyEVChargingSchedule:
    schedule = profile["charging_schedule"][0]
    periods = [{**p, "limit": p["limit"] * scale} for p in schedule["charging_schedule_period"]]
    return call201.NotifyEVChargingSchedule(
        time_base=iso(),
        evse_id=1,
        charging_schedule={
            "id": 1,
            "charging_rate_unit": schedule["charging_rate_unit"],
            "charging_schedule_period": periods,
        },
    )


@pytest.fixture
def session_factory(sqlite_factory):  # the gateway fixture runs on the same SQLite file
    return sqlite_factory


@pytest.fixture
async def managed(gateway: Gateway, sqlite_factory) -> AsyncIterator[LoadManagement]:
    now = datetime.now(UTC)
    with sqlite_factory() as db:
        for sid in ("iso-a", "loose"):
            stations.provision(db, sid, ocpp_version="2.0.1", password=None, now=now)
        authorization.create(db, "EV-1", now)
        db.commit()
        evse = {"station_id": "iso-a", "evse_id": 1, "node": "grid", "max_current_a": 32.0, "fallback_current_a": 6.0}
        sites.create(
            db,
            "depot",
            now=now,
            strategy="deadline",
            interval_s=60.0,
            nodes=[{"id": "grid", "limit_kw": GRID_KW}],
            evses=[evse],
        )
        db.commit()
    lm = LoadManagement()
    gateway.add_plugin(lm)
    lm.start()
    await gateway.scheduler.idle()
    yield lm


def first_limit(profile: dict[str, Any]) -> float:
    return float(profile["charging_schedule"][0]["charging_schedule_period"][0]["limit"])


async def test_the_evs_needs_get_a_tx_profile_that_meets_its_departure_and_a_schedule_beyond_it_is_rejected(
    gateway, managed, sqlite_factory
):
    async with connect(gateway, "iso-a") as car:
        await start_transaction(car, "TX-15118")
        answer = await car.call(needs())
        assert answer.status == "Accepted"
        profile = await car.next_tx_profile()
        while not car.tx_profiles.empty():  # the plug-in's own profile may have come first: the last one counts
            profile = car.tx_profiles.get_nowait()
        assert profile["transaction_id"] == "TX-15118"
        limit = first_limit(profile)
        assert NEEDED_A <= limit <= SITE_A, f"{limit} A: the departure needs {NEEDED_A:.1f} A, the grid {SITE_A:.1f}"
        assert len(profile["charging_schedule"][0]["charging_schedule_period"]) <= 5  # maxScheduleTuples

        within = await car.call(ev_schedule(profile, 1.0))
        assert within.status == "Accepted"
        beyond = await car.call(ev_schedule(profile, 2.0))
        assert beyond.status == "Rejected"
        assert "allows" in beyond.status_info["additional_info"]
        again = await car.next_tx_profile()  # the station renegotiates with the profile sent again
        assert first_limit(again) == limit

        # The EV renegotiates (K17): a later departure with the same energy takes less from the grid.
        assert (await car.call(needs(departure_s=8 * 3600))).status == "Accepted"
        later = await car.next_tx_profile()
        assert first_limit(later) <= limit

    # What an operator sees: the needs, the TxProfile in force and the EV's last schedule with the verdict.
    app = create_app(sqlite_factory, gateway, API_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms", headers=headers) as c:
        response = await c.get("/api/v1/stations/iso-a/charging-needs")
        missing = await c.get("/api/v1/stations/nobody/charging-needs")
    assert response.status_code == 200, response.text
    [row] = response.json()
    assert (row["evse_id"], row["transaction_id"], row["ev_schedule_status"]) == (1, "TX-15118", "Rejected")
    assert row["needs"]["acChargingParameters"]["energyAmount"] == NEEDED_WH
    assert row["profile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == first_limit(later)
    assert missing.status_code == 404

    # The same through the command line, against the API served on a port.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        command = [sys.executable, "-m", "csms.cli", "stations", "charging-needs", "iso-a"]
        command += ["--api-url", f"http://127.0.0.1:{port}/api/v1"]
        env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
        shown = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env, timeout=60)
    finally:
        server.should_exit = True
        await serving
    assert shown.returncode == 0, shown.stderr
    header, line = shown.stdout.splitlines()
    assert header.split() == ["EVSE", "TRANSACTION", "DEPARTURE", "ENERGY", "WH", "TX", "PROFILE", "EV", "SCHEDULE"]
    assert line.split()[:2] == ["1", "TX-15118"] and "Rejected" in line and f"{first_limit(later):g} A" in line


async def test_a_station_in_no_managed_site_gets_the_evs_own_limit(gateway, managed):
    async with connect(gateway, "loose") as car:
        await start_transaction(car, "TX-LOOSE")
        assert (await car.call(needs())).status == "Accepted"
        profile = await car.next_tx_profile()
        assert (profile["transaction_id"], first_limit(profile)) == ("TX-LOOSE", EV_MAX_A)
        assert (await car.call(ev_schedule(profile, 1.0))).status == "Accepted"
