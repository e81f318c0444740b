"""The charger's variable monitors (2.0.1 block N: SetVariableMonitoring, ClearVariableMonitoring, NotifyEvent).

What the twin can measure is an EVSE's power (component ``EVSE`` with the EVSE's id, variable ``Power``, in W):
UpperThreshold and LowerThreshold monitors on it are evaluated whenever the firmware wakes (at least every
meter-sample interval while it charges); crossing the threshold sends NotifyEvent ``Alerting`` with the monitor's
id, going back sends it again with ``cleared: true``. Delta monitors report every change of at least ``value``.
Other components or variables are answered UnknownComponent / UnknownVariable, Periodic monitors
UnsupportedMonitorType."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from csms.ocpp.convert import format_time, from_posix

SUPPORTED_TYPES = ("UpperThreshold", "LowerThreshold", "Delta")


class MonitorHost(Protocol):
    connectors: dict[int, Any]

    def send(self, action: str, payload: dict[str, Any], now: float) -> bool: ...
    def power_w(self, connector_id: int) -> float: ...


@dataclass(slots=True)
class Monitor:
    id: int
    evse_id: int
    type: str
    value: float
    severity: int
    #: Threshold monitors: whether the condition holds now; Delta: the value last reported.
    alerting: bool = False
    last: float | None = None


class Monitoring:
    __slots__ = ("_next_event", "_next_id", "host", "monitors")

    def __init__(self, host: MonitorHost) -> None:
        self.host = host
        self.monitors: dict[int, Monitor] = {}
        self._next_id = 1
        self._next_event = 1

    def handlers(self) -> dict[str, Any]:
        return {"SetVariableMonitoring": self.set_monitoring, "ClearVariableMonitoring": self.clear_monitoring}

    # ---- the calls --------------------------------------------------------------------------------------
    def set_monitoring(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        return {"setMonitoringResult": [self._set(item) for item in p["setMonitoringData"]]}

    def _set(self, item: dict[str, Any]) -> dict[str, Any]:
        component, variable = item["component"], item["variable"]
        result = {"type": item["type"], "severity": item["severity"], "component": component, "variable": variable}
        evse_id = component.get("evse", {}).get("id")
        if component["name"] != "EVSE" or evse_id not in self.host.connectors:
            return {**result, "status": "UnknownComponent"}
        if variable["name"] != "Power":
            return {**result, "status": "UnknownVariable"}
        if item["type"] not in SUPPORTED_TYPES:
            return {**result, "status": "UnsupportedMonitorType"}
        wanted = (evse_id, item["type"], float(item["value"]))
        same = [m for m in self.monitors.values() if (m.evse_id, m.type, m.value) == wanted]
        if same and item.get("id") is None:
            return {**result, "status": "Duplicate", "id": same[0].id}
        monitor_id = item.get("id")
        if monitor_id is None:
            monitor_id, self._next_id = self._next_id, self._next_id + 1
        elif monitor_id not in self.monitors:
            return {**result, "status": "Rejected"}  # N04.FR.13: replacing a monitor that does not exist
        self.monitors[monitor_id] = Monitor(monitor_id, evse_id, item["type"], float(item["value"]), item["severity"])
        return {**result, "status": "Accepted", "id": monitor_id}

    def clear_monitoring(self, p: dict[str, Any], now: float) -> dict[str, Any]:
        results = [
            {"id": monitor_id, "status": "Accepted" if self.monitors.pop(monitor_id, None) else "NotFound"}
            for monitor_id in p["id"]
        ]
        return {"clearMonitoringResult": results}

    # ---- the measurements -------------------------------------------------------------------------------
    def check(self, now: float) -> None:
        """Evaluate every monitor against what the EVSEs draw now; NotifyEvent for what changed."""
        if not self.monitors:
            return
        events = [event for m in self.monitors.values() if (event := self._evaluate(m, now)) is not None]
        if events:
            self.host.send("NotifyEvent", {"generatedAt": format_time(from_posix(now)), "seqNo": 0,
                                           "eventData": events}, now)  # fmt: skip

    def _evaluate(self, monitor: Monitor, now: float) -> dict[str, Any] | None:
        power = self.host.power_w(monitor.evse_id)
        if monitor.type == "Delta":
            if monitor.last is not None and abs(power - monitor.last) < monitor.value:
                return None
            first, monitor.last = monitor.last is None, power
            return None if first else self._event(monitor, power, now, "Delta", cleared=False)
        above = power > monitor.value if monitor.type == "UpperThreshold" else power < monitor.value
        if above == monitor.alerting:
            return None
        monitor.alerting = above
        return self._event(monitor, power, now, "Alerting", cleared=not above)

    def _event(self, monitor: Monitor, power: float, now: float, trigger: str, *, cleared: bool) -> dict[str, Any]:
        event_id, self._next_event = self._next_event, self._next_event + 1
        event: dict[str, Any] = {
            "eventId": event_id,
            "timestamp": format_time(from_posix(now)),
            "trigger": trigger,
            "actualValue": f"{power:.0f}",
            "eventNotificationType": "CustomMonitor",
            "component": {"name": "EVSE", "evse": {"id": monitor.evse_id}},
            "variable": {"name": "Power"},
            "variableMonitoringId": monitor.id,
        }
        if cleared:
            event["cleared"] = True
        return event
