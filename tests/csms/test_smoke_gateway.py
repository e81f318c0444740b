"""A first end-to-end check: the ocpp package's own 1.6 ChargePoint against our gateway."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import websockets
from ocpp.v16 import ChargePoint, call
from sqlalchemy import select

from csms.services import authorization, stations
from csms.store.models import Transaction


async def test_transaction_energy_is_stored_once(gateway, session_factory, now):
    with session_factory() as db:
        stations.provision(db, "cp1", ocpp_version="1.6", password="pw-123456-abcdefg", now=now)
        authorization.create(db, "TAG1", now)
        db.commit()
    auth = "Basic " + base64.b64encode(b"cp1:pw-123456-abcdefg").decode()
    url = f"ws://127.0.0.1:{gateway.port}/ocpp/cp1"
    async with websockets.connect(url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": auth}) as ws:
        cp = ChargePoint("cp1", ws)
        runner = asyncio.create_task(cp.start())
        boot = await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert boot.status == "Accepted"
        started = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG1", meter_start=1000, timestamp=datetime.now(UTC).isoformat()
            )
        )
        stop = call.StopTransaction(
            transaction_id=started.transaction_id, meter_stop=8500, timestamp=datetime.now(UTC).isoformat()
        )
        await cp.call(stop)
        await cp.call(stop)  # a duplicate, as real fleets send
        runner.cancel()
    with session_factory() as db:
        (tx,) = db.scalars(select(Transaction)).all()
        assert tx.energy_wh == 7500.0
        assert tx.status == "completed"
