"""The station under test against misbehaving CSMSs: every failure names the frame and the reason, every wait
ends, nothing crashes."""

from __future__ import annotations

import time

import orjson
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from simulator.conformance.station import CaseFailed, StationUnderTest, Target
from tests.conformance.servers import minimal_csms, scripted_csms


def station(url: str, version: str = "2.0.1", **timeouts: float) -> StationUnderTest:
    target = Target.parse(url, version, reply_timeout_s=timeouts.get("reply", 2.0), wait_s=timeouts.get("wait", 2.0))
    return StationUnderTest(target, "CP-1", password="a-password-of-16+")


def test_a_sound_csms_boots_the_station_and_every_frame_is_logged() -> None:
    with minimal_csms() as url:
        s = station(url)
        answer = s.ready()
        s.close()
    assert answer["status"] == "Accepted" and answer["interval"] == 60
    assert [f.outgoing for f in s.log.frames[:2]] == [True, False]
    assert '"BootNotification"' in s.log.frames[0].text
    assert not s.checker.violations


def test_an_unreachable_csms_fails_the_case_with_the_reason() -> None:
    s = station("ws://127.0.0.1:9/ocpp")
    with pytest.raises(CaseFailed, match=r"refused the WebSocket handshake.*ConnectionRefused"):
        s.connect()


def test_a_refused_handshake_names_the_http_status() -> None:
    async def refuse(connection: ServerConnection, request: object) -> Response:
        return connection.respond(401, "who are you?\n")

    async def never(connection: ServerConnection) -> None:
        raise AssertionError("the handshake was refused")

    with scripted_csms(never, process_request=refuse) as url:
        s = station(url)
        assert s.try_connect() == "HTTP 401"
        with pytest.raises(CaseFailed, match="HTTP 401"):
            s.connect()


def test_a_csms_that_closes_mid_case_fails_it_within_the_timeout_quoting_the_close() -> None:
    async def close_after_boot(connection: ServerConnection) -> None:
        await connection.recv()
        await connection.close(1011, "gone")

    with scripted_csms(close_after_boot) as url:
        s = station(url)
        s.auto_reconnect = False
        started = time.monotonic()
        with pytest.raises(CaseFailed) as failure:
            s.boot()
        assert time.monotonic() - started < 5
    text = str(failure.value)
    assert "waiting for the CSMS to answer BootNotification" in text
    assert "closed by the CSMS (1011)" in text and '"BootNotification"' in text


def test_a_frame_that_is_not_ocpp_j_fails_the_case_with_the_frame() -> None:
    async def garbage(connection: ServerConnection) -> None:
        await connection.recv()
        await connection.send("hello, station")
        await connection.wait_closed()

    with scripted_csms(garbage) as url:
        s = station(url)
        with pytest.raises(CaseFailed, match="not an OCPP-J frame") as failure:
            s.boot()
    assert "hello, station" in str(failure.value)


def test_an_answer_that_breaks_the_schema_fails_even_if_no_step_reads_it() -> None:
    async def bad_boot(connection: ServerConnection) -> None:
        call = orjson.loads(await connection.recv())
        await connection.send(orjson.dumps([3, call[1], {"status": "Accepted", "interval": 10}]).decode())
        await connection.wait_closed()

    with scripted_csms(bad_boot) as url:
        s = station(url)
        s.connect()
        with pytest.raises(CaseFailed, match="BootNotification answer breaks the BootNotificationResponse schema"):
            s.idle(0.5)


def test_a_binary_frame_and_an_answer_to_an_unknown_id_are_violations() -> None:
    async def odd(connection: ServerConnection) -> None:
        call = orjson.loads(await connection.recv())
        await connection.send(orjson.dumps([3, "not-yours", {}]))  # bytes: a binary frame
        await connection.send(
            orjson.dumps([3, call[1], {"status": "Accepted", "interval": 10, "currentTime": "x"}]).decode()
        )
        await connection.wait_closed()

    with scripted_csms(odd) as url:
        s = station(url)
        s.connect()
        s.auto_reconnect = False
        with pytest.raises(CaseFailed, match="a binary WebSocket frame"):
            s.idle(0.5)
    rules = [v.rule for v in s.checker.violations]
    assert any("never sent" in r for r in rules), rules


def test_a_csms_that_never_answers_fails_after_the_reply_timeout_not_later() -> None:
    async def silent(connection: ServerConnection) -> None:
        await connection.wait_closed()

    with scripted_csms(silent) as url:
        s = station(url, reply=1.0)
        started = time.monotonic()
        with pytest.raises(CaseFailed, match="nothing within 1 s"):
            s.boot()
        assert time.monotonic() - started < 3


def test_a_call_before_the_boot_is_accepted_is_a_violation() -> None:
    async def eager(connection: ServerConnection) -> None:
        await connection.recv()
        start = {"idToken": {"idToken": "X", "type": "ISO14443"}, "remoteStartId": 1}
        await connection.send(orjson.dumps([2, "c1", "RequestStartTransaction", start]).decode())
        await connection.wait_closed()

    with scripted_csms(eager) as url:
        s = station(url)
        s.connect()
        with pytest.raises(
            CaseFailed, match="RequestStartTransaction sent to a station whose registration is not yet booted"
        ):
            s.idle(0.5)
