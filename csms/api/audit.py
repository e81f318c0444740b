"""Every unsafe request to the API and the console's forms leaves an audit entry, whatever its answer: who
(the key or user of csms/api/auth.py, or anonymous), the route, the object its path names, the rows it changed
before and after (the flush listener of csms/services/audit.py, fed by the sessions of csms/api/deps.py), the
JSON body it sent (secrets masked: a command's payload), the status answered, the client address and the
request id.

The entry is written in its own transaction once the request's own has committed, and before the response's
first byte leaves, so a client that got an answer finds its entry. A crash between the two commits would lose
the entry of a change that was made: the one gap (the change and its entry are not one transaction).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms import log_context
from csms.api.auth import SAFE_METHODS, Principal, route_path
from csms.api.redaction import mask_url
from csms.services import audit

AUDIT_STATE = "audit"
_CONSOLE_FORMS = ("/signin", "/signout", "/account/password", "/set-password/", "/console/")
#: Path parameters that are secrets (upload tokens, set-password links, invitation codes), never objects.
_SECRET_PARAMS = frozenset({"token", "link", "code"})
_OBJECT_PARAMS = ("station_id", "site_id", "id_token", "tariff_id", "account_id")


def audited(method: str, path: str) -> bool:
    if method in SAFE_METHODS:
        return False
    return path.startswith("/api/") or path.startswith(_CONSOLE_FORMS)


def _route(scope: Scope) -> str:
    return route_path(scope) or mask_url(scope.get("path", ""))


def _object(route: str, params: dict[str, Any]) -> tuple[str | None, str | None]:
    names = [n for n in _OBJECT_PARAMS if n in params] + [n for n in params if n not in _SECRET_PARAMS]
    if not names:
        return None, None
    name = names[0]
    before = route.split("{" + name + "}")[0].rstrip("/")
    return (before.rsplit("/", 1)[-1] or name), str(params[name])


def _body(content_type: str, body: bytes, complete: bool) -> Any:
    if not body:
        return None
    if content_type.split(";")[0].strip() == "application/json" and complete:
        with contextlib.suppress(ValueError):
            return json.loads(body)
    if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded" and complete:
        # A console form (csms/api/dashboard.py): its fields, without the CSRF token.
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
            return {name: values[0] for name, values in fields.items() if name != "csrf_token"}
    return {"content_type": content_type[:100] or None, "bytes": len(body) if complete else f">{len(body)}"}


def _who(state: dict[str, Any], client: str | None, request_id: str | None) -> audit.Who:
    principal: Principal | None = state.get("principal")
    if principal is not None:
        return audit.Who(principal.actor, principal.name, principal.organisation_id, client, request_id)
    signin = state.get("signin")
    if signin is not None:
        if signin.user is not None:
            user = signin.user
            return audit.Who(f"user:{user.id}", user.email, user.organisation_id, client, request_id)
        return audit.Who("anonymous", state.get("signin_email"), None, client, request_id)
    return audit.Who("anonymous", None, None, client, request_id)


class AuditTrail:
    """Pure ASGI middleware (it must see the status and the body as they pass, and run in the request's task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not audited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        collector = audit.Collector()
        state = scope.setdefault("state", {})
        state[AUDIT_STATE] = collector
        body = bytearray()
        complete = True
        written = False
        request_id = log_context.current().get("request_id")

        async def teed() -> Message:
            nonlocal complete
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                room = audit.MAX_REQUEST_BYTES - len(body)
                body.extend(chunk[: max(room, 0)])
                complete = complete and len(chunk) <= room
            return message

        async def write(status: int) -> None:
            nonlocal written
            written = True
            await run_in_threadpool(self._write, scope, status, collector, bytes(body), complete, request_id)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not written:
                await write(message["status"])
            await send(message)

        try:
            await self.app(scope, teed, sending)
        except Exception:
            if not written:
                await write(500)
            raise

    def _write(
        self, scope: Scope, status: int, collector: audit.Collector, body: bytes, complete: bool, rid: str | None
    ) -> None:
        state: dict[str, Any] = scope.get("state", {})
        client = scope.get("client")
        who = _who(state, client[0] if client else None, rid)
        route = _route(scope)
        object_type, object_id = _object(route, scope.get("path_params") or {})
        params = scope.get("path_params") or {}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request = None if route in ("/signin",) or route.startswith("/set-password") or route == "/account/password" \
            else _body(headers.get("content-type", ""), body, complete)  # fmt: skip
        if status >= 400:
            collector = audit.Collector()  # the request's transaction was rolled back: it changed nothing
        factory = scope["app"].state.session_factory
        with factory() as db, db.begin():
            audit.record(
                db,
                who,
                f"{scope['method']} {route}",
                status,
                datetime.now(UTC),
                collector=collector,
                object_type=object_type,
                object_id=object_id,
                station_id=str(params["station_id"]) if "station_id" in params else None,
                request=request,
            )
