"""The twin's firmware updates and diagnostics uploads against independent peers over real sockets: the ``ocpp``
package's ChargePoint as the Central System (it validates every message of ours against its own schemas) and
a plain stdlib HTTP server for the files (it refuses uploads over its limit with 413)."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from simulator.links.websocket import WebSocketLink
from simulator.station.charger import Charger, Registration
from tests.simulator.helpers import FakeMeter
from tests.simulator.test_firmware_and_logs import IMAGE, _signer, _WallClock
from tests.simulator.test_realtime import wait_for

UPLOAD_LIMIT = 300  # bytes: a diagnostics file is larger; /big takes it


class Files(BaseHTTPRequestHandler):
    """GET /fw-3.0.bin: the image; anything else 404. POST /small refuses a body over UPLOAD_LIMIT (413);
    POST /big keeps it."""

    uploads: dict[str, bytes] = {}

    def do_GET(self) -> None:
        if self.path != "/fw-3.0.bin":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(IMAGE)))
        self.end_headers()
        self.wfile.write(IMAGE)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/small" and length > UPLOAD_LIMIT:
            self.send_error(413)
            return
        type(self).uploads[self.path] = body
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class CentralSystem(ChargePoint16):
    """The ocpp package's ChargePoint on the Central System's side: it records what the station said."""

    heard: list[tuple[str, dict[str, Any]]] = []
    current: CentralSystem | None = None

    @on("BootNotification")
    def on_boot(self, **kwargs: Any) -> result16.BootNotification:
        self.heard.append(("BootNotification", kwargs))
        return result16.BootNotification(current_time=datetime.now(UTC).isoformat(), interval=300, status="Accepted")

    @on("StatusNotification")
    def on_status(self, **kwargs: Any) -> result16.StatusNotification:
        return result16.StatusNotification()

    @on("Heartbeat")
    def on_heartbeat(self, **kwargs: Any) -> result16.Heartbeat:
        return result16.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on("FirmwareStatusNotification")
    def on_firmware_status(self, **kwargs: Any) -> result16.FirmwareStatusNotification:
        self.heard.append(("FirmwareStatusNotification", kwargs))
        return result16.FirmwareStatusNotification()

    @on("SignedFirmwareStatusNotification")
    def on_signed_firmware_status(self, **kwargs: Any) -> result16.SignedFirmwareStatusNotification:
        self.heard.append(("SignedFirmwareStatusNotification", kwargs))
        return result16.SignedFirmwareStatusNotification()

    @on("DiagnosticsStatusNotification")
    def on_diagnostics_status(self, **kwargs: Any) -> result16.DiagnosticsStatusNotification:
        self.heard.append(("DiagnosticsStatusNotification", kwargs))
        return result16.DiagnosticsStatusNotification()

    @on("SecurityEventNotification")
    def on_security_event(self, **kwargs: Any) -> result16.SecurityEventNotification:
        self.heard.append(("SecurityEventNotification", kwargs))
        return result16.SecurityEventNotification()

    def said(self, action: str) -> list[str]:
        return [k["status"] for a, k in self.heard if a == action]


async def _central_system(ws: ServerConnection) -> None:
    cp = CentralSystem(ws.request.path.rsplit("/", 1)[-1] if ws.request else "?", ws)
    CentralSystem.current = cp
    with contextlib.suppress(Exception):  # the station closed the socket (its reboot)
        await cp.start()


@pytest.mark.timeout(60)
async def test_the_twin_updates_firmware_and_uploads_diagnostics_for_an_ocpp_central_system(files):
    CentralSystem.heard, Files.uploads = [], {}
    async with serve(_central_system, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        port = server.sockets[0].getsockname()[1]
        # A log deep enough to hold the whole exchange (the default keeps 2 kB of frames).
        charger = Charger("cp-peer", "1.6", meter=FakeMeter(), rng=random.Random(11), log_bytes=32_000)
        link = WebSocketLink(charger, _WallClock(speed=50.0), f"ws://127.0.0.1:{port}/ocpp")
        link.start()
        try:
            await wait_for(lambda: charger.registration is Registration.ACCEPTED and CentralSystem.current, timeout=10)
            cs = CentralSystem.current
            assert cs is not None
            now = datetime.now(UTC).isoformat()

            # A download that keeps failing: one retry, then DownloadFailed (1.6 core statuses only).
            answer = await cs.call(
                call16.UpdateFirmware(location=f"{files}/gone.bin", retrieve_date=now, retries=1, retry_interval=2)
            )
            assert answer is not None
            await wait_for(lambda: "DownloadFailed" in cs.said("FirmwareStatusNotification"), timeout=10)
            assert cs.said("FirmwareStatusNotification") == ["Downloading", "Downloading", "DownloadFailed"]

            # A signed image: downloaded over HTTP, verified, installed, rebooted with the new version.
            certificate, signature = _signer(IMAGE)
            firmware = {"location": f"{files}/fw-3.0.bin", "retrieveDateTime": now,
                        "signingCertificate": certificate, "signature": signature}  # fmt: skip
            signed = await cs.call(call16.SignedUpdateFirmware(request_id=5, firmware=firmware))
            assert signed.status == "Accepted"
            await wait_for(lambda: "Installed" in CentralSystem.current.said("SignedFirmwareStatusNotification"), 15)  # type: ignore[union-attr]
            assert CentralSystem.current.said("SignedFirmwareStatusNotification") == [  # type: ignore[union-attr]
                "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", "Installed"
            ]  # fmt: skip
            boots = [k for a, k in CentralSystem.heard if a == "BootNotification"]
            assert [b["firmware_version"] for b in boots] == ["1.0.0", "fw-3.0"]
            # the security extension's critical event follows Installed
            await wait_for(lambda: _events() == ["FirmwareUpdated"], timeout=5)

            # Diagnostics: refused with 413 by a server with a small limit, taken by one without.
            cs = CentralSystem.current
            assert cs is not None
            refused = await cs.call(call16.GetDiagnostics(location=f"{files}/small"))
            assert refused.file_name.startswith("cp-peer-DiagnosticsLog-")
            await wait_for(lambda: cs.said("DiagnosticsStatusNotification")[-1:] == ["UploadFailed"], timeout=10)
            taken = await cs.call(call16.GetDiagnostics(location=f"{files}/big"))
            await wait_for(lambda: cs.said("DiagnosticsStatusNotification")[-1:] == ["Uploaded"], timeout=10)
            assert cs.said("DiagnosticsStatusNotification") == ["Uploading", "UploadFailed", "Uploading", "Uploaded"]
        finally:
            await link.stop()
    body = Files.uploads["/big"]
    assert b'filename="' + taken.file_name.encode() + b'"' in body  # multipart/form-data, the file as its part
    assert b"# cp-peer DiagnosticsLog" in body and b'"SignedUpdateFirmware"' in body
    assert "/small" not in Files.uploads


def _events() -> list[str]:
    return [k["type"] for a, k in CentralSystem.heard if a == "SecurityEventNotification"]
