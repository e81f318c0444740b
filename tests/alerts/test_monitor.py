"""The alert monitor plugin on a host driven by hand: a missed heartbeat becomes an alert and an offline period
in uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.alerts import AlertEngine, AlertRules
from csms.core.host import CsmsHost
from csms.core.plugins.alerts import AlertMonitor
from csms.domain import events as ev
from csms.services import alerts, stations, uptime
from csms.services.config import CsmsConfig
from csms.services.uow import transaction
from csms.uptime import Period
from tests.manual_scheduler import ManualScheduler

START = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


def test_missed_heartbeats_are_stored_as_alert_and_outage(session_factory):
    with transaction(session_factory) as uow:
        db = uow.session
        stations.provision(db, "cp-1", ocpp_version="1.6", password=None, now=START)
        stations.status(db, "cp-1", ev.StatusReported(1, 1, "Available", ev.PortState.AVAILABLE, START), START)
        stations.connection_changed(uow, "cp-1", "connected", START)
    t0 = START.timestamp()
    scheduler = ManualScheduler(t0)
    host = CsmsHost(session_factory, CsmsConfig(), scheduler)
    woken: list[int] = []
    monitor = AlertMonitor(
        AlertEngine(AlertRules(heartbeat_factor=2, heartbeat_grace_s=30)), on_stored=lambda: woken.append(1)
    )
    host.add_plugin(monitor)
    monitor.start()
    monitor.connected("cp-1", "1.6", True, t0)
    boot = (ev.BootReported("Acme", "X"), ev.BootDecision("Accepted", 60, START))
    monitor.committed("cp-1", [boot], t0)
    assert scheduler.pending() == [t0 + 150]  # one alarm, at the engine's deadline
    scheduler.advance(t0 + 599)
    monitor.committed("cp-1", [(ev.HeartbeatReceived(), ev.TimeNow(START))], t0 + 600)
    host.stop()
    assert scheduler.pending() == []

    with session_factory() as db:
        [alert] = alerts.list_alerts(db)
        assert (alert.rule, alert.raised_at, alert.resolved_at) == (
            "heartbeat_missed",
            START + timedelta(seconds=150),
            START + timedelta(seconds=600),
        )
        outages = uptime.station_outages(db, "cp-1", Period(START, START + timedelta(hours=1)))
    # Offline from the last time heard (t0), not from the detection (t0 + 150).
    assert [(o["start"], o["end"], o["cause"]) for o in outages] == [(START, START + timedelta(seconds=600), "offline")]
    assert woken  # the webhook sender is told about new deliveries
