"""The issue's "done when", against a real ``csms serve`` process (configured only through its API and flags):
a 2.0.1 session of the ``ocpp`` package's own ChargePoint receives totalCost and CostUpdated, and its CDR total is
the expected figure for 0.30/kWh + 2.00/h after a 60-minute grace + 1.00 flat, VAT 20 % (12.72 for 22 kWh over
150 minutes), debited once to the driver's account."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.api.routes.tariffs import EXAMPLE
from simulator.conformance.publish import chargetwin
from tests.csms.test_cdrs import _event


class Driver201(ChargePoint):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.costs: list[dict[str, Any]] = []

    @on("CostUpdated")
    def on_cost_updated(self, **payload: Any) -> result201.CostUpdated:
        self.costs.append(payload)
        return result201.CostUpdated()


def _api(endpoint: Any) -> httpx.Client:
    return httpx.Client(base_url=endpoint.api_url + "/api/v1", headers={"Authorization": f"Bearer {endpoint.api_key}"})


@pytest.mark.timeout(180)
async def test_csms_serve_tells_the_driver_the_cost_and_closes_with_the_cdr(tmp_path: Path):
    with chargetwin(tmp_path, "--cost-update-interval", "0.5", "--tariff-time-zone", "Europe/Amsterdam") as endpoint:
        with _api(endpoint) as api:
            station = {"id": "cp-serve", "password": None, "ocpp_version": "2.0.1", "registration_policy": "accept"}
            assert api.post("/stations", json=station).status_code == 201
            assert api.post("/tokens", json={"id_token": "DRIVER", "status": "Accepted"}).status_code == 201
            account = {"id": "acct", "kind": "driver", "name": "D", "billing": "postpaid", "currency": "EUR"}
            assert api.post("/accounts", json=account).status_code == 201
            assert api.post("/accounts/acct/tokens", json={"id_token": "DRIVER"}).status_code == 200
            assert api.put("/tariffs/STANDARD", json=EXAMPLE).status_code == 201
            assert api.patch("/stations/cp-serve", json={"tariff_id": "STANDARD"}).status_code == 200

        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=150)
        async with websockets.connect(endpoint.ws_url + "/cp-serve", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            cp = Driver201("cp-serve", ws, response_timeout=10)
            runner = asyncio.create_task(cp.start())
            try:
                boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
                assert (await cp.call(boot)).status == "Accepted"
                token = {"id_token": "DRIVER", "type": "ISO14443"}
                evse = {"id": 1, "connector_id": 1}
                await cp.call(_event("Started", 0, start, 0, "Authorized", id_token=token, evse=evse))
                answer = await cp.call(_event("Updated", 1, start + timedelta(minutes=60), 8_800, "MeterValuePeriodic"))
                assert Decimal(str(answer.total_cost)) == Decimal("4.37")  # 1.00 + 8.8 x 0.30, incl. 20 % VAT
                async with asyncio.timeout(20):
                    while not cp.costs:
                        await asyncio.sleep(0.1)
                assert cp.costs[0]["transaction_id"] == "tx-1" and cp.costs[0]["total_cost"] >= 4.37
                await cp.call(_event("Updated", 2, start + timedelta(minutes=120), 17_600, "MeterValuePeriodic"))
                final = await cp.call(_event("Ended", 3, start + timedelta(minutes=150), 22_000, "StopAuthorized"))
                assert Decimal(str(final.total_cost)) == Decimal("12.72")
            finally:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await runner

        with _api(endpoint) as api:
            (tx,) = api.get("/transactions").json()
            cdr = api.get(f"/transactions/{tx['id']}/cdr").json()
            assert cdr["total_cost"] == {"excl_vat": 10.6, "incl_vat": 12.72} and cdr["total_energy"] == 22
            charges = [e for e in api.get("/accounts/acct/ledger").json() if e["kind"] == "charge"]
            assert [(c["amount"], c["vat"]) for c in charges] == [("12.72", "2.12")]
