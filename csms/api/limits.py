"""Every API request body is bounded before the app parses it: in size (413) and, for JSON, in nesting (422).

A pure ASGI middleware: it reads the body chunk by chunk and stops at :data:`MAX_BODY_BYTES` (at once when a
larger ``Content-Length`` is declared), checks a JSON body's nesting with the same bound as OCPP frames,
then hands the app the body it read. The station-facing upload URLs stream their bodies under their own,
larger limit (``csms.services.diagnostics.MAX_UPLOAD_BYTES``), firmware images are raw bytes and bundle imports
(``POST /api/v1/import``) stream to a file under :data:`MAX_BUNDLE_BYTES`: they all pass through untouched.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms.ocpp import framing

#: The largest API request body (JSON; the uploads have their own limits).
MAX_BODY_BYTES = 1024 * 1024
#: Levels of arrays and objects a JSON body may nest: an OCPP payload relayed from it must still fit a frame.
MAX_NESTING_DEPTH = framing.MAX_NESTING_DEPTH
#: The largest bundle ``POST /api/v1/import`` takes (a whole fleet's history; larger ones: ``csms import``).
MAX_BUNDLE_BYTES = 2 * 1024 * 1024 * 1024
#: Paths under these prefixes carry files, not JSON, and bound their bodies themselves.
UNBOUNDED_PREFIXES = ("/api/v1/uploads/", "/api/v1/firmware-files", "/api/v1/import")


class BodyRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BoundedBodies:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_NESTING_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(UNBOUNDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            self._check_nesting(scope, body)
        except BodyRefused as refused:
            await _answer(send, refused)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        too_large = BodyRefused(413, f"request body larger than {self.max_bytes} bytes")
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: the app will see the disconnect itself
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                raise too_large
        return bytes(body)

    def _check_nesting(self, scope: Scope, body: bytes) -> None:
        if not body or "json" not in _header(scope, b"content-type"):
            return
        too_deep = BodyRefused(422, f"the JSON body nests deeper than {self.max_depth} levels")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "recursion" in str(exc).lower():
                raise too_deep from None
            return  # not JSON: the app answers that with its own 422
        if framing.nests_deeper_than(data, self.max_depth):
            raise too_deep


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


async def _answer(send: Send, refused: BodyRefused) -> None:
    content = orjson.dumps({"detail": refused.detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
