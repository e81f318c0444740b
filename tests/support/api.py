"""The REST API in process: the app on a session factory and a gateway, and an httpx client that speaks to it
through ASGI (with the API key unless told otherwise)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from csms.api.app import create_app

API_KEY = "in-process-test-key"


@contextlib.asynccontextmanager
async def api_client(
    session_factory: Any, gateway: Any, *, key: str | None = API_KEY, **state: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """``state``: attributes set on ``app.state`` (``load_management``, ``payment_providers``, …)."""
    app = create_app(session_factory, gateway, API_KEY)
    for name, value in state.items():
        setattr(app.state, name, value)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=30) as client:
        yield client
