"""START_SESSION and STOP_SESSION with an OCPP 2.0.1 station (the ``ocpp`` package's ChargePoint on a real
WebSocket): RequestStartTransaction with a fresh remoteStartId, the session it started known as the eMSP's by that
id (auth_method COMMAND, the eMSP's authorization_reference), RequestStopTransaction of the charger's id."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.ocpi import models
from simulator.roaming.emsp import Emsp, running_emsp
from tests.ocpi.test_ocpi_commands import result_of
from tests.ocpi.test_ocpi_cpo import LOCATION, PASSWORD, cli, cpo, registered
from tests.support.live import eventually


class Station201(ChargePoint201):
    received: list[tuple[str, dict[str, Any]]]

    @on("RequestStartTransaction")
    def on_start(self, **kwargs: Any) -> result201.RequestStartTransaction:
        self.received.append(("RequestStartTransaction", kwargs))
        return result201.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    def on_stop(self, **kwargs: Any) -> result201.RequestStopTransaction:
        self.received.append(("RequestStopTransaction", kwargs))
        return result201.RequestStopTransaction(status="Accepted")


@contextlib.asynccontextmanager
async def station201(endpoints: Any, client: Any, station_id: str) -> AsyncIterator[Any]:
    body = {"id": station_id, "password": PASSWORD, "ocpp_version": "2.0.1"}
    assert (await client.post("/stations", json=body)).status_code == 201
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    url = endpoints.ocpp_url.format(station_id=station_id)
    async with websockets.connect(url, subprotocols=["ocpp2.0.1"], additional_headers={"Authorization": auth}) as ws:
        cp = Station201(station_id, ws)
        cp.received = []
        runner = asyncio.create_task(cp.start())
        try:
            boot = call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
            assert (await cp.call(boot)).status == "Accepted"
            await cp.call(call201.StatusNotification(datetime.now(UTC).isoformat(), "Available", 1, 1))
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


async def test_start_and_stop_session_on_a_201_station(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-2", *LOCATION)
        assert code == 0, err
        async with emsp.client() as c, station201(endpoints, client, "CP-2") as cp:
            token = {**Emsp.token("APP2", "NEVER"), "type": "APP_USER"}
            start = {"response_url": f"{emsp.base}/2.2.1/commands/START_SESSION/a", "token": token,
                     "location_id": "CP-2", "evse_uid": "CP-2*1", "authorization_reference": "REF-201"}  # fmt: skip
            assert (await c.post(f"{base}/commands/START_SESSION", json=start)).json()["data"]["result"] == "ACCEPTED"
            assert await result_of(emsp, "START_SESSION/a") == {"result": "ACCEPTED"}
            action, sent = cp.received[-1]
            assert action == "RequestStartTransaction" and sent["evse_id"] == 1
            assert sent["id_token"] == {"id_token": "APP2", "type": "Central"} and sent["remote_start_id"] > 0
            # The station starts the transaction it was asked for, naming the remoteStartId.
            started = call201.TransactionEvent(
                event_type="Started", timestamp=datetime.now(UTC).isoformat(), trigger_reason="RemoteStart", seq_no=0,
                transaction_info={"transaction_id": "tx-201", "remote_start_id": sent["remote_start_id"]},
                id_token={"id_token": "APP2", "type": "Central"}, evse={"id": 1, "connector_id": 1},
            )  # fmt: skip
            answer = await cp.call(started)
            assert answer.id_token_info["status"] == "Accepted"

            async def listed() -> list[Any]:
                return (await c.get(f"{base}/sessions")).json()["data"]

            [session] = await eventually(listed)
            models.Session.model_validate(session)
            assert session["auth_method"] == "COMMAND" and session["authorization_reference"] == "REF-201"
            assert session["cdr_token"]["type"] == "APP_USER" and session["evse_uid"] == "CP-2*1"
            stop = {"response_url": f"{emsp.base}/2.2.1/commands/STOP_SESSION/b", "session_id": session["id"]}
            assert (await c.post(f"{base}/commands/STOP_SESSION", json=stop)).json()["data"]["result"] == "ACCEPTED"
            assert await result_of(emsp, "STOP_SESSION/b") == {"result": "ACCEPTED"}
            assert cp.received[-1] == ("RequestStopTransaction", {"transaction_id": "tx-201"})
