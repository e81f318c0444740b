"""Faults in the twin, checked: per-port uptime (twin truth beside the CSMS's own figure) and alerts raised
versus faults injected.

The twin's truth uses the CSMS's uptime *definition* (``csms.uptime``, NEVI) on the twin's *true* timeline:
link up/down as the link saw it, every connector status when the firmware took it (not when the CSMS heard
of it), and every session with the energy the firmware metered. A CSMS crash is not a port outage (the
stations keep working; the CSMS just does not hear them), so the link drops a crash causes are not in the
truth, and the CSMS (which writes nothing while dead) does not record them either.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from csms.alerts import engine as al
from csms.domain.events import port_state
from csms.ocpp.convert import from_posix
from csms.uptime import Attempt, Connectivity, Period, PortHistory, StatusPoint, uptime
from simulator.twin.interfaces import ConnectorRef

#: The alert rule each fault kind must raise (None: no rule applies; the fault is only recorded).
EXPECTED_RULE = {
    "connector_fault": al.FAULTED,
    "power_loss": al.OFFLINE,
    "link_down": al.OFFLINE,
    "stuck_available": al.STUCK_AVAILABLE,
    "csms_crash": None,
    "meter_freeze": al.METER_FROZEN,
}
#: Rules raised for one port: a fault on a port must be matched on that port (a station-wide fault, any port).
PORT_RULES = frozenset({al.FAULTED, al.STUCK_AVAILABLE, al.METER_FROZEN})
#: Further alerts a fault explains (not required, not false): a fault that outlasts the remediation budget
#: raises ``remediation_exhausted``; a dead link may first miss heartbeats.
ALSO_EXPLAINS = {
    "connector_fault": frozenset({al.REMEDIATION_EXHAUSTED}),
    "power_loss": frozenset({al.HEARTBEAT_MISSED}),
    "link_down": frozenset({al.HEARTBEAT_MISSED}),
    "csms_crash": frozenset({al.HEARTBEAT_MISSED, al.OFFLINE}),
    "stuck_available": frozenset(),
    "meter_freeze": frozenset(),
}


class PortTruth:
    """A port's statuses as the firmware took them, each with its instant (POSIX s): the instants in an array of
    doubles beside the statuses (the same strings every port shares), not a tuple and a float object a change."""

    __slots__ = ("states", "times")

    def __init__(self) -> None:
        self.times = array("d")
        self.states: list[str] = []

    @property
    def statuses(self) -> list[tuple[float, str]]:
        return list(zip(self.times, self.states, strict=True))

    def add(self, now: float, status: str) -> None:
        """Record ``status`` from ``now`` unless it is the port's present status."""
        if not self.states or self.states[-1] != status:
            self.times.append(now)
            self.states.append(status)


@dataclass
class FaultTruth:
    """What really happened, recorded by the runner as it happens (POSIX seconds)."""

    links: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    #: Keyed by the twin's own connector (its ``ConnectorRef``: one object a port, already alive).
    ports: dict[ConnectorRef, PortTruth] = field(default_factory=dict)
    injected: list[dict[str, Any]] = field(default_factory=list)

    def link(self, station_id: str, up: bool, now: float) -> None:
        self.links.setdefault(station_id, []).append((now, up))

    def status(self, connector: ConnectorRef, status: str, now: float) -> None:
        port = self.ports.get(connector)
        if port is None:
            port = self.ports[connector] = PortTruth()
        port.add(now, status)

    def inject(self, kind: str, station_id: str | None, evse_id: int | None, start: float, end: float | None) -> None:
        self.injected.append({"kind": kind, "station_id": station_id, "evse_id": evse_id, "start": start, "end": end})


def twin_history(
    truth: FaultTruth, station_id: str, connector_id: int, in_service_from: float, attempts: Iterable[Attempt]
) -> PortHistory:
    port = truth.ports.get(ConnectorRef(station_id, connector_id))
    return PortHistory(
        from_posix(in_service_from),
        [] if port is None else [StatusPoint(from_posix(t), port_state(s)) for t, s in port.statuses],
        [Connectivity(from_posix(t), up) for t, up in truth.links.get(station_id, [])],
        (),
        list(attempts),
    )


def csms_uptime(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int], float | None]:
    """The CSMS's µ per port from ``csms.services.uptime.port_uptime`` rows (or ``GET /api/v1/uptime``)."""
    return {(r["station_id"], r["evse_id"]): r["uptime_pct"] for r in rows}


