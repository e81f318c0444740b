"""Calls to a partner's OCPI API: the token header, the envelope unwrapped, a failure named."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx

from csms.ocpi.envelope import (
    CORRELATION_ID,
    FROM_COUNTRY,
    FROM_PARTY,
    REQUEST_ID,
    SUCCESS,
    TO_COUNTRY,
    TO_PARTY,
    Us,
)
from csms.ocpi.models import VERSION, Version, VersionDetails


class PeerError(Exception):
    """The partner could not be reached, or answered with an error (HTTP or OCPI status)."""


def auth(token: str, us: Us | None = None, to: tuple[str, str] | None = None) -> dict[str, str]:
    """The headers of a request to a partner: the token (base64), a new request id and correlation id, and, when
    known, the routing headers (from: us, to: the partner)."""
    headers = {
        "Authorization": "Token " + base64.b64encode(token.encode()).decode(),
        REQUEST_ID: uuid.uuid4().hex,
        CORRELATION_ID: uuid.uuid4().hex,
    }
    if us is not None:
        headers[FROM_COUNTRY], headers[FROM_PARTY] = us.country_code, us.party_id
    if to is not None:
        headers[TO_COUNTRY], headers[TO_PARTY] = to
    return headers


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    token: str,
    json: Any = None,
    *,
    us: Us | None = None,
    to: tuple[str, str] | None = None,
) -> Any:
    """The ``data`` of the partner's answer. Raises PeerError."""
    try:
        response = await client.request(method, url, headers=auth(token, us, to), json=json)
    except httpx.HTTPError as exc:
        raise PeerError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        raise PeerError(f"{method} {url}: HTTP {response.status_code}, not an OCPI answer") from None
    if not response.is_success or not isinstance(answer, dict) or answer.get("status_code") != SUCCESS:
        status = answer.get("status_code") if isinstance(answer, dict) else None
        message = answer.get("status_message") if isinstance(answer, dict) else None
        raise PeerError(f"{method} {url}: HTTP {response.status_code}, OCPI {status}: {message}")
    return answer.get("data")


async def version_details(
    client: httpx.AsyncClient, versions_url: str, token: str, us: Us | None = None, to: tuple[str, str] | None = None
) -> tuple[str, VersionDetails]:
    """The partner's 2.2.1 details (its endpoints). Raises PeerError, also when it has no 2.2.1."""
    versions = await call(client, "GET", versions_url, token, us=us, to=to)
    try:
        listed = [Version.model_validate(v) for v in versions or []]
    except ValueError as exc:
        raise PeerError(f"{versions_url}: not a list of versions: {exc}") from None
    chosen = next((v for v in listed if v.version == VERSION), None)
    if chosen is None:
        raise PeerError(f"{versions_url}: no version {VERSION} (offers {[v.version for v in listed]})")
    details = await call(client, "GET", chosen.url, token, us=us, to=to)
    try:
        return chosen.url, VersionDetails.model_validate(details)
    except ValueError as exc:
        raise PeerError(f"{chosen.url}: not version details: {exc}") from None
