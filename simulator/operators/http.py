"""One HTTP client for the adapters that talk to a CSMS's API: created on first use (on the event loop that
uses it, which may be a background thread's), and retrying a request a few times when the CSMS answers 5xx
or cannot be reached (a busy database, a restart)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from simulator.operators.base import OperatorError

#: A request is tried this often, RETRY_S × attempt apart, on a 5xx answer or a transport error.
ATTEMPTS, RETRY_S = 4, 0.1


class RetryingClient:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, self.headers, self.timeout_s, self.transport = base_url, headers, timeout_s, transport
        self._client: httpx.AsyncClient | None = None

    def _ensure(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=self.headers, timeout=self.timeout_s, transport=self.transport
            )
        return self._client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The last answer (a 5xx only once every attempt got one).

        Raises:
            OperatorError: the CSMS could not be reached at all.
        """
        client = self._ensure()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise OperatorError(f"{method} {client.base_url.join(url)}: {type(exc).__name__}: {exc}") from None
            else:
                if response.status_code < 500 or attempt == ATTEMPTS:
                    return response
            await asyncio.sleep(RETRY_S * attempt)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def failure(response: httpx.Response) -> OperatorError:
    """An answer the adapter did not expect, with what the CSMS said about it."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    text = str(detail).strip()[:300] or response.reason_phrase
    return OperatorError(f"{response.request.method} {response.request.url}: HTTP {response.status_code}: {text}")
