# ruff: noqa: F811 - the fixtures (gateway, client, pki) come from test_credentials / test_security_profiles
"""Reservations through the API with the ``ocpp`` package's own 1.6 and 2.0.1 ChargePoints over real
WebSockets: the CSMS picks the id, stores the station's answer, a transaction uses the reservation up, the
station's status update and the CSMS's own clock end it, bad requests get their 4xx."""

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
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.cli import main
from csms.core.plugins.reservations import ReservationExpiry
from tests.csms.test_credentials import client, gateway  # noqa: F401
from tests.csms.test_security_profiles import PASSWORD, connect, pki  # noqa: F401


def now_text() -> str:
    return datetime.now(UTC).isoformat()


class Reserving16(ChargePoint16):
    answer = "Accepted"
    received: list[dict[str, Any]]

    @on("ReserveNow")
    def on_reserve_now(self, **kwargs: Any) -> result16.ReserveNow:
        self.received.append(kwargs)
        return result16.ReserveNow(status=self.answer)

    @on("CancelReservation")
    def on_cancel(self, **kwargs: Any) -> result16.CancelReservation:
        self.received.append(kwargs)
        return result16.CancelReservation(status="Accepted")


class Reserving201(ChargePoint201):
    answer = "Accepted"
    received: list[dict[str, Any]]

    @on("ReserveNow")
    def on_reserve_now(self, **kwargs: Any) -> result201.ReserveNow:
        self.received.append(kwargs)
        return result201.ReserveNow(status=self.answer)


@contextlib.asynccontextmanager
async def station(gateway: Any, station_id: str, version: str) -> AsyncIterator[Any]:
    """Booted, with connector/EVSE 1 reported Available."""
    async with connect(gateway, station_id, password=PASSWORD, context=None, version=version) as ws:
        cp: Any = (Reserving16 if version == "1.6" else Reserving201)(station_id, ws, response_timeout=5)
        cp.received = []
        runner = asyncio.create_task(cp.start())
        try:
            if version == "1.6":
                await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
                await cp.call(call16.StatusNotification(1, "NoError", "Available", timestamp=now_text()))
            else:
                boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
                await cp.call(boot)
                await cp.call(call201.StatusNotification(now_text(), "Available", 1, 1))
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


async def test_16_reserve_use_and_refusals(gateway, client):
    async with station(gateway, "cp16", "1.6") as cp:
        answer = await client.post(
            "/api/v1/stations/cp16/reservations", json={"id_token": "TAG-1", "connector_id": 1, "valid_for_s": 600}
        )
        assert answer.status_code == 200, answer.text
        reservation = answer.json()["reservation"]
        assert reservation["status"] == "active"
        assert cp.received[0]["reservation_id"] == reservation["id"] and cp.received[0]["connector_id"] == 1
        unknown = await client.post(
            "/api/v1/stations/cp16/reservations", json={"id_token": "TAG-1", "connector_id": 5, "valid_for_s": 60}
        )
        assert unknown.status_code == 422 and "no connector 5" in unknown.json()["detail"]
        start = call16.StartTransaction(1, "TAG-1", 0, now_text(), reservation_id=reservation["id"])
        await cp.call(start)
        used = (await client.get(f"/api/v1/reservations/{reservation['id']}")).json()
        assert used["status"] == "used" and used["transaction_id"] is not None
        again = await client.post(f"/api/v1/stations/cp16/reservations/{reservation['id']}/cancel")
        assert again.status_code == 409
        cp.answer = "Occupied"
        refused = await client.post(
            "/api/v1/stations/cp16/reservations", json={"id_token": "TAG-2", "valid_for_s": 600}
        )
        second = refused.json()["reservation"]
        assert (second["status"], second["evse_id"], second["id"] != reservation["id"]) == ("occupied", None, True)
        assert cp.received[-1]["connector_id"] == 0


async def test_201_cancel_status_update_expiry_and_not_connected(gateway, client):
    gateway.add_plugin(ReservationExpiry(sweep_every_s=60))
    async with station(gateway, "cp1", "2.0.1") as cp:
        body = {"id_token": "TOK", "evse_id": 1, "group_id_token": "FLEET", "valid_for_s": 600}
        first = (await client.post("/api/v1/stations/cp1/reservations", json=body)).json()["reservation"]
        sent = cp.received[0]
        assert sent["id"] == first["id"] and sent["group_id_token"] == {"id_token": "FLEET", "type": "Central"}
        await cp.call(call201.ReservationStatusUpdate(first["id"], "Removed"))
        assert (await client.get(f"/api/v1/reservations/{first['id']}")).json()["status"] == "removed"
        short = (await client.post("/api/v1/stations/cp1/reservations", json={**body, "valid_for_s": 0.3})).json()
        await asyncio.sleep(0.6)
        assert (await client.get(f"/api/v1/reservations/{short['reservation']['id']}")).json()["status"] == "expired"
        listed = (await client.get("/api/v1/reservations", params={"station_id": "cp1", "status": "expired"})).json()
        assert [r["id"] for r in listed] == [short["reservation"]["id"]]
        late = call201.TransactionEvent(
            event_type="Started",
            timestamp=now_text(),
            trigger_reason="Authorized",
            seq_no=0,
            transaction_info={"transaction_id": "late-1"},
            id_token={"id_token": "TOK", "type": "ISO14443"},
            evse={"id": 1, "connector_id": 1},
            reservation_id=short["reservation"]["id"],
        )
        assert (await cp.call(late)).id_token_info is not None  # served by the token rules, as any transaction
        after = (await client.get(f"/api/v1/reservations/{short['reservation']['id']}")).json()
        assert after["status"] == "expired" and "after it ended" in after["detail"]
    offline = await client.post("/api/v1/stations/cp3/reservations", json={"id_token": "TOK", "valid_for_s": 60})
    assert offline.status_code == 409
    assert (await client.get("/api/v1/reservations", params={"station_id": "cp3"})).json() == []
    past = await client.post(
        "/api/v1/stations/cp1/reservations", json={"id_token": "TOK", "expires_at": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422


def test_cli_reserve_refuses_a_bad_duration_with_status_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["stations", "reserve", "cp1", "--token", "T", "--for", "soon"])
    assert exited.value.code == 2 and "not a duration" in capsys.readouterr().err
