"""Webhook signing, the retry schedule (seeded RNG) and real HTTP delivery on loopback with a failing receiver."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from csms.alerts.webhooks import RetrySchedule, matches, sign, signature, verify
from csms.runtime.webhooks import WebhookSender
from csms.services import alerts, webhooks
from csms.store.models import WebhookAttempt

SECRET = "whsec-0123456789abcdef"


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    body = b'{"type":"alert.raised"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_700_000_000, body) == expected
    assert sign(SECRET, 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_verify_accepts_good_and_refuses_tampered_wrong_key_stale_or_malformed():
    body = b'{"a":1}'
    header = sign(SECRET, 1_700_000_000, body)
    assert verify(SECRET, header, body, now=1_700_000_000 + 300)
    assert not verify(SECRET, header, body, now=1_700_000_000 + 301)  # replayed too late
    assert not verify(SECRET, header, b'{"a":2}', now=1_700_000_000)
    assert not verify("other-secret-0000000", header, body, now=1_700_000_000)
    assert not verify(SECRET, "garbage", body, now=1_700_000_000)
    assert not verify(SECRET, "t=abc,v1=00", body, now=1_700_000_000)


def test_event_filter():
    assert matches(["*"], "alert.raised")
    assert matches(["alert.*"], "alert.resolved")
    assert not matches(["alert.raised"], "alert.resolved")
    assert not matches(["firmware.*"], "alert.raised")


def test_retry_schedule_is_exponential_with_seeded_jitter_and_stops():
    schedule = RetrySchedule(base_s=10, factor=2, cap_s=100, jitter=0.2, max_attempts=6)
    delays = [schedule.delay_after(n, random.Random(7)) for n in range(1, 7)]
    assert delays[-1] is None
    for n, delay in enumerate(delays[:-1], start=1):
        nominal = min(100, 10 * 2 ** (n - 1))
        assert nominal * 0.8 <= delay <= nominal * 1.2
    # Deterministic for a seed, different across seeds.
    again = [schedule.delay_after(n, random.Random(7)) for n in range(1, 6)]
    assert again == delays[:-1]
    assert schedule.delay_after(1, random.Random(8)) != delays[0]
    exact = RetrySchedule(base_s=10, factor=3, cap_s=1_000, jitter=0.0, max_attempts=5)
    assert [exact.delay_after(n, random.Random(0)) for n in range(1, 6)] == [10, 30, 90, 270, None]


class Receiver:
    """A tiny HTTP server on loopback that fails the first ``failures`` requests with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_delivery_over_http_retries_with_backoff_and_logs_every_attempt(session_factory):
    start = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
    clock = FakeClock(start.timestamp())
    schedule = RetrySchedule(base_s=30, factor=2, jitter=0.1, max_attempts=5)
    with Receiver(failures=2) as receiver:
        with session_factory() as db:
            hook = webhooks.create(db, receiver.url, SECRET, ["alert.*"], start)
            other = webhooks.create(db, receiver.url, SECRET, ["firmware.*"], start)
            alerts.raise_alert(db, "faulted", "cp-1", 2, "critical", start, {"error_code": "GroundFailure"})
            db.commit()
            hook_id, other_id = hook.id, other.id
        sender = WebhookSender(session_factory, schedule=schedule, rng=random.Random(42), clock=clock)
        try:
            await sender.deliver_due()  # attempt 1: 503
            assert len(receiver.requests) == 1
            assert await sender.deliver_due() == 0  # not due yet
            rng = random.Random(42)  # the sender's generator, replayed
            first_delay = schedule.delay_after(1, rng)
            second_delay = schedule.delay_after(2, rng)
            clock.now += first_delay - 0.01
            assert await sender.deliver_due() == 0
            clock.now += 0.01
            assert await sender.deliver_due() == 1  # attempt 2: 503
            clock.now += second_delay
            assert await sender.deliver_due() == 1  # attempt 3: 204
            clock.now += 10_000
            assert await sender.deliver_due() == 0
        finally:
            await sender.stop()

    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    sent_at = int(headers["X-Chargetwin-Signature"].split(",")[0][2:])
    assert verify(SECRET, headers["X-Chargetwin-Signature"], body, now=sent_at + 1)
    payload = orjson.loads(body)
    assert payload["type"] == "alert.raised"
    assert payload["data"]["rule"] == "faulted"
    assert headers["X-Chargetwin-Event"] == "alert.raised"
    with session_factory() as db:
        [delivery] = webhooks.deliveries(db, hook_id)
        assert webhooks.deliveries(db, other_id) == []
        assert delivery["status"] == "delivered"
        assert delivery["attempts"] == 3
        assert [(a["attempt"], a["status_code"]) for a in delivery["log"]] == [(1, 503), (2, 503), (3, 204)]
        times = [a["at"].timestamp() for a in delivery["log"]]
        assert times[1] - times[0] == pytest.approx(first_delay, abs=1e-3)
        assert times[2] - times[1] == pytest.approx(second_delay, abs=1e-3)
        assert db.query(WebhookAttempt).count() == 3


async def test_delivery_gives_up_after_max_attempts_and_logs_connection_errors(session_factory):
    start = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
    clock = FakeClock(start.timestamp())
    with session_factory() as db:
        hook = webhooks.create(db, "http://127.0.0.1:9/nothing-listens", SECRET, ["*"], start)
        webhooks.enqueue(db, "alert.raised", {"id": 1}, start)
        db.commit()
        hook_id = hook.id
    schedule = RetrySchedule(base_s=1, jitter=0.0, max_attempts=3)
    sender = WebhookSender(session_factory, schedule=schedule, rng=random.Random(1), clock=clock, timeout_s=2)
    try:
        for _ in range(5):
            await sender.deliver_due()
            clock.now += 60
    finally:
        await sender.stop()
    with session_factory() as db:
        [delivery] = webhooks.deliveries(db, hook_id)
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("failed", 3, None)
    assert all(a["status_code"] is None and "Connect" in a["error"] for a in delivery["log"])
