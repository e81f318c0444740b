"""CSMSs for the suite's own tests, each on a loopback port in a thread of its own (the station under test is
synchronous, so the CSMS cannot share its thread): the minimal ``ocpp``-package CSMS (optionally mutated) and
hand-written misbehaving ones."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import websockets
from websockets.asyncio.server import Server, ServerConnection
from websockets.typing import Subprotocol

from simulator.conformance.reference.minimal_csms import Mutation, serve
from simulator.conformance.reference.operator_door import OperatorDoor

SUBPROTOCOLS = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]
Handler = Callable[[ServerConnection], Awaitable[None]]


@contextmanager
def in_thread(start: Callable[[], Awaitable[Server]]) -> Iterator[int]:
    """Run the server ``start()`` starts on a loop in a daemon thread; yields its port, closes it afterwards."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@contextmanager
def minimal_csms(mutation: Mutation | None = None, id_tokens: tuple[str, ...] = ("CT-VALID-01",)) -> Iterator[str]:
    """The minimal CSMS; yields its ws:// URL (its operator API's URL is in ``MINIMAL_API_URL`` meanwhile)."""
    door: list[OperatorDoor] = []

    async def start() -> Server:
        server, memory = await serve("127.0.0.1", 0, id_tokens=id_tokens, mutation=mutation)
        door.append(OperatorDoor(memory, asyncio.get_running_loop()))
        return server

    with in_thread(start) as port:
        os.environ["MINIMAL_API_URL"] = door[0].url
        try:
            yield f"ws://127.0.0.1:{port}/ocpp"
        finally:
            door[0].close()
            os.environ.pop("MINIMAL_API_URL", None)


@contextmanager
def scripted_csms(handler: Handler, **options: object) -> Iterator[str]:
    """A CSMS that does exactly what ``handler`` does with each connection."""

    async def start() -> Server:
        return await websockets.serve(handler, "127.0.0.1", 0, subprotocols=SUBPROTOCOLS, **options)  # type: ignore[arg-type]

    with in_thread(start) as port:
        yield f"ws://127.0.0.1:{port}/ocpp"
