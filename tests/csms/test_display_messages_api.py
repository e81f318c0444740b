"""Display messages end to end: ``run_server`` on loopback, the ``ocpp`` package's own ChargePoints as stations;
the CSMS numbers the messages, keeps each answer, stores what a 2.0.1 station reports, and tells an operator
that a 1.6 charger without the DataTransfer extension does not show them; then the CLI."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms import cli
from tests.csms.test_configuration_api import add_station, connect
from tests.support.live import API_KEY, live_csms


class Display201(ChargePoint201):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown: dict[int, dict[str, Any]] = {}

    @on("SetDisplayMessage")
    def set_message(self, message: dict[str, Any], **_: Any) -> Any:
        if message["message"]["format"] == "HTML":
            return result201.SetDisplayMessage(status="NotSupportedMessageFormat")
        self.shown[message["id"]] = message
        return result201.SetDisplayMessage(status="Accepted")

    @on("GetDisplayMessages")
    def get_messages(self, request_id: int, **_: Any) -> Any:
        return result201.GetDisplayMessages(status="Accepted" if self.shown else "Unknown")

    @after("GetDisplayMessages")
    async def report(self, request_id: int, **_: Any) -> None:
        infos = [
            {"id": m["id"], "priority": m["priority"], "message": m["message"]} for m in self.shown.values()
        ]  # the ocpp package's snake_case, which it turns into the wire's camelCase
        await self.call(call201.NotifyDisplayMessages(request_id=request_id, message_info=infos, tbc=False))

    @on("ClearDisplayMessage")
    def clear_message(self, id: int, **_: Any) -> Any:
        return result201.ClearDisplayMessage(status="Accepted" if self.shown.pop(id, None) else "Unknown")


class Plain16(ChargePoint16):
    @on("DataTransfer")
    def data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return result16.DataTransfer(status="UnknownVendorId")


async def test_the_csms_numbers_sends_and_keeps_display_messages(database_url, capsys, monkeypatch):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "dm201", "2.0.1")
        await add_station(client, "dm16", "1.6")
        async with connect(endpoints, "dm201", "ocpp2.0.1") as ws201, connect(endpoints, "dm16", "ocpp1.6") as ws16:
            station = Display201("dm201", ws201, response_timeout=10)
            plain = Plain16("dm16", ws16, response_timeout=10)
            tasks = [asyncio.create_task(station.start()), asyncio.create_task(plain.start())]
            try:
                boot = call201.BootNotification(charging_station={"vendor_name": "A", "model": "D1"}, reason="PowerUp")
                assert (await station.call(boot)).status == "Accepted"
                first = (await client.post("/stations/dm201/display-messages", json={"text": "Welcome"})).json()
                assert (first["message"]["message_id"], first["message"]["status"]) == (1, "Accepted")
                body = {"text": "<b>x</b>", "format": "HTML", "priority": "AlwaysFront"}
                second = (await client.post("/stations/dm201/display-messages", json=body)).json()
                refused = (2, "NotSupportedMessageFormat")
                assert (second["message"]["message_id"], second["message"]["status"]) == refused
                assert station.shown[1]["message"] == {"format": "UTF8", "content": "Welcome"}
                backwards = {"text": "x", "start": "2026-12-05T10:00:00Z", "end": "2026-12-05T09:00:00Z"}
                bad = await client.post("/stations/dm201/display-messages", json=backwards)
                assert bad.status_code == 422

                query = await client.post("/stations/dm201/display-messages/query", json={})
                assert query.json()["payload"] == {"status": "Accepted"}
                for _ in range(50):  # NotifyDisplayMessages follows the answer
                    rows = (await client.get("/stations/dm201/display-messages")).json()
                    if any(r["status"] == "reported" for r in rows):
                        break
                    await asyncio.sleep(0.1)
                assert [(r["message_id"], r["status"]) for r in rows] == [(1, "reported"), refused]

                monkeypatch.setenv("CHARGETWIN_API_KEY", API_KEY)
                api = ["--api-url", endpoints.api_url]
                status = await asyncio.to_thread(cli.main, ["stations", "clear-display-message", "dm201", "1", *api])
                assert status == 0, capsys.readouterr()
                assert station.shown == {}
                listing = await client.get("/stations/dm201/display-messages", params={"include_cleared": True})
                everything = listing.json()
                assert [r["status"] for r in everything] == ["cleared", "NotSupportedMessageFormat"]

                status = await asyncio.to_thread(cli.main, ["stations", "display-message", "dm16", "Hello", *api])
                assert status == 1 and "NotSupported" in capsys.readouterr().out
                no_query = await client.post("/stations/dm16/display-messages/query", json={})
                assert no_query.status_code == 422
            finally:
                for task in tasks:
                    task.cancel()
