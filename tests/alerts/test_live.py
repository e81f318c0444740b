"""End to end over real sockets: ``run_server`` (gateway + API + alert monitor + webhook sender) on loopback,
``ocpp`` ChargePoints that upload diagnostics and download firmware over HTTP. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.alerts import AlertRules, RemediationPolicy
from csms.runtime.server import Endpoints
from tests.alerts.test_webhooks import SECRET, Receiver
from tests.support.live import eventually, live_csms

PASSWORD = "station-password-1"
DIAGNOSTICS = b"2026-01-15 22:00:00 ground fault on connector 1\n" * 50
FIRMWARE = bytes(range(256)) * 64


class Station16(ChargePoint16):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.downloaded: bytes | None = None

    @on("GetDiagnostics")
    def on_get_diagnostics(self, location: str, **kwargs: Any) -> result16.GetDiagnostics:
        self.received.append(("GetDiagnostics", {"location": location, **kwargs}))
        return result16.GetDiagnostics(file_name="diag-cp16.log")

    @after("GetDiagnostics")
    async def upload(self, location: str, **kwargs: Any) -> None:
        await self.call(call16.DiagnosticsStatusNotification(status="Uploading"))
        async with httpx.AsyncClient() as client:  # multipart, as most 1.6 firmwares do over HTTP
            response = await client.post(location, files={"file": ("diag-cp16.log", DIAGNOSTICS, "text/plain")})
        status = "Uploaded" if response.status_code == 201 else "UploadFailed"
        await self.call(call16.DiagnosticsStatusNotification(status=status))

    @on("UpdateFirmware")
    def on_update_firmware(self, location: str, retrieve_date: str, **kwargs: Any) -> result16.UpdateFirmware:
        self.received.append(("UpdateFirmware", {"location": location}))
        return result16.UpdateFirmware()

    @after("UpdateFirmware")
    async def download(self, location: str, **kwargs: Any) -> None:
        await self.call(call16.FirmwareStatusNotification(status="Downloading"))
        async with httpx.AsyncClient() as client:
            response = await client.get(location)
        if response.status_code != 200:
            await self.call(call16.FirmwareStatusNotification(status="DownloadFailed"))
            return
        self.downloaded = response.content
        for status in ("Downloaded", "Installing", "Installed"):
            await self.call(call16.FirmwareStatusNotification(status=status))

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> result16.Reset:
        self.received.append(("Reset", kwargs))
        return result16.Reset(status="Accepted")

    @on("ChangeAvailability")
    def on_change_availability(self, **kwargs: Any) -> result16.ChangeAvailability:
        self.received.append(("ChangeAvailability", kwargs))
        return result16.ChangeAvailability(status="Accepted")

    @on("TriggerMessage")
    def on_trigger(self, **kwargs: Any) -> result16.TriggerMessage:
        self.received.append(("TriggerMessage", kwargs))
        return result16.TriggerMessage(status="Accepted")


class Station201(ChargePoint201):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.downloaded: bytes | None = None

    @on("GetLog")
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **kwargs: Any) -> result201.GetLog:
        return result201.GetLog(status="Accepted", filename="security.log")

    @after("GetLog")
    async def upload(self, log: dict[str, Any], request_id: int, **kwargs: Any) -> None:
        await self.call(call201.LogStatusNotification(status="Uploading", request_id=request_id))
        async with httpx.AsyncClient() as client:  # a raw PUT body this time
            response = await client.put(log["remote_location"], content=DIAGNOSTICS, headers={"X-File-Name": "x.log"})
        status = "Uploaded" if response.status_code == 201 else "UploadFailure"
        await self.call(call201.LogStatusNotification(status=status, request_id=request_id))

    @on("UpdateFirmware")
    def on_update_firmware(self, firmware: dict[str, Any], request_id: int, **kwargs: Any) -> result201.UpdateFirmware:
        return result201.UpdateFirmware(status="Accepted")

    @after("UpdateFirmware")
    async def download(self, firmware: dict[str, Any], request_id: int, **kwargs: Any) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(firmware["location"])
        self.downloaded = response.content
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            await self.call(call201.FirmwareStatusNotification(status=status, request_id=request_id))


@contextlib.asynccontextmanager
async def station(endpoints: Endpoints, client: httpx.AsyncClient, station_id: str, version: str) -> AsyncIterator[Any]:
    body = {"id": station_id, "password": PASSWORD, "ocpp_version": version}
    assert (await client.post("/stations", json=body)).status_code == 201
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    url = endpoints.ocpp_url.format(station_id=station_id)
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(url, subprotocols=[subprotocol], additional_headers={"Authorization": auth}) as ws:
        cp = (Station16 if version == "1.6" else Station201)(station_id, ws)
        runner = asyncio.create_task(cp.start())
        try:
            if version == "1.6":
                boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="AC22"))
            else:
                boot = await cp.call(
                    call201.BootNotification(charging_station={"vendor_name": "Acme", "model": "DC"}, reason="PowerUp")
                )
            assert boot.status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def transfer(client: httpx.AsyncClient, station_id: str, transfer_id: int) -> dict[str, Any]:
    rows = (await client.get(f"/stations/{station_id}/transfers")).json()
    return next(r for r in rows if r["id"] == transfer_id)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_diagnostics_upload_and_firmware_download_over_http(database_url, version):
    async with live_csms(database_url) as (endpoints, client), station(endpoints, client, "cp-x", version) as cp:
        # Diagnostics: GetDiagnostics (1.6) / GetLog (2.0.1) -> the station uploads to our one-time URL.
        response = await client.post("/stations/cp-x/diagnostics", json={})
        assert response.status_code == 200, response.text
        sent = response.json()
        assert sent["call"]["outcome"] == "result"
        assert sent["call"]["action"] == ("GetDiagnostics" if version == "1.6" else "GetLog")
        assert sent["location"].startswith(endpoints.api_url + "/uploads/diagnostics/")
        diag_id = sent["transfer"]["id"]
        done = await eventually(
            lambda: _finished(client, "cp-x", diag_id),
        )
        assert (done["status"], done["size"]) == ("Uploaded", len(DIAGNOSTICS))
        content = await client.get(f"/stations/cp-x/transfers/{diag_id}/content")
        assert content.content == DIAGNOSTICS
        # The upload URL works once.
        again = await httpx.AsyncClient().put(sent["location"], content=b"again")
        assert again.status_code == 409

        # Firmware: stored, then UpdateFirmware with a token URL the station downloads from.
        stored = await client.post("/firmware-files?name=fw-2.1.bin", content=FIRMWARE)
        assert stored.status_code == 201, stored.text
        response = await client.post("/stations/cp-x/firmware", json={"name": "fw-2.1.bin"})
        assert response.status_code == 200, response.text
        fw = response.json()
        assert fw["call"]["outcome"] == "result"
        done = await eventually(lambda: _finished(client, "cp-x", fw["transfer"]["id"]))
        assert done["status"] == "Installed"
        assert cp.downloaded == FIRMWARE
        async with httpx.AsyncClient() as anyone:
            wrong = await anyone.get(fw["location"].split("?")[0] + "?token=" + "x" * 43)
            assert wrong.status_code == 404
            assert (await anyone.get(fw["location"])).content == FIRMWARE  # stations may retry a download
            assert (await anyone.get(endpoints.api_url + "/firmware-files")).status_code == 401


async def _finished(client: httpx.AsyncClient, station_id: str, transfer_id: int) -> dict[str, Any] | None:
    row = await transfer(client, station_id, transfer_id)
    return row if row["finished"] else None


async def test_fault_raises_alert_remediates_and_notifies_webhook(database_url):
    rules = AlertRules(faulted_after_s=0.3)
    remediation = RemediationPolicy(enabled=True, after_s=0.5, max_per_day=1)
    with Receiver(failures=0) as receiver:
        async with live_csms(database_url, alert_rules=rules, remediation=remediation) as (endpoints, client):
            hook = await client.post("/webhooks", json={"url": receiver.url, "secret": SECRET, "events": ["alert.*"]})
            assert hook.status_code == 201, hook.text
            async with station(endpoints, client, "cp-f", "1.6") as cp:
                await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
                await cp.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))

                async def faulted() -> list[dict[str, Any]]:
                    return [a for a in (await client.get("/alerts?open=true")).json() if a["rule"] == "faulted"]

                [alert] = await eventually(faulted)
                assert (alert["station_id"], alert["evse_id"], alert["severity"]) == ("cp-f", 1, "critical")
                assert alert["details"]["error_code"] == "GroundFailure"
                await eventually(lambda: _async(any(name == "Reset" for name, _ in cp.received)))
                assert ("Reset", {"type": "Soft"}) in cp.received

                acked = await client.post(f"/alerts/{alert['id']}/acknowledge", json={"by": "ops"})
                assert acked.json()["acknowledged_by"] == "ops"
                await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
                await eventually(lambda: _async_none(faulted))
                resolved = next(a for a in (await client.get("/alerts")).json() if a["id"] == alert["id"])
                assert resolved["resolved_at"] is not None and resolved["resolved_by"] is None

                # Operator commands from the API.
                off = await client.post("/stations/cp-f/change-availability", json={"evse_id": 1, "operative": False})
                assert off.json()["outcome"] == "result"
                assert ("ChangeAvailability", {"connector_id": 1, "type": "Inoperative"}) in cp.received
                trig = await client.post("/stations/cp-f/trigger", json={"message": "LogStatusNotification"})
                assert trig.json()["outcome"] == "result"
                assert ("TriggerMessage", {"requested_message": "DiagnosticsStatusNotification"}) in cp.received

            async def delivered() -> list[str] | None:
                rows = (await client.get(f"/webhooks/{hook.json()['id']}/deliveries")).json()
                # only this alert's: on a loaded machine a slow heartbeat may raise (and resolve) another one
                mine = [r for r in rows if r["status"] == "delivered" and r["payload"]["data"]["id"] == alert["id"]]
                types = sorted(r["event_type"] for r in mine)
                return types if len(types) >= 3 else None

            assert await eventually(delivered) == ["alert.acknowledged", "alert.raised", "alert.resolved"]
    assert all(h["X-Chargetwin-Signature"].startswith("t=") for h, _ in receiver.requests)


async def _async(value: Any) -> Any:
    return value


async def _async_none(check: Callable[[], Awaitable[list[Any]]]) -> bool:
    return not await check()
