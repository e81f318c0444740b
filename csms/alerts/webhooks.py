"""Webhook signing and the retry schedule, sans-IO (the asyncio sender is ``csms/runtime/webhooks.py``).

Signature: ``X-Chargetwin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, the
scheme Stripe made familiar. Receivers recompute it over the raw body and refuse timestamps older than a
tolerance, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Chargetwin-Signature"
EVENT_HEADER = "X-Chargetwin-Event"
DELIVERY_HEADER = "X-Chargetwin-Delivery"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp`` (POSIX seconds)."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300.0) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))


def matches(event_filter: list[str], event_type: str) -> bool:
    """``["*"]`` takes everything; ``"alert.*"`` a family; otherwise exact names."""
    for pattern in event_filter:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential back-off with jitter: attempt *n* (1-based) failed → wait
    ``min(cap, base × factor^(n-1)) × (1 ± jitter)``; ``None`` after ``max_attempts`` (the delivery failed)."""

    base_s: float = 10.0
    factor: float = 2.0
    cap_s: float = 3_600.0
    jitter: float = 0.2
    max_attempts: int = 8

    def delay_after(self, attempt: int, rng: random.Random) -> float | None:
        if attempt >= self.max_attempts:
            return None
        delay = min(self.cap_s, self.base_s * self.factor ** (attempt - 1))
        return delay * (1.0 + rng.uniform(-self.jitter, self.jitter))


def is_success(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300
