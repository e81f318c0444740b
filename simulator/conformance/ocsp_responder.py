"""An OCSP responder on loopback (RFC 6960 over HTTP: POST, and GET with the request base64 in the path) that
answers for a :class:`~csms.pki.local_ca.LocalTestCa`: good, revoked or unknown, signed by the CA. The
project's Plug & Charge tests, and anything of the simulator that needs a real responder on a socket, use it;
in virtual time the embedded CSMS asks the same CA without a socket."""

from __future__ import annotations

import base64
import binascii
import http.server
import threading
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from csms.pki.local_ca import LocalTestCa


class LoopbackOcspResponder:
    """``with LoopbackOcspResponder(ca) as responder:`` serves at ``responder.url``; ``requests`` counts the
    answers given. :meth:`stop` takes it down early (a responder that went away)."""

    def __init__(self, ca: LocalTestCa) -> None:
        self.ca = ca
        self.requests = 0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="ocsp responder", daemon=True)
        self._running = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ocsp"

    def answer(self, request: bytes) -> bytes:
        self.requests += 1
        return self.ca.ocsp_answer(request, datetime.now(UTC))

    def __enter__(self) -> LoopbackOcspResponder:
        self._thread.start()
        self._running = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._reply(responder.answer(body))

            def do_GET(self) -> None:
                encoded = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
                try:
                    request = base64.b64decode(encoded, validate=True)
                except (binascii.Error, ValueError):
                    self.send_error(400, "not a base64 OCSP request")
                    return
                self._reply(responder.answer(request))

            def _reply(self, answer: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
