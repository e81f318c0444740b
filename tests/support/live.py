"""The CSMS as ``csms serve`` runs it (``run_server``: gateway, API, monitors), in the test's event loop on
free loopback ports, with an API client already holding the key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from csms.runtime.server import Endpoints, run_server

API_KEY = "live-key-0123456789"


@contextlib.asynccontextmanager
async def live_csms(database_url: str, **kwargs: Any) -> AsyncIterator[tuple[Endpoints, httpx.AsyncClient]]:
    """``kwargs``: more of ``run_server``'s options (alert rules, a broker, a node id…); stopped on the way out."""
    stop = asyncio.Event()
    ready: asyncio.Future[Endpoints] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        run_server(
            database_url=database_url,
            ocpp_port=0,
            api_port=0,
            api_key=API_KEY,
            log_level="warning",
            stop=stop,
            on_ready=ready.set_result,
            handle_signals=False,
            **kwargs,
        )
    )
    endpoints = await asyncio.wait_for(ready, 30)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with httpx.AsyncClient(base_url=endpoints.api_url, headers=headers, timeout=15) as client:
            yield endpoints, client
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """``check()``'s first truthy value, polled every 50 ms; AssertionError after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
