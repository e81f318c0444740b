"""The 2.0.1 device model through the API with the ``ocpp`` package's ChargePoint as the station: a base report
kept as the station's variables, monitors kept with the ids the station gave them, a NotifyEvent from a monitor
that raises a `monitor_alert` alert and resolves it, the station's events readable; then the CLI; 1.6 refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms import cli
from tests.csms.test_configuration_api import add_station, connect
from tests.support.live import API_KEY, live_csms


class Station(ChargePoint201):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.next_id = 40

    @on("GetBaseReport")
    def base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        return result201.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    async def report(self, request_id: int, **_: Any) -> None:
        data = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
                 "variable_attribute": [{"type": "Actual", "value": "300", "mutability": "ReadWrite"}]}]  # fmt: skip
        now = datetime.now(UTC).isoformat()
        await self.call(call201.NotifyReport(request_id=request_id, generated_at=now, seq_no=0, report_data=data))

    @on("SetVariableMonitoring")
    def set_monitoring(self, set_monitoring_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in set_monitoring_data:
            self.next_id += 1
            results.append({"id": self.next_id, "status": "Accepted", "type": item["type"],
                            "severity": item["severity"], "component": item["component"],
                            "variable": item["variable"]})  # fmt: skip
        return result201.SetVariableMonitoring(set_monitoring_result=results)

    @on("ClearVariableMonitoring")
    def clear_monitoring(self, id: list[int], **_: Any) -> Any:
        return result201.ClearVariableMonitoring(clear_monitoring_result=[{"id": i, "status": "Accepted"} for i in id])

    async def power_event(self, monitor_id: int, watts: int, *, cleared: bool) -> None:
        item: dict[str, Any] = {"event_id": watts, "timestamp": datetime.now(UTC).isoformat(), "trigger": "Alerting",
                                "actual_value": str(watts), "event_notification_type": "CustomMonitor",
                                "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
                                "variable_monitoring_id": monitor_id}  # fmt: skip
        if cleared:
            item["cleared"] = True
        now = datetime.now(UTC).isoformat()
        await self.call(call201.NotifyEvent(generated_at=now, seq_no=0, event_data=[item]))


async def _eventually(check: Any) -> Any:
    for _ in range(50):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    return await check()


async def test_base_report_monitors_and_monitor_alerts(database_url, capsys, monkeypatch):
    async with live_csms(database_url) as (endpoints, client):
        await add_station(client, "dm1", "2.0.1")
        await add_station(client, "old16", "1.6")
        async with connect(endpoints, "dm1", "ocpp2.0.1") as ws:
            station = Station("dm1", ws, response_timeout=10)
            task = asyncio.create_task(station.start())
            try:
                boot = call201.BootNotification(charging_station={"vendor_name": "A", "model": "M"}, reason="PowerUp")
                assert (await station.call(boot)).status == "Accepted"
                report = await client.post("/stations/dm1/reports", json={"base": "ConfigurationInventory"})
                assert report.json()["payload"] == {"status": "Accepted"}

                async def reported() -> Any:
                    return (await client.get("/stations/dm1/variables")).json()

                rows = await _eventually(reported)
                assert [(r["component"], r["variable"], r["value"]) for r in rows] == [
                    ("OCPPCommCtrlr", "HeartbeatInterval", "300")
                ]
                monitor = {"component": "EVSE", "evse_id": 1, "variable": "Power", "type": "UpperThreshold",
                           "value": 7000, "severity": 4}  # fmt: skip
                answer = (await client.post("/stations/dm1/monitors", json={"monitors": [monitor]})).json()
                assert [(m["monitor_id"], m["status"]) for m in answer["monitors"]] == [(41, "Accepted")]

                await station.power_event(41, 11000, cleared=False)

                async def alert_open() -> Any:
                    alerts = (await client.get("/alerts", params={"station_id": "dm1"})).json()
                    return [a for a in alerts if a["rule"] == "monitor_alert" and a["resolved_at"] is None]

                (alert,) = await _eventually(alert_open)
                assert alert["evse_id"] == 1 and alert["details"]["actual"] == "11000"
                await station.power_event(41, 3000, cleared=True)
                assert await _eventually(lambda: _negate(alert_open))  # resolved
                events = (await client.get("/stations/dm1/events", params={"kind": "device_event"})).json()
                assert len(events) == 2

                monkeypatch.setenv("CHARGETWIN_API_KEY", API_KEY)
                api = ["--api-url", endpoints.api_url]
                lower = ["stations", "monitor", "dm1", "EVSE@1.Power", "--type", "LowerThreshold", "--value", "100"]
                status = await asyncio.to_thread(cli.main, [*lower, *api])
                assert status == 0 and "monitor 42: Accepted" in capsys.readouterr().out
                status = await asyncio.to_thread(cli.main, ["stations", "clear-monitor", "dm1", "41", "42", *api])
                assert status == 0, capsys.readouterr()
                assert (await client.get("/stations/dm1/monitors")).json() == []
                listing = ["stations", "events", "dm1", "--kind", "device_event", *api]
                status = await asyncio.to_thread(cli.main, listing)
                assert status == 0 and capsys.readouterr().out.count("device_event") == 2
                refused = await client.post("/stations/old16/monitors", json={"monitors": [monitor]})
                assert refused.status_code == 422 and "1.6" in refused.json()["detail"]
            finally:
                task.cancel()


async def _negate(check: Any) -> bool:
    return not await check()
