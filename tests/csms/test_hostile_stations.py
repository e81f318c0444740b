"""One station's hostile frame never costs another station its writes: a payload nested too deep is refused
with its CALLERROR before it reaches the group commit, and a call that fails late in a batch run without
savepoints makes the batch run again isolated instead of failing every station in it. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import websockets
from sqlalchemy import func, select

from csms.core.processor import BatchProcessor
from csms.ocpp import framing
from csms.ocpp.framing import MAX_NESTING_DEPTH, CallError, CallResult
from csms.store import models
from tests.csms.helpers import StationPair, boot_payload
from tests.csms.test_gateway import provision, rpc, url
from tests.csms.test_group_commit import run_batch

ECHO = {"vendorId": "org.chargetwin", "messageId": "Echo"}


def nested(depth: int) -> Any:
    data: Any = "x"
    for _ in range(depth):
        data = {"a": data}
    return data


def deep_call(unique_id: str, depth: int) -> str:
    # json, not orjson: orjson refuses to write what nests beyond 254 levels (and that is the trap).
    return json.dumps([2, unique_id, "DataTransfer", {**ECHO, "data": nested(depth)}])


async def test_a_deeply_nested_frame_fails_no_other_station_on_the_gateway(gateway, session_factory):
    honest = [f"honest-{n}" for n in range(4)]
    for station_id in [*honest, "hostile"]:
        provision(session_factory, station_id, version="2.0.1")
    sockets = {
        station_id: await websockets.connect(url(gateway, station_id), subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
        for station_id in [*honest, "hostile"]
    }
    try:
        for ws in sockets.values():
            assert (await rpc(ws, "boot", "BootNotification", boot_payload("2.0.1")))[2]["status"] == "Accepted"

        async def honest_round(station_id: str, n: int) -> list[Any]:
            return await rpc(sockets[station_id], f"hb-{n}", "Heartbeat", {})

        async def hostile_round(n: int) -> list[Any]:
            await sockets["hostile"].send(deep_call(f"deep-{n}", 300))
            return orjson.loads(await asyncio.wait_for(sockets["hostile"].recv(), 10))

        for n in range(10):  # all at once, so they share batches
            *answers, refused = await asyncio.gather(*(honest_round(s, n) for s in honest), hostile_round(n))
            assert [answer[0] for answer in answers] == [3] * len(honest), answers
            assert refused[:3] == [4, f"deep-{n}", "FormatViolation"], refused
        # The hostile station is still served when it behaves.
        assert (await rpc(sockets["hostile"], "ok", "DataTransfer", {**ECHO, "data": nested(5)}))[0] == 3
    finally:
        for ws in sockets.values():
            await ws.close()
    with session_factory() as db:
        seen = db.scalars(select(models.Station.last_seen_at).where(models.Station.id.in_(honest))).all()
        assert len(seen) == len(honest) and all(at is not None for at in seen)
        events = models.StationEvent
        hostile_transfers = (events.station_id == "hostile", events.kind == "data_transfer")
        stored = db.scalar(select(func.count()).select_from(events).where(*hostile_transfers))
        assert stored == 1  # only the well-formed DataTransfer


def test_nesting_depth_is_bounded_at_the_protocol_layer():
    at_limit = json.dumps([2, "ok", "DataTransfer", {**ECHO, "data": nested(MAX_NESTING_DEPTH - 3)}])
    assert isinstance(framing.decode(at_limit), framing.Call)
    lists: Any = 1
    for _ in range(MAX_NESTING_DEPTH):
        lists = [lists]
    for frame in (deep_call("deep", MAX_NESTING_DEPTH), json.dumps([2, "l", "Heartbeat", {"a": lists}])):
        try:
            framing.decode(frame)
        except framing.FrameError as exc:
            assert exc.kind.value == "format_violation" and "nest" in str(exc)
        else:
            raise AssertionError("a frame nested beyond the limit was accepted")


def test_a_call_that_fails_late_is_retried_isolated_not_failing_the_batch(session_factory, monkeypatch):
    """Whatever fails after a call was served (here: its answer cannot be written) costs only that call."""
    a, b = (StationPair(session_factory, "2.0.1", station_id=name) for name in ("cs-a", "cs-b"))
    processor = BatchProcessor(session_factory, a.config)
    real_result_frame = a.session.rpc.result_frame

    def unwritable(call: framing.Call, payload: dict[str, Any]) -> str:
        if call.action == "DataTransfer":
            raise TypeError("Recursion limit reached")
        return real_result_frame(call, payload)

    monkeypatch.setattr(a.session.rpc, "result_frame", unwritable)
    answers = run_batch(
        processor,
        [a, b],
        [
            (a, orjson.dumps([2, "d", "DataTransfer", {**ECHO, "data": "x"}]).decode()),
            (a, orjson.dumps([2, "h1", "Heartbeat", {}]).decode()),
            (b, orjson.dumps([2, "h2", "Heartbeat", {}]).decode()),
        ],
    )
    (failed, heartbeat_a), (heartbeat_b,) = answers
    assert isinstance(failed, CallError) and failed.code == "InternalError"
    assert isinstance(heartbeat_a, CallResult) and isinstance(heartbeat_b, CallResult)
    assert processor.retries == 1
    assert a.count(models.StationEvent) == 0  # the failed call's write rolled back with it
    assert b.station().last_seen_at is not None
