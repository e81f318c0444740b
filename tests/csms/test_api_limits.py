"""API request bodies are bounded: too large is 413 without reading it all, nested too deep is 422 with the
reason, and a call refused that way leaves the station's next call unaffected. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from csms.api.app import create_app
from csms.api.limits import MAX_BODY_BYTES, MAX_NESTING_DEPTH
from csms.ocpp.errors import LocalCallError
from csms.ocpp.rpc import RpcEndpoint
from tests.csms.test_api import API_KEY, charger, provision

CHUNK = b" " * 64 * 1024


def nested(depth: int) -> Any:
    data: Any = "x"
    for _ in range(depth):
        data = {"a": data}
    return data


@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions off: an error the app does not handle must show as the 500 a client would see.
    transport = httpx.ASGITransport(app=create_app(session_factory, gateway, API_KEY), raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms", headers=headers, timeout=10) as c:
        yield c


async def test_a_body_beyond_the_limit_is_413_without_reading_it_all(client):
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"id": "cs-big", "password": "'
        for _ in range(4 * MAX_BODY_BYTES // len(CHUNK)):
            pulled += 1
            yield CHUNK

    streamed = await client.post("/api/v1/stations", content=body(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and str(MAX_BODY_BYTES) in streamed.json()["detail"]
    assert pulled <= MAX_BODY_BYTES // len(CHUNK) + 2
    declared = await client.post(
        "/api/v1/stations", content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert (await client.get("/api/v1/stations/cs-big")).status_code == 404


async def test_a_body_nested_too_deep_is_422_with_the_reason(client):
    body = {"id": "cs-deep", "password": "station-password-1", "ocpp_version": "1.6", "extra": nested(300)}
    response = await client.post(
        "/api/v1/stations", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert f"nests deeper than {MAX_NESTING_DEPTH}" in response.json()["detail"]
    at_limit = {"id": "cs-ok", "password": "station-password-1", "ocpp_version": "1.6"}
    assert (await client.post("/api/v1/stations", json=at_limit)).status_code == 201


async def test_a_refused_deep_call_leaves_the_station_s_next_call_answered_at_once(client, gateway):
    await provision(client, "cp-deep", "2.0.1")
    async with charger(gateway, "cp-deep", "2.0.1") as cp:
        for depth in (300, MAX_NESTING_DEPTH - 1):  # refused by the API's bound, then by the protocol's
            deep = json.dumps({"vendorId": "acme", "data": nested(depth)})
            refused = await client.post(
                "/api/v1/stations/cp-deep/calls/DataTransfer",
                content=deep,
                headers={"content-type": "application/json"},
            )
            assert refused.status_code == 422, refused.text
            assert "nests deeper" in refused.json()["detail"]
        started = time.monotonic()
        reset = await asyncio.wait_for(
            client.post("/api/v1/stations/cp-deep/calls/Reset", json={"type": "Immediate"}), 10
        )
        assert reset.status_code == 200 and reset.json()["outcome"] == "result", reset.text
        assert time.monotonic() - started < 2.0
        assert [action for action, _ in cp.received] == ["Reset"]


def test_the_protocol_refuses_to_queue_a_call_it_could_not_write():
    rpc = RpcEndpoint("2.0.1", accepts=lambda _action: True, call_timeout_s=30.0)
    with pytest.raises(LocalCallError, match="nests deeper"):
        rpc.send_call("DataTransfer", {"vendorId": "acme", "data": nested(300)}, now=0.0)
    assert rpc.outstanding is None and rpc.queued == 0
    rpc.send_call("DataTransfer", {"vendorId": "acme", "data": nested(3)}, now=0.0)
    assert rpc.outstanding is not None and len(rpc.frames_to_send()) == 1
