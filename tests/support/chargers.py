"""Twin chargers on real sockets for the cluster tests: the sans-IO :class:`~simulator.station.Charger` driven on
the wall clock, dialling the next address of its list on every (re)connect, keeping every CALL the CSMS
acknowledged (CALLRESULT) and the limit it was told; and the check that every acknowledged message is stored."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from datetime import datetime
from typing import Any

import websockets
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from csms.store.models import MeterSample, TransactionEvent
from csms.store.models import Transaction as TxRow
from simulator.station.charger import Charger

SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
FAST = {
    "1.6": {
        "ReconnectBackOffWaitMinimum": "1",
        "ReconnectBackOffRandomRange": "1",
        "MeterValueSampleInterval": "1",
        "TransactionMessageRetryInterval": "1",
    },
    "2.0.1": {
        "OCPPCommCtrlr.RetryBackOffWaitMinimum": "1",
        "OCPPCommCtrlr.RetryBackOffRandomRange": "1",
        "SampledDataCtrlr.TxUpdatedInterval": "1",
        "OCPPCommCtrlr.MessageAttemptInterval": "1",
    },
}
FAST["2.1"] = FAST["2.0.1"]
RATING_W = 16 * 3 * 230.0  # the EVSE rating the tests' sites are given (16 A, three phases)


class TwinMeter:
    """Draws what the charger was told (its rating without a profile); the register integrates it."""

    def __init__(self) -> None:
        self.charger: Charger | None = None
        self._wh, self._at = 0.0, time.time()

    def power_w(self, connector_id: int) -> float:
        if self.charger is None or not self.charger.transactions:
            return 0.0
        limit = self.charger.limit_w(connector_id, time.time())
        return RATING_W if limit is None else min(limit, RATING_W)

    def energy_wh(self, connector_id: int) -> float:
        now = time.time()
        self._wh += self.power_w(connector_id) * (now - self._at) / 3600.0
        self._at = now
        return round(self._wh, 1)

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return (self.power_w(connector_id) / (3 * 230.0),) * 3

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None


class NodeCharger:
    def __init__(self, station_id: str, password: str, version: str, urls: list[str], first: int) -> None:
        self.station_id, self.urls, self.index = station_id, urls, first
        self.auth = "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()
        self.meter = TwinMeter()
        self.charger = Charger(station_id, version, meter=self.meter, rng=random.Random(first), config=FAST[version])  # type: ignore[arg-type]
        self.meter.charger = self.charger
        self.node: int | None = None
        self.connections = 0
        self.closes: list[int | None] = []  # the close code of each connection the CSMS ended
        self.sent: dict[str, tuple[str, dict[str, Any]]] = {}
        self.acked: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def told_w(self) -> float:
        """What the charger may draw now by the profiles it was told (its rating without one)."""
        limit = self.charger.limit_w(1, time.time())
        return RATING_W if limit is None else min(limit, RATING_W)

    async def run(self) -> None:
        charger = self.charger
        while True:
            now = time.time()
            if not charger.wants_connection(now):
                deadline = charger.next_deadline() or now + 0.2
                await asyncio.sleep(min(0.2, max(0.0, deadline - now)))
                charger.handle_timer(time.time())
                continue
            node = self.index % len(self.urls)
            self.index += 1
            try:
                ws = await websockets.connect(
                    f"{self.urls[node]}/{self.station_id}",
                    subprotocols=[SUBPROTOCOL[charger.version]],  # type: ignore[list-item]
                    additional_headers={"Authorization": self.auth},
                    open_timeout=3,
                )
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError):
                charger.connection_failed(time.time())
                continue
            self.node, self.connections = node, self.connections + 1
            charger.connected(time.time())
            try:
                await self._serve(ws)
            except websockets.exceptions.ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd is not None else None)
            finally:
                self.node = None
                charger.disconnected(time.time())
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _serve(self, ws: Any) -> None:
        charger = self.charger
        while True:
            for frame in charger.frames_to_send():
                message = json.loads(frame)
                if message[0] == 2:
                    self.sent[message[1]] = (message[2], message[3])
                await ws.send(frame)
            deadline = charger.next_deadline()
            timeout = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.time()))
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                charger.handle_timer(time.time())
                continue
            message = json.loads(frame)
            if message[0] == 3 and message[1] in self.sent:
                action, request = self.sent.pop(message[1])
                self.acked.append((action, request, message[2]))
            charger.receive_frame(frame, time.time())


def missing_acknowledged(db: Session, chargers: list[NodeCharger]) -> list[str]:
    """Every acknowledged transaction message that is not in the database (empty: none lost)."""
    missing: list[str] = []
    for c in chargers:
        for action, request, result in c.acked:
            if action == "StartTransaction" and db.get(TxRow, result["transactionId"]) is None:
                missing.append(f"{c.station_id} StartTransaction {result}")
            elif action == "MeterValues" and "transactionId" in request:
                for value in request["meterValue"]:
                    at = datetime.fromisoformat(value["timestamp"].replace("Z", "+00:00"))
                    found = db.scalar(
                        select(func.count())
                        .select_from(MeterSample)
                        .where(MeterSample.transaction_id == request["transactionId"], MeterSample.timestamp == at)
                    )
                    if not found:
                        missing.append(f"{c.station_id} MeterValues {value['timestamp']}")
            elif action == "TransactionEvent":
                found = db.scalar(
                    select(func.count())
                    .select_from(TransactionEvent)
                    .join(TxRow, TxRow.id == TransactionEvent.transaction_id)
                    .where(
                        TxRow.station_id == c.station_id,
                        TxRow.charger_tx_id == request["transactionInfo"]["transactionId"],
                        TransactionEvent.seq_no == request["seqNo"],
                    )
                )
                if not found:
                    missing.append(f"{c.station_id} TransactionEvent seqNo {request['seqNo']}")
    return missing


def acknowledged(chargers: list[NodeCharger], *actions: str) -> int:
    return sum(1 for c in chargers for action, _req, _res in c.acked if action in actions)
