"""The monitor shell with a fake clock: a missed heartbeat becomes an alert and an offline period in uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.alerts import AlertEngine, AlertRules
from csms.domain import events as ev
from csms.runtime.monitor import Monitor
from csms.services import alerts, stations, uptime
from csms.services.uow import UnitOfWork
from csms.uptime import Period

START = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now


async def test_missed_heartbeats_are_stored_as_alert_and_outage(session_factory):
    with session_factory() as db:
        stations.provision(db, "cp-1", ocpp_version="1.6", password=None, now=START)
        stations.status(db, "cp-1", ev.StatusReported(1, 1, "Available", ev.PortState.AVAILABLE, START), START)
        uow = UnitOfWork(db)
        stations.connection_changed(uow, "cp-1", "connected", START)
        uow.commit()
    clock = FakeClock()
    woken: list[int] = []
    monitor = Monitor(
        session_factory,
        AlertEngine(AlertRules(heartbeat_factor=2, heartbeat_grace_s=30)),
        on_committed=lambda: woken.append(1),
        clock=clock,
    )
    await monitor.start()
    t0 = clock.now
    monitor.connected("cp-1", "1.6", t0)
    boot = (ev.BootReported("Acme", "X"), ev.BootDecision("Accepted", 60, START))
    monitor.committed("cp-1", [boot], t0)
    assert monitor.engine.next_deadline() == t0 + 150
    clock.now = t0 + 150
    monitor._on_timer()  # what the loop timer calls at the deadline
    await monitor.idle()
    clock.now = t0 + 600
    monitor.committed("cp-1", [(ev.HeartbeatReceived(), ev.TimeNow(START))], clock.now)
    await monitor.idle()
    await monitor.stop()

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
