"""What real chargers do that the spec does not ask for, against the gateway over real WebSockets on loopback,
with the ``ocpp`` package's own ChargePoint as the station (docs/hardware.md lists the vendor families):
a StatusNotification before the BootNotification, energy registers in kWh without a measurand, a meterStop
the firmware did not know (0) with the closing values after the StopTransaction, and numbers sent as strings
where the schema wants numbers. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import websockets
from ocpp.exceptions import SecurityError
from ocpp.v16 import call as call16
from sqlalchemy import select

from csms.services import transactions
from csms.store import models
from tests.csms.test_ocpp_chargepoint import charger, now_iso, provision, the_transaction


async def test_status_before_boot_is_refused_until_accepted_and_the_status_after_boot_is_kept(gateway, session_factory):
    provision(session_factory, "eve-1", "1.6")
    async with charger(gateway, "eve-1", "1.6") as cp:
        with pytest.raises(SecurityError):
            status = call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
            await cp.call(status, suppress=False)
        boot = await cp.call(call16.BootNotification(charge_point_vendor="EVerest", charge_point_model="M"))
        assert boot.status == "Accepted"
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
    with session_factory() as db:
        (connector,) = db.scalars(select(models.Connector)).all()
        assert connector.status == "Preparing"


async def test_kwh_registers_and_a_meter_stop_the_firmware_did_not_know_keep_the_energy(gateway, session_factory):
    # Alfen-style samples (kWh, no measurand: the register is the default) and a MicroOcpp-style stop: meterStop 0
    # ("unknown"), the closing register reading in a MeterValues with context Transaction.End after it.
    provision(session_factory, "evse-1", "1.6")
    async with charger(gateway, "evse-1", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="OpenEVSE", charge_point_model="M"))
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="GOOD", meter_start=0, timestamp=now_iso())
        )
        tx_id = started.transaction_id
        for i, kwh in enumerate(("1.250", "2.500")):
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=tx_id,
                    meter_value=[{"timestamp": now_iso(i + 1), "sampled_value": [{"value": kwh, "unit": "kWh"}]}],
                )
            )
        await cp.call(call16.StopTransaction(transaction_id=tx_id, meter_stop=0, timestamp=now_iso(10), reason="Local"))
        closing = {"value": "3.125", "unit": "kWh", "context": "Transaction.End"}
        late = [{"timestamp": now_iso(10), "sampled_value": [closing]}]
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=late))
    summary = transactions.summary(the_transaction(session_factory))
    assert (summary["status"], summary["energy_kwh"]) == ("completed", 3.125)


async def test_a_number_sent_as_a_string_where_the_schema_wants_a_number_is_a_type_constraint_violation(
    gateway, session_factory
):
    provision(session_factory, "str-1", "1.6")
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/str-1"
    async with websockets.connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps([2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]))
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        start = {"connectorId": 1, "idTag": "GOOD", "meterStart": "12000", "timestamp": now_iso()}
        await ws.send(json.dumps([2, "s1", "StartTransaction", start]))
        answer = json.loads(await ws.recv())
        assert answer[:3] == [4, "s1", "TypeConstraintViolation"]
        # a fractional Wh where 1.6 wants an integer (seen from simulators: shiv3/ocpp-cp-simulator#83)
        await ws.send(json.dumps([2, "s0", "StartTransaction", {**start, "meterStart": 12000.5}]))
        assert json.loads(await ws.recv())[:3] == [4, "s0", "TypeConstraintViolation"]
        # the same number as the string 1.6 wants for a sampled value counts
        start["meterStart"] = 12000
        await ws.send(json.dumps([2, "s2", "StartTransaction", start]))
        tx_id = json.loads(await ws.recv())[2]["transactionId"]
        sample = {"timestamp": now_iso(1), "sampledValue": [{"value": "12500.00", "unit": "Wh"}]}
        values = {"connectorId": 1, "transactionId": tx_id, "meterValue": [sample]}
        await ws.send(json.dumps([2, "m1", "MeterValues", values]))
        assert json.loads(await ws.recv()) == [3, "m1", {}]
    assert the_transaction(session_factory).last_meter_wh == 12500.0
