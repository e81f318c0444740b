"""The OCPI API: one FastAPI app under ``/ocpi`` (versions at ``/ocpi/versions``, modules under
``/ocpi/2.2.1/``), answering in the OCPI envelope, also when it refuses."""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException

from csms.ocpi import cdrs, commands, credentials, locations, sessions, tariffs, tokens
from csms.ocpi import envelope as env
from csms.ocpi.deps import OcpiConfig, Stations

PREFIX = "/ocpi"
log = logging.getLogger(__name__)


def create_ocpi_app(
    session_factory: sessionmaker[Session],
    gateway: Stations | None,
    config: OcpiConfig,
    client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """``client``: how the app calls partners during a handshake (default: a new one, 10 s timeout)."""
    app = FastAPI(title="chargetwin OCPI 2.2.1 (CPO)", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(env.Headers, us=config.us)
    app.state.session_factory = session_factory
    app.state.gateway = gateway
    app.state.ocpi = config
    app.state.ocpi_client = client or httpx.AsyncClient(timeout=10.0)
    for module in (credentials, locations, tariffs, tokens, commands, sessions, cdrs):
        app.include_router(module.router, prefix=PREFIX)

    @app.exception_handler(env.OcpiError)
    async def ocpi_error(_request: Request, exc: env.OcpiError) -> JSONResponse:
        return env.error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return env.error(env.OcpiError(env.INVALID_PARAMETERS, f"{where}: {first.get('msg')}"))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = env.CLIENT_ERROR if exc.status_code < 500 else env.SERVER_ERROR
        return env.error(env.OcpiError(code, str(exc.detail), exc.status_code))

    @app.exception_handler(Exception)
    async def failed(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("OCPI request failed")
        return env.error(env.OcpiError(env.SERVER_ERROR, f"server error: {type(exc).__name__}", 500))

    return app
