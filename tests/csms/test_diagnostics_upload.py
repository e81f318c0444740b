"""The public diagnostics upload URL checks its token before it reads a byte of the body, and reads at most
its documented limit (413 beyond it). SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from csms.api.app import create_app
from csms.services import diagnostics, stations

CHUNK = b"x" * 64 * 1024
LIMIT = 256 * 1024


class Body:
    """A request body sent chunk by chunk that counts how many the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield CHUNK


@pytest.fixture
async def anyone(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client without an API key, as a station uploading is."""
    transport = httpx.ASGITransport(app=create_app(session_factory, gateway, "an-api-key-0123456789"))
    async with httpx.AsyncClient(transport=transport, base_url="http://csms/api/v1", timeout=10) as client:
        yield client


@pytest.fixture
def upload_url(session_factory) -> str:
    now = datetime.now(UTC)
    with session_factory() as db:
        stations.provision(db, "cs-diag", ocpp_version="1.6", password=None, now=now)
        _row, token = diagnostics.request_diagnostics(db, "cs-diag", now, timedelta(hours=1))
        db.commit()
    return f"/uploads/diagnostics/{token}"


@pytest.fixture
def small_limit(monkeypatch, gateway) -> None:
    """The CSMS started with a small ``max_upload_bytes`` (``csms serve --max-upload-bytes``)."""
    monkeypatch.setattr(gateway, "config", dataclasses.replace(gateway.config, max_upload_bytes=LIMIT))


async def test_a_made_up_token_is_refused_before_the_body_is_read(anyone, upload_url):
    body = Body(chunks=200)
    response = await anyone.put("/uploads/diagnostics/" + "m" * 43, content=body)
    assert response.status_code == 404
    assert body.pulled <= 1  # what the transport pulls to start the request, not the 12 MiB behind it


async def test_a_used_token_is_refused_before_the_body_is_read(anyone, upload_url):
    assert (await anyone.put(upload_url, content=b"log", headers={"x-file-name": "a.log"})).status_code == 201
    body = Body(chunks=200)
    assert (await anyone.put(upload_url, content=body)).status_code == 409
    assert body.pulled <= 1


async def test_an_upload_beyond_the_limit_is_413_and_read_no_further(anyone, upload_url, small_limit):
    body = Body(chunks=200)
    response = await anyone.put(upload_url, content=body)
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]
    assert body.pulled <= LIMIT // len(CHUNK) + 2
    declared = await anyone.put(upload_url, content=b"x" * (LIMIT + 1))  # with a Content-Length
    assert declared.status_code == 413
    # The token is not used up: the station can still upload within the limit.
    fits = await anyone.put(upload_url, content=b"y" * LIMIT, headers={"x-file-name": "diag.log"})
    assert fits.status_code == 201 and fits.json()["size"] == LIMIT


async def test_a_multipart_upload_within_the_limit_is_stored(anyone, upload_url, session_factory, small_limit):
    response = await anyone.post(upload_url, files={"file": ("station.log", b"line 1\nline 2\n", "text/plain")})
    assert response.status_code == 201, response.text
    assert (response.json()["file_name"], response.json()["size"]) == ("station.log", 14)


# ---- firmware images (operator, API key) ----------------------------------------------------------------------
FIRMWARE_KEY = "an-api-key-0123456789"


@pytest.fixture
async def operator(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(session_factory, gateway, FIRMWARE_KEY))
    headers = {"Authorization": f"Bearer {FIRMWARE_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms/api/v1", headers=headers, timeout=10) as c:
        yield c


@pytest.fixture
def small_firmware_limit(monkeypatch) -> None:
    monkeypatch.setattr(diagnostics, "MAX_FIRMWARE_BYTES", LIMIT)


async def test_a_firmware_image_beyond_the_limit_is_413_read_no_further_and_not_stored(operator, small_firmware_limit):
    body = Body(chunks=200)
    response = await operator.post("/firmware-files", params={"name": "big.bin"}, content=body)
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]
    assert body.pulled <= LIMIT // len(CHUNK) + 2
    declared = await operator.post("/firmware-files", params={"name": "big.bin"}, content=b"x" * (LIMIT + 1))
    assert declared.status_code == 413
    assert (await operator.get("/firmware-files")).json() == []
    fits = await operator.post("/firmware-files", params={"name": "big.bin"}, content=b"y" * LIMIT)
    assert fits.status_code == 201 and fits.json()["size"] == LIMIT


async def test_a_firmware_name_taken_or_no_key_is_refused_before_the_body_is_read(operator, gateway, session_factory):
    assert (await operator.post("/firmware-files", params={"name": "fw.bin"}, content=b"image")).status_code == 201
    body = Body(chunks=200)
    assert (await operator.post("/firmware-files", params={"name": "fw.bin"}, content=body)).status_code == 409
    assert body.pulled <= 1
    transport = httpx.ASGITransport(app=create_app(session_factory, gateway, FIRMWARE_KEY))
    async with httpx.AsyncClient(transport=transport, base_url="http://csms/api/v1") as anyone:
        body = Body(chunks=200)
        assert (await anyone.post("/firmware-files", params={"name": "other.bin"}, content=body)).status_code == 401
        assert body.pulled <= 1
