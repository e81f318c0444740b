"""Port uptime after 23 CFR 680.116(b) (NEVI), sans-IO and pure: no clock, no database.

Theory of operation
-------------------
Callers (``csms.services.uptime`` from the store, the simulator from its own records) build a
:class:`PortHistory` per port — status reports, connection changes, operator availability orders, charging
attempts — and ask :func:`outages` for the intervals the port was down, each with a cause, split where an
exclusion window starts or ends so every :class:`Outage` is either wholly excluded or not.
:func:`uptime` then applies the NEVI formula

    µ = (525,600 − (T_outage − T_excluded)) / 525,600 × 100

Time is exact (aware datetimes, half-open intervals ``[start, end)``); minutes are ``seconds / 60``, not
rounded, so a window ending at 10:30:00 and an outage starting at 10:30:00 do not overlap.
"""

from csms.uptime.model import (
    ALL_EXCLUSION_CAUSES,
    DEFAULT_POLICY,
    MINUTES_PER_YEAR,
    Attempt,
    Availability,
    Connectivity,
    ExclusionPolicy,
    ExclusionWindow,
    Outage,
    Period,
    PortHistory,
    StatusPoint,
    UptimeResult,
    monthly_uptime,
    nevi_uptime_pct,
    outages,
    period_minutes,
    port_timeline,
    trailing_twelve_months,
    uptime,
)

__all__ = [
    "ALL_EXCLUSION_CAUSES",
    "DEFAULT_POLICY",
    "MINUTES_PER_YEAR",
    "Attempt",
    "Availability",
    "Connectivity",
    "ExclusionPolicy",
    "ExclusionWindow",
    "Outage",
    "Period",
    "PortHistory",
    "StatusPoint",
    "UptimeResult",
    "monthly_uptime",
    "nevi_uptime_pct",
    "outages",
    "period_minutes",
    "port_timeline",
    "trailing_twelve_months",
    "uptime",
]
