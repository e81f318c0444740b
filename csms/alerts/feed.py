"""Committed station reports as alert-engine events: the one mapping from the CSMS's domain events to the
inputs of :class:`~csms.alerts.engine.AlertEngine` (pure; no store, no clock)."""

from __future__ import annotations

from typing import Any

from csms.alerts import engine as al
from csms.domain import events as ev
from csms.domain import meter


def report_events(
    station_id: str, reports: list[tuple[ev.StationReport, ev.Decision]]
) -> tuple[list[al.Event], list[str]]:
    """Committed reports as engine events, and the charger ids of the transactions that ended."""
    events: list[al.Event] = [al.Seen(station_id)]
    ended: list[str] = []
    for report, decision in reports:
        match report:  # (the kinds are distinct classes: the most frequent, meter readings, is matched first)
            case ev.TransactionStarted() | ev.TransactionUpdated() | ev.MeterValuesReported():
                events += meter_reads(station_id, report, decision)
            case ev.BootReported() if isinstance(decision, ev.BootDecision):
                events.append(al.BootDecided(station_id, decision.status, decision.interval_s))
            case ev.StatusReported():
                events.append(al.StatusChanged(station_id, report.evse_id, report.state, report.error_code))
            case ev.StationNotice(kind="firmware_status"):
                events.append(al.FirmwareStatus(station_id, str(report.data.get("status"))))
            case ev.StationNotice(kind="device_event"):
                events += monitor_alerts(station_id, report.data)
            case ev.StationNotice(kind="security_event"):
                kind = str(report.data.get("type"))
                events.append(al.SecurityEvent(station_id, kind, report.data.get("techInfo")))
            case ev.TransactionEnded():
                ended.append(report.charger_tx_id)
    return events, ended


def meter_reads(
    station_id: str,
    report: ev.TransactionStarted | ev.TransactionUpdated | ev.MeterValuesReported,
    decision: ev.Decision,
) -> list[al.Event]:
    """A transaction's meter readings (the meter-frozen rule's input); readings outside a transaction are not."""
    tx_id = report.charger_tx_id
    if tx_id is None and isinstance(decision, ev.TransactionAck) and decision.transaction_id:
        tx_id = str(decision.transaction_id)  # 1.6 StartTransaction: the id we assigned
    if tx_id is None:
        return []
    state = report.charging_state if isinstance(report, ev.TransactionUpdated) else None
    evse_id = report.evse_id
    reads: list[al.Event] = [  # the samples' readings (:mod:`csms.domain.meter`), each a MeterRead as it is
        al.MeterRead(station_id, evse_id, tx_id, r.at.timestamp(), r.energy_wh, r.power_w, r.port_current_a, state)
        for r in meter.readings(report.samples)
    ]
    if reads:
        return reads
    if isinstance(report, ev.TransactionStarted) and report.meter_start_wh is not None:
        return [al.MeterRead(station_id, evse_id, tx_id, report.timestamp.timestamp(), report.meter_start_wh)]
    if isinstance(report, ev.TransactionUpdated) and state is not None:  # a state change, no values
        return [al.MeterRead(station_id, evse_id, tx_id, report.timestamp.timestamp(), charging_state=state)]
    return []


def monitor_alerts(station_id: str, notify_event: dict[str, Any]) -> list[al.Event]:
    """NotifyEvent's items raised by a variable monitor crossing its threshold (trigger Alerting)."""
    out: list[al.Event] = []
    for item in notify_event.get("eventData", []):
        if item.get("trigger") != "Alerting" or item.get("variableMonitoringId") is None:
            continue
        component = item.get("component", {})
        out.append(
            al.MonitorAlert(
                station_id,
                int(component.get("evse", {}).get("id", 0)),
                int(item["variableMonitoringId"]),
                bool(item.get("cleared", False)),
                str(component.get("name", "")),
                str(item.get("variable", {}).get("name", "")),
                str(item.get("actualValue", "")),
            )
        )
    return out
