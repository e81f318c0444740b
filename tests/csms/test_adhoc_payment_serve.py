"""Ad-hoc payment at the charger (issue 19), against a real ``csms serve --card-processor sandbox`` with the
``ocpp`` package's own ChargePoint as the charger's payment terminal: a declined card is refused (NoCredit), an
approved one is pre-authorised and told so, its session is captured for its CDR total plus the disclosed card fee,
and a session whose cost reaches the hold is stopped by the CSMS (RequestStopTransaction)."""

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


class Terminal201(ChargePoint):
    """A 2.0.1 charger with a payment terminal: it remembers the stops the CSMS asks for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stops: list[str] = []

    @on("RequestStopTransaction")
    def on_stop(self, transaction_id: str, **_: Any) -> result201.RequestStopTransaction:
        self.stops.append(transaction_id)
        return result201.RequestStopTransaction(status="Accepted")

    @on("CostUpdated")
    def on_cost_updated(self, **_: Any) -> result201.CostUpdated:
        return result201.CostUpdated()


def _card(session: str, card: str) -> dict[str, Any]:
    return {
        "id_token": session,
        "type": "Local",
        "additional_info": [{"additional_id_token": card, "type": "PaymentCard"}],
    }


def _api(endpoint: Any) -> httpx.Client:
    return httpx.Client(base_url=endpoint.api_url + "/api/v1", headers={"Authorization": f"Bearer {endpoint.api_key}"})


@pytest.mark.timeout(180)
async def test_a_card_at_the_charger_is_held_captured_for_its_cdr_and_stopped_at_its_hold(tmp_path: Path):
    with chargetwin(tmp_path, "--card-processor", "sandbox", "--adhoc-preauth", "20") as endpoint:
        with _api(endpoint) as api:
            station = {"id": "cp-pay", "password": None, "ocpp_version": "2.0.1", "registration_policy": "accept"}
            assert api.post("/stations", json=station).status_code == 201
            assert api.put("/tariffs/STANDARD", json=EXAMPLE).status_code == 201
            assert api.patch("/stations/cp-pay", json={"tariff_id": "STANDARD"}).status_code == 200
            fee = api.put("/payment-fees/card/EUR", json={"fixed": "0.25", "percent": "1.4"})
            assert fee.status_code == 200, fee.text

        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=150)
        async with websockets.connect(endpoint.ws_url + "/cp-pay", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            cp = Terminal201("cp-pay", ws, response_timeout=10)
            runner = asyncio.create_task(cp.start())
            try:
                boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
                assert (await cp.call(boot)).status == "Accepted"

                broke = await cp.call(call201.Authorize(id_token=_card("PT-0001", "card_nofunds_4000")))
                assert broke.id_token_info["status"] == "NoCredit"

                held = await cp.call(call201.Authorize(id_token=_card("PT-0002", "card_visa_4242")))
                assert held.id_token_info["status"] == "Accepted"
                text = held.id_token_info["personal_message"]["content"]
                assert text.startswith("20.00 EUR pre-authorised on your card.") and "0.30 EUR/kWh" in text

                token, evse = _card("PT-0002", "card_visa_4242"), {"id": 1, "connector_id": 1}
                started = await cp.call(_event("Started", 0, start, 0, "Authorized", id_token=token, evse=evse))
                assert started.id_token_info["status"] == "Accepted"
                await cp.call(_event("Updated", 1, start + timedelta(minutes=60), 8_800, "MeterValuePeriodic"))
                final = await cp.call(_event("Ended", 2, start + timedelta(minutes=150), 22_000, "StopAuthorized"))
                assert Decimal(str(final.total_cost)) == Decimal("12.72")
                assert cp.stops == []

                # a second card: its session runs into its hold (20.00 less 5 % and the card fee: 18.49)
                over = _card("PT-0003", "card_visa_5555")
                assert (await cp.call(call201.Authorize(id_token=over))).id_token_info["status"] == "Accepted"
                info = {"info": {"transaction_id": "tx-2"}}
                evse2 = {"id": 2, "connector_id": 1}
                await cp.call(_event("Started", 0, start, 0, "Authorized", id_token=over, evse=evse2, **info))
                cheap = await cp.call(
                    _event("Updated", 1, start + timedelta(minutes=30), 30_000, "MeterValuePeriodic", **info)
                )
                assert Decimal(str(cheap.total_cost)) == Decimal("12.00") and cp.stops == []
                dear = await cp.call(
                    _event("Updated", 2, start + timedelta(minutes=45), 48_100, "MeterValuePeriodic", **info)
                )
                assert Decimal(str(dear.total_cost)) == Decimal("18.52")
                async with asyncio.timeout(10):
                    while not cp.stops:
                        await asyncio.sleep(0.05)
                assert cp.stops == ["tx-2"]
                ended = await cp.call(_event("Ended", 3, start + timedelta(minutes=46), 48_500, "RemoteStop", **info))
                assert Decimal(str(ended.total_cost)) == Decimal("18.66")
                # a used card's session token pays for nothing more
                again = await cp.call(call201.Authorize(id_token=_card("PT-0002", "card_visa_4242")))
                assert again.id_token_info["status"] == "Invalid"
            finally:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await runner

        with _api(endpoint) as api:
            first, second = sorted(api.get("/transactions").json(), key=lambda t: t["id"])
            cdr = api.get(f"/transactions/{first['id']}/cdr").json()
            assert cdr["total_cost"]["incl_vat"] == 12.72 and cdr["cdr_token"]["type"] == "AD_HOC_USER"
            ledger = api.get("/accounts/adhoc-card-EUR/ledger").json()

            def lines(tx: dict[str, Any]) -> list[tuple[str, str]]:
                charged = [e for e in ledger if e["reference"] == f"transaction:{tx['id']}"]
                paid = [e for e in ledger if e["kind"] == "payment" and e["at"] == charged[0]["at"]]
                assert len(paid) == 1 and paid[0]["reference"].startswith("card:sbx_auth_")
                return [(e["kind"], e["amount"]) for e in [*charged, *paid]]

            # 12.72 and its disclosed fee 0.25 + 1.4 % (0.18), captured together
            assert lines(first) == [("charge", "12.72"), ("fee", "0.43"), ("payment", "-13.15")]
            assert any("card processing fee" in e["description"] for e in ledger)
            second_cdr = api.get(f"/transactions/{second['id']}/cdr").json()
            assert second_cdr["total_cost"]["incl_vat"] == 18.66
            # 18.66 + fee 0.51 = 19.17 <= 20.00: all captured, nothing over the hold
            assert lines(second) == [("charge", "18.66"), ("fee", "0.51"), ("payment", "-19.17")]
            assert api.get("/accounts/adhoc-card-EUR").json()["balance"] == "0.00"
