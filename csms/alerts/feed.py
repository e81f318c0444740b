"""Committed station reports as alert-engine events: the one mapping from the CSMS's domain events to the
inputs of :class:`~csms.alerts.engine.AlertEngine` (pure; no store, no clock)."""

from __future__ import annotations

from typing import Any

from csms.alerts import engine as al
from csms.domain import events as ev
from csms.domain import meter

#: The report kinds that carry a transaction's meter readings (the most frequent: matched first, by class).
METERED: frozenset[type] = frozenset({ev.TransactionStarted, ev.TransactionUpdated, ev.MeterValuesReported})


def report_events(
    station_id: str, reports: list[tuple[ev.StationReport, ev.Decision]]
) -> tuple[list[al.Event], list[str]]:
    """Committed reports as engine events, and the charger ids of the transactions that ended."""
    events: list[al.Event] = [al.Seen(station_id)]
    ended: list[str] = []
    for report, decision in reports:
        if type(report) in METERED:
            events += meter_reads(station_id, report, decision)  # type: ignore[arg-type]
        else:
            _other_events(station_id, report, decision, events, ended)
    return events, ended


def ends_transaction(reports: list[tuple[ev.StationReport, ev.Decision]]) -> bool:
    """Whether a transaction ended among the reports (its session's outcome is read before the engine hears)."""
    for report, _ in reports:  # noqa: SIM110 - a loop: asked of every committed report, where a generator costs more
        if type(report) is ev.TransactionEnded:
            return True
    return False


def feed_reports(
    engine: al.AlertEngine, station_id: str, reports: list[tuple[ev.StationReport, ev.Decision]], now: float
) -> list[al.Effect]:
    """The effects of :func:`report_events`' events fed to ``engine`` one by one, in the same order, without making
    the events of the two that come with every report: the station seen, and each meter reading (the engine's
    :meth:`~csms.alerts.engine.AlertEngine.seen` and :meth:`~csms.alerts.engine.AlertEngine.meter_read`). Not for
    reports where a transaction ended (:func:`ends_transaction`): their sessions' outcomes are fed with them."""
    out: list[al.Effect] = []
    engine.seen(station_id, now, out)
    for report, decision in reports:
        if type(report) in METERED:
            _feed_meter_reads(engine, station_id, report, decision, now, out)  # type: ignore[arg-type]
        elif type(report) is not ev.HeartbeatReceived:
            events: list[al.Event] = []
            _other_events(station_id, report, decision, events, [])
            for event in events:
                out += engine.feed(event, now)
    return out


def _other_events(
    station_id: str, report: ev.StationReport, decision: ev.Decision, events: list[al.Event], ended: list[str]
) -> None:
    """The events of a report that carries no meter readings (appended to ``events``; an ended transaction's
    charger id to ``ended``)."""
    match report:
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


def _feed_meter_reads(
    engine: al.AlertEngine,
    station_id: str,
    report: ev.TransactionStarted | ev.TransactionUpdated | ev.MeterValuesReported,
    decision: ev.Decision,
    now: float,
    out: list[al.Effect],
) -> None:
    """:func:`meter_reads` fed to ``engine`` (each reading's fields straight to it)."""
    tx_id = _transaction_id(report, decision)
    if tx_id is None:
        return
    found = meter.readings(report.samples)
    if not found:  # a start's register, a state change without values (meter_reads says which)
        for event in meter_reads(station_id, report, decision):
            out += engine.feed(event, now)
        return
    state = report.charging_state if type(report) is ev.TransactionUpdated else None
    evse_id = report.evse_id
    for r in found:
        engine.meter_read(
            station_id, evse_id, tx_id, r.at.timestamp(), r.energy_wh, r.power_w, r.port_current_a, state, now, out
        )


def _transaction_id(
    report: ev.TransactionStarted | ev.TransactionUpdated | ev.MeterValuesReported, decision: ev.Decision
) -> str | None:
    """The charger's id of the transaction the readings belong to (None: outside one)."""
    if report.charger_tx_id is None and isinstance(decision, ev.TransactionAck) and decision.transaction_id:
        return str(decision.transaction_id)  # 1.6 StartTransaction: the id we assigned
    return report.charger_tx_id


def meter_reads(
    station_id: str,
    report: ev.TransactionStarted | ev.TransactionUpdated | ev.MeterValuesReported,
    decision: ev.Decision,
) -> list[al.Event]:
    """A transaction's meter readings (the meter-frozen rule's input); readings outside a transaction are not."""
    tx_id = _transaction_id(report, decision)
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
