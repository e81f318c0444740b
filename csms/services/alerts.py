"""Alerts: stored, listed, acknowledged and resolved; every change is queued for the webhooks (same transaction)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.alerts import engine as al
from csms.alerts.engine import ALL_RULES, AlertRules
from csms.ocpp.convert import from_posix
from csms.services import webhooks
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import Alert, AlertRuleSetting, ConnectionEvent, Station, StationEvent, Transaction

#: Which AlertRules field an operator's ``threshold`` sets, per rule.
THRESHOLDS = {
    "offline": "offline_after_s",
    "faulted": "faulted_after_s",
    "heartbeat_missed": "heartbeat_grace_s",
    "stuck_available": "stuck_available_failures",
    "uptime_below_target": "uptime_target_pct",
    "meter_frozen": "meter_frozen_after_s",
}
SEVERITIES = ("info", "warning", "critical")


def as_dict(row: Alert) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule": row.rule,
        "station_id": row.station_id,
        "evse_id": row.evse_id,
        "severity": row.severity,
        "raised_at": row.raised_at.isoformat(),
        "acknowledged_at": row.acknowledged_at and row.acknowledged_at.isoformat(),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": row.resolved_at and row.resolved_at.isoformat(),
        "resolved_by": row.resolved_by,
        "details": row.details,
    }


def _open(db: Session, rule: str, station_id: str, evse_id: int | None) -> Alert | None:
    query = select(Alert).where(Alert.rule == rule, Alert.station_id == station_id, Alert.resolved_at.is_(None))
    query = query.where(Alert.evse_id.is_(None) if evse_id is None else Alert.evse_id == evse_id)
    return db.scalars(query.order_by(Alert.id)).first()


def raise_alert(
    db: Session,
    rule: str,
    station_id: str,
    evse_id: int | None,
    severity: str,
    at: datetime,
    details: dict[str, Any],
) -> Alert | None:
    """Store a new alert, unless one is open for the same rule and port (then None)."""
    if _open(db, rule, station_id, evse_id) is not None:
        return None
    row = Alert(rule=rule, station_id=station_id, evse_id=evse_id, severity=severity, raised_at=at, details=details)
    db.add(row)
    db.flush()
    webhooks.enqueue(db, "alert.raised", as_dict(row), at)
    return row


def auto_resolve(db: Session, rule: str, station_id: str, evse_id: int | None, at: datetime) -> Alert | None:
    """The condition cleared: resolve the open alert (None when none is open)."""
    row = _open(db, rule, station_id, evse_id)
    if row is None:
        return None
    row.resolved_at = at
    db.flush()
    webhooks.enqueue(db, "alert.resolved", as_dict(row), at)
    return row


def get(db: Session, alert_id: int) -> Alert:
    row = db.get(Alert, alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row


def acknowledge(db: Session, alert_id: int, by: str | None, now: datetime) -> Alert:
    row = get(db, alert_id)
    if row.acknowledged_at is None:
        row.acknowledged_at, row.acknowledged_by = now, by
        db.flush()
        webhooks.enqueue(db, "alert.acknowledged", as_dict(row), now)
    return row


def resolve(db: Session, alert_id: int, by: str | None, now: datetime) -> Alert:
    row = get(db, alert_id)
    if row.resolved_at is not None:
        raise Conflict(f"alert {alert_id} is already resolved")
    row.resolved_at, row.resolved_by = now, by or "operator"
    db.flush()
    webhooks.enqueue(db, "alert.resolved", as_dict(row), now)
    return row


def list_alerts(
    db: Session,
    *,
    open_only: bool = False,
    station_id: str | None = None,
    limit: int = 200,
    offset: int = 0,
    organisation_id: int | None = None,
) -> list[Alert]:
    query = select(Alert).order_by(Alert.id.desc()).limit(limit).offset(offset)
    if organisation_id is not None:
        query = query.where(Alert.station_id.in_(select(Station.id).where(Station.organisation_id == organisation_id)))
    if open_only:
        query = query.where(Alert.resolved_at.is_(None))
    if station_id is not None:
        query = query.where(Alert.station_id == station_id)
    return list(db.scalars(query))


def open_keys(db: Session) -> list[tuple[str, str, int | None]]:
    return [
        (rule, station_id, evse_id)
        for rule, station_id, evse_id in db.execute(
            select(Alert.rule, Alert.station_id, Alert.evse_id).where(Alert.resolved_at.is_(None))
        )
    ]


# ---- rule settings ------------------------------------------------------------------------------------------
def set_rule(
    db: Session, rule: str, *, enabled: bool, severity: str | None, threshold: float | None, now: datetime
) -> AlertRuleSetting:
    if rule not in ALL_RULES:
        raise NotFound(f"no alert rule {rule!r}; rules: {', '.join(sorted(ALL_RULES))}")
    if severity is not None and severity not in SEVERITIES:
        raise Invalid(f"severity must be one of {', '.join(SEVERITIES)}")
    if threshold is not None and rule not in THRESHOLDS:
        raise Invalid(f"rule {rule!r} has no threshold")
    row = db.get(AlertRuleSetting, rule)
    if row is None:
        row = AlertRuleSetting(rule=rule)
        db.add(row)
    row.enabled, row.severity, row.threshold, row.updated_at = enabled, severity, threshold, now
    db.flush()
    return row


def effective_rules(db: Session, base: AlertRules | None = None) -> AlertRules:
    """``base`` (defaults) with the operator's stored overrides applied."""
    rules = base or AlertRules()
    enabled = set(rules.enabled)
    severity = dict(rules.severity)
    changes: dict[str, Any] = {}
    for row in db.scalars(select(AlertRuleSetting)):
        (enabled.add if row.enabled else enabled.discard)(row.rule)
        if row.severity:
            severity[row.rule] = row.severity
        if row.threshold is not None and row.rule in THRESHOLDS:
            field = THRESHOLDS[row.rule]
            changes[field] = int(row.threshold) if field == "stuck_available_failures" else row.threshold
    return dataclasses.replace(rules, enabled=frozenset(enabled), severity=severity, **changes)


