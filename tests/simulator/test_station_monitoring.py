"""The twin's variable monitors against the CSMS's session (real frames): SetVariableMonitoring answers per
monitor, NotifyEvent when an EVSE's power crosses a threshold and when it goes back, stored by the CSMS; and
the alert engine turning those events into one `monitor_alert` per EVSE."""

from __future__ import annotations

from csms.alerts import engine as al
from csms.alerts.feed import monitor_alerts
from csms.ocpp import commands
from csms.ocpp.outgoing import MonitorSpec, VariableRef
from csms.services import monitoring
from tests.simulator.helpers import STATION, StationPair

POWER = VariableRef("Power", "EVSE", 1)


def test_a_power_threshold_monitor_reports_crossing_and_clearing(tmp_path):
    pair = StationPair(tmp_path, "2.0.1")
    pair.start()
    specs = [
        MonitorSpec(POWER, "UpperThreshold", 7000.0, 4),
        MonitorSpec(VariableRef("Power", "EVSE", 9), "UpperThreshold", 1.0, 4),
        MonitorSpec(VariableRef("Temperature", "EVSE", 1), "UpperThreshold", 60.0, 4),
        MonitorSpec(POWER, "Periodic", 60.0, 8),
        MonitorSpec(POWER, "UpperThreshold", 7000.0, 4),
    ]
    action, payload = commands.set_variable_monitoring("2.0.1", specs)
    results = pair.csms_call(action, payload).payload["setMonitoringResult"]
    assert [r["status"] for r in results] == [
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "UnsupportedMonitorType",
        "Duplicate",
    ]
    monitor_id = results[0]["id"]
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.meter.power[1] = 11000.0
    pair.run(120)
    pair.meter.power[1] = 3000.0
    pair.run(120)
    events = [item for sent in pair.calls("NotifyEvent") for item in sent.payload["eventData"]]
    assert [(e["variableMonitoringId"], e["trigger"], e["actualValue"], e.get("cleared", False)) for e in events] == [
        (monitor_id, "Alerting", "11000", False),
        (monitor_id, "Alerting", "3000", True),
    ]
    with pair.db() as db:
        stored = monitoring.events(db, STATION, kind="device_event")
    assert len(stored) == 2
    action, payload = commands.clear_variable_monitoring("2.0.1", [monitor_id, 99])
    cleared = pair.csms_call(action, payload).payload["clearMonitoringResult"]
    assert cleared == [{"id": monitor_id, "status": "Accepted"}, {"id": 99, "status": "NotFound"}]


def test_monitor_events_raise_one_alert_per_evse_until_every_monitor_there_cleared():
    engine = al.AlertEngine()
    notify = {
        "eventData": [
            {"eventId": 1, "trigger": "Alerting", "actualValue": "11000", "variableMonitoringId": 3,
             "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
            {"eventId": 2, "trigger": "Delta", "actualValue": "5", "variableMonitoringId": 4,
             "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
        ]
    }  # fmt: skip
    events = monitor_alerts("cp-1", notify)
    assert events == [al.MonitorAlert("cp-1", 1, 3, False, "EVSE", "Power", "11000")]  # Delta is no alert
    raised = engine.feed(events[0], 100.0)
    assert [(e.rule, e.evse_id, e.details["monitor_id"]) for e in raised if isinstance(e, al.RaiseAlert)] == [
        (al.MONITOR_ALERT, 1, 3)
    ]
    assert not engine.feed(al.MonitorAlert("cp-1", 1, 5, False, "EVSE", "Power", "9000"), 110.0)  # already open
    assert not engine.feed(al.MonitorAlert("cp-1", 1, 3, True, "EVSE", "Power", "3000"), 120.0)  # 5 still alerts
    resolved = engine.feed(al.MonitorAlert("cp-1", 1, 5, True, "EVSE", "Power", "2000"), 130.0)
    assert [(e.rule, e.evse_id) for e in resolved if isinstance(e, al.ResolveAlert)] == [(al.MONITOR_ALERT, 1)]
