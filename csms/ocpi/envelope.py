"""The OCPI 2.2.1 transport rules every module shares: the response envelope and its status codes, the request
and correlation ids, the routing headers, and pagination (``offset``/``limit``, ``date_from``/``date_to``, the
``Link``, ``X-Total-Count`` and ``X-Limit`` headers)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004
SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003

REQUEST_ID, CORRELATION_ID = "X-Request-ID", "X-Correlation-ID"
FROM_COUNTRY, FROM_PARTY = "OCPI-from-country-code", "OCPI-from-party-id"
TO_COUNTRY, TO_PARTY = "OCPI-to-country-code", "OCPI-to-party-id"
MAX_LIMIT = 100
_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

T = TypeVar("T")


class OcpiError(Exception):
    """An answer other than success: the OCPI status code, its message and the HTTP status it goes with."""

    def __init__(self, status_code: int, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.status_code, self.message, self.http_status = status_code, message, http_status


def timestamp(now: datetime | None = None) -> str:
    """OCPI's DateTime: UTC, seconds, ``Z``."""
    return iso(now or datetime.now(UTC))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(data: Any = None, status_code: int = SUCCESS, message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status_code": status_code, "timestamp": timestamp()}
    if data is not None:
        out["data"] = data
    if message is not None:
        out["status_message"] = message
    return out


def ok(data: Any = None, *, headers: dict[str, str] | None = None, http_status: int = 200) -> JSONResponse:
    return JSONResponse(body(data), status_code=http_status, headers=headers)


def error(exc: OcpiError) -> JSONResponse:
    return JSONResponse(body(None, exc.status_code, exc.message), status_code=exc.http_status)


@dataclass(frozen=True, slots=True)
class Us:
    """This CPO's identity on the routing headers."""

    country_code: str
    party_id: str


class Headers:
    """Pure ASGI middleware: every answer carries ``X-Request-ID`` and ``X-Correlation-ID`` (the caller's, else
    new ones) and the routing headers turned around (to: the caller, from: us)."""

    def __init__(self, app: ASGIApp, us: Us) -> None:
        self.app, self.us = app, us

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        request_id = _id(given.get("x-request-id"))
        correlation_id = _id(given.get("x-correlation-id"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID], headers[CORRELATION_ID] = request_id, correlation_id
                headers[FROM_COUNTRY], headers[FROM_PARTY] = self.us.country_code, self.us.party_id
                if FROM_COUNTRY.lower() in given and FROM_PARTY.lower() in given:
                    headers[TO_COUNTRY] = given[FROM_COUNTRY.lower()][:2]
                    headers[TO_PARTY] = given[FROM_PARTY.lower()][:3]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _id(given: str | None) -> str:
    return given if given is not None and _ID.fullmatch(given) else uuid.uuid4().hex


def check_addressed_to_us(request: Request, us: Us) -> None:
    """A request routed (by a hub) to another party is not ours to answer."""
    country, party = request.headers.get(TO_COUNTRY), request.headers.get(TO_PARTY)
    if (country is not None and country.upper() != us.country_code) or (
        party is not None and party.upper() != us.party_id
    ):
        raise OcpiError(CLIENT_ERROR, f"this platform is {us.country_code}-{us.party_id}, not {country}-{party}")


# ---- pagination --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Page:
    offset: int = 0
    limit: int = MAX_LIMIT
    date_from: datetime | None = None
    date_to: datetime | None = None


def page_of(request: Request) -> Page:
    """The paging and date filter of a list request (2001 naming the parameter when it is malformed)."""
    query = request.query_params
    offset = _int(query.get("offset"), "offset", 0)
    limit = min(_int(query.get("limit"), "limit", MAX_LIMIT), MAX_LIMIT)
    return Page(offset, limit, _date(query.get("date_from"), "date_from"), _date(query.get("date_to"), "date_to"))


def _int(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit():
        raise OcpiError(INVALID_PARAMETERS, f"{name}: a whole number >= 0, got {text!r}")
    return int(text)


def _date(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OcpiError(INVALID_PARAMETERS, f"{name}: an RFC 3339 date-time, got {text!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def paginate(
    request: Request, page: Page, items: Sequence[T], updated: Callable[[T], datetime], base_url: str = ""
) -> tuple[list[T], dict[str, str]]:
    """The page of ``items`` (already in a stable order) that were last updated in [date_from, date_to), and the
    headers that say how many there are and where the next page is: ``base_url`` (the OCPI API's public base,
    ``…/ocpi``) and the request's path below ``/ocpi``, so the link works behind a proxy (else the request's URL)."""
    kept = [
        item
        for item in items
        if (page.date_from is None or updated(item) >= page.date_from)
        and (page.date_to is None or updated(item) < page.date_to)
    ]
    chosen = kept[page.offset : page.offset + page.limit]
    headers = {"X-Total-Count": str(len(kept)), "X-Limit": str(MAX_LIMIT)}
    if page.offset + page.limit < len(kept):
        params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
        params.update(offset=str(page.offset + page.limit), limit=str(page.limit))
        path = request.url.path
        url = (f"{base_url}{path.removeprefix('/ocpi')}?{urlencode(params)}" if base_url
               else str(request.url.replace(query=urlencode(params))))  # fmt: skip
        headers["Link"] = f'<{url}>; rel="next"'
    return chosen, headers
