"""Secrets never reach a log, and a station's file name never reaches a header as it came: upload and download
tokens in the access log of a real ``csms serve``, the Content-Disposition of an uploaded file. (Station
passwords in the OCPP message log: tests/csms/test_credentials.py.)"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import httpx
import pytest

from csms.api.app import create_app
from csms.api.redaction import SecretsFilter, attachment, mask_url
from csms.gateway.server import Gateway
from csms.services import diagnostics, stations
from csms.services.config import CsmsConfig
from tests.csms.test_cli import ROOT, _wait_for_api, free_port

API_KEY = "an-api-key-0123456789"


@pytest.fixture
async def client(sqlite_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(sqlite_factory, gateway, API_KEY))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://csms/api/v1", headers=headers) as c:
        yield c


@pytest.fixture
def gateway(sqlite_factory) -> Gateway:
    return Gateway(sqlite_factory, CsmsConfig())  # not started: these endpoints do not reach a station


def new_upload(factory) -> tuple[int, str]:
    now = datetime.now(UTC)
    with factory() as db:
        if db.get(stations.StationRow, "cs-diag") is None:
            stations.provision(db, "cs-diag", ocpp_version="1.6", password=None, now=now)
        row, token = diagnostics.request_diagnostics(db, "cs-diag", now, timedelta(hours=1))
        db.commit()
        return row.id, token


def disposition_filename(header: str) -> str:
    """The ``filename*`` (RFC 5987) of a Content-Disposition value, as a browser reads it."""
    charset, _, encoded = header.split("filename*=", 1)[1].partition("''")
    assert charset == "UTF-8" and ";" not in encoded and '"' not in encoded
    return unquote(encoded)


@pytest.mark.parametrize(
    ("name", "multipart"),
    [
        ('diag"; filename="evil.exe', False),  # would end the quoted string and name another file
        ("журнал-диагностики.log", True),  # not Latin-1: the header could not even be written (500)
        ("a\\b;c=d.log", False),
    ],
)
async def test_an_uploaded_file_name_is_escaped_in_content_disposition(client, sqlite_factory, name, multipart):
    transfer_id, token = new_upload(sqlite_factory)
    if multipart:
        sent = await client.post(f"/uploads/diagnostics/{token}", files={"file": (name, b"log lines", "text/plain")})
    else:
        sent = await client.put(f"/uploads/diagnostics/{token}", content=b"log lines", headers={"x-file-name": name})
    assert sent.status_code == 201 and sent.json()["file_name"] == name
    download = await client.get(f"/stations/cs-diag/transfers/{transfer_id}/content")
    assert download.status_code == 200 and download.content == b"log lines"
    header = download.headers["content-disposition"]
    fallback = header.split("; filename*=")[0]
    assert fallback.count('"') == 2 and fallback.count(";") == 1, header  # one parameter, one quoted string
    assert disposition_filename(header) == name  # RFC 6266 readers get the exact name back


def test_attachment_values_are_one_header_line():
    value = attachment("x\r\nSet-Cookie: a=b")
    assert "\r" not in value and "\n" not in value
    assert value.startswith('attachment; filename="x__Set-Cookie_ a_b"')


def test_url_secrets_are_masked():
    assert mask_url("/api/v1/uploads/diagnostics/AbC-123_x?x=1") == "/api/v1/uploads/diagnostics/********?x=1"
    assert mask_url("/api/v1/firmware/fw.bin?token=s3cr3t&x=1") == "/api/v1/firmware/fw.bin?token=********&x=1"
    assert mask_url("/?key=ctk_abc") == "/?key=********"
    assert mask_url("/api/v1/stations?limit=5") == "/api/v1/stations?limit=5"


def test_the_filter_masks_uvicorn_access_records():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "PUT", "/api/v1/uploads/diagnostics/tok3n-value", "1.1", 404), None,
    )  # fmt: skip
    assert SecretsFilter().filter(record)
    assert "tok3n-value" not in record.getMessage() and "********" in record.getMessage()


async def test_csms_serve_access_log_holds_no_token(sqlite_url, tmp_path):
    ocpp_port, api_port = free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--database-url", sqlite_url, "--log-level", "info"]
    command += ["--ocpp-port", str(ocpp_port), "--api-port", str(api_port)]
    env = {**os.environ, "CHARGETWIN_API_KEY": "log-test-key"}
    log_file = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    upload_token, firmware_token, key = "u" * 43, "f" * 43, "log-test-key"
    try:
        base = f"http://127.0.0.1:{api_port}"
        await _wait_for_api(base, process, time.monotonic() + 60)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            assert (await http.put(f"/api/v1/uploads/diagnostics/{upload_token}", content=b"x")).status_code == 404
            assert (await http.get(f"/api/v1/firmware/fw.bin?token={firmware_token}")).status_code == 404
            assert (await http.get(f"/?key={key}")).status_code == 400  # refused, and still masked in the log
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log_file.seek(0)
    logged = log_file.read()
    assert "/api/v1/uploads/diagnostics/********" in logged  # the access log is on, and masked
    for secret in (upload_token, firmware_token, key):
        assert secret not in logged
