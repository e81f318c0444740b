"""Alerts: list, acknowledge, resolve; the alert rules' settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from csms.alerts import OperatorResolved
from csms.api.auth import Caller
from csms.api.deps import DbSession, in_transaction
from csms.api.schemas import Out, Strict, examples
from csms.services import alerts

router = APIRouter(tags=["alerts"])
AlertId = Annotated[int, Path(ge=1, le=2**62)]


class AlertOut(Out):
    id: int
    rule: str
    station_id: str
    evse_id: int | None
    severity: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    details: dict[str, Any]


class ByWhom(Strict):
    model_config = examples({"by": "night-shift operator"})

    by: str | None = Field(None, max_length=100, pattern=r"^[^\x00]*$")


class RuleOut(Out):
    rule: str
    enabled: bool
    severity: str
    threshold: float | None
    threshold_field: str | None


class RuleUpdate(Strict):
    model_config = examples({"enabled": True, "severity": "critical", "threshold": 3})

    enabled: bool = True
    severity: Literal["info", "warning", "critical"] | None = None
    threshold: float | None = Field(None, ge=0, le=10**9)


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    db: DbSession,
    caller: Caller,
    open: Annotated[bool, Query(description="only unresolved alerts")] = False,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Any:
    return alerts.list_alerts(
        db, open_only=open, station_id=station_id, limit=limit, offset=offset, organisation_id=caller.scope
    )


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(alert_id: AlertId, db: DbSession, body: ByWhom | None = None) -> Any:
    return alerts.acknowledge(db, alert_id, (body or ByWhom()).by, datetime.now(UTC))


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut)
async def resolve(request: Request, alert_id: AlertId, body: ByWhom | None = None) -> Any:
    """Resolve by hand (409 when already resolved). The engine raises it again only if the condition returns."""
    row = await in_transaction(
        request,
        lambda db: AlertOut.model_validate(alerts.resolve(db, alert_id, (body or ByWhom()).by, datetime.now(UTC))),
    )
    monitor = getattr(request.app.state, "monitor", None)
    if monitor is not None:
        monitor.feed([OperatorResolved(row.rule, row.station_id, row.evse_id)], datetime.now(UTC).timestamp())
    return row


@router.get("/alert-rules", response_model=list[RuleOut])
async def list_rules(request: Request) -> Any:
    monitor = getattr(request.app.state, "monitor", None)
    base = monitor.engine.rules if monitor is not None else None
    rules = await in_transaction(request, lambda db: alerts.effective_rules(db, base))
    return alerts.describe_rules(rules)


@router.put("/alert-rules/{rule}", response_model=list[RuleOut])
async def update_rule(request: Request, rule: Annotated[str, Path(pattern=r"^[a-z_]{1,40}$")], body: RuleUpdate) -> Any:
    """Turn a rule on/off, change its severity or threshold (seconds, %, or a count; see `threshold_field`).
    Takes effect at once in the running engine."""
    monitor = getattr(request.app.state, "monitor", None)
    base = monitor.engine.rules if monitor is not None else None

    def work(db: Any) -> Any:
        alerts.set_rule(
            db, rule, enabled=body.enabled, severity=body.severity, threshold=body.threshold, now=datetime.now(UTC)
        )
        return alerts.effective_rules(db, base)

    rules = await in_transaction(request, work)
    if monitor is not None:
        monitor.engine.rules = rules
    return alerts.describe_rules(rules)
