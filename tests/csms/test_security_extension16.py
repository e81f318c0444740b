# ruff: noqa: F811 - the fixtures (gateway, client, pki) come from test_credentials / test_security_profiles
"""The 1.6 security extension's messages that are not about certificates, with the ``ocpp`` package's own 1.6
ChargePoint over a real WebSocket: SecurityEventNotification (a security event reported by the station),
GetLog/LogStatusNotification (the diagnostics upload path), SignedUpdateFirmware/SignedFirmwareStatusNotification
(the firmware download path), ExtendedTriggerMessage; and 2.0.1 SecurityEventNotification."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201

from tests.csms.test_credentials import Station16, client, gateway, online  # noqa: F401
from tests.csms.test_security_profiles import PASSWORD, connect, pki  # noqa: F401

CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Secure16(Station16):
    @on("GetLog")
    def on_get_log(self, **kwargs: Any) -> result16.GetLog:
        self.received.append(("GetLog", kwargs))
        return result16.GetLog(status="Accepted", filename="security.log")

    @on("SignedUpdateFirmware")
    def on_signed_update_firmware(self, **kwargs: Any) -> result16.SignedUpdateFirmware:
        self.received.append(("SignedUpdateFirmware", kwargs))
        return result16.SignedUpdateFirmware(status="Accepted")

    @on("ExtendedTriggerMessage")
    def on_extended_trigger(self, **kwargs: Any) -> result16.ExtendedTriggerMessage:
        self.received.append(("ExtendedTriggerMessage", kwargs))
        return result16.ExtendedTriggerMessage(status="Accepted")


async def booted16(gateway: Any) -> Any:
    """A connected 1.6 station with the security extension's handlers (closed by the caller's ``stop``)."""
    context = connect(gateway, "cp16", password=PASSWORD, context=None, version="1.6")
    ws = await context.__aenter__()
    cp = Secure16("cp16", ws, response_timeout=5)
    runner = asyncio.create_task(cp.start())
    await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))

    async def stop() -> None:
        runner.cancel()
        await context.__aexit__(None, None, None)

    return cp, stop


async def transfer(client: httpx.AsyncClient, transfer_id: int) -> dict[str, Any]:
    rows = (await client.get("/api/v1/stations/cp16/transfers")).json()
    return next(r for r in rows if r["id"] == transfer_id)


async def test_16_security_event_notification_is_a_station_security_event(gateway, client):
    cp, stop = await booted16(gateway)
    try:
        at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
        await cp.call(
            call16.SecurityEventNotification(type="TamperDetectionActivated", timestamp=at.isoformat(), tech_info="lid")
        )
    finally:
        await stop()
    events = (await client.get("/api/v1/security-events", params={"station_id": "cp16"})).json()
    (event,) = [e for e in events if e["type"] == "TamperDetectionActivated"]
    assert event["origin"] == "station" and event["detail"] == {"techInfo": "lid"}
    assert datetime.fromisoformat(event["at"]) == at


async def test_201_security_event_notification_is_a_station_security_event(gateway, client):
    async with online(gateway, "cp1", PASSWORD) as cp:
        await cp.call(
            call201.SecurityEventNotification(type="FirmwareUpdated", timestamp=datetime.now(UTC).isoformat())
        )
    events = (await client.get("/api/v1/security-events", params={"station_id": "cp1"})).json()
    assert [(e["type"], e["origin"]) for e in events] == [("FirmwareUpdated", "station")]


async def test_16_get_log_uploads_through_the_diagnostics_path_and_is_tracked(gateway, client):
    cp, stop = await booted16(gateway)
    try:
        answer = await client.post("/api/v1/stations/cp16/log", json={"log_type": "SecurityLog"})
        assert answer.status_code == 200, answer.text
        out = answer.json()
        assert out["call"]["payload"] == {"status": "Accepted", "filename": "security.log"}
        ((action, sent),) = cp.received
        request_id = sent["request_id"]
        assert action == "GetLog" and sent["log_type"] == "SecurityLog"
        assert sent["log"]["remote_location"] == out["location"] and request_id == out["transfer"]["request_id"]
        await cp.call(call16.LogStatusNotification(status="Uploading", request_id=request_id))
        path = httpx.URL(out["location"]).path
        assert (
            await client.put(path, content=b"security log", headers={"x-file-name": "security.log"})
        ).status_code == 201
        await cp.call(call16.LogStatusNotification(status="Uploaded", request_id=request_id))
    finally:
        await stop()
    row = await transfer(client, out["transfer"]["id"])
    assert (row["status"], row["finished"], row["size"]) == ("Uploaded", True, len(b"security log"))


async def test_16_signed_update_firmware_is_tracked_by_signed_firmware_status(gateway, client):
    assert (
        await client.post("/api/v1/firmware-files", params={"name": "fw-2.bin"}, content=b"image")
    ).status_code == 201
    cp, stop = await booted16(gateway)
    try:
        body = {"name": "fw-2.bin", "signing_certificate": CERTIFICATE, "signature": "c2lnbmF0dXJl"}
        answer = await client.post("/api/v1/stations/cp16/signed-firmware", json=body)
        assert answer.status_code == 200, answer.text
        out = answer.json()
        ((action, sent),) = cp.received
        assert action == "SignedUpdateFirmware"
        firmware = sent["firmware"]
        assert firmware["signing_certificate"] == CERTIFICATE and firmware["signature"] == "c2lnbmF0dXJl"
        assert firmware["location"] == out["location"]
        download = await client.get(httpx.URL(out["location"]).path, params=httpx.URL(out["location"]).params)
        assert download.content == b"image"
        for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
            await cp.call(call16.SignedFirmwareStatusNotification(status=status, request_id=sent["request_id"]))
    finally:
        await stop()
    row = await transfer(client, out["transfer"]["id"])
    assert (row["kind"], row["status"], row["finished"]) == ("firmware", "Installed", True)


async def test_16_extended_trigger_message(gateway, client):
    cp, stop = await booted16(gateway)
    try:
        for message in ("LogStatusNotification", "SignChargePointCertificate"):
            answer = await client.post("/api/v1/stations/cp16/extended-trigger", json={"message": message})
            assert answer.status_code == 200 and answer.json()["payload"] == {"status": "Accepted"}
        bad = await client.post("/api/v1/stations/cp16/extended-trigger", json={"message": "Reboot"})
        assert bad.status_code == 422
    finally:
        await stop()
    assert [sent["requested_message"] for _, sent in cp.received] == [
        "LogStatusNotification",
        "SignChargePointCertificate",
    ]


async def test_201_extended_trigger_is_trigger_message(gateway, client):
    async with online(gateway, "cp1", PASSWORD):
        answer = await client.post(
            "/api/v1/stations/cp1/extended-trigger", json={"message": "SignChargePointCertificate"}
        )
        # The station (the ocpp package's ChargePoint without a handler) answers NotImplemented; what matters
        # is what was sent, under 2.0.1's name.
        assert answer.json()["action"] == "TriggerMessage"
