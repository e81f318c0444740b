"""The conformance station under test, against a scripted CSMS on loopback: a case may refuse a call with a
CALLERROR of its choosing, and a wait notices what changes off the socket (the operator's thread) promptly,
not only when a frame arrives or its timeout passes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from csms.ocpp.framing import CallError
from simulator.conformance.station import StationUnderTest, Target


class ScriptedCsms:
    """Accepts the boot, then sends ClearCache and keeps what the station answered it."""

    def __init__(self) -> None:
        self.answers: list[list[Any]] = []
        self.answered = threading.Event()

    def handle(self, ws: ServerConnection) -> None:
        for text in ws:
            frame = json.loads(text)
            if frame[0] == 2 and frame[2] == "BootNotification":
                ws.send(json.dumps([3, frame[1], {"status": "Accepted", "currentTime": _now(), "interval": 300}]))
                ws.send(json.dumps([2, "csms-1", "ClearCache", {}]))
            elif frame[0] == 2:
                ws.send(json.dumps([3, frame[1], {}]))
            elif frame[1] == "csms-1":
                self.answers.append(frame)
                self.answered.set()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture
def csms() -> Iterator[tuple[ScriptedCsms, Server]]:
    script = ScriptedCsms()
    with serve(script.handle, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield script, server
        server.shutdown()
        thread.join(timeout=5)


def _station(server: Server) -> StationUnderTest:
    port = server.socket.getsockname()[1]
    return StationUnderTest(Target.parse(f"ws://127.0.0.1:{port}/ocpp", "2.0.1", wait_s=5.0), "CT-UNIT-1")


def test_a_case_refuses_a_call_with_the_callerror_it_chose(csms: tuple[ScriptedCsms, Server]) -> None:
    script, server = csms
    station = _station(server)
    station.answer("ClearCache", CallError("", "NotSupported", "no authorization cache here", {}))
    try:
        station.boot()
        station.wait_call("ClearCache")
        assert script.answered.wait(timeout=5), "the station never answered ClearCache"
    finally:
        station.close()
    assert script.answers == [[4, "csms-1", "NotSupported", "no authorization cache here", {}]]


def test_a_wait_sees_a_change_off_the_socket_within_a_poll(csms: tuple[ScriptedCsms, Server]) -> None:
    _, server = csms
    station = _station(server)
    done = threading.Event()
    try:
        station.boot()
        threading.Timer(0.2, done.set).start()
        started = time.monotonic()
        station.run_until(lambda: True if done.is_set() else None, "waiting for the other thread", timeout=5)
        waited = time.monotonic() - started
    finally:
        station.close()
    assert waited < 1.0, f"the wait took {waited:.2f} s for a change made after 0.2 s (no frame arrived meanwhile)"
