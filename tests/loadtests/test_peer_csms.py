"""The benchmark's peer (``loadtests/peer/``) is a working 1.6 central system with the ``ocpp`` package's schema
validation on: what the ratio of ``bench_gateway.py --peer`` is measured against."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import orjson
import websockets
from websockets.typing import Subprotocol

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

from peer.afternoon_csms import open_database, serve

NOW = "2026-01-05T10:00:00+00:00"


async def test_peer_stores_a_charging_session_and_refuses_invalid_frames(tmp_path):
    db = open_database(str(tmp_path / "peer.db"), id_tags=["TAG1"])
    server = await serve(db, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sample = {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/CP1", subprotocols=[Subprotocol("ocpp1.6")]) as ws:

            async def call(action: str, payload: dict) -> list:
                await ws.send(orjson.dumps([2, action, action, payload]).decode())
                return orjson.loads(await ws.recv())

            boot = await call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            assert boot[2]["status"] == "Accepted"
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
            assert (await call("StatusNotification", status))[0] == 3
            assert (await call("Authorize", {"idTag": "STRANGER"}))[2]["idTagInfo"]["status"] == "Invalid"
            start = await call(
                "StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": NOW}
            )
            assert start[2]["idTagInfo"]["status"] == "Accepted"
            tx = start[2]["transactionId"]
            reading = {"timestamp": NOW, "sampledValue": [sample]}
            assert (await call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [reading]}))[0] == 3
            # Schema validation is on: a MeterValues without its connectorId is a CALLERROR, and nothing is stored.
            refused = await call("MeterValues", {"transactionId": tx, "meterValue": [reading]})
            assert refused[0] == 4 and refused[2] == "ProtocolError", refused
            stop = {"meterStop": 1500, "timestamp": NOW, "transactionId": tx, "reason": "EVDisconnected"}
            assert (await call("StopTransaction", stop))[0] == 3
    finally:
        server.close()
        await server.wait_closed()
        db.close()

    with closing(sqlite3.connect(tmp_path / "peer.db")) as stored:
        assert stored.execute("SELECT vendor, model FROM stations WHERE id = 'CP1'").fetchone() == ("V", "M")
        assert stored.execute("SELECT status FROM connector_status WHERE station_id = 'CP1'").fetchall() == [
            ("Preparing",)
        ]
        assert stored.execute("SELECT meter_start_wh, meter_stop_wh, stop_reason FROM transactions").fetchall() == [
            (0, 1500, "EVDisconnected")
        ]
        assert stored.execute("SELECT transaction_id, value FROM meter_samples").fetchall() == [(tx, 1500.0)]
