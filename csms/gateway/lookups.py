"""The outside lookups of real time (:class:`csms.pki.lookups.Lookups`): OCSP over HTTP, the
contract-certificate provider, each on a small thread pool of its own — never the database thread, never the
event loop — and the result handed back on the loop.

The host answers at its own deadline (``CsmsConfig.lookup_timeout_s``) whatever happens here; the HTTP
timeout is the same, so a hung responder does not hold a thread much longer than the answer waited.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from csms.pki.lookups import ContractProvider, ContractRequest, Lookup, OcspFetch, RemoteAuthorization, Result

log = logging.getLogger(__name__)

#: An OCSP answer is a few kB; a responder sending more is not one.
MAX_OCSP_BYTES = 64 * 1024


def post_ocsp(url: str, request: bytes, timeout_s: float) -> bytes:
    """RFC 6960 A.1: POST the DER request, ``application/ocsp-request``; the body is the DER answer.

    Raises:
        ValueError: not an http(s) URL.  OSError: the responder could not be reached or answered an error.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"OCSP responder URL {url!r} is not http(s)")
    sent = urllib.request.Request(
        url, data=request, method="POST", headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(sent, timeout=timeout_s) as answer:
        body: bytes = answer.read(MAX_OCSP_BYTES + 1)
    if len(body) > MAX_OCSP_BYTES:
        raise OSError(f"OCSP responder {url} answered more than {MAX_OCSP_BYTES} bytes")
    return body


def post_ocpi(lookup: RemoteAuthorization, timeout_s: float) -> dict[str, Any] | None:
    """An OCPI POST (the token base64-encoded, as 2.2.1 sends it); the answer's ``data`` when its status is 1000.

    Raises:
        OSError: the eMSP could not be reached or answered an HTTP error.  ValueError: not JSON.
    """
    if urllib.parse.urlsplit(lookup.url).scheme not in ("http", "https"):
        raise ValueError(f"OCPI URL {lookup.url!r} is not http(s)")
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Token " + base64.b64encode(lookup.token.encode()).decode(),
        "X-Request-ID": uuid.uuid4().hex,
        "X-Correlation-ID": uuid.uuid4().hex,
    }
    sent = urllib.request.Request(lookup.url, data=json.dumps(lookup.body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(sent, timeout=timeout_s) as answer:
        body = json.loads(answer.read(MAX_OCSP_BYTES))
    data = body.get("data") if isinstance(body, dict) and body.get("status_code") == 1000 else None
    return data if isinstance(data, dict) else None


class ThreadedLookups:
    def __init__(self, timeout_s: float, provider: ContractProvider | None = None, workers: int = 8) -> None:
        self.timeout_s = timeout_s
        self.provider = provider
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="csms-lookup")
        self.made = 0
        self.failed = 0

    def run(self, lookup: Lookup, then: Callable[[Result], None]) -> None:
        loop = asyncio.get_running_loop()
        job = self._pool.submit(self._perform, lookup)

        def back_on_the_loop(done: Future[Result]) -> None:
            self.made += 1
            result = None if done.cancelled() or done.exception() is not None else done.result()
            if result is None:
                self.failed += 1
            then(result)

        def hand_back(done: Future[Result]) -> None:
            # The loop may have closed (shutdown) while the lookup ran: then nobody waits for it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(back_on_the_loop, done)

        job.add_done_callback(hand_back)

    def _perform(self, lookup: Lookup) -> Result:
        try:
            if isinstance(lookup, OcspFetch):
                return post_ocsp(lookup.url, lookup.request, self.timeout_s)
            if isinstance(lookup, RemoteAuthorization):
                return post_ocpi(lookup, self.timeout_s)
            return self._order(lookup)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.warning("lookup %s failed: %s", type(lookup).__name__, exc)
            return None

    def _order(self, request: ContractRequest) -> Result:
        if self.provider is None:
            return None  # no provider configured: Get15118EVCertificate is answered Failed
        return self.provider.request(request, datetime.now(UTC))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
