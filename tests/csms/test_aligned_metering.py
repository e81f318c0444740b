"""The CSMS sets the clock-aligned meter interval where a tariff changes price at a time of day (the
AlignedMetering plugin): at an accepted boot, and when a tariff is assigned through the API; once per value the
station took; never where the tariff has no time of day."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.core.plugins.aligned_metering import AlignedMetering
from csms.gateway.server import Gateway
from csms.services import configuration, stations, tariffs
from csms.services.config import CsmsConfig
from tests.csms import test_ocpp_chargepoint as e2e
from tests.support.api import api_client

#: Cheaper from 23:30 to 06:00 in Berlin: every half hour reads on both boundaries, from local or UTC midnight.
NIGHT = {
    "id": "NIGHT",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.22", "step_size": 1}],
            "restrictions": {"start_time": "23:30", "end_time": "06:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": "0.31", "step_size": 1}]},
    ],
}
FLAT = {"id": "FLAT", "currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30"}]}]}
FLAT["elements"][0]["price_components"][0]["step_size"] = 1  # type: ignore[index]


@pytest.fixture
async def gateway(session_factory) -> AsyncIterator[Gateway]:
    gw = Gateway(session_factory, CsmsConfig(call_timeout_s=5.0, tariff_time_zone="Europe/Berlin"))
    gw.add_plugin(AlignedMetering())
    await gw.start("127.0.0.1", 0)
    yield gw
    await gw.stop()


def _set_up(session_factory, station_id: str, version: str, tariff: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    with session_factory() as db:
        stations.provision(db, station_id, ocpp_version=version, password=None, now=now)
        tariffs.put(db, tariff["id"], tariff, now - timedelta(days=1))
        tariffs.assign(db, tariff["id"], now=now, station_id=station_id)
        db.commit()


async def _settings(cp: Any, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    async def wait() -> list[dict[str, Any]]:
        while True:
            found = [p for a, p in cp.received if a in ("ChangeConfiguration", "SetVariables")]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(wait(), timeout)


async def _stored(session_factory, station_id: str, variable: str) -> str:
    for _ in range(100):
        with session_factory() as db:
            values = [r.value for r in configuration.listed(db, station_id, variable=variable)]
        if values:
            return values[0]
        await asyncio.sleep(0.05)
    raise AssertionError("not stored")


async def _boot(cp: Any, version: str) -> None:
    if version == "1.6":
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
    else:
        await cp.call(call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_booted_station_with_a_time_of_day_tariff_is_set_once(session_factory, gateway, version):
    station_id = f"cp-night-{version}"
    _set_up(session_factory, station_id, version, NIGHT)
    async with e2e.charger(gateway, station_id, version) as cp:
        await _boot(cp, version)
        [setting] = await _settings(cp)
        if version == "1.6":
            assert setting == {"key": "ClockAlignedDataInterval", "value": "1800"}
            assert await _stored(session_factory, station_id, "ClockAlignedDataInterval") == "1800"
        else:
            [item] = setting["set_variable_data"]
            assert (item["component"]["name"], item["variable"]["name"]) == ("AlignedDataCtrlr", "Interval")
            assert item["attribute_value"] == "1800"
            assert await _stored(session_factory, station_id, "Interval") == "1800"
        await _boot(cp, version)  # it took it: not sent again
        await asyncio.sleep(0.5)
        assert len(await _settings(cp)) == 1


async def test_no_interval_where_the_tariff_has_no_time_of_day_until_one_is_assigned(session_factory, gateway):
    _set_up(session_factory, "cp-flat", "1.6", FLAT)
    async with e2e.charger(gateway, "cp-flat", "1.6") as cp, api_client(session_factory, gateway) as api:
        await _boot(cp, "1.6")
        await asyncio.sleep(0.5)
        assert await _settings(cp, 0) == []
        assert (await api.put("/api/v1/tariffs/NIGHT", json=NIGHT)).status_code == 201
        answer = await api.post(
            "/api/v1/tariff-assignments", json={"tariff_id": "NIGHT", "station_id": "cp-flat", "group_id": "night"}
        )
        assert answer.status_code == 201, answer.text
        [setting] = await _settings(cp)
        assert setting == {"key": "ClockAlignedDataInterval", "value": "1800"}
