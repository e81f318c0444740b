"""End to end over real WebSockets on loopback: the ``ocpp`` package's own ChargePoint is an independent
charger (it validates our answers with its own schemas). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from ocpp.exceptions import SecurityError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from sqlalchemy import select

from csms.gateway.server import Gateway
from csms.ocpp.rpc import Outcome
from csms.services import authorization, stations, transactions
from csms.services.config import CsmsConfig
from csms.store import models


def now_iso(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


class Charger16(ChargePoint16):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on("RemoteStartTransaction")
    def on_remote_start(self, **payload: Any) -> result16.RemoteStartTransaction:
        self.received.append(("RemoteStartTransaction", payload))
        return result16.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    def on_remote_stop(self, **payload: Any) -> result16.RemoteStopTransaction:
        self.received.append(("RemoteStopTransaction", payload))
        return result16.RemoteStopTransaction(status="Accepted")

    @on("Reset")
    def on_reset(self, **payload: Any) -> result16.Reset:
        self.received.append(("Reset", payload))
        return result16.Reset(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **payload: Any) -> result16.GetConfiguration:
        self.received.append(("GetConfiguration", payload))
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}], unknown_key=["Nope"]
        )

    @on("ChangeConfiguration")
    def on_change_configuration(self, **payload: Any) -> result16.ChangeConfiguration:
        self.received.append(("ChangeConfiguration", payload))
        return result16.ChangeConfiguration(status="Accepted")

    @on("TriggerMessage")
    def on_trigger(self, **payload: Any) -> result16.TriggerMessage:
        self.received.append(("TriggerMessage", payload))
        return result16.TriggerMessage(status="Accepted")


class Charger201(ChargePoint201):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on("RequestStartTransaction")
    def on_request_start(self, **payload: Any) -> result201.RequestStartTransaction:
        self.received.append(("RequestStartTransaction", payload))
        return result201.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    def on_request_stop(self, **payload: Any) -> result201.RequestStopTransaction:
        self.received.append(("RequestStopTransaction", payload))
        return result201.RequestStopTransaction(status="Accepted")

    @on("Reset")
    def on_reset(self, **payload: Any) -> result201.Reset:
        self.received.append(("Reset", payload))
        return result201.Reset(status="Scheduled")

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> result201.GetVariables:
        self.received.append(("GetVariables", {"get_variable_data": get_variable_data}))
        results = [
            {
                "attribute_status": "Accepted",
                "attribute_value": "300",
                "component": item["component"],
                "variable": item["variable"],
            }
            for item in get_variable_data
        ]
        return result201.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> result201.SetVariables:
        self.received.append(("SetVariables", {"set_variable_data": set_variable_data}))
        results = [
            {"attribute_status": "Accepted", "component": item["component"], "variable": item["variable"]}
            for item in set_variable_data
        ]
        return result201.SetVariables(set_variable_result=results)

    @on("TriggerMessage")
    def on_trigger(self, **payload: Any) -> result201.TriggerMessage:
        self.received.append(("TriggerMessage", payload))
        return result201.TriggerMessage(status="Accepted")


@contextlib.asynccontextmanager
async def charger(gateway: Gateway, station_id: str, version: str, password: str | None = None) -> AsyncIterator[Any]:
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"
    headers = {} if password is None else {"Authorization": basic_auth(station_id, password)}
    async with websockets.connect(url, subprotocols=[subprotocol], additional_headers=headers) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == subprotocol
        cp = (Charger16 if version == "1.6" else Charger201)(station_id, ws, response_timeout=10)
        runner = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def provision(session_factory, station_id: str, version: str, policy: str = "accept") -> None:
    now = datetime.now(UTC)
    with session_factory() as db:
        stations.provision(db, station_id, ocpp_version=version, password=None, now=now, policy=policy)
        authorization.create(db, "GOOD", now)
        authorization.create(db, "BLOCKED", now, status="Blocked")
        authorization.create(db, "OLD", now, expiry=now - timedelta(days=1))
        db.commit()


async def csms_call(gateway: Gateway, station_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    pending = await asyncio.wait_for(gateway.call(station_id, action, payload), 10)
    assert pending.outcome is Outcome.RESULT, pending.as_dict()
    assert pending.payload is not None
    return pending.payload


def the_transaction(session_factory) -> models.Transaction:
    with session_factory() as db:
        (tx,) = db.scalars(select(models.Transaction)).all()
        return tx


async def test_ocpp16_charger_end_to_end(gateway, session_factory):
    provision(session_factory, "cp16", "1.6")
    async with charger(gateway, "cp16", "1.6") as cp:
        boot = await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert (boot.status, boot.interval) == ("Accepted", 300)
        assert (await cp.call(call16.Heartbeat())).current_time
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        statuses = {}
        for tag in ("GOOD", "BLOCKED", "OLD", "NOBODY"):
            statuses[tag] = (await cp.call(call16.Authorize(id_tag=tag))).id_tag_info["status"]
        assert statuses == {"GOOD": "Accepted", "BLOCKED": "Blocked", "OLD": "Expired", "NOBODY": "Invalid"}

        assert await csms_call(gateway, "cp16", "RemoteStartTransaction", {"idTag": "GOOD", "connectorId": 1}) == {
            "status": "Accepted"
        }
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="GOOD", meter_start=12_000, timestamp=now_iso())
        )
        tx_id = started.transaction_id
        assert started.id_tag_info["status"] == "Accepted"
        readings = [12_000 + 1_250 * i for i in range(1, 5)]
        for i, wh in enumerate(readings):
            sampled = [
                {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "32.0", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                {"value": "231.0", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
                {"value": str(40 + i), "measurand": "SoC", "unit": "Percent", "location": "EV"},
            ]
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=tx_id,
                    meter_value=[{"timestamp": now_iso(i + 1), "sampled_value": sampled}],
                )
            )
        assert await csms_call(gateway, "cp16", "RemoteStopTransaction", {"transactionId": tx_id}) == {
            "status": "Accepted"
        }
        await cp.call(
            call16.StopTransaction(
                transaction_id=tx_id, meter_stop=readings[-1], timestamp=now_iso(10), reason="Remote", id_tag="GOOD"
            )
        )

        config = await csms_call(gateway, "cp16", "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
        assert config["configurationKey"][0]["key"] == "HeartbeatInterval"
        change = {"key": "HeartbeatInterval", "value": "60"}
        assert await csms_call(gateway, "cp16", "ChangeConfiguration", change) == {"status": "Accepted"}
        trigger = {"requestedMessage": "StatusNotification", "connectorId": 1}
        assert await csms_call(gateway, "cp16", "TriggerMessage", trigger) == {"status": "Accepted"}
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Finishing"))
        assert await csms_call(gateway, "cp16", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        data = await cp.call(call16.DataTransfer(vendor_id="com.other", message_id="x", data="y"))
        assert data.status == "UnknownVendorId"
        await cp.call(call16.FirmwareStatusNotification(status="Idle"))
        await cp.call(call16.DiagnosticsStatusNotification(status="Idle"))

        assert [name for name, _ in cp.received] == [
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "GetConfiguration",
            "ChangeConfiguration",
            "TriggerMessage",
            "Reset",
        ]
        assert cp.received[0][1] == {"id_tag": "GOOD", "connector_id": 1}

    tx = the_transaction(session_factory)
    summary = transactions.summary(tx)
    assert summary["energy_kwh"] == (readings[-1] - 12_000) / 1000 == 5.0
    assert (summary["status"], summary["stop_reason"], summary["id"]) == ("completed", "Remote", tx_id)
    with session_factory() as db:
        samples = transactions.samples_of(db, tx_id)
        register = [s.value for s in samples if s.measurand == "Energy.Active.Import.Register"]
        assert register == readings
        assert len(samples) == 5 * len(readings)
        connector = db.scalars(select(models.Connector).where(models.Connector.evse_id == 1)).one()
        assert connector.status == "Finishing"
        row = db.get(models.Station, "cp16")
        assert (row.vendor, row.registration_status, row.firmware_status) == ("V", "Accepted", "Idle")


async def test_ocpp201_charger_end_to_end(gateway, session_factory):
    provision(session_factory, "cp201", "2.0.1")
    async with charger(gateway, "cp201", "2.0.1") as cp:
        boot = await cp.call(
            call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
        )
        assert (boot.status, boot.interval) == ("Accepted", 300)
        assert (await cp.call(call201.Heartbeat())).current_time
        await cp.call(
            call201.StatusNotification(timestamp=now_iso(), connector_status="Available", evse_id=1, connector_id=1)
        )
        statuses = {}
        for tag in ("GOOD", "BLOCKED", "OLD", "NOBODY"):
            answer = await cp.call(call201.Authorize(id_token={"id_token": tag, "type": "ISO14443"}))
            statuses[tag] = answer.id_token_info["status"]
        assert statuses == {"GOOD": "Accepted", "BLOCKED": "Blocked", "OLD": "Expired", "NOBODY": "Unknown"}

        start_request = {"idToken": {"idToken": "GOOD", "type": "Central"}, "remoteStartId": 7, "evseId": 1}
        assert await csms_call(gateway, "cp201", "RequestStartTransaction", start_request) == {"status": "Accepted"}

        def event(kind: str, seq: int, kwh: float, trigger: str, **extra: Any) -> call201.TransactionEvent:
            sampled = [
                {"value": kwh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "kWh"}},
                {"value": 22.0, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW", "multiplier": 3}},
                {"value": 31.5, "measurand": "Current.Import", "phase": "L2", "unit_of_measure": {"unit": "A"}},
                {"value": 229.0, "measurand": "Voltage", "phase": "L2-N", "unit_of_measure": {"unit": "V"}},
                {"value": 63, "measurand": "SoC", "location": "EV", "unit_of_measure": {"unit": "Percent"}},
            ]
            return call201.TransactionEvent(
                event_type=kind,
                timestamp=now_iso(seq),
                trigger_reason=trigger,
                seq_no=seq,
                transaction_info={"transaction_id": "TX-9", "remote_start_id": 7, **extra.pop("info", {})},
                evse={"id": 1, "connector_id": 1},
                meter_value=[{"timestamp": now_iso(seq), "sampled_value": sampled}],
                **extra,
            )

        started = await cp.call(
            event("Started", 0, 3.0, "RemoteStart", id_token={"id_token": "GOOD", "type": "Central"})
        )
        assert started.id_token_info["status"] == "Accepted"
        await cp.call(event("Updated", 1, 4.5, "MeterValuePeriodic"))
        await cp.call(event("Updated", 2, 6.25, "MeterValuePeriodic"))
        assert await csms_call(gateway, "cp201", "RequestStopTransaction", {"transactionId": "TX-9"}) == {
            "status": "Accepted"
        }
        ended = event("Ended", 3, 9.5, "RemoteStop", info={"stopped_reason": "Remote"})
        await cp.call(ended)
        await cp.call(ended)  # a replay with the same seqNo

        variable = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        got = await csms_call(gateway, "cp201", "GetVariables", {"getVariableData": [variable]})
        assert got["getVariableResult"][0]["attributeValue"] == "300"
        setting = {**variable, "attributeValue": "60"}
        got = await csms_call(gateway, "cp201", "SetVariables", {"setVariableData": [setting]})
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        trigger = {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}}
        assert await csms_call(gateway, "cp201", "TriggerMessage", trigger) == {"status": "Accepted"}
        await cp.call(
            call201.StatusNotification(timestamp=now_iso(5), connector_status="Occupied", evse_id=1, connector_id=1)
        )
        assert await csms_call(gateway, "cp201", "Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
        report = [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variable_attribute": [{"type": "Actual", "value": "60", "mutability": "ReadWrite"}],
            }
        ]
        await cp.call(call201.NotifyReport(request_id=1, generated_at=now_iso(), seq_no=0, report_data=report))
        data = await cp.call(call201.DataTransfer(vendor_id="com.other"))
        assert data.status == "UnknownVendorId"
        assert [name for name, _ in cp.received] == [
            "RequestStartTransaction",
            "RequestStopTransaction",
            "GetVariables",
            "SetVariables",
            "TriggerMessage",
            "Reset",
        ]

    tx = the_transaction(session_factory)
    summary = transactions.summary(tx)
    assert summary["energy_kwh"] == 9.5 - 3.0
    assert (summary["status"], summary["stop_reason"], tx.remote_start_id) == ("completed", "Remote", 7)
    with session_factory() as db:
        samples = transactions.samples_of(db, tx.id)
        assert len(samples) == 4 * 5
        assert {s.value for s in samples if s.measurand == "Power.Active.Import"} == {22_000_000.0}  # 22 kW x 10^3 in W
        assert [e.seq_no for e in db.scalars(select(models.TransactionEvent))] == [0, 1, 2, 3]
        (variable_row,) = db.scalars(select(models.StationVariable)).all()
        assert (variable_row.component, variable_row.variable, variable_row.value) == (
            "OCPPCommCtrlr",
            "HeartbeatInterval",
            "60",
        )


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_auto_registration_waits_for_the_operator_then_pending_until_accepted(session_factory, version):
    gateway = Gateway(session_factory, CsmsConfig(auto_register=True, call_timeout_s=5.0, pending_interval_s=42))
    await gateway.start("127.0.0.1", 0)
    password = "factory-pass-0123"
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with charger(gateway, "newcomer", version, "first-comer-pass1"):
                pass
        assert refused.value.response.status_code == 401  # noted, not admitted, its password not kept
        with session_factory() as db:
            assert db.get(models.Station, "newcomer") is None
            stations.approve(db, "newcomer", password=password, security_profile=1, now=datetime.now(UTC))
            stations.update(db, "newcomer", {"registration_policy": "pending"})
            db.commit()
        async with charger(gateway, "newcomer", version, password) as cp:
            if version == "1.6":
                boot_call = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
                heartbeat = call16.Heartbeat()
                status = call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
                trigger = {"requestedMessage": "StatusNotification", "connectorId": 1}
            else:
                boot_call = call201.BootNotification(
                    charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"
                )
                heartbeat = call201.Heartbeat()
                status = call201.StatusNotification(
                    timestamp=now_iso(), connector_status="Available", evse_id=1, connector_id=1
                )
                trigger = {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}}
            boot = await cp.call(boot_call)
            assert (boot.status, boot.interval) == ("Pending", 42)
            with pytest.raises(SecurityError):
                await cp.call(heartbeat, suppress=False)
            assert await csms_call(gateway, "newcomer", "TriggerMessage", trigger) == {"status": "Accepted"}
            await cp.call(status, suppress=False)  # the triggered message is allowed
            with pytest.raises(SecurityError):
                await cp.call(status, suppress=False)  # once
            with session_factory() as db:
                row = db.get(models.Station, "newcomer")
                assert (row.auto_registered, row.registration_status, row.ocpp_version) == (True, "Pending", version)
                stations.update(db, "newcomer", {"registration_policy": "accept"})
                db.commit()
            assert (await cp.call(boot_call)).status == "Accepted"
            assert (await cp.call(heartbeat, suppress=False)).current_time
    finally:
        await gateway.stop()
