"""The HTTP API: FastAPI under ``/api/v1`` (OpenAPI at ``/openapi.json``, Swagger UI at ``/docs``, ReDoc at
``/redoc``), API keys and console sessions checked against one permission table (csms/api/auth.py), the
dashboard at ``/`` and the sign-in pages."""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Message, Scope

from csms.api import console, console_registry, dashboard, operations
from csms.api.audit import AuditTrail
from csms.api.auth import require_access
from csms.api.docs_pages import mount_docs
from csms.api.limits import BoundedBodies
from csms.api.request_id import RequestIds
from csms.api.routes import (
    alerts,
    audit,
    billing,
    bundles,
    calls,
    certificates,
    configuration,
    contract_roots,
    credentials,
    diagnostics,
    display_messages,
    fleet,
    local_lists,
    monitoring,
    multifamily,
    repoint,
    reports,
    reservations,
    roaming,
    security_events,
    sites,
    stations,
    tariffs,
    tokens,
    transactions,
    uptime,
    users,
    webhooks,
)
from csms.gateway.server import Gateway
from csms.services.errors import DomainError
from csms.services.payments import payment_providers

PREFIX = "/api/v1"


def create_app(session_factory: sessionmaker[Session], gateway: Gateway, api_key: str | None) -> FastAPI:
    """The app for one gateway and database. ``api_key``: a key fixed at start (else only stored keys work)."""
    app = FastAPI(
        title="chargetwin CSMS",
        version="1",
        description="Stations, id tokens, transactions and OCPP calls to connected stations. "
        "Send `Authorization: Bearer KEY` (or the console's session cookie with `X-CSRF-Token` on writes); "
        "what each role may call: docs/security.md.",
        docs_url=None,  # mount_docs serves /docs and /redoc from local assets instead of a CDN
        redoc_url=None,
    )
    app.add_middleware(BoundedBodies)  # sizes and nesting of request bodies, before anything parses them
    app.add_middleware(AuditTrail)  # every unsafe request leaves an entry, refused ones too (its 413 included)
    app.add_middleware(RequestIds)  # added last, so it runs first: every answer carries X-Request-ID
    app.state.session_factory = session_factory
    app.state.gateway = gateway
    app.state.api_key = api_key or None
    secured = [Depends(require_access)]
    routers = (
        stations, tokens, transactions, calls, credentials, sites, uptime, alerts, webhooks, diagnostics,
        security_events, certificates, contract_roots, configuration, display_messages, reservations,
        monitoring, local_lists, bundles, repoint, reports, billing, fleet, multifamily, tariffs, roaming, audit,
        users,
    )  # fmt: skip
    for module in routers:
        app.include_router(module.router, prefix=PREFIX, dependencies=secured)
    # Station-facing upload/download URLs: guarded by unguessable tokens, not by API keys.
    app.include_router(diagnostics.public_router, prefix=PREFIX)
    app.include_router(billing.public_router, prefix=PREFIX)
    app.include_router(multifamily.public_router, prefix=PREFIX)
    app.state.public_url = None  # the API's base URL as stations reach it (None: the request's own)
    app.state.payment_providers = payment_providers(None)  # run_server gives them their webhook secrets
    app.state.monitor = None  # the alert monitor, when run_server starts one
    dashboard.install(app)  # the console's pages at / and /console/… and their assets (no CDN)
    operations.install(app)  # station list, alerts, uptime, load management, and the live (SSE) streams
    app.include_router(console.router)  # sign-in, sign-out, password change, one-time set-password links
    app.include_router(console_registry.router)  # id tokens, tariffs and API keys pages
    mount_docs(app)

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value (out of range, bad encoding): the client's input, not our fault.
        return JSONResponse({"detail": f"invalid value: {exc.orig}"}, status_code=422)

    return app


def prepare_routes(app: FastAPI, path: str = "/healthz") -> None:
    """Build the middleware stack and the router's matching state now, on the calling thread, by passing one ``GET
    path`` (a handler that touches nothing) through them. FastAPI builds them lazily on the first request, which
    on a quiet machine held the event loop 0.2–0.4 s (200 routes) and seconds under load: long enough for the first
    ``/healthz`` of a just-started node to miss a probe's timeout, and for chargers' frames to wait behind it."""
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
                    "scheme": "http", "query_string": b"", "headers": [], "client": None, "server": None,
                    "http_version": "1.1", "asgi": {"version": "3.0"}}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    if not messages or messages[0].get("status") != 200:
        raise RuntimeError(f"preparing the routes: GET {path} answered {messages[:1]}")
