"""The alert engine at exact virtual times: heartbeat timeouts, thresholds, dedup, auto-remediation limits."""

from __future__ import annotations

from csms.alerts import (
    AlertEngine,
    AlertRules,
    BootDecided,
    Connected,
    ConnectivityChanged,
    Disconnected,
    FirmwareStatus,
    OperatorResolved,
    RaiseAlert,
    RemediationPolicy,
    ResolveAlert,
    SecurityEvent,
    Seen,
    SendCall,
    SessionDelivered,
    SessionFailed,
    StatusChanged,
    UptimeMeasured,
)
from csms.domain.events import PortState

T = 1_000_000.0  # an arbitrary virtual epoch


class FakeClock:
    """Drives the engine the way a shell does: jump to the next deadline, fire it."""

    def __init__(self, engine: AlertEngine, now: float = T) -> None:
        self.engine, self.now = engine, now

    def run_until(self, until: float) -> list[tuple[float, object]]:
        fired = []
        while (deadline := self.engine.next_deadline()) is not None and deadline <= until:
            self.now = deadline
            fired += [(self.now, effect) for effect in self.engine.handle_timer(self.now)]
        self.now = until
        return fired


def rules(**kw) -> AlertRules:
    return AlertRules(heartbeat_interval_s=60, heartbeat_factor=2, heartbeat_grace_s=30, **kw)


def test_heartbeat_timeout_at_exactly_last_seen_plus_interval_times_factor_plus_grace():
    engine = AlertEngine(rules(offline_after_s=600))
    engine.feed(Connected("cp-1"), T)
    engine.feed(BootDecided("cp-1", "Accepted", 100), T)
    assert engine.next_deadline() == T + 100 * 2 + 30
    engine.feed(Seen("cp-1"), T + 50)
    deadline = T + 50 + 230
    assert engine.next_deadline() == deadline
    assert engine.handle_timer(deadline - 0.001) == []
    effects = engine.handle_timer(deadline)
    assert effects == [
        ConnectivityChanged("cp-1", False, T + 50, "heartbeats missed"),
        RaiseAlert("heartbeat_missed", "cp-1", None, "warning", deadline, {"last_seen": T + 50, "deadline": deadline}),
    ]
    # Offline > 600 s counts from the last time we heard from it.
    assert engine.next_deadline() == T + 50 + 600
    offline = engine.handle_timer(T + 650)
    assert [(e.rule, e.at) for e in offline] == [("offline", T + 650)]
    back = engine.feed(Seen("cp-1"), T + 700)
    assert back == [
        ConnectivityChanged("cp-1", True, T + 700, "heard from again"),
        ResolveAlert("heartbeat_missed", "cp-1", None, T + 700),
        ResolveAlert("offline", "cp-1", None, T + 700),
    ]
    assert engine.next_deadline() == T + 700 + 230


def test_heartbeats_in_time_never_alert():
    engine = AlertEngine(rules())
    clock = FakeClock(engine)
    engine.feed(Connected("cp-1"), T)
    for k in range(1, 50):
        assert clock.run_until(T + 60 * k) == []
        engine.feed(Seen("cp-1"), clock.now)
    assert clock.run_until(T + 49 * 60 + 149.999) == []
    assert [e.rule for _, e in clock.run_until(T + 49 * 60 + 150) if isinstance(e, RaiseAlert)] == ["heartbeat_missed"]


def test_socket_close_goes_offline_at_once_and_alerts_after_the_threshold():
    engine = AlertEngine(rules(offline_after_s=300))
    clock = FakeClock(engine)
    engine.feed(Connected("cp-1"), T)
    engine.feed(Disconnected("cp-1"), T + 10)
    fired = clock.run_until(T + 1_000)
    assert [(at, e.rule) for at, e in fired] == [(T + 310, "offline")]  # no heartbeat alert once closed
    assert engine.feed(Connected("cp-1"), T + 1_000) == [ResolveAlert("offline", "cp-1", None, T + 1_000)]


