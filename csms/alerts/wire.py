"""Alert-engine events as JSON-ready dicts and back: a cluster node relays its stations' events to the node
that runs the alert engine (:mod:`csms.runtime.cluster`). Only the engine's own event types are decoded, so a
message on the broker can never make a node build anything else."""

from __future__ import annotations

import dataclasses
from typing import Any

from csms.alerts import engine as al
from csms.domain.events import PortState

_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        al.Connected,
        al.Disconnected,
        al.Seen,
        al.BootDecided,
        al.StatusChanged,
        al.FirmwareStatus,
        al.SecurityEvent,
        al.MonitorAlert,
        al.SessionFailed,
        al.SessionDelivered,
        al.UptimeMeasured,
        al.MeterRead,
        al.TransactionClosed,
        al.OperatorResolved,
    )
}


def encode(events: list[al.Event]) -> list[dict[str, Any]]:
    return [{"type": type(e).__name__, **{f.name: getattr(e, f.name) for f in dataclasses.fields(e)}} for e in events]


def decode(items: list[dict[str, Any]]) -> list[al.Event]:
    """The events of :func:`encode`; an item of an unknown type or with unknown fields is skipped."""
    out: list[al.Event] = []
    for item in items:
        cls = _TYPES.get(str(item.get("type")))
        if cls is None:
            continue
        fields = {k: v for k, v in item.items() if k != "type"}
        if cls is al.StatusChanged and "state" in fields:
            fields["state"] = PortState(fields["state"])
        try:
            out.append(cls(**fields))
        except (TypeError, ValueError):
            continue
    return out