def describe_rules(rules: AlertRules) -> list[dict[str, Any]]:
    return [
        {
            "rule": rule,
            "enabled": rule in rules.enabled,
            "severity": rules.severity.get(rule, "warning"),
            "threshold": getattr(rules, THRESHOLDS[rule]) if rule in THRESHOLDS else None,
            "threshold_field": THRESHOLDS.get(rule),
        }
        for rule in sorted(ALL_RULES)
    ]


# ---- what the alert monitor stores ---------------------------------------------------------------------
#: A session "delivered" when it metered at least this much (below: it failed to start charging).
MIN_SESSION_WH = 1.0


def session_outcomes(db: Session, station_id: str, charger_tx_ids: list[str]) -> list[al.Event]:
    """Ended transactions: TransactionClosed, and SessionDelivered / SessionFailed (the stuck-Available rule's
    input)."""
    rows = db.scalars(
        select(Transaction).where(Transaction.station_id == station_id, Transaction.charger_tx_id.in_(charger_tx_ids))
    )
    events: list[al.Event] = []
    for tx in rows:
        events.append(al.TransactionClosed(station_id, tx.evse_id, tx.charger_tx_id))
        if tx.evse_id is not None:
            delivered = tx.energy_wh >= MIN_SESSION_WH
            events.append((al.SessionDelivered if delivered else al.SessionFailed)(station_id, tx.evse_id))
    return events


def store_effects(db: Session, effects: list[al.Effect]) -> None:
    """Alerts raised/resolved and connectivity changes, in the caller's transaction (SendCall is skipped)."""
    for effect in effects:
        match effect:
            case al.RaiseAlert():
                raise_alert(
                    db,
                    effect.rule,
                    effect.station_id,
                    effect.evse_id,
                    effect.severity,
                    from_posix(effect.at),
                    effect.details,
                )
            case al.ResolveAlert():
                auto_resolve(db, effect.rule, effect.station_id, effect.evse_id, from_posix(effect.at))
            case al.ConnectivityChanged():
                kind = "hb_resumed" if effect.online else "hb_timeout"  # connection_events.kind is 16 chars
                db.add(
                    ConnectionEvent(
                        station_id=effect.station_id, kind=kind, at=from_posix(effect.at), detail=effect.reason
                    )
                )


def record_remediation(db: Session, effect: al.SendCall, outcome: dict[str, Any], now: float) -> None:
    data = {"action": effect.action, "payload": effect.payload, "reason": effect.reason, **outcome}
    db.add(StationEvent(station_id=effect.station_id, kind="auto_remediation", timestamp=from_posix(now), data=data))
