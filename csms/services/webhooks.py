"""Webhooks: subscriptions, the delivery outbox (written with the event, same transaction), the attempt log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.alerts.webhooks import matches
from csms.services.errors import Invalid, NotFound
from csms.store.models import Webhook, WebhookAttempt, WebhookDelivery


def create(db: Session, url: str, secret: str, events: list[str], now: datetime) -> Webhook:
    if not url.startswith(("http://", "https://")):
        raise Invalid("a webhook url must be http:// or https://")
    row = Webhook(url=url, secret=secret, events=events or ["*"], active=True, created_at=now)
    db.add(row)
    db.flush()
    return row


def get(db: Session, webhook_id: int) -> Webhook:
    row = db.get(Webhook, webhook_id)
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return row


def list_webhooks(db: Session) -> list[Webhook]:
    return list(db.scalars(select(Webhook).order_by(Webhook.id)))


def update(db: Session, webhook_id: int, changes: dict[str, Any]) -> Webhook:
    row = get(db, webhook_id)
    for key in ("url", "secret", "events", "active"):
        if key in changes and changes[key] is not None:
            setattr(row, key, changes[key])
    db.flush()
    return row


def delete(db: Session, webhook_id: int) -> None:
    db.delete(get(db, webhook_id))
    db.flush()


def enqueue(db: Session, event_type: str, data: dict[str, Any], now: datetime) -> int:
    """Queue ``event_type`` for every active webhook whose filter takes it; returns how many."""
    count = 0
    for hook in db.scalars(select(Webhook).where(Webhook.active.is_(True))):
        if matches(hook.events, event_type):
            payload = {"type": event_type, "created_at": now.isoformat(), "data": data}
            db.add(
                WebhookDelivery(
                    webhook_id=hook.id, event_type=event_type, payload=payload, created_at=now, next_attempt_at=now
                )
            )
            count += 1
    db.flush()
    return count


def due(db: Session, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
    """Pending deliveries whose next attempt is due, oldest first, with what the sender needs."""
    rows = db.execute(
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [
        {
            "id": delivery.id,
            "url": hook.url,
            "secret": hook.secret,
            "event_type": delivery.event_type,
            "payload": delivery.payload,
            "attempts": delivery.attempts,
        }
        for delivery, hook in rows
    ]


def next_due(db: Session) -> datetime | None:
    return db.scalars(
        select(WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(1)
    ).first()


def record_attempt(
    db: Session,
    delivery_id: int,
    *,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: float | None,
    delivered: bool,
    next_attempt_at: datetime | None,
) -> WebhookDelivery:
    """Log one attempt; the delivery is delivered, retried at ``next_attempt_at``, or failed (None)."""
    delivery = db.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    delivery.attempts += 1
    db.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            attempt=delivery.attempts,
            at=at,
            status_code=status_code,
            error=(error or None) and error[:500],
            duration_ms=duration_ms,
        )
    )
    delivery.last_status_code = status_code
    delivery.last_error = (error or None) and error[:500]
    if delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", at, None
    elif next_attempt_at is None:
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        delivery.next_attempt_at = next_attempt_at
    db.flush()
    return delivery


def deliveries(db: Session, webhook_id: int, limit: int = 100) -> list[dict[str, Any]]:
    get(db, webhook_id)
    rows = list(
        db.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
    attempts: dict[int, list[WebhookAttempt]] = {}
    if rows:
        for attempt in db.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([r.id for r in rows]))
            .order_by(WebhookAttempt.id)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [
        {
            "id": r.id,
            "event_type": r.event_type,
            "payload": r.payload,
            "status": r.status,
            "attempts": r.attempts,
            "last_status_code": r.last_status_code,
            "last_error": r.last_error,
            "next_attempt_at": r.next_attempt_at,
            "delivered_at": r.delivered_at,
            "created_at": r.created_at,
            "log": [
                {"attempt": a.attempt, "at": a.at, "status_code": a.status_code, "error": a.error}
                for a in attempts.get(r.id, [])
            ],
        }
        for r in rows
    ]
