"""The alert monitor plugin on a host driven by hand: a missed heartbeat becomes an alert and an offline period
in uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.alerts import AlertEngine, AlertRules
from csms.alerts import engine as al
from csms.core.host import CsmsHost
from csms.core.plugins.alerts import AlertMonitor
from csms.domain import events as ev
from csms.services import alerts, stations, uptime
from csms.services.config import CsmsConfig
from csms.services.uow import transaction
from csms.store.models import StationEvent
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


class _Router:
    """A cluster's way to another node, recorded; it answers as the owner of the station would."""

    def __init__(self) -> None:
        self.routed: list[tuple[str, str, dict]] = []

    def remediate(self, station_id, action, payload, answered) -> None:
        self.routed.append((station_id, action, payload))
        answered({"action": action, "message_id": "m-1", "outcome": "result", "payload": {"status": "Accepted"}})


def _remediations(session_factory) -> list[dict]:
    with session_factory() as db:
        rows = db.query(StationEvent).filter(StationEvent.kind == "auto_remediation").all()
        return [row.data for row in rows]


def test_a_remediation_for_a_station_on_another_node_goes_through_the_cluster(session_factory):
    with transaction(session_factory) as uow:
        stations.provision(uow.session, "cp-9", ocpp_version="2.0.1", password=None, now=START)
    scheduler = ManualScheduler(START.timestamp())
    host = CsmsHost(session_factory, CsmsConfig(), scheduler)
    monitor = AlertMonitor(AlertEngine(AlertRules()))
    host.add_plugin(monitor)
    reset = al.SendCall("cp-9", "Reset", {"type": "OnIdle"}, "connector faulted")

    monitor._apply([reset], START.timestamp())  # no cluster: the station is not connected here
    assert _remediations(session_factory)[-1]["outcome"] == "not_sent"

    router = _Router()
    monitor.router = router
    monitor._apply([reset], START.timestamp())
    assert router.routed == [("cp-9", "Reset", {"type": "OnIdle"})]
    last = _remediations(session_factory)[-1]
    assert (last["outcome"], last["payload"], last["reason"]) == ("result", {"status": "Accepted"}, "connector faulted")
