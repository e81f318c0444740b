"""Durability: SIGKILL ``csms serve`` while real WebSocket chargers are mid-transaction, start it again on the
same database and port, and check the database against everything the chargers saw acknowledged.

The chargers are the twin's sans-IO firmware (:class:`simulator.station.Charger`, both OCPP versions) driven
by a small asyncio shell over real sockets, on the wall clock. Each one records the CALLs it sent and the
CALLRESULTs it received: what the CSMS acknowledged. After the restart they reconnect with their own
back-off and jitter and replay their queues (1.6: possible duplicates; 2.0.1: seqNo and ``offline``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from sqlalchemy import func, select

from csms.services import authorization, stations
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from csms.store.models import MeterSample, TransactionEvent
from csms.store.models import Transaction as TxRow
from simulator.station import Charger
from tests.conftest import fresh_postgres_url

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-durable-station"
STATIONS = [(f"d16-{i}", "1.6") for i in range(8)] + [(f"d201-{i}", "2.0.1") for i in range(8)]
TOKEN = "TAG-DURABLE"
WIRE = {
    "1.6": {
        "sample_interval": "MeterValueSampleInterval",
        "backoff_min": "ReconnectBackOffWaitMinimum",
        "backoff_random_range": "ReconnectBackOffRandomRange",
        "backoff_repeat_times": "ReconnectBackOffRepeatTimes",
        "tx_message_retry_interval": "TransactionMessageRetryInterval",
    },
    "2.0.1": {
        "sample_interval": "SampledDataCtrlr.TxUpdatedInterval",
        "backoff_min": "OCPPCommCtrlr.RetryBackOffWaitMinimum",
        "backoff_random_range": "OCPPCommCtrlr.RetryBackOffRandomRange",
        "backoff_repeat_times": "OCPPCommCtrlr.RetryBackOffRepeatTimes",
        "tx_message_retry_interval": "OCPPCommCtrlr.MessageAttemptInterval",
    },
}
SETTINGS = {
    "sample_interval": "1",
    "backoff_min": "1",
    "backoff_random_range": "1",
    "backoff_repeat_times": "1",
    "tx_message_retry_interval": "1",
}


class WallMeter:
    """Every connector draws 7.2 kW from the moment the test starts: the register grows with the wall clock."""

    def __init__(self) -> None:
        self.t0 = time.time()

    def energy_wh(self, connector_id: int) -> float:
        return round(7200.0 * (time.time() - self.t0) / 3600.0, 1)

    def power_w(self, connector_id: int) -> float:
        return 7200.0

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return (10.4, 10.4, 10.4)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None


@dataclass
class Shell:
    """One charger on a real WebSocket: frames in and out, timers on the wall clock, acknowledgements kept."""

    charger: Charger
    url: str
    subprotocol: str
    sent: dict[str, tuple[str, dict[str, Any], bool]] = field(default_factory=dict)
    acked: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    ws: Any = None
    inbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    stopping: bool = False

    async def run(self) -> None:
        auth = "Basic " + base64.b64encode(f"{self.charger.station_id}:{PASSWORD}".encode()).decode()
        while not self.stopping:
            now = time.time()
            if self.ws is None and self.charger.wants_connection(now):
                self.attempts.append(now)
                try:
                    self.ws = await websockets.connect(
                        self.url,
                        subprotocols=[self.subprotocol],  # type: ignore[list-item]
                        additional_headers={"Authorization": auth},
                        open_timeout=3,
                    )
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
                    self.charger.connection_failed(time.time())
                else:
                    self.connects.append(time.time())
                    self.charger.connected(time.time())
                    asyncio.get_running_loop().create_task(self._read(self.ws))
            await self._flush()
            deadline = self.charger.next_deadline()
            wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - time.time()))
            with contextlib.suppress(TimeoutError):
                frame = await asyncio.wait_for(self.inbox.get(), wait)
                if frame is None:
                    self.ws = None
                    self.charger.disconnected(time.time())
                else:
                    self._record_in(frame)
                    self.charger.receive_frame(frame, time.time())
            deadline = self.charger.next_deadline()
            if deadline is not None and time.time() >= deadline:
                self.charger.handle_timer(time.time())
            await self._flush()
        if self.ws is not None:
            await self.ws.close()

    async def _read(self, ws: Any) -> None:
        try:
            async for frame in ws:
                await self.inbox.put(frame)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            if self.ws is ws:
                await self.inbox.put(None)

    async def _flush(self) -> None:
        for frame in self.charger.frames_to_send():
            message = json.loads(frame)
            if message[0] == 2:
                self.sent[message[1]] = (message[2], message[3], self.ws is None)
            if self.ws is not None:
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    await self.ws.send(frame)

    def _record_in(self, frame: str) -> None:
        message = json.loads(frame)
        if message[0] == 3 and message[1] in self.sent:
            action, request, _ = self.sent[message[1]]
            self.acked.append((action, request, message[2]))


def _provision(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    with make_session_factory(engine)() as db:
        for station_id, version in STATIONS:
            stations.provision(db, station_id, ocpp_version=version, password=PASSWORD, now=now)
        authorization.create(db, TOKEN, now)
        db.commit()
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: str, ocpp_port: int, api_port: int) -> subprocess.Popen[str]:
    env = {**os.environ}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    command = [sys.executable, "-m", "csms.cli", "serve", "--host", "127.0.0.1", "--log-level", "warning"]
    command += ["--ocpp-port", str(ocpp_port), "--api-port", str(api_port), "--database-url", url]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _acked(shells: list[Shell], action: str) -> list[tuple[Shell, dict[str, Any], dict[str, Any]]]:
    return [(s, req, res) for s in shells for a, req, res in s.acked if a == action]


async def _scenario(url: str) -> None:
    await asyncio.to_thread(_provision, url)
    ocpp_port, api_port = _free_port(), _free_port()
    meter = WallMeter()
    rng = random.Random(5)
    shells = [
        Shell(
            Charger(
                station_id,
                version,  # type: ignore[arg-type]
                meter=meter,
                rng=random.Random(rng.getrandbits(64)),
                config={WIRE[version][k]: v for k, v in SETTINGS.items()},
            ),
            f"ws://127.0.0.1:{ocpp_port}/ocpp/{station_id}",
            "ocpp1.6" if version == "1.6" else "ocpp2.0.1",
        )
        for station_id, version in STATIONS
    ]
    processes: list[subprocess.Popen[str]] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        processes.append(_serve(url, ocpp_port, api_port))
        tasks = [asyncio.create_task(s.run()) for s in shells]
        await _until(lambda: all(s.charger.online for s in shells), 30, "every charger booted")
        for s in shells:
            s.charger.plug_in(1, TOKEN, time.time())
        await _until(lambda: all(s.charger.transactions and not s.charger.queue for s in shells), 15, "starts")
        await asyncio.sleep(2.5)  # meter values flow
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(10)
        killed_at = time.time()
        await asyncio.sleep(1.5)  # offline: the chargers queue meter values
        assert any(len(s.charger.queue) for s in shells), "nothing was queued while the CSMS was down"
        processes.append(_serve(url, ocpp_port, api_port))
        await _until(lambda: all(s.connects and s.connects[-1] > killed_at for s in shells), 30, "reconnects")
        await _until(lambda: all(s.charger.online for s in shells), 15, "every charger online again")
        await asyncio.sleep(1.5)
        for s in shells:
            s.charger.unplug(1, time.time())
        await _until(
            lambda: all(not s.charger.queue and not s.charger.transaction_message_in_flight for s in shells),
            20,
            "stops",
        )
    finally:
        for s in shells:
            s.stopping = True
        for task in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)

    # Reconnects spread by back-off and jitter: not one wave.
    reconnects = [next(t for t in s.connects if t > killed_at) - killed_at for s in shells]
    assert statistics.pstdev(reconnects) > 0.2, reconnects
    assert max(reconnects) - min(reconnects) > 0.5, reconnects
    assert all(s.charger.counters.internal_errors == [] for s in shells)

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            rows = db.scalars(select(TxRow)).all()
            by_key = {(tx.station_id, tx.charger_tx_id): tx for tx in rows}
            # One transaction per charger, each completed; nothing counted twice.
            assert len(rows) == len(shells)
            for s in shells:
                (truth,) = s.charger.history
                tx = by_key[(s.charger.station_id, str(truth.transaction_id))] if s.charger.version != "1.6" else None
                if s.charger.version == "1.6":
                    (start_ack,) = [res for a, _req, res in s.acked if a == "StartTransaction"][:1]
                    tx = db.get(TxRow, start_ack["transactionId"])
                assert tx is not None and tx.status == "completed", s.charger.station_id
                assert tx.meter_stop_wh is not None and truth.meter_stop_wh is not None
                # 1.6 meterStart/meterStop are integer Wh: up to 1 Wh of rounding.
                tolerance = 1.0 if s.charger.version == "1.6" else 0.11
                assert tx.energy_wh == pytest.approx(truth.meter_stop_wh - truth.meter_start_wh, abs=tolerance)
            # 1.6: every acknowledged StartTransaction has its row (same id on a replayed duplicate), every
            # acknowledged MeterValues its samples, every acknowledged StopTransaction its stop.
            for s, _req, res in _acked(shells, "StartTransaction"):
                tx = db.get(TxRow, res["transactionId"])
                assert tx is not None and tx.station_id == s.charger.station_id
            for s, req, _res in _acked(shells, "MeterValues"):
                for value in req["meterValue"]:
                    at = datetime.fromisoformat(value["timestamp"].replace("Z", "+00:00"))
                    found = db.scalar(
                        select(func.count())
                        .select_from(MeterSample)
                        .where(MeterSample.transaction_id == req["transactionId"], MeterSample.timestamp == at)
                    )
                    assert found, (s.charger.station_id, value["timestamp"])
            for _s, req, _res in _acked(shells, "StopTransaction"):
                tx = db.get(TxRow, req["transactionId"])
                assert tx is not None and tx.status == "completed" and tx.meter_stop_wh == req["meterStop"]
            # 2.0.1: every acknowledged event is there once, with its seqNo and offline flag.
            events = db.execute(
                select(TxRow.station_id, TxRow.charger_tx_id, TransactionEvent.seq_no, TransactionEvent.offline).join(
                    TxRow, TxRow.id == TransactionEvent.transaction_id
                )
            ).all()
            seen = Counter((e.station_id, e.charger_tx_id, e.seq_no) for e in events)
            assert max(seen.values()) == 1
            offline = {(e.station_id, e.charger_tx_id, e.seq_no): e.offline for e in events}
            acked_events = _acked(shells, "TransactionEvent")
            assert acked_events
            for s, req, _res in acked_events:
                key = (s.charger.station_id, req["transactionInfo"]["transactionId"], req["seqNo"])
                assert key in offline, key
                assert offline[key] == bool(req.get("offline", False)), key
            assert any(req.get("offline") for _s, req, _r in acked_events), "no event was replayed as offline"
            for s in shells:
                if s.charger.version == "1.6":
                    continue
                seqs = sorted(k[2] for k in seen if k[0] == s.charger.station_id)
                assert seqs == list(range(len(seqs))), (s.charger.station_id, seqs)
            # Samples are not stored twice for one reading (a replay after a lost answer).
            dupes = db.execute(
                select(MeterSample.transaction_id, MeterSample.timestamp, MeterSample.measurand, MeterSample.phase)
                .group_by(MeterSample.transaction_id, MeterSample.timestamp, MeterSample.measurand, MeterSample.phase)
                .having(func.count() > 1)
            ).all()
            assert dupes == []
    finally:
        engine.dispose()


@pytest.mark.timeout(90)
async def test_sigkill_sqlite(tmp_path):
    started = time.monotonic()
    await asyncio.wait_for(_scenario(f"sqlite:///{tmp_path}/csms.db"), 80)
    assert time.monotonic() - started < 60


@pytest.mark.postgres
@pytest.mark.timeout(90)
async def test_sigkill_postgres():
    for url in fresh_postgres_url():
        await asyncio.wait_for(_scenario(url), 80)