def uptime_section(
    csms: dict[tuple[str, int], float | None],
    truth: FaultTruth,
    period: Period,
    epoch: float,
    attempts: dict[tuple[str, int], list[Attempt]],
) -> dict[str, Any]:
    """The twin's true µ per port over ``period`` beside the CSMS's (``csms``: :func:`csms_uptime`)."""
    rows: list[dict[str, Any]] = []
    errors: list[float] = []
    for station_id, connector_id in sorted((port.station_id, port.connector_id) for port in truth.ports):
        history = twin_history(truth, station_id, connector_id, epoch, attempts.get((station_id, connector_id), []))
        twin = uptime(history, period).uptime_pct
        twin_pct = None if twin is None else round(twin, 3)
        csms_pct = csms.get((station_id, connector_id))
        rows.append({"port": f"{station_id}/{connector_id}", "twin_pct": twin_pct, "csms_pct": csms_pct})
        errors.append(abs(twin_pct - csms_pct) if twin_pct is not None and csms_pct is not None else 100.0)
    return {"ports": rows, "max_error_pp": round(max(errors, default=0.0), 3)}


def meter_frozen_bound(after_s: float, readings: int, sample_interval_s: float, latency_s: float) -> float:
    """The latest a frozen register is alerted after the freeze (``meter_frozen`` counts reading timestamps).

    The first reading after the freeze still shows the register moved since the one before (energy flowed
    until the freeze), up to one interval later; from there the rule needs ``readings`` stalled readings
    spanning ``after_s``, whole intervals; the last one reaches the CSMS ``latency_s`` later.
    """
    stalled = max(readings, math.ceil(after_s / sample_interval_s))
    return sample_interval_s * (1 + stalled) + latency_s


def alerts_section(
    truth: FaultTruth,
    effects: Iterable[al.Effect],
    within_s: float,
    epoch: float,
    end: float,
    bounds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Match every injected fault to the alert its rule must raise within ``within_s`` of the fault's start
    (``bounds``: a tighter bound per fault kind, where the rule's own worst case is known).

    An alert matches a fault with the same rule, station and (for port rules) port, raised between the fault's
    start and its end plus ``within_s``; it is late after the fault's bound. Alerts that match no fault are
    false.
    """
    raised = [e for e in effects if isinstance(e, al.RaiseAlert)]
    used: set[int] = set()
    per_fault = []
    missed = late = 0
    for fault in truth.injected:
        rule = EXPECTED_RULE[fault["kind"]]
        bound = min(within_s, (bounds or {}).get(fault["kind"], within_s))
        entry = {
            "kind": fault["kind"],
            "station_id": fault["station_id"],
            "evse_id": fault["evse_id"],
            "at_s": round(fault["start"] - epoch, 1),
            "rule": rule,
            "alert_after_s": None,
            "within_s": round(bound, 1),
            "outcome": "not_applicable",
        }
        if rule is not None:
            horizon = (fault["end"] if fault["end"] is not None else end) + within_s
            match = next(
                (
                    i
                    for i, a in enumerate(raised)
                    if i not in used
                    and a.rule == rule
                    and a.station_id == fault["station_id"]
                    and (rule not in PORT_RULES or fault["evse_id"] in (None, a.evse_id))
                    and fault["start"] <= a.at <= horizon
                ),
                None,
            )
            if match is None:
                entry["outcome"] = "missed"
                missed += 1
            else:
                used.add(match)
                delay = raised[match].at - fault["start"]
                entry["alert_after_s"] = round(delay, 1)
                entry["outcome"] = "late" if delay > bound else "on_time"
                late += delay > bound
        per_fault.append(entry)
    for fault in truth.injected:  # after every required match: an explained extra never takes a required one
        horizon = (fault["end"] if fault["end"] is not None else end) + within_s
        for i, a in enumerate(raised):
            if (
                i not in used
                and a.rule in ALSO_EXPLAINS[fault["kind"]]
                and fault["station_id"] in (None, a.station_id)
                and (fault["evse_id"] is None or a.evse_id in (None, fault["evse_id"]))
                and fault["start"] <= a.at <= horizon
            ):
                used.add(i)
    false = [
        {"rule": a.rule, "station_id": a.station_id, "evse_id": a.evse_id, "at_s": round(a.at - epoch, 1)}
        for i, a in enumerate(raised)
        if i not in used
    ]
    return {
        "injected": len(truth.injected),
        "expected": sum(1 for f in per_fault if f["rule"] is not None),
        "raised": len(raised),
        "missed": missed,
        "late": late,
        "false": len(false),
        "within_s": within_s,
        "per_fault": per_fault,
        "false_alerts": false,
    }


def period_of(epoch: float, duration_s: float) -> Period:
    return Period(from_posix(epoch), from_posix(epoch + duration_s))
