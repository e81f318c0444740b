"""The HTTP API end to end: the real gateway and app, the ``ocpp`` package's ChargePoints as independent chargers.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture behind ``session_factory``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.api.app import create_app

API_KEY = "test-key-0123456789"
PASSWORD = "station-password-1"


def iso(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat()


class Charger16(ChargePoint16):
    """A 1.6 charger that records what the CSMS asked of it."""

    received: list[tuple[str, dict[str, Any]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = []

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> result16.Reset:
        self.received.append(("Reset", kwargs))
        return result16.Reset(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **kwargs: Any) -> result16.GetConfiguration:
        self.received.append(("GetConfiguration", kwargs))
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        )

    @on("RemoteStartTransaction")
    def on_remote_start(self, **kwargs: Any) -> result16.RemoteStartTransaction:
        self.received.append(("RemoteStartTransaction", kwargs))
        return result16.RemoteStartTransaction(status="Accepted")

    @on("TriggerMessage")
    def on_trigger_message(self, **kwargs: Any) -> result16.TriggerMessage:
        self.received.append(("TriggerMessage", kwargs))
        return result16.TriggerMessage(status="Accepted")

    @on("GetDiagnostics")
    def on_get_diagnostics(self, **kwargs: Any) -> result16.GetDiagnostics:
        self.received.append(("GetDiagnostics", kwargs))
        return result16.GetDiagnostics(file_name="diagnostics.zip")

    @on("UpdateFirmware")
    def on_update_firmware(self, **kwargs: Any) -> result16.UpdateFirmware:
        self.received.append(("UpdateFirmware", kwargs))
        return result16.UpdateFirmware()

    @on("RemoteStopTransaction")
    def on_remote_stop(self, **kwargs: Any) -> result16.RemoteStopTransaction:
        self.received.append(("RemoteStopTransaction", kwargs))
        return result16.RemoteStopTransaction(status="Accepted")

    @on("ClearCache")
    async def on_clear_cache(self, **kwargs: Any) -> result16.ClearCache:
        await asyncio.sleep(1.0)  # slower than the API's ?timeout
        return result16.ClearCache(status="Accepted")


class Charger201(ChargePoint201):
    received: list[tuple[str, dict[str, Any]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = []

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> result201.Reset:
        self.received.append(("Reset", kwargs))
        return result201.Reset(status="Accepted")

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kwargs: Any) -> result201.GetVariables:
        self.received.append(("GetVariables", {"get_variable_data": get_variable_data}))
        return result201.GetVariables(
            get_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "attribute_value": "60",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in get_variable_data
            ]
        )

    @on("RequestStartTransaction")
    def on_request_start(self, **kwargs: Any) -> result201.RequestStartTransaction:
        self.received.append(("RequestStartTransaction", kwargs))
        return result201.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    def on_request_stop(self, **kwargs: Any) -> result201.RequestStopTransaction:
        self.received.append(("RequestStopTransaction", kwargs))
        return result201.RequestStopTransaction(status="Accepted")


# ---- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(session_factory, gateway, API_KEY)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=10) as c:
        yield c


async def provision(client: httpx.AsyncClient, station_id: str, version: str) -> None:
    body = {"id": station_id, "password": PASSWORD, "ocpp_version": version}
    response = await client.post("/api/v1/stations", json=body)
    assert response.status_code == 201, response.text


@contextlib.asynccontextmanager
async def charger(gateway, station_id: str, version: str) -> AsyncIterator[Any]:
    """Connect a ChargePoint with Basic auth and get it accepted (BootNotification)."""
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(url, subprotocols=[subprotocol], additional_headers={"Authorization": auth}) as ws:
        cp = (Charger16 if version == "1.6" else Charger201)(station_id, ws)
        runner = asyncio.create_task(cp.start())
        try:
            if version == "1.6":
                boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="AC22"))
            else:
                boot = await cp.call(
                    call201.BootNotification(
                        charging_station={"vendor_name": "Acme", "model": "DC150"}, reason="PowerUp"
                    )
                )
            assert boot.status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            # (the CSMS may have closed the connection itself: an operator's disconnect)
            with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.ConnectionClosed):
                await runner


# ---- auth and provisioning ----------------------------------------------------------------------------------
async def test_api_key_is_required(client, session_factory):
    bare = {"Authorization": ""}
    response = await client.get("/api/v1/stations", headers=bare)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "API key" in response.json()["detail"]
    response = await client.get("/api/v1/stations", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    dashboard = await client.get("/", headers=bare)
    assert dashboard.status_code == 303 and dashboard.headers["location"] == "/signin"
    assert (await client.get("/openapi.json", headers=bare)).status_code == 200


async def test_stored_keys_work_until_revoked(client, session_factory, now):
    from csms.services import apikeys

    with session_factory() as db:
        row, key = apikeys.create(db, "ops", now)
        db.commit()
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/stations", headers=headers)).status_code == 200
    with session_factory() as db:
        apikeys.revoke(db, row.id)
        db.commit()
    assert (await client.get("/api/v1/stations", headers=headers)).status_code == 401


async def test_provision_get_and_accept(client):
    await provision(client, "cp-1", "1.6")
    station = (await client.get("/api/v1/stations/cp-1")).json()
    assert station["ocpp_version"] == "1.6"
    assert station["registration_policy"] == "accept"
    assert station["connected"] is False
    assert "password" not in station and "password_hash" not in station

    duplicate = await client.post("/api/v1/stations", json={"id": "cp-1", "password": PASSWORD, "ocpp_version": "1.6"})
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["detail"]
    bad_version = await client.post("/api/v1/stations", json={"id": "cp-2", "password": "x", "ocpp_version": "1.5"})
    assert bad_version.status_code == 422
    assert (await client.get("/api/v1/stations/nope")).status_code == 404

    pending = {"id": "cp-3", "password": None, "ocpp_version": "2.0.1", "registration_policy": "pending"}
    assert (await client.post("/api/v1/stations", json=pending)).status_code == 201
    accepted = await client.patch("/api/v1/stations/cp-3", json={"registration_policy": "accept"})
    assert accepted.json()["registration_policy"] == "accept"
    assert (await client.patch("/api/v1/stations/cp-3", json={"registration_policy": "maybe"})).status_code == 422
    assert (await client.patch("/api/v1/stations/cp-3", json={"unknown": 1})).status_code == 422
    assert [s["id"] for s in (await client.get("/api/v1/stations")).json()] == ["cp-1", "cp-3"]


async def test_security_profile_and_password_rules(client):
    body = {"id": "cp-3", "password": None, "ocpp_version": "2.0.1", "security_profile": 3}
    created = await client.post("/api/v1/stations", json=body)
    assert created.status_code == 201 and created.json()["security_profile"] == 3
    plain = await client.post("/api/v1/stations", json={"id": "cp-1", "password": PASSWORD, "ocpp_version": "1.6"})
    assert plain.json()["security_profile"] == 1
    raised = await client.patch("/api/v1/stations/cp-1", json={"security_profile": 2})
    assert raised.status_code == 200 and raised.json()["security_profile"] == 2
    no_password = await client.patch("/api/v1/stations/cp-3", json={"security_profile": 2})
    assert no_password.status_code == 422 and "needs a password" in no_password.json()["detail"]
    assert (await client.patch("/api/v1/stations/cp-1", json={"security_profile": 4})).status_code == 422

    for version, password in [
        ("2.0.1", ""), ("2.0.1", "short-pw"), ("2.0.1", " " * 20), ("2.0.1", "x" * 41), ("2.0.1", "has a space in it!"),
        ("1.6", "x" * 21), ("1.6", "fifteen-chars!!"),
    ]:  # fmt: skip
        refused = await client.post(
            "/api/v1/stations", json={"id": "cp-x", "password": password, "ocpp_version": version}
        )
        assert refused.status_code == 422, (version, password, refused.text)
    too_short = await client.patch("/api/v1/stations/cp-1", json={"password": "pw"})
    assert too_short.status_code == 422 and "16-20" in too_short.json()["detail"]
    assert [s["id"] for s in (await client.get("/api/v1/stations")).json()] == ["cp-1", "cp-3"]


async def test_bad_input_is_4xx(client):
    cases = [
        ("GET", "/api/v1/stations/a%00b", None),
        ("GET", "/api/v1/transactions/99999999999999999999", None),
        ("GET", "/api/v1/transactions?since=yesterday", None),
        ("GET", "/api/v1/transactions?limit=0", None),
        ("POST", "/api/v1/stations", {"id": "a\u0000b", "password": "x", "ocpp_version": "1.6"}),
        ("POST", "/api/v1/stations", {"id": "x" * 49, "password": "x", "ocpp_version": "1.6"}),
        ("POST", "/api/v1/stations", [1, 2]),
        ("POST", "/api/v1/tokens", {"id_token": "T", "status": "Maybe"}),
        ("POST", "/api/v1/tokens", {"id_token": "T" * 37}),
        ("PATCH", "/api/v1/tokens/nope", {"status": "Blocked"}),
        ("POST", "/api/v1/stations/nope/calls/Reset", {"type": "Soft"}),
        ("POST", "/api/v1/stations/nope/calls/Re-set", {}),
    ]
    for method, url, body in cases:
        response = await client.request(method, url, json=body)
        assert 400 <= response.status_code < 500, (method, url, response.status_code, response.text)
        assert response.json()["detail"]


# ---- id tokens ----------------------------------------------------------------------------------------------
async def test_tokens_create_update_list(client):
    expiry = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await client.post(
        "/api/v1/tokens", json={"id_token": "TAG-1", "group_id": "fleet", "expiry": expiry.isoformat()}
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "Accepted"
    assert datetime.fromisoformat(created.json()["expiry"]) == expiry
    await client.post("/api/v1/tokens", json={"id_token": "TAG-2", "status": "Blocked", "type": "Central"})
    assert (await client.post("/api/v1/tokens", json={"id_token": "TAG-1"})).status_code == 409

    updated = await client.patch("/api/v1/tokens/TAG-1", json={"status": "Expired", "group_id": None})
    assert updated.json()["status"] == "Expired" and updated.json()["group_id"] is None
    assert updated.json()["expiry"] is not None  # left out: unchanged

    listed = (await client.get("/api/v1/tokens")).json()
    assert [(t["id_token"], t["status"], t["type"]) for t in listed] == [
        ("TAG-1", "Expired", "ISO14443"),
        ("TAG-2", "Blocked", "Central"),
    ]
    assert [t["id_token"] for t in (await client.get("/api/v1/tokens?status=Blocked")).json()] == ["TAG-2"]
    assert (await client.get("/api/v1/tokens/TAG-2")).json()["status"] == "Blocked"
    assert (await client.get("/api/v1/tokens/NOPE")).status_code == 404


async def test_token_expiry_is_enforced_for_chargers(client, gateway):
    await provision(client, "cp-exp", "1.6")
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await client.post("/api/v1/tokens", json={"id_token": "OLD", "expiry": past})
    async with charger(gateway, "cp-exp", "1.6") as cp:
        answer = await cp.call(call16.Authorize(id_tag="OLD"))
    assert answer.id_tag_info["status"] == "Expired"


# ---- live stations and calls --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_station_list_shows_connection_and_connector_status(client, gateway, version):
    await provision(client, "cp-live", version)
    async with charger(gateway, "cp-live", version) as cp:
        if version == "1.6":
            await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            await cp.call(call16.StatusNotification(connector_id=2, error_code="GroundFailure", status="Faulted"))
        else:
            await cp.call(
                call201.StatusNotification(timestamp=iso(), connector_status="Available", evse_id=1, connector_id=1)
            )
            await cp.call(
                call201.StatusNotification(timestamp=iso(), connector_status="Faulted", evse_id=2, connector_id=1)
            )
        (station,) = (await client.get("/api/v1/stations")).json()
        assert station["connected"] is True
        assert station["vendor"] == "Acme"
        assert station["registration_status"] == "Accepted"
        assert station["last_seen_at"] is not None
        ports = [(c["evse_id"], c["connector_id"], c["status"]) for c in station["connectors"]]
        assert ports == [(1, 1, "Available"), (2, 1, "Faulted")]
        if version == "1.6":
            assert station["connectors"][1]["error_code"] == "GroundFailure"
        page = await client.get("/")
        assert page.status_code == 200 and "cp-live" in page.text and "connected" in page.text
        refused = await client.get("/", params={"key": API_KEY}, headers={"Authorization": ""})
        assert refused.status_code == 400 and "query string" in refused.json()["detail"]
    for _ in range(100):
        if not gateway.is_connected("cp-live"):
            break
        await asyncio.sleep(0.02)
    assert (await client.get("/api/v1/stations/cp-live")).json()["connected"] is False


async def test_calls_round_trip_16(client, gateway):
    await provision(client, "cp16", "1.6")
    async with charger(gateway, "cp16", "1.6") as cp:
        reset = await client.post("/api/v1/stations/cp16/calls/Reset", json={"type": "Hard"})
        assert reset.status_code == 200, reset.text
        assert reset.json()["outcome"] == "result"
        assert reset.json()["payload"] == {"status": "Accepted"}
        config = (await client.post("/api/v1/stations/cp16/calls/GetConfiguration", json={"key": ["Heartbeat"]})).json()
        assert config["payload"]["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert cp.received == [("Reset", {"type": "Hard"}), ("GetConfiguration", {"key": ["Heartbeat"]})]

        # The charger has no handler: its CALLERROR comes back as it is.
        unlocked = await client.post("/api/v1/stations/cp16/calls/UnlockConnector", json={"connector_id": 1})
        assert unlocked.status_code == 422  # snake_case is not the wire format: invalid before sending
        unlocked = (await client.post("/api/v1/stations/cp16/calls/UnlockConnector", json={"connectorId": 1})).json()
        assert unlocked["outcome"] == "error"
        assert unlocked["error"]["code"] == "NotImplemented"

        invalid = await client.post("/api/v1/stations/cp16/calls/Reset", json={"type": "Gentle"})
        assert invalid.status_code == 422 and "Reset" in invalid.json()["detail"]
        unknown = await client.post("/api/v1/stations/cp16/calls/GetVariables", json={"getVariableData": []})
        assert unknown.status_code == 422 and "not defined in OCPP 1.6" in unknown.json()["detail"]

        slow = await client.post("/api/v1/stations/cp16/calls/ClearCache", params={"timeout": 0.3}, json={})
        assert slow.status_code == 200
        assert slow.json()["outcome"] == "timeout"
        assert (await client.post("/api/v1/stations/cp16/calls/Reset", params={"timeout": 0})).status_code == 422
    for _ in range(100):
        if not gateway.is_connected("cp16"):
            break
        await asyncio.sleep(0.02)
    gone = await client.post("/api/v1/stations/cp16/calls/Reset", json={"type": "Soft"})
    assert gone.status_code == 409
    assert "not connected" in gone.json()["detail"]


async def test_calls_round_trip_201(client, gateway):
    await provision(client, "cp201", "2.0.1")
    async with charger(gateway, "cp201", "2.0.1") as cp:
        request = {
            "getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]
        }
        answer = (await client.post("/api/v1/stations/cp201/calls/GetVariables", json=request)).json()
        assert answer["outcome"] == "result"
        (result,) = answer["payload"]["getVariableResult"]
        assert result["attributeStatus"] == "Accepted" and result["attributeValue"] == "60"
        assert cp.received[0][0] == "GetVariables"

        unknown = await client.post("/api/v1/stations/cp201/calls/GetConfiguration", json={})
        assert unknown.status_code == 422
        invalid = await client.post("/api/v1/stations/cp201/calls/Reset", json={"type": "Soft"})
        assert invalid.status_code == 422
        error = (await client.post("/api/v1/stations/cp201/calls/ClearCache", json={})).json()
        assert error["outcome"] == "error" and error["error"]["code"] == "NotImplemented"


# ---- typed commands and transactions ------------------------------------------------------------------------
async def test_typed_commands_and_transactions_16(client, gateway):
    await provision(client, "ac-1", "1.6")
    await provision(client, "ac-2", "1.6")
    await client.post("/api/v1/tokens", json={"id_token": "TAG-1"})
    async with charger(gateway, "ac-1", "1.6") as cp:
        started = await client.post("/api/v1/stations/ac-1/remote-start", json={"id_token": "TAG-1", "connector_id": 2})
        assert started.json()["outcome"] == "result", started.text
        assert started.json()["action"] == "RemoteStartTransaction"
        assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "TAG-1", "connector_id": 2})

        t0 = datetime.now(UTC) - timedelta(minutes=30)
        tx = await cp.call(call16.StartTransaction(connector_id=2, id_tag="TAG-1", meter_start=1000, timestamp=iso(t0)))
        sample = {
            "timestamp": iso(t0 + timedelta(minutes=15)),
            "sampled_value": [{"value": "5000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}],
        }
        await cp.call(call16.MeterValues(connector_id=2, transaction_id=tx.transaction_id, meter_value=[sample]))

        stop = await client.post("/api/v1/stations/ac-1/remote-stop", json={"transaction_id": tx.transaction_id})
        assert stop.json()["payload"] == {"status": "Accepted"}
        assert cp.received[-1] == ("RemoteStopTransaction", {"transaction_id": tx.transaction_id})
        await cp.call(
            call16.StopTransaction(
                transaction_id=tx.transaction_id, meter_stop=12500, timestamp=iso(t0 + timedelta(minutes=29))
            )
        )
        wrong_station = await client.post(
            "/api/v1/stations/ac-2/remote-stop", json={"transaction_id": tx.transaction_id}
        )
        assert wrong_station.status_code == 404

        reset = await client.post("/api/v1/stations/ac-1/reset", json={"type": "hard"})
        assert reset.json()["outcome"] == "result"
        assert cp.received[-1] == ("Reset", {"type": "Hard"})
        await client.post("/api/v1/stations/ac-1/reset")
        assert cp.received[-1] == ("Reset", {"type": "Soft"})

    listed = (await client.get("/api/v1/transactions", params={"station_id": "ac-1"})).json()
    (only,) = listed
    assert only["id"] == tx.transaction_id
    assert only["energy_kwh"] == pytest.approx(11.5)
    assert only["status"] == "completed"
    assert (await client.get("/api/v1/transactions", params={"station_id": "ac-2"})).json() == []
    since = (t0 + timedelta(minutes=1)).isoformat()
    assert (await client.get("/api/v1/transactions", params={"since": since})).json() == []
    assert len((await client.get("/api/v1/transactions", params={"until": since, "status": "completed"})).json()) == 1

    detail = (await client.get(f"/api/v1/transactions/{tx.transaction_id}")).json()
    assert detail["energy_wh"] == pytest.approx(11500)
    assert [s["value"] for s in detail["samples"]] == [5000.0]
    assert (await client.get("/api/v1/transactions/424242")).status_code == 404


async def test_typed_commands_and_transactions_201(client, gateway):
    await provision(client, "dc-1", "2.0.1")
    async with charger(gateway, "dc-1", "2.0.1") as cp:
        started = (
            await client.post("/api/v1/stations/dc-1/remote-start", json={"id_token": "APP-7", "evse_id": 1})
        ).json()
        assert started["outcome"] == "result" and started["action"] == "RequestStartTransaction"
        action, request = cp.received[-1]
        assert action == "RequestStartTransaction"
        assert request["id_token"] == {"id_token": "APP-7", "type": "ISO14443"}
        assert request["evse_id"] == 1
        assert request["remote_start_id"] == started["remote_start_id"]

        t0 = datetime.now(UTC) - timedelta(minutes=20)

        def energy(when: datetime, value: float, unit: str) -> list[dict[str, Any]]:
            reading = {"value": value, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": unit}}
            return [{"timestamp": iso(when), "sampled_value": [reading]}]

        info = {"transaction_id": "dc1-tx-9", "remote_start_id": started["remote_start_id"]}
        await cp.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=iso(t0),
                trigger_reason="RemoteStart",
                seq_no=0,
                transaction_info=info,
                evse={"id": 1, "connector_id": 1},
                meter_value=energy(t0, 2000, "Wh"),
            )
        )
        await cp.call(
            call201.TransactionEvent(
                event_type="Updated",
                timestamp=iso(t0 + timedelta(minutes=10)),
                trigger_reason="MeterValuePeriodic",
                seq_no=1,
                transaction_info={"transaction_id": "dc1-tx-9"},
                meter_value=energy(t0 + timedelta(minutes=10), 4.5, "kWh"),
            )
        )
        (tx,) = (await client.get("/api/v1/transactions", params={"station_id": "dc-1"})).json()
        assert tx["charger_transaction_id"] == "dc1-tx-9"
        assert tx["energy_kwh"] == pytest.approx(2.5)
        assert tx["status"] == "active"

        stop = (await client.post("/api/v1/stations/dc-1/remote-stop", json={"transaction_id": tx["id"]})).json()
        assert stop["action"] == "RequestStopTransaction" and stop["outcome"] == "result"
        assert cp.received[-1] == ("RequestStopTransaction", {"transaction_id": "dc1-tx-9"})

        for kind, wire in (("soft", "OnIdle"), ("hard", "Immediate")):
            reset = (await client.post("/api/v1/stations/dc-1/reset", json={"type": kind})).json()
            assert reset["outcome"] == "result"
            assert cp.received[-1] == ("Reset", {"type": wire})
        assert (await client.post("/api/v1/stations/dc-1/reset", json={"type": "warm"})).status_code == 422
    detail = (await client.get(f"/api/v1/transactions/{tx['id']}")).json()
    assert [(s["value"], s["unit"]) for s in detail["samples"]] == [(2000.0, "Wh"), (4500.0, "Wh")]  # base units


async def test_openapi_lists_the_endpoints(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/stations",
        "/api/v1/stations/{station_id}",
        "/api/v1/stations/{station_id}/calls/{action}",
        "/api/v1/stations/{station_id}/remote-start",
        "/api/v1/stations/{station_id}/remote-stop",
        "/api/v1/stations/{station_id}/reset",
        "/api/v1/tokens",
        "/api/v1/tokens/{id_token}",
        "/api/v1/transactions",
        "/api/v1/transactions/{transaction_id}",
    ):
        assert path in paths
