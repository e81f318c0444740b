"""Per-port outage intervals, exclusions and the NEVI uptime formula (pure functions on dataclasses).

Definitions (decisions recorded in docs/architecture.md, "Uptime, alerts and diagnostics"):

* A port is **down** at time *t* for the first cause that holds, in this order:
  ``offline`` (its station's connection is down — socket closed or heartbeats missed),
  ``faulted`` (its last status, or its station's (EVSE 0) status, is Faulted),
  ``unavailable`` (status Unavailable while the operator has *not* ordered it Inoperative — an ordered
  Unavailable is not an outage at all), ``unable_to_deliver`` (from the first of ``failed_attempts``
  consecutive charging attempts that delivered less than ``min_energy_wh``, until the next attempt that
  delivered).
* Before its first connection event a port is offline; before its first status report it is not down for a
  status cause. Time before ``in_service_from`` is outside the measurement (neither up nor down).
* An outage minute is **excluded** when an admitted exclusion window covers it. The policy says which causes
  may be excluded; a ``scheduled_maintenance`` window is admitted only if it was declared at least
  ``maintenance_notice_s`` before it starts (declared in advance).
* ``T_outage`` counts every down minute, ``T_excluded`` the excluded ones (a subset), and
  µ = (M − (T_outage − T_excluded)) / M × 100 with M = 525,600 for a period of exactly twelve calendar months
  (the regulation's constant, also in leap years) and M = the period's own length in minutes otherwise.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from csms.domain.events import PortState

MINUTES_PER_YEAR = 525_600

OFFLINE = "offline"
FAULTED = "faulted"
UNAVAILABLE = "unavailable"
UNABLE_TO_DELIVER = "unable_to_deliver"
OUTAGE_CAUSES = (OFFLINE, FAULTED, UNAVAILABLE, UNABLE_TO_DELIVER)

SCHEDULED_MAINTENANCE = "scheduled_maintenance"
ALL_EXCLUSION_CAUSES = frozenset(
    {
        SCHEDULED_MAINTENANCE,
        "utility_outage",
        "vehicle_fault",
        "vandalism",
        "natural_disaster",
        "outside_operating_hours",
    }
)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval ``[start, end)`` of aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be aware datetimes")
        if self.end < self.start:
            raise ValueError("period ends before it starts")

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0

    def clip(self, start: datetime, end: datetime) -> Period | None:
        lo, hi = max(start, self.start), min(end, self.end)
        return Period(lo, hi) if lo < hi else None


# ---- inputs -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusPoint:
    """A status report; ``station_wide`` for EVSE/connector 0 (applies to every port of the station)."""

    at: datetime
    state: PortState
    error_code: str | None = None
    station_wide: bool = False


@dataclass(frozen=True, slots=True)
class Connectivity:
    """The station's link went up (``online``) or down (socket closed, heartbeats missed)."""

    at: datetime
    online: bool


@dataclass(frozen=True, slots=True)
class Availability:
    """An operator's accepted ChangeAvailability: ``operative`` False orders the port (or station) Inoperative."""

    at: datetime
    operative: bool
    station_wide: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """A charging session on the port and the energy it delivered (Wh)."""

    start: datetime
    end: datetime | None
    energy_wh: float


@dataclass(frozen=True, slots=True)
class ExclusionWindow:
    """A period the operator may exclude, with its cause; ``declared_at`` is when it was entered."""

    start: datetime
    end: datetime
    cause: str
    declared_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ExclusionPolicy:
    """Which causes may be excluded, how far ahead maintenance must be declared, what "delivering" means."""

    causes: frozenset[str] = ALL_EXCLUSION_CAUSES
    maintenance_notice_s: float = 0.0
    min_energy_wh: float = 1.0
    failed_attempts: int = 2

    def admits(self, window: ExclusionWindow) -> bool:
        if window.cause not in self.causes or window.end <= window.start:
            return False
        if window.cause == SCHEDULED_MAINTENANCE:
            if window.declared_at is None:
                return False
            return (window.start - window.declared_at).total_seconds() >= self.maintenance_notice_s and (
                window.declared_at <= window.start
            )
        return True


DEFAULT_POLICY = ExclusionPolicy()


@dataclass(slots=True)
class PortHistory:
    """Everything known about one port. Lists may be unordered; equal timestamps keep their given order."""

    in_service_from: datetime
    statuses: Sequence[StatusPoint] = ()
    connectivity: Sequence[Connectivity] = ()
    availability: Sequence[Availability] = ()
    attempts: Sequence[Attempt] = ()


