"""A station's settings and the typed commands around connectors and profiles, end to end: ``run_server`` on
loopback, the ``ocpp`` package's own 1.6 and 2.0.1 ChargePoints as the stations (they check our calls against
their schemas), the API as the operator's door; then the CLI against the same server."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201

from csms import cli
from csms.runtime.server import Endpoints
from tests.support.live import API_KEY, live_csms

PASSWORD = "station-pass-0016"  # 1.6: 16-20 characters


async def add_station(client: httpx.AsyncClient, station_id: str, version: str) -> None:
    response = await client.post("/stations", json={"id": station_id, "password": PASSWORD, "ocpp_version": version})
    assert response.status_code == 201, response.text


def connect(endpoints: Endpoints, station_id: str, subprotocol: str) -> Any:
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    url = endpoints.ocpp_url.format(station_id=station_id)
    return websockets.connect(url, subprotocols=[subprotocol], additional_headers={"Authorization": auth})  # type: ignore[list-item]


class Station16(ChargePoint16):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}
        self.cleared: dict[str, Any] = {}

    @on("GetConfiguration")
    def get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        known = [k for k in (key or list(self.config)) if k in self.config]
        rows = [{"key": k, "value": self.config[k], "readonly": k == "HeartbeatInterval"} for k in known]
        unknown = [k for k in (key or []) if k not in self.config]
        return result16.GetConfiguration(configuration_key=rows, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def change_configuration(self, key: str, value: str, **_: Any) -> Any:
        if key == "HeartbeatInterval":
            return result16.ChangeConfiguration(status="Rejected")
        self.config[key] = value
        return result16.ChangeConfiguration(status="Accepted")

    @on("UnlockConnector")
    def unlock(self, connector_id: int, **_: Any) -> Any:
        return result16.UnlockConnector(status="Unlocked" if connector_id == 1 else "NotSupported")

    @on("ClearChargingProfile")
    def clear(self, **criteria: Any) -> Any:
        self.cleared = criteria
        return result16.ClearChargingProfile(status="Accepted")


class Station201(ChargePoint201):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.values = {("OCPPCommCtrlr", "HeartbeatInterval"): "300"}

    @on("GetVariables")
    def get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        out = []
        for item in get_variable_data:
            name = (item["component"]["name"], item["variable"]["name"])
            found = name in self.values
            out.append(
                {"attribute_status": "Accepted" if found else "UnknownVariable", "component": item["component"],
                 "variable": item["variable"], **({"attribute_value": self.values[name]} if found else {})}
            )  # fmt: skip
        return result201.GetVariables(get_variable_result=out)

    @on("SetVariables")
    def set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        out = []
        for item in set_variable_data:
            name = (item["component"]["name"], item["variable"]["name"])
            status = "Accepted" if name in self.values else "UnknownComponent"
            if status == "Accepted":
                self.values[name] = item["attribute_value"]
            out.append({"attribute_status": status, "component": item["component"], "variable": item["variable"]})
        return result201.SetVariables(set_variable_result=out)

    @on("GetCompositeSchedule")
    def composite(self, duration: int, evse_id: int, **_: Any) -> Any:
        periods = [{"start_period": 0, "limit": 16.0}]
        schedule = {"evse_id": evse_id, "duration": duration, "schedule_start": "2026-12-04T00:00:00Z",
                    "charging_rate_unit": "A", "charging_schedule_period": periods}  # fmt: skip
        return result201.GetCompositeSchedule(status="Accepted", schedule=schedule)


async def _station(cls: type, ws: Any, station_id: str) -> tuple[Any, asyncio.Task[None]]:
    station = cls(station_id, ws, response_timeout=10)
    return station, asyncio.create_task(station.start())


async def test_settings_of_a_16_station_are_read_changed_and_kept(database_url):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "cfg16", "1.6")
        async with connect(endpoints, "cfg16", "ocpp1.6") as ws:
            station, task = await _station(Station16, ws, "cfg16")
            try:
                got = await client.post("/stations/cfg16/variables/get", json={"variables": []})
                assert got.status_code == 200, got.text
                assert {(r["variable"], r["status"], r["value"]) for r in got.json()["results"]} == {
                    ("HeartbeatInterval", "Accepted", "300"),
                    ("MeterValueSampleInterval", "Accepted", "60"),
                }
                body = {"values": [{"variable": "MeterValueSampleInterval", "value": "15"},
                                   {"variable": "HeartbeatInterval", "value": "30"}]}  # fmt: skip
                changed = (await client.post("/stations/cfg16/variables/set", json=body)).json()
                assert [(r["variable"], r["status"]) for r in changed["results"]] == [
                    ("MeterValueSampleInterval", "Accepted"),
                    ("HeartbeatInterval", "Rejected"),
                ]
                assert station.config["MeterValueSampleInterval"] == "15"
                stored = (await client.get("/stations/cfg16/variables")).json()
                assert {(r["component"], r["variable"], r["value"], r["readonly"]) for r in stored} == {
                    (None, "HeartbeatInterval", "300", True),  # the rejected change left the reported value
                    (None, "MeterValueSampleInterval", "15", False),
                }
                secret = {"values": [{"variable": "AuthorizationKey", "value": "3132333435363738393031323334353637"}]}
                refused = await client.post("/stations/cfg16/variables/set", json=secret)
                assert refused.status_code == 422 and "/password" in refused.json()["detail"]
                unlock = (await client.post("/stations/cfg16/unlock", json={"evse_id": 1})).json()
                assert unlock["payload"] == {"status": "Unlocked"}
                clear = await client.post("/stations/cfg16/charging-profiles/clear",
                                          json={"evse_id": 1, "purpose": "ChargingStationMaxProfile"})  # fmt: skip
                assert clear.json()["payload"] == {"status": "Accepted"}
                assert station.cleared == {"connector_id": 1, "charging_profile_purpose": "ChargePointMaxProfile"}
            finally:
                task.cancel()


async def test_device_model_variables_of_a_201_station_through_the_api_and_the_cli(database_url, capsys, monkeypatch):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "cfg201", "2.0.1")
        async with connect(endpoints, "cfg201", "ocpp2.0.1") as ws:
            station, task = await _station(Station201, ws, "cfg201")
            try:
                nameless = await client.post("/stations/cfg201/variables/get", json={"variables": [{"variable": "X"}]})
                assert nameless.status_code == 422
                wanted = [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
                          {"component": "Nope", "variable": "Missing"}]  # fmt: skip
                got = (await client.post("/stations/cfg201/variables/get", json={"variables": wanted})).json()
                assert [(r["component"], r["status"], r["value"]) for r in got["results"]] == [
                    ("OCPPCommCtrlr", "Accepted", "300"),
                    ("Nope", "UnknownVariable", None),
                ]
                monkeypatch.setenv("CHARGETWIN_API_KEY", API_KEY)
                api = ["--api-url", endpoints.api_url]
                status = await asyncio.to_thread(
                    cli.main, ["stations", "configure", "cfg201", "OCPPCommCtrlr.HeartbeatInterval=120", *api]
                )
                assert status == 0, capsys.readouterr()
                assert station.values[("OCPPCommCtrlr", "HeartbeatInterval")] == "120"
                status = await asyncio.to_thread(cli.main, ["stations", "get-config", "cfg201", "Foo.Bar", *api])
                out = capsys.readouterr().out
                assert status == 1 and "Foo.Bar" in out and "UnknownVariable" in out, out
                status = await asyncio.to_thread(
                    cli.main, ["stations", "composite-schedule", "cfg201", "1", "--duration", "3600", *api]
                )
                assert status == 0 and "GetCompositeSchedule" in capsys.readouterr().out
                stored = (await client.get("/stations/cfg201/variables", params={"component": "OCPPCommCtrlr"})).json()
                assert [(r["variable"], r["value"]) for r in stored] == [("HeartbeatInterval", "120")]
            finally:
                task.cancel()


class Limited201(ChargePoint201):
    """Takes at most two variables a GetVariables (it says so in DeviceDataCtrlr.ItemsPerMessage[GetVariables])."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []

    @on("GetVariables")
    def get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        self.sizes.append(len(get_variable_data))
        values = {("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): "2"}
        out = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"], item["variable"].get("instance"))
            status = "Accepted" if len(get_variable_data) <= 2 and key in values else "Rejected"
            out.append({"attribute_status": status, "component": item["component"], "variable": item["variable"],
                        **({"attribute_value": values[key]} if status == "Accepted" else {})})  # fmt: skip
        return result201.GetVariables(get_variable_result=out)


async def test_get_variables_are_split_by_what_the_station_takes_in_one_message(database_url):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "lim201", "2.0.1")
        async with connect(endpoints, "lim201", "ocpp2.0.1") as ws:
            station, task = await _station(Limited201, ws, "lim201")
            try:
                limit = {"component": {"name": "DeviceDataCtrlr"},
                         "variable": {"name": "ItemsPerMessage", "instance": "GetVariables"}}  # fmt: skip
                first = await client.post("/stations/lim201/calls/GetVariables", json={"getVariableData": [limit]})
                assert first.json()["payload"]["getVariableResult"][0]["attributeValue"] == "2"
                stored = (await client.get("/stations/lim201/variables", params={"variable": "ItemsPerMessage"})).json()
                assert [(r["instance"], r["value"]) for r in stored] == [("GetVariables", "2")]
                three = [limit, {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                         {"component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled"}}]  # fmt: skip
                raw = (await client.post("/stations/lim201/calls/GetVariables", json={"getVariableData": three})).json()
                assert station.sizes == [1, 2, 1]  # B06.FR.05: never more than the station takes
                assert [r["variable"]["name"] for r in raw["payload"]["getVariableResult"]] == [
                    "ItemsPerMessage", "HeartbeatInterval", "Enabled"]  # fmt: skip
                typed = {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
                                       {"component": "AuthCtrlr", "variable": "Enabled"},
                                       {"component": "DeviceDataCtrlr", "variable": "ItemsPerMessage",
                                        "instance": "GetVariables"}]}  # fmt: skip
                got = (await client.post("/stations/lim201/variables/get", json=typed)).json()
                assert len(got["calls"]) == 2 and station.sizes[-2:] == [2, 1]
            finally:
                task.cancel()
