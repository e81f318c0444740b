"""Every API request has an id: the caller's ``X-Request-ID`` when it is a plausible one, else a new one. It is
bound to the request's log lines (:mod:`csms.log_context`: the access log, and the OCPP calls the request
sends) and echoed in the response's ``X-Request-ID``, so a client's report and the server's log meet."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms import log_context

HEADER = "X-Request-ID"
#: What is taken from a caller: short, and nothing that could forge or break a log line.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _ACCEPTED.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestIds:
    """Pure ASGI middleware (not BaseHTTPMiddleware: the app and uvicorn's access log must run in the task
    and context where the id is bound)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with log_context.bound(request_id=request_id):
            await self.app(scope, receive, send_with_id)
