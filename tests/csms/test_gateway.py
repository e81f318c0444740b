"""The WebSocket gateway: admission at the handshake, subprotocols, replacement, size limits, the message
log and the commit discipline (an answer leaves only after its transaction committed)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
import websockets
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.core.processor import PRUNE_EVERY
from csms.gateway.server import Gateway
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store import models
from csms.store.database import read_only_factory
from tests.csms.helpers import StationPair, boot_payload, failing_commits, on_commit


def url(gateway: Gateway, station_id: str) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}"


def connect16(gateway: Gateway, station_id: str):
    return websockets.connect(url(gateway, station_id), subprotocols=["ocpp1.6"])  # type: ignore[list-item]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def provision(factory, station_id: str, password: str | None = None, version: str = "1.6") -> None:
    with factory() as db:
        stations.provision(db, station_id, ocpp_version=version, password=password, now=datetime.now(UTC))
        db.commit()


async def rpc(ws, unique_id: str, action: str, payload: dict) -> list:
    await ws.send(orjson.dumps([2, unique_id, action, payload]).decode())
    return orjson.loads(await asyncio.wait_for(ws.recv(), 10))


@contextlib.asynccontextmanager
async def running(factory, config: CsmsConfig | None = None, **kwargs) -> AsyncIterator[Gateway]:
    gateway = Gateway(factory, config or CsmsConfig(call_timeout_s=5.0), **kwargs)
    await gateway.start("127.0.0.1", 0)
    try:
        yield gateway
    finally:
        await gateway.stop()


# ---- admission -------------------------------------------------------------------------------------------
async def test_handshake_admission(gateway, session_factory):
    provision(session_factory, "locked", password="s3cret-pass-1234")
    provision(session_factory, "open")
    cases = [  # an unknown id gets the answer of a wrong password: ids cannot be enumerated
        ("ghost", {}, 401),
        ("locked", {}, 401),
        ("locked", basic("locked", "wrong"), 401),
        ("locked", basic("someone-else", "s3cret-pass-1234"), 401),
    ]
    for station_id, headers, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(
                url(gateway, station_id), subprotocols=["ocpp1.6"], additional_headers=headers
            ):
                pass
        assert refused.value.response.status_code == status, (station_id, headers)
        assert refused.value.response.body == b"not authorized\n"
    for station_id, headers in [("locked", basic("locked", "s3cret-pass-1234")), ("open", {})]:
        async with websockets.connect(
            url(gateway, station_id), subprotocols=["ocpp1.6"], additional_headers=headers
        ) as ws:
            answer = await rpc(ws, "b1", "BootNotification", boot_payload("1.6"))
            assert answer[:2] == [3, "b1"] and answer[2]["status"] == "Accepted"
    with session_factory() as db:
        assert db.get(models.Station, "ghost") is None


async def test_only_unsupported_subprotocol_is_refused(gateway, session_factory):
    provision(session_factory, "cs1")
    async with websockets.connect(url(gateway, "cs1"), subprotocols=["ocpp9.9"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1002
    assert not gateway.is_connected("cs1")


async def test_version_follows_the_offered_subprotocol(gateway, session_factory):
    provision(session_factory, "cs1", version="1.6")
    async with websockets.connect(url(gateway, "cs1"), subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp1.6"  # the provisioned version wins when offered
    async with websockets.connect(url(gateway, "cs1"), subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp2.0.1"
        answer = await rpc(ws, "x", "Heartbeat", {"bogus": 1})
        assert answer[2] == "FormatViolation"  # spoken as 2.0.1


async def test_second_connection_replaces_the_first(gateway, session_factory):
    provision(session_factory, "cs1")
    first = await websockets.connect(url(gateway, "cs1"), subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    assert (await rpc(first, "1", "BootNotification", boot_payload("1.6")))[2]["status"] == "Accepted"
    async with websockets.connect(url(gateway, "cs1"), subprotocols=["ocpp1.6"]) as second:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(first.recv(), 5)
        assert first.close_code == 1000
        answer = await rpc(second, "2", "Heartbeat", {})
        assert answer[:2] == [3, "2"]
        assert gateway.links["cs1"].remote_address == second.local_address
        call_task = asyncio.create_task(gateway.call("cs1", "ClearCache", {}))
        frame = orjson.loads(await asyncio.wait_for(second.recv(), 5))
        assert frame[2] == "ClearCache"
        await second.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
        assert (await asyncio.wait_for(call_task, 5)).payload == {"status": "Accepted"}
    await gateway._drain()
    await asyncio.sleep(0.05)
    await gateway._drain()
    with session_factory() as db:
        events = db.scalars(select(models.ConnectionEvent).order_by(models.ConnectionEvent.id)).all()
    kinds = [(e.kind, e.detail) for e in events]
    assert kinds[:3] == [
        ("connected", None),
        ("disconnected", "replaced by a new connection"),
        ("connected", None),
    ]
    assert kinds[3][0] == "disconnected"
    assert [e.at for e in events] == sorted(e.at for e in events)  # the history reads in order by time too


async def test_frames_above_the_size_limit_are_refused(session_factory):
    provision(session_factory, "cs1")
    async with running(session_factory, max_frame_bytes=2048) as gateway, connect16(gateway, "cs1") as ws:
        assert (await rpc(ws, "1", "BootNotification", boot_payload("1.6")))[0] == 3
        await ws.send(orjson.dumps([2, "2", "DataTransfer", {"vendorId": "x", "data": "y" * 4000}]).decode())
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_a_message_in_fragments_is_one_call(gateway, session_factory):
    provision(session_factory, "cs1")
    async with connect16(gateway, "cs1") as ws:
        frame = orjson.dumps([2, "f1", "BootNotification", boot_payload("1.6")]).decode()
        await ws.send([frame[:10], frame[10:25], frame[25:]])  # three WebSocket frames, one message
        answer = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert answer[:2] == [3, "f1"] and answer[2]["status"] == "Accepted"


async def test_text_that_is_not_utf8_closes_with_1007(gateway, session_factory):
    provision(session_factory, "cs1")
    async with connect16(gateway, "cs1") as ws:
        await ws.send(b'[2,"1","Heartbeat",{}]', text=True)  # fine
        await ws.send(b"\xff\xfe", text=True)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1007


async def test_keepalive_drops_a_peer_that_stops_answering_pings(session_factory):
    provision(session_factory, "alive")
    provision(session_factory, "dead")
    async with (
        running(session_factory, ping_interval_s=0.3, ping_timeout_s=0.5) as gateway,
        connect16(gateway, "alive") as alive,
        connect16(gateway, "dead") as dead,
    ):
        deadline = time.monotonic() + 5
        while not (gateway.is_connected("alive") and gateway.is_connected("dead")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        dead.transport.pause_reading()  # its pings go unread, so unanswered
        await asyncio.sleep(2.5)  # pings every 0.3 s after a pong; one unanswered 0.5 s fails the connection
        assert gateway.is_connected("alive") and not gateway.is_connected("dead")
        assert (await rpc(alive, "1", "BootNotification", boot_payload("1.6")))[0] == 3
        dead.transport.resume_reading()  # else leaving the block waits out the client's 10-s close timeout


# ---- commit discipline -----------------------------------------------------------------------------------
async def test_failed_group_commit_answers_internal_error(session_factory):
    provision(session_factory, "cs1")
    failing = failing_commits(session_factory)
    async with running(failing) as gateway, connect16(gateway, "cs1") as ws:
        answer = await rpc(ws, "b1", "BootNotification", boot_payload("1.6"))
        assert answer[:3] == [4, "b1", "InternalError"]
        assert (await rpc(ws, "h1", "Heartbeat", {}))[:3] == [4, "h1", "InternalError"]
    with session_factory() as db:
        assert db.get(models.Station, "cs1").registration_status is None
        assert db.scalar(select(func.count()).select_from(models.MessageLogEntry)) == 0


async def test_answer_leaves_only_after_the_commit(session_factory):
    """The commit is held open; the charger must not see its CALLRESULT until the row is committed."""
    provision(session_factory, "cs1")
    armed, gate = threading.Event(), threading.Event()
    committed_at: list[float] = []

    def hold() -> None:
        if armed.is_set():
            gate.wait(10)
        committed_at.append(time.monotonic())

    blocking = on_commit(session_factory, hold)
    async with running(blocking) as gateway, connect16(gateway, "cs1") as ws:
        for _ in range(500):  # let the "connected" row commit first
            with session_factory() as db:
                if db.scalar(select(func.count()).select_from(models.ConnectionEvent)):
                    break
            await asyncio.sleep(0.01)
        armed.set()
        await ws.send(orjson.dumps([2, "b1", "BootNotification", boot_payload("1.6")]).decode())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)
        with read_only_factory(session_factory)() as db:  # a reader, as the API's GETs are
            assert db.get(models.Station, "cs1").registration_status is None  # not committed yet
        gate.set()
        answer = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        received_at = time.monotonic()
        assert answer[:2] == [3, "b1"]
        assert committed_at and committed_at[-1] <= received_at
        with session_factory() as db:
            assert db.get(models.Station, "cs1").registration_status == "Accepted"


async def test_call_timeout_over_the_socket(session_factory):
    provision(session_factory, "cs1")
    async with running(session_factory, CsmsConfig(call_timeout_s=0.2)) as gateway, connect16(gateway, "cs1") as ws:
        await rpc(ws, "b", "BootNotification", boot_payload("1.6"))
        first = asyncio.create_task(gateway.call("cs1", "ClearCache", {}))
        second = asyncio.create_task(gateway.call("cs1", "GetLocalListVersion", {}))
        frame1 = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame1[2] == "ClearCache"
        # The second call waits for the first to time out: nothing else is on the wire before that.
        frame2 = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame2[2] == "GetLocalListVersion"
        assert (await first).outcome.value == "timeout"
        await ws.send(orjson.dumps([3, frame1[1], {"status": "Accepted"}]).decode())  # late: ignored
        await ws.send(orjson.dumps([3, frame2[1], {"listVersion": 1}]).decode())
        assert (await asyncio.wait_for(second, 5)).payload == {"listVersion": 1}


# ---- the message log -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("Heartbeat", {}),
        # A boot reads (and writes) on the batch's connection mid-batch, so the queued log rows are written before
        # the batch's end: they count towards the prune all the same.
        ("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Wallbox"}),
    ],
)
def test_message_log_is_bounded(sqlite_factory, action, payload):
    limit = 5
    pair = StationPair(sqlite_factory, "1.6", config=CsmsConfig(message_log_per_station=limit))
    other = StationPair(sqlite_factory, "1.6", station_id="cs2", config=CsmsConfig(message_log_per_station=limit))
    other.ok("Heartbeat", {})
    heartbeats = PRUNE_EVERY // 2 + 10  # two rows each: the prune runs once, on the 100th
    for _ in range(heartbeats):
        pair.ok(action, payload)
    rows = pair.rows(models.MessageLogEntry, station_id="cs1")
    assert len(rows) == limit + 2 * (heartbeats - PRUNE_EVERY // 2)
    assert [r.direction for r in rows[-2:]] == ["in", "out"]
    assert len(pair.rows(models.MessageLogEntry, station_id="cs2")) == 2  # other stations keep theirs
    assert orjson.loads(rows[-1].frame)[1] == f"m{heartbeats}"


def test_message_log_can_be_off(sqlite_factory):
    pair = StationPair(sqlite_factory, "1.6", config=CsmsConfig(message_log_per_station=0))
    pair.ok("Heartbeat", {})
    assert pair.count(models.MessageLogEntry) == 0
