"""Webhook subscriptions and their delivery log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import Field

from csms.api.deps import DbSession
from csms.api.schemas import Out, Strict, examples
from csms.services import webhooks

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Url = Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://[^\x00-\x20]+$")]
EventName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_.*]+$")]


class WebhookCreate(Strict):
    model_config = examples(
        {
            "url": "https://ops.example.com/hooks/chargetwin",
            "secret": "a-long-shared-hmac-secret",
            "events": ["alert.*"],
        }
    )

    url: Url
    secret: str = Field(min_length=16, max_length=200, description="HMAC-SHA256 key for X-Chargetwin-Signature")
    events: list[EventName] = Field(default_factory=lambda: ["*"], description='e.g. ["alert.*"]')


class WebhookUpdate(Strict):
    model_config = examples({"active": False}, {"events": ["alert.*", "security_event.*"]})

    url: Url | None = None
    secret: str | None = Field(None, min_length=16, max_length=200)
    events: list[EventName] | None = None
    active: bool | None = None


class WebhookOut(Out):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class AttemptOut(Out):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None


class DeliveryOut(Out):
    id: int
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    log: list[AttemptOut]


@router.get("", response_model=list[WebhookOut])
def list_webhooks(db: DbSession) -> Any:
    return webhooks.list_webhooks(db)


@router.post("", response_model=WebhookOut, status_code=status.HTTP_201_CREATED)
def create_webhook(body: WebhookCreate, db: DbSession) -> Any:
    """Subscribe a URL. Events: `alert.raised`, `alert.acknowledged`, `alert.resolved`,
    `security_event.recorded` (or `*`, `alert.*`, `security_event.*`)."""
    return webhooks.create(db, body.url, body.secret, body.events, datetime.now(UTC))


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: WebhookId, db: DbSession) -> Any:
    return webhooks.get(db, webhook_id)


@router.patch("/{webhook_id}", response_model=WebhookOut)
def update_webhook(webhook_id: WebhookId, body: WebhookUpdate, db: DbSession) -> Any:
    return webhooks.update(db, webhook_id, body.model_dump(exclude_unset=True))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, db: DbSession) -> Response:
    webhooks.delete(db, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(webhook_id: WebhookId, db: DbSession, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Newest first, each with its attempts (time, HTTP status or error)."""
    return webhooks.deliveries(db, webhook_id, limit)
