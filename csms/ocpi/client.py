"""Calls to a partner's OCPI API: the token header, the envelope unwrapped, a failure named."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from csms.ocpi.envelope import SUCCESS
from csms.ocpi.models import VERSION, Version, VersionDetails


class PeerError(Exception):
    """The partner could not be reached, or answered with an error (HTTP or OCPI status)."""


def auth(token: str, correlation_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
    if correlation_id is not None:
        headers["X-Correlation-ID"] = correlation_id
    return headers


async def call(client: httpx.AsyncClient, method: str, url: str, token: str, json: Any = None) -> Any:
    """The ``data`` of the partner's answer. Raises PeerError."""
    try:
        response = await client.request(method, url, headers=auth(token), json=json)
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


async def version_details(client: httpx.AsyncClient, versions_url: str, token: str) -> tuple[str, VersionDetails]:
    """The partner's 2.2.1 details (its endpoints). Raises PeerError, also when it has no 2.2.1."""
    versions = await call(client, "GET", versions_url, token)
    try:
        listed = [Version.model_validate(v) for v in versions or []]
    except ValueError as exc:
        raise PeerError(f"{versions_url}: not a list of versions: {exc}") from None
    chosen = next((v for v in listed if v.version == VERSION), None)
    if chosen is None:
        raise PeerError(f"{versions_url}: no version {VERSION} (offers {[v.version for v in listed]})")
    details = await call(client, "GET", chosen.url, token)
    try:
        return chosen.url, VersionDetails.model_validate(details)
    except ValueError as exc:
        raise PeerError(f"{chosen.url}: not version details: {exc}") from None
