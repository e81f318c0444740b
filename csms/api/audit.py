"""Every unsafe request to the API and the console's forms leaves an audit entry, whatever its answer: who
(the key or user of csms/api/auth.py, or anonymous), the route, the object its path names, the rows it changed
before and after (the flush listener of csms/services/audit.py, fed by the sessions of csms/api/deps.py), the
JSON body it sent (secrets masked: a command's payload), the status answered, the client address and the
request id.

The entry is written in the same database transaction as the change it records, so neither exists without the
other: the request's session (csms/api/deps.py) is handed over uncommitted when the endpoint returns, and committed
here together with the entry once the status is known, before the response's first byte leaves (a failed commit
answers 500, and neither the change nor its entry stays). An ``async`` endpoint's own transactions
(:func:`csms.api.deps.in_transaction`, which must commit before it talks to a station) each carry an entry of
what they changed, with the route's status; the answer gets an entry of its own when nothing was written with a
change, or when it is a refusal after a change committed. A refusal changes nothing and is written on its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms import log_context
from csms.api.auth import SAFE_METHODS, Principal, route_path
from csms.api.redaction import mask_url
from csms.services import audit

log = logging.getLogger(__name__)
AUDIT_STATE = "audit"
TRAIL_STATE = "audit_trail"
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


def _entry(
    db: Any, scope: Scope, status: int, collector: audit.Collector, body: bytes, complete: bool, rid: str | None
) -> None:
    db.flush()  # what is still pending reaches the collector before the entry copies it
    state: dict[str, Any] = scope.get("state", {})
    client = scope.get("client")
    who = _who(state, client[0] if client else None, rid)
    route = _route(scope)
    object_type, object_id = _object(route, scope.get("path_params") or {})
    params = scope.get("path_params") or {}
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    request = None if route in ("/signin",) or route.startswith("/set-password") or route == "/account/password" \
        else _body(headers.get("content-type", ""), body, complete)  # fmt: skip
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


class RequestTrail:
    """One audited request: its body as read so far, its changes, the session waiting for its status."""

    def __init__(self, scope: Scope, request_id: str | None) -> None:
        self.scope = scope
        self.request_id = request_id
        self.body = bytearray()
        self.complete = True
        self.collector = audit.Collector()
        self.pending: Any = None  # the request's session, changed and not committed yet
        self.recorded: int | None = None  # the status of an entry already committed with a change

    def read(self, message: Message) -> Message:
        """A message of the request as the app receives it: its body is kept (up to the audit's limit)."""
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            room = audit.MAX_REQUEST_BYTES - len(self.body)
            self.body.extend(chunk[: max(room, 0)])
            self.complete = self.complete and len(chunk) <= room
        return message

    def changed(self) -> bool:
        return bool(self.collector.before or self.collector.after or self.collector.created)

    def hand_over(self, db: Any) -> None:
        """The request's session: committed with the entry once the status is known (:meth:`finish`)."""
        self.pending = db

    def record_in(self, db: Any) -> None:
        """An entry of what this transaction changed, in it (the caller commits): an ``async`` endpoint's."""
        if not self.changed():
            return
        route = self.scope.get("route")
        status = getattr(route, "status_code", None) or 200
        _entry(db, self.scope, status, self.collector, bytes(self.body), self.complete, self.request_id)
        self.recorded = status
        self.collector = audit.Collector()
        db.info["audit"] = self.collector
        self.scope.setdefault("state", {})[AUDIT_STATE] = self.collector

    def finish(self, status: int) -> None:
        """The entry of the answer: with the pending session's changes, committed with them."""
        db, self.pending = self.pending, None
        if db is not None:
            try:  # what the endpoint kept when it answered stays, whatever the answer (a failed sign-in's count)
                collector = audit.Collector() if status >= 400 else self.collector  # a refusal is no change
                _entry(db, self.scope, status, collector, bytes(self.body), self.complete, self.request_id)
                db.commit()
            except BaseException:
                db.rollback()
                raise
            finally:
                db.close()
            return
        if self.recorded is not None and (status < 400) == (self.recorded < 400):
            return  # the change's entry says it
        factory = self.scope["app"].state.session_factory
        with factory() as fresh, fresh.begin():
            refused = status >= 400
            collector = audit.Collector() if refused else self.collector
            _entry(fresh, self.scope, status, collector, bytes(self.body), self.complete, self.request_id)

    def crashed(self) -> None:
        """The app raised before it answered: nothing it changed stays; the 500 is on record."""
        self.abandon()
        try:
            self.finish(500)
        except Exception:  # the app's own error is the one to raise; this one is logged
            log.exception("the audit entry of a failed request could not be written")

    def abandon(self) -> None:
        db, self.pending = self.pending, None
        if db is not None:
            db.rollback()
            db.close()


async def _failed_commit(send: Send) -> None:
    body = b'{"detail":"the change could not be committed with its audit entry: nothing was changed"}'
    await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class AuditTrail:
    """Pure ASGI middleware (it must see the status and the body as they pass, and run in the request's task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not audited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        trail = RequestTrail(scope, log_context.current().get("request_id"))
        state = scope.setdefault("state", {})
        state[AUDIT_STATE] = trail.collector
        state[TRAIL_STATE] = trail
        written = False
        failed = False

        async def teed() -> Message:
            return trail.read(await receive())

        async def sending(message: Message) -> None:
            nonlocal written, failed
            if failed:
                return  # the 500 was sent instead of this response
            if message["type"] == "http.response.start" and not written:
                written = True
                try:
                    await run_in_threadpool(trail.finish, message["status"])
                except Exception:
                    failed = True
                    await _failed_commit(send)
                    raise
            await send(message)

        try:
            await self.app(scope, teed, sending)
        except Exception:
            if not written:
                written = True
                await run_in_threadpool(trail.crashed)
            if not failed:
                raise
        finally:
            await run_in_threadpool(trail.abandon)
