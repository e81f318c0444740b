"""The rate of frames per station connection: a station over its rate is slowed (its socket is read later,
nothing it sent is lost), a station that pipelines a flood is closed with 1008, and neither costs another
station its service."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import websockets
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from csms.gateway.frame_rate import FLOOD_EVENT, POLICY_VIOLATION, FrameRate
from csms.store.models import SecurityEventRow
from tests.csms.helpers import boot_payload
from tests.csms.test_gateway import provision, rpc, running, url


def connect(gateway, station_id: str):
    # max_queue=None: a flooder that never reads its answers still sees the close frame behind them.
    return websockets.connect(url(gateway, station_id), subprotocols=["ocpp2.0.1"], max_queue=None)  # type: ignore[list-item]


async def booted(gateway, station_id: str):
    ws = await connect(gateway, station_id)
    assert (await rpc(ws, "boot", "BootNotification", boot_payload("2.0.1")))[2]["status"] == "Accepted"
    return ws


def test_the_bucket_refills_at_its_rate_up_to_its_burst():
    rate = FrameRate(per_second=10, burst=5, close_after_s=2)
    assert rate.take(5, 0.0, 5) == 0 and rate.pause_s(0) == 0
    assert rate.take(0, 0.0, 3) == -3 and rate.pause_s(-3) == pytest.approx(0.3)
    assert rate.take(-3, 1.0, 1) == 4  # 0.3 s repaid the debt, the rest refilled
    assert rate.take(0, 60.0, 0) == 5  # never above the burst
    assert not rate.floods(-20) and rate.floods(-21)
    with pytest.raises(ValueError):
        FrameRate(per_second=0)


async def test_a_station_over_its_rate_is_slowed_and_loses_nothing(session_factory):
    for station_id in ("busy", "honest"):
        provision(session_factory, station_id, version="2.0.1")
    # The rate is set below what this station can send, measured here: a station waits for each answer before its
    # next call, so on a slow or loaded machine (a round trip of a commit on PostgreSQL beyond 25 ms) a fixed rate
    # of 40 a second is one it never reaches, and nothing would be slowed.
    async with running(session_factory, frame_rate=None) as gateway:
        busy = await booted(gateway, "busy")
        try:
            started = time.monotonic()
            assert await _heartbeats(busy, CALIBRATION_CALLS) == CALIBRATION_CALLS
            unlimited = CALIBRATION_CALLS / (time.monotonic() - started)
        finally:
            await busy.close()
    rate = FrameRate(per_second=min(40.0, unlimited / 4), burst=10, close_after_s=1000)
    calls = int(rate.burst + 2 * rate.per_second)  # 2 s of its rate past the burst: 90 on an idle machine
    async with running(session_factory, frame_rate=rate) as gateway:
        busy, honest = await booted(gateway, "busy"), await booted(gateway, "honest")
        try:
            started = time.monotonic()
            sending = asyncio.create_task(_heartbeats(busy, calls))
            await asyncio.sleep(0.2)
            # Meanwhile a neighbour is served as usual.
            assert (await rpc(honest, "hb", "Heartbeat", {}))[0] == 3
            answers = await sending
            elapsed = time.monotonic() - started
        finally:
            await busy.close()
            await honest.close()
        assert answers == calls  # every call answered: slowed, not dropped
        # The heartbeats after the burst came no faster than the rate lets them (the bucket may have refilled the
        # boot's token while the neighbour booted).
        assert elapsed >= (calls - rate.burst) / rate.per_second * 0.95, (elapsed, rate, unlimited)
        assert gateway.pauses > 0 and gateway.flooders_closed == 0, (rate, unlimited)


#: Heartbeats that measure how fast the station sends when nothing slows it.
CALIBRATION_CALLS = 20


async def _heartbeats(ws, calls: int) -> int:
    answered = 0
    for n in range(calls):
        answer = await rpc(ws, f"hb-{n}", "Heartbeat", {})
        answered += answer[:2] == [3, f"hb-{n}"]
    return answered


async def test_a_flooding_station_is_closed_with_1008_and_others_are_served(session_factory):
    rate = FrameRate(per_second=50, burst=20, close_after_s=1)
    for station_id in ("flood", "honest"):
        provision(session_factory, station_id, version="2.0.1")
    async with running(session_factory, frame_rate=rate) as gateway:
        flood, honest = await booted(gateway, "flood"), await booted(gateway, "honest")
        try:
            frame = orjson.dumps([2, "x", "Heartbeat", {}]).decode()
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(5000):  # pipelined, never reading an answer
                    await flood.send(frame)
                await asyncio.wait_for(flood.wait_closed(), 10)
                await flood.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == POLICY_VIOLATION
            assert (await rpc(honest, "hb", "Heartbeat", {}))[0] == 3
            # Closed, not banned: it may connect again and behave.
            again = await booted(gateway, "flood")
            assert (await rpc(again, "hb", "Heartbeat", {}))[0] == 3
            await again.close()
        finally:
            await honest.close()
        assert gateway.flooders_closed == 1
    with session_factory() as db:
        (event,) = db.scalars(select(SecurityEventRow).where(SecurityEventRow.type == FLOOD_EVENT)).all()
        assert (event.station_id, event.origin, event.source) == ("flood", "csms", "127.0.0.1")
        assert event.detail["close_code"] == POLICY_VIOLATION


async def test_without_a_rate_the_same_flood_is_read_in_full(session_factory):
    provision(session_factory, "flood", version="2.0.1")
    async with running(session_factory, frame_rate=None) as gateway:
        flood = await booted(gateway, "flood")
        frame = orjson.dumps([2, "x", "NoSuchAction", {}]).decode()
        for _ in range(2000):
            await flood.send(frame)
        answers = [orjson.loads(await asyncio.wait_for(flood.recv(), 10)) for _ in range(2000)]
        await flood.close()
        assert {tuple(a[:3]) for a in answers} == {(4, "x", "NotImplemented")}
        assert gateway.pauses == 0 and gateway.flooders_closed == 0
