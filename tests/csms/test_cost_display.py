"""The running cost on the charger's display, over real WebSockets with the ``ocpp`` package's ChargePoint:
2.0.1 CostUpdated every ``cost_update_interval_s``; 1.6 California Pricing (SetUserPrice at Authorize,
RunningCost while charging, FinalCost at the end) only to a charger that declares CustomDisplayCostAndPrice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.core.plugins.costs import CostDisplay
from csms.gateway.server import Gateway
from csms.services import configuration
from csms.services.config import CsmsConfig
from tests.csms import test_ocpp_chargepoint as e2e
from tests.csms.test_cdrs import _event, _set_up


class Display201(e2e.Charger201):
    @on("CostUpdated")
    def on_cost_updated(self, **payload: Any) -> result201.CostUpdated:
        self.received.append(("CostUpdated", payload))
        return result201.CostUpdated()


class Display16(e2e.Charger16):
    shows_cost = "true"

    @on("GetConfiguration")
    def on_get_configuration(self, **payload: Any) -> result16.GetConfiguration:
        self.received.append(("GetConfiguration", payload))
        known = {"CustomDisplayCostAndPrice": self.shows_cost}
        asked = payload.get("key") or list(known)
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": True, "value": known[k]} for k in asked if k in known],
            unknown_key=[k for k in asked if k not in known],
        )

    @on("DataTransfer")
    def on_data_transfer(self, **payload: Any) -> result16.DataTransfer:
        self.received.append(("DataTransfer", payload))
        return result16.DataTransfer(status="Accepted")


@pytest.fixture
async def costing_gateway(session_factory) -> AsyncIterator[Gateway]:
    gw = Gateway(session_factory, CsmsConfig(call_timeout_s=5.0, cost_update_interval_s=0.3))
    gw.add_plugin(CostDisplay())
    await gw.start("127.0.0.1", 0)
    yield gw
    await gw.stop()


async def _until(cp: Any, action: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    async def wait() -> list[dict[str, Any]]:
        while True:
            found = [p for a, p in cp.received if a == action]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(wait(), timeout)


async def test_201_cost_updated_while_a_priced_session_runs(session_factory, costing_gateway, monkeypatch):
    monkeypatch.setattr(e2e, "Charger201", Display201)
    _set_up(session_factory, "cp-upd", "2.0.1")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    async with e2e.charger(costing_gateway, "cp-upd", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"))
        token = {"id_token": "DRIVER", "type": "ISO14443"}
        await cp.call(_event("Started", 0, start, 0, "Authorized", id_token=token, evse={"id": 1, "connector_id": 1}))
        answer = await cp.call(_event("Updated", 1, start + timedelta(minutes=30), 4_400, "MeterValuePeriodic"))
        reached = Decimal(str(answer.total_cost))
        for _ in range(100):  # an update priced before the Updated was stored may still be on its way
            updates = await _until(cp, "CostUpdated")
            if Decimal(str(updates[-1]["total_cost"])) >= reached:
                break
            await asyncio.sleep(0.1)
        assert {u["transaction_id"] for u in updates} == {"tx-1"}
        costs = [Decimal(str(u["total_cost"])) for u in updates]
        assert costs == sorted(costs) and costs[-1] >= reached  # the running cost only goes up
        await cp.call(_event("Ended", 2, start + timedelta(minutes=31), 4_400, "StopAuthorized"))
        seen = len(await _until(cp, "CostUpdated"))
        await asyncio.sleep(1.0)
        assert len([a for a, _ in cp.received if a == "CostUpdated"]) == seen  # none after the end


async def _until_stored(session_factory, station_id: str, value: str) -> None:
    async def wait() -> None:
        while True:
            with session_factory() as db:
                rows = configuration.listed(db, station_id)
                if any(r.variable == "CustomDisplayCostAndPrice" and r.value == value for r in rows):
                    return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), 10.0)


def _cost_messages(cp: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (p["message_id"], json.loads(p["data"]))
        for a, p in cp.received
        if a == "DataTransfer" and p["vendor_id"] == "org.openchargealliance.costmsg"
    ]


@pytest.mark.parametrize("declares", [True, False])
async def test_16_california_pricing_only_where_the_charger_declares_it(
    session_factory, costing_gateway, monkeypatch, declares
):
    monkeypatch.setattr(e2e, "Charger16", Display16)
    monkeypatch.setattr(Display16, "shows_cost", "true" if declares else "false")
    _set_up(session_factory, "cp16-ca", "1.6")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    async with e2e.charger(costing_gateway, "cp16-ca", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        # no operator reads its settings: the CSMS asks for the key once the boot is accepted
        [asked] = await _until(cp, "GetConfiguration")
        assert asked["key"] == ["CustomDisplayCostAndPrice"]
        await _until_stored(session_factory, "cp16-ca", "true" if declares else "false")
        await cp.call(call16.Authorize(id_tag="DRIVER"))
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER", meter_start=0, timestamp=start.isoformat())
        )
        tx_id = started.transaction_id
        reading = [{"value": "11000", "measurand": "Energy.Active.Import.Register"}]
        at = (start + timedelta(minutes=30)).isoformat()
        await cp.call(
            call16.MeterValues(
                connector_id=1, transaction_id=tx_id, meter_value=[{"timestamp": at, "sampled_value": reading}]
            )
        )
        if declares:
            await _until(cp, "DataTransfer", 2)  # SetUserPrice and at least one RunningCost
        else:
            await asyncio.sleep(1.0)
        stop = (start + timedelta(minutes=60)).isoformat()
        await cp.call(call16.StopTransaction(transaction_id=tx_id, meter_stop=22_000, timestamp=stop))
        if declares:
            for _ in range(100):  # a RunningCost priced before the stop may still come first
                if any(kind == "FinalCost" for kind, _ in _cost_messages(cp)):
                    break
                await asyncio.sleep(0.1)
        else:
            await asyncio.sleep(0.5)
    messages = _cost_messages(cp)
    if not declares:
        assert messages == []
        return
    kinds = [m for m, _ in messages]
    assert kinds[0] == "SetUserPrice" and "RunningCost" in kinds and kinds.count("FinalCost") == 1
    user_price = messages[0][1]
    assert user_price["idToken"] == "DRIVER" and "0.30 EUR/kWh" in user_price["priceText"]
    running = next(data for kind, data in messages if kind == "RunningCost")
    assert running["transactionId"] == tx_id and running["meterValue"] == 11_000 and running["state"] == "Charging"
    assert running["chargingPrice"] == {"flatFee": 1.2, "kWhPrice": 0.36, "hourPrice": 2.4}  # incl. 20 % VAT
    assert running["cost"] > 0
    final = messages[-1][1]
    # 22 kWh x 0.30 + 1.00 flat, the one hour inside the grace: 7.60 excl., 9.12 incl. VAT
    assert final["transactionId"] == tx_id and final["cost"] == 9.12 and final["qrCodeText"] == f"CDR-{tx_id}"
    assert final["priceText"].startswith("Total 9.12 EUR incl. VAT: 22 kWh, 1:00 h")


async def test_16_remote_start_is_told_the_price_when_its_start_transaction_is_accepted(
    session_factory, costing_gateway, monkeypatch
):
    """California Pricing: a remote start has no Authorize at the charger, so SetUserPrice follows the accepted
    StartTransaction; a driver told at an Authorize is not told twice."""
    monkeypatch.setattr(e2e, "Charger16", Display16)
    _set_up(session_factory, "cp16-rs", "1.6")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    async with e2e.charger(costing_gateway, "cp16-rs", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await _until_stored(session_factory, "cp16-rs", "true")
        started = await e2e.csms_call(costing_gateway, "cp16-rs", "RemoteStartTransaction", {"idTag": "DRIVER"})
        assert started == {"status": "Accepted"}
        assert [kind for kind, _ in _cost_messages(cp)] == []  # nothing before the session starts
        first = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER", meter_start=0, timestamp=start.isoformat())
        )
        for _ in range(100):
            if _cost_messages(cp):
                break
            await asyncio.sleep(0.05)
        [(_, data)] = [m for m in _cost_messages(cp) if m[0] == "SetUserPrice"]
        assert data["idToken"] == "DRIVER" and "0.30 EUR/kWh" in data["priceText"]
        stop = (start + timedelta(minutes=5)).isoformat()
        await cp.call(call16.StopTransaction(transaction_id=first.transaction_id, meter_stop=1_000, timestamp=stop))
        # the next session is authorized at the charger: told once, at the Authorize
        await cp.call(call16.Authorize(id_tag="DRIVER"))
        later = (start + timedelta(minutes=6)).isoformat()
        await cp.call(call16.StartTransaction(connector_id=1, id_tag="DRIVER", meter_start=1_000, timestamp=later))
        await asyncio.sleep(1.0)
    assert [kind for kind, _ in _cost_messages(cp)].count("SetUserPrice") == 2