def test_faulted_threshold_and_clearing():
    engine = AlertEngine(AlertRules(faulted_after_s=300))  # heartbeat timeout 660 s
    engine.feed(Connected("cp-1"), T)
    engine.feed(StatusChanged("cp-1", 2, PortState.FAULTED, "GroundFailure"), T + 100)
    engine.feed(StatusChanged("cp-1", 2, PortState.FAULTED, "GroundFailure"), T + 200)  # repeated report: same start
    assert engine.handle_timer(T + 399.9) == []
    effects = [e for e in engine.handle_timer(T + 400) if isinstance(e, RaiseAlert)]
    assert effects == [
        RaiseAlert("faulted", "cp-1", 2, "critical", T + 400, {"faulted_since": T + 100, "error_code": "GroundFailure"})
    ]
    assert engine.feed(StatusChanged("cp-1", 2, PortState.AVAILABLE), T + 500) == [
        ResolveAlert("faulted", "cp-1", 2, T + 500)
    ]
    # A fault shorter than the threshold never alerts.
    engine.feed(StatusChanged("cp-1", 2, PortState.FAULTED), T + 600)
    engine.feed(StatusChanged("cp-1", 2, PortState.AVAILABLE), T + 899)
    assert [e for e in engine.handle_timer(T + 2_000) if getattr(e, "rule", None) == "faulted"] == []


def test_one_open_alert_per_rule_and_port():
    engine = AlertEngine(rules())
    first = engine.feed(SecurityEvent("cp-1", "TamperDetectionActivated"), T)
    assert [e.rule for e in first] == ["security_event"]
    assert engine.feed(SecurityEvent("cp-1", "TamperDetectionActivated"), T + 1) == []
    assert [e.rule for e in engine.feed(SecurityEvent("cp-2", "X"), T + 1)] == ["security_event"]
    engine.feed(OperatorResolved("security_event", "cp-1"), T + 2)
    assert [e.rule for e in engine.feed(SecurityEvent("cp-1", "X"), T + 3)] == ["security_event"]
    # Restored from the store: not raised twice after a restart.
    restarted = AlertEngine(rules())
    restarted.restore([("security_event", "cp-1", None)])
    assert restarted.feed(SecurityEvent("cp-1", "X"), T) == []


def test_boot_rejected_firmware_failed_uptime_and_stuck_available():
    engine = AlertEngine(rules(stuck_available_failures=3, uptime_target_pct=97.0))
    assert [e.rule for e in engine.feed(BootDecided("cp-1", "Rejected", 600), T) if isinstance(e, RaiseAlert)] == [
        "boot_rejected"
    ]
    assert engine.feed(BootDecided("cp-1", "Accepted", 60), T + 1) == [
        ResolveAlert("boot_rejected", "cp-1", None, T + 1)
    ]
    assert engine.feed(FirmwareStatus("cp-1", "Downloading"), T) == []
    assert [e.rule for e in engine.feed(FirmwareStatus("cp-1", "InstallationFailed"), T)] == ["firmware_failed"]
    assert engine.feed(FirmwareStatus("cp-1", "Installed"), T + 5) == [
        ResolveAlert("firmware_failed", "cp-1", None, T + 5)
    ]
    assert [e.rule for e in engine.feed(UptimeMeasured("cp-1", 1, 96.9), T)] == ["uptime_below_target"]
    assert engine.feed(UptimeMeasured("cp-1", 1, 97.0), T + 1) == [
        ResolveAlert("uptime_below_target", "cp-1", 1, T + 1)
    ]
    engine.feed(StatusChanged("cp-1", 1, PortState.AVAILABLE), T)
    assert engine.feed(SessionFailed("cp-1", 1), T) == []
    assert engine.feed(SessionFailed("cp-1", 1), T + 1) == []
    raised = engine.feed(SessionFailed("cp-1", 1), T + 2)
    assert [(e.rule, e.evse_id, e.details["failed_sessions"]) for e in raised] == [("stuck_available", 1, 3)]
    assert engine.feed(SessionDelivered("cp-1", 1), T + 3) == [ResolveAlert("stuck_available", "cp-1", 1, T + 3)]


def test_disabled_rules_do_not_raise():
    engine = AlertEngine(rules(enabled=frozenset({"offline"})))
    assert engine.feed(SecurityEvent("cp-1", "X"), T) == []