# ---- outputs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outage:
    """One outage record (23 CFR 680.112(a)(7)-(8)): start, end, duration, cause, and whether it is excluded."""

    start: datetime
    end: datetime
    cause: str
    excluded: bool = False
    exclusion_cause: str | None = None
    exclusion_id: int | None = None

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0


@dataclass(frozen=True, slots=True)
class UptimeResult:
    period: Period
    basis_minutes: float  # M in the formula
    outage_minutes: float  # T_outage
    excluded_minutes: float  # T_excluded
    uptime_pct: float | None  # None when the port was not in service during the period
    outages: list[Outage] = field(default_factory=list)


# ---- the formula --------------------------------------------------------------------------------------------
def nevi_uptime_pct(outage_minutes: float, excluded_minutes: float, basis_minutes: float = MINUTES_PER_YEAR) -> float:
    """µ = (M − (T_outage − T_excluded)) / M × 100 (23 CFR 680.116(b)); M = 525,600 for a year."""
    if basis_minutes <= 0:
        raise ValueError("the period has no minutes")
    if excluded_minutes > outage_minutes:
        raise ValueError("excluded minutes cannot exceed outage minutes")
    return (basis_minutes - (outage_minutes - excluded_minutes)) / basis_minutes * 100.0


def period_minutes(period: Period) -> float:
    """525,600 for exactly twelve calendar months, else the period's length in minutes."""
    try:
        year_later = period.start.replace(year=period.start.year + 1)
    except ValueError:  # 29 February
        year_later = None
    if year_later == period.end:
        return float(MINUTES_PER_YEAR)
    return period.minutes


def trailing_twelve_months(month_end: datetime) -> Period:
    """The twelve months before ``month_end``, which must be the first instant of a month (exclusive end)."""
    if month_end.tzinfo is None:
        raise ValueError("month_end must be aware")
    if (month_end.day, month_end.hour, month_end.minute, month_end.second, month_end.microsecond) != (1, 0, 0, 0, 0):
        raise ValueError("month_end must be the first instant of a month, e.g. 2026-02-01T00:00Z")
    return Period(month_end.replace(year=month_end.year - 1), month_end)


# ---- timelines ----------------------------------------------------------------------------------------------
def _sorted(items: Iterable[object], key: str) -> list:
    return sorted(items, key=lambda item: getattr(item, key))


def _last_at(times: list[datetime], values: list, when: datetime, default: object) -> object:
    i = bisect.bisect_right(times, when)
    return values[i - 1] if i else default


def _no_delivery(attempts: Sequence[Attempt], policy: ExclusionPolicy) -> list[tuple[datetime, datetime | None]]:
    """Intervals from the first of ``failed_attempts`` consecutive failed attempts to the next delivering one."""
    spans: list[tuple[datetime, datetime | None]] = []
    run: list[Attempt] = []
    for attempt in _sorted(attempts, "start"):
        if attempt.energy_wh < policy.min_energy_wh:
            run.append(attempt)
            continue
        if len(run) >= policy.failed_attempts:
            spans.append((run[0].start, attempt.start))
        run = []
    if len(run) >= policy.failed_attempts:
        spans.append((run[0].start, None))
    return spans


_Streams = dict[str, tuple[list[datetime], list]]


def _cause_at(when: datetime, streams: _Streams, no_delivery: list[tuple[datetime, datetime | None]]) -> str | None:
    """Why the port is down at ``when`` (None: it is up); the first cause in this order wins."""
    if not _last_at(*streams["link"], when, False):
        return OFFLINE
    statuses = (_last_at(*streams["port"], when, None), _last_at(*streams["station"], when, None))
    if PortState.FAULTED in statuses:
        return FAULTED
    if PortState.UNAVAILABLE in statuses:
        ordered_off = not _last_at(*streams["port_order"], when, True) or not _last_at(
            *streams["station_order"], when, True
        )
        if not ordered_off:
            return UNAVAILABLE
    for start, end in no_delivery:
        if start <= when and (end is None or when < end):
            return UNABLE_TO_DELIVER
    return None


