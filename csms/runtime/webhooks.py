"""The webhook sender: the asyncio shell that POSTs queued deliveries (httpx) and logs every attempt.

Deliveries are rows written in the same transaction as the event that caused them (an outbox), so an
alert is never announced without being stored, nor stored without being announced (at-least-once: a crash
between a successful POST and its log row sends it again; receivers dedupe on ``X-Chargetwin-Delivery``).
The retry schedule is :class:`csms.alerts.webhooks.RetrySchedule`; the clock and the jitter's
``random.Random`` are injected so tests run on a fake clock with a seeded generator.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.orm import Session, sessionmaker

from csms.alerts.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    RetrySchedule,
    is_success,
    sign,
)
from csms.gateway.outbox import OutboxWorker
from csms.ocpp.convert import from_posix
from csms.services import webhooks

log = logging.getLogger(__name__)


class WebhookSender(OutboxWorker):
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        schedule: RetrySchedule | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        poll_s: float = 5.0,
        concurrency: int = 8,
    ) -> None:
        super().__init__(session_factory, name="csms-webhooks", poll_s=poll_s)
        self.schedule = schedule or RetrySchedule()
        self.rng = rng or random.Random()
        self.clock = clock
        self._client = client
        self._own_client = client is None
        self.timeout_s = timeout_s
        self._limit = asyncio.Semaphore(concurrency)
        self._round = asyncio.Lock()  # one round at a time, so a delivery is never attempted twice at once
        #: Attempts by outcome: delivered, failed (retried later), abandoned (failed, no retry left).
        self.attempts: dict[str, int] = {"delivered": 0, "failed": 0, "abandoned": 0}

    async def close(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()

    # ---- one round ---------------------------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """Attempt every due delivery once (concurrently); returns how many were attempted."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        async with self._round:
            now = from_posix(self.clock())
            due = await self._in_db(lambda db: webhooks.due(db, now))
            await asyncio.gather(*(self._attempt(item) for item in due))
            return len(due)

    async def _attempt(self, item: dict[str, Any]) -> None:
        assert self._client is not None
        body = orjson.dumps(item["payload"])
        sent_at = self.clock()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(item["secret"], int(sent_at), body),
            EVENT_HEADER: item["event_type"],
            DELIVERY_HEADER: str(item["id"]),
        }
        status_code: int | None = None
        error: str | None = None
        started = time.perf_counter()
        async with self._limit:
            try:
                response = await self._client.post(item["url"], content=body, headers=headers)
                status_code = response.status_code
                if not is_success(status_code):
                    error = response.text[:200]
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - started) * 1000
        attempt = item["attempts"] + 1
        delivered = is_success(status_code)
        delay = None if delivered else self.schedule.delay_after(attempt, self.rng)
        next_at = None if delay is None else from_posix(sent_at) + timedelta(seconds=delay)
        self.attempts["delivered" if delivered else "failed" if delay is not None else "abandoned"] += 1
        if not delivered:
            log.info("webhook delivery %s attempt %d failed: %s", item["id"], attempt, error or status_code)
        await self._in_db(
            lambda db: webhooks.record_attempt(
                db,
                item["id"],
                at=from_posix(sent_at),
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                delivered=delivered,
                next_attempt_at=next_at,
            )
        )