def test_auto_remediation_soft_resets_at_most_m_times_per_day():
    engine = AlertEngine(
        rules(faulted_after_s=60, enabled=frozenset({"remediation_exhausted"})),
        RemediationPolicy(enabled=True, after_s=600, max_per_day=2),
    )
    clock = FakeClock(engine)
    engine.feed(Connected("cp-2", "2.0.1"), T)
    engine.feed(StatusChanged("cp-2", 1, PortState.FAULTED), T)
    engine.feed(Seen("cp-2"), T)  # keep heartbeat rule quiet in this test
    fired = [(at, e) for at, e in clock.run_until(T + 3 * 600) if isinstance(e, SendCall | RaiseAlert)]
    assert fired == [
        (T + 600, SendCall("cp-2", "Reset", {"type": "OnIdle"}, "port 1 Faulted for 600 s")),
        (T + 1200, SendCall("cp-2", "Reset", {"type": "OnIdle"}, "port 1 Faulted for 600 s")),
        (
            T + 1800,
            RaiseAlert(
                "remediation_exhausted", "cp-2", 1, "critical", T + 1800, {"resets_in_24h": 2, "max_per_day": 2}
            ),
        ),
    ]
    # The next try comes when the first reset leaves the 24 h window.
    later = [(at, e.action) for at, e in clock.run_until(T + 600 + 86_400) if isinstance(e, SendCall)]
    assert later == [(T + 600 + 86_400, "Reset")]
    # The fault clears: remediation stops, the exhausted alert resolves.
    assert engine.feed(StatusChanged("cp-2", 1, PortState.AVAILABLE), clock.now) == [
        ResolveAlert("remediation_exhausted", "cp-2", 1, clock.now)
    ]
    assert [e for _, e in clock.run_until(clock.now + 10 * 86_400) if isinstance(e, SendCall)] == []


def test_remediation_payload_is_version_aware_and_fault_cleared_in_time_sends_nothing():
    engine = AlertEngine(rules(), RemediationPolicy(enabled=True, after_s=300, max_per_day=1))
    engine.feed(Connected("cp-1", "1.6"), T)
    engine.feed(StatusChanged("cp-1", 0, PortState.FAULTED), T)
    calls = [e for e in engine.handle_timer(T + 300) if isinstance(e, SendCall)]
    assert calls == [SendCall("cp-1", "Reset", {"type": "Soft"}, "port 0 Faulted for 300 s")]
    engine.feed(StatusChanged("cp-1", 0, PortState.AVAILABLE), T + 301)
    engine.feed(StatusChanged("cp-1", 0, PortState.FAULTED), T + 400)
    engine.feed(StatusChanged("cp-1", 0, PortState.AVAILABLE), T + 699)
    assert [e for e in engine.handle_timer(T + 5_000) if isinstance(e, SendCall)] == []


def _busy_night(engine: AlertEngine) -> tuple[list[tuple[float, object]], int]:
    """200 stations reporting every 60 s for 2 h; a third go silent after 1 h. The effects in firing order and
    the largest heap the engine kept."""
    clock, largest = FakeClock(engine), 0
    stations = [f"cp-{i}" for i in range(200)]
    for i, station_id in enumerate(stations):
        engine.feed(Connected(station_id), T + i / 10)
    fired: list[tuple[float, object]] = []
    for minute in range(1, 121):
        fired += clock.run_until(T + minute * 60)
        for i, station_id in enumerate(stations):
            if minute > 60 and i % 3 == 0:
                continue
            engine.feed(Seen(station_id), T + minute * 60 + i / 10)
            largest = max(largest, len(engine._heap))
    fired += clock.run_until(T + 4 * 3600)
    return fired, largest


def test_re_armed_deadlines_do_not_pile_up_and_fire_in_the_same_order(monkeypatch):
    """Every report re-arms the station's heartbeat deadline; the superseded entries are dropped from the heap
    (they held ~1 kB per connected station) without changing which deadline fires when, or in what order."""
    from csms.alerts import engine as engine_module

    compacted, largest = _busy_night(AlertEngine(AlertRules(heartbeat_interval_s=300)))
    monkeypatch.setattr(engine_module, "COMPACT_SLACK", 10**9)
    piled_up, largest_before = _busy_night(AlertEngine(AlertRules(heartbeat_interval_s=300)))
    assert compacted == piled_up
    assert sum(isinstance(effect, ConnectivityChanged) for _, effect in compacted) >= 67  # the silent third
    assert largest_before > 5 * 200  # without compaction: several stale entries per station
    assert largest <= 2 * 200 + engine_module.COMPACT_SLACK + 1