def port_timeline(
    history: PortHistory, period: Period, policy: ExclusionPolicy = DEFAULT_POLICY
) -> list[tuple[datetime, datetime, str]]:
    """The port's down intervals within ``period`` (clipped, merged), each ``(start, end, cause)``."""
    measured = period.clip(history.in_service_from, period.end)
    if measured is None:
        return []
    port_status = [s for s in _sorted(history.statuses, "at") if not s.station_wide]
    station_status = [s for s in _sorted(history.statuses, "at") if s.station_wide]
    links = _sorted(history.connectivity, "at")
    port_orders = [a for a in _sorted(history.availability, "at") if not a.station_wide]
    station_orders = [a for a in _sorted(history.availability, "at") if a.station_wide]
    no_delivery = _no_delivery(history.attempts, policy)

    streams: _Streams = {
        "port": ([s.at for s in port_status], [s.state for s in port_status]),
        "station": ([s.at for s in station_status], [s.state for s in station_status]),
        "link": ([c.at for c in links], [c.online for c in links]),
        "port_order": ([a.at for a in port_orders], [a.operative for a in port_orders]),
        "station_order": ([a.at for a in station_orders], [a.operative for a in station_orders]),
    }
    points = {measured.start, measured.end}
    for times, _ in streams.values():
        points.update(t for t in times if measured.start < t < measured.end)
    for start, end in no_delivery:
        points.update(t for t in (start, end) if t is not None and measured.start < t < measured.end)
    ordered = sorted(points)
    segments: list[tuple[datetime, datetime, str]] = []
    for lo, hi in itertools.pairwise(ordered):
        cause = _cause_at(lo, streams, no_delivery)
        if cause is None:
            continue
        if segments and segments[-1][1] == lo and segments[-1][2] == cause:
            segments[-1] = (segments[-1][0], hi, cause)
        else:
            segments.append((lo, hi, cause))
    return segments


def outages(
    history: PortHistory,
    period: Period,
    exclusions: Sequence[ExclusionWindow] = (),
    policy: ExclusionPolicy = DEFAULT_POLICY,
) -> list[Outage]:
    """Outage records within ``period``, split at admitted exclusion windows' edges."""
    windows = [w for w in exclusions if policy.admits(w)]
    records: list[Outage] = []
    for start, end, cause in port_timeline(history, period, policy):
        cuts = {start, end}
        for w in windows:
            cuts.update(t for t in (w.start, w.end) if start < t < end)
        edges = sorted(cuts)
        for lo, hi in itertools.pairwise(edges):
            window = next((w for w in windows if w.start <= lo and hi <= w.end), None)
            piece = Outage(
                lo,
                hi,
                cause,
                excluded=window is not None,
                exclusion_cause=window.cause if window else None,
                exclusion_id=window.id if window else None,
            )
            last = records[-1] if records else None
            if (
                last is not None
                and last.end == lo
                and (last.cause, last.excluded, last.exclusion_cause, last.exclusion_id)
                == (cause, piece.excluded, piece.exclusion_cause, piece.exclusion_id)
            ):
                records[-1] = Outage(last.start, hi, cause, last.excluded, last.exclusion_cause, last.exclusion_id)
            else:
                records.append(piece)
    return records


def uptime(
    history: PortHistory,
    period: Period,
    exclusions: Sequence[ExclusionWindow] = (),
    policy: ExclusionPolicy = DEFAULT_POLICY,
) -> UptimeResult:
    """T_outage, T_excluded and µ for one port over ``period``.

    M is :func:`period_minutes` of the period; when the port entered service during the period, M is the
    minutes from ``in_service_from`` to the period's end instead.
    """
    records = outages(history, period, exclusions, policy)
    measured = period.clip(history.in_service_from, period.end)
    if measured is None:
        return UptimeResult(period, 0.0, 0.0, 0.0, None, records)
    basis = period_minutes(period) if measured == period else measured.minutes
    t_outage = sum(r.minutes for r in records)
    t_excluded = sum(r.minutes for r in records if r.excluded)
    return UptimeResult(period, basis, t_outage, t_excluded, nevi_uptime_pct(t_outage, t_excluded, basis), records)


def monthly_uptime(
    history: PortHistory,
    month_end: datetime,
    exclusions: Sequence[ExclusionWindow] = (),
    policy: ExclusionPolicy = DEFAULT_POLICY,
) -> UptimeResult:
    """The monthly recomputation: µ over the twelve months before ``month_end`` (first instant of a month)."""
    return uptime(history, trailing_twelve_months(month_end), exclusions, policy)
