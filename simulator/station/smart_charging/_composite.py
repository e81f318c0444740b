"""Evaluating profiles in time: one profile at an instant, then the composite of many.

Every function is pure over a sequence of profiles in installation order (later installed wins
a tie of stack level). ``reference`` is the instant a Relative schedule starts: the transaction
start, or the query's own start when there is no transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from ._model import (
    ChargingProfile,
    ChargingSchedule,
    CompositePeriod,
    CompositeSchedule,
    Kind,
    Limit,
    Purpose,
    RateUnit,
    SchedulePeriod,
)

__all__ = [
    "COMPOSITION",
    "DEFAULT_PHASES",
    "DEFAULT_VOLTS_PER_PHASE",
    "Role",
    "Scope",
    "active_period",
    "composite",
    "convert",
    "limit_at",
    "next_breakpoint",
    "next_change",
    "reads_reference",
]

DEFAULT_VOLTS_PER_PHASE = 230.0
#: Both versions: "numberPhases=3 will be assumed unless another number is given".
DEFAULT_PHASES = 3


class Role(Enum):
    """How a group of profiles enters the composite.

    OVERRIDE groups form a chain: the first group with an active profile sets the limit.
    CAP groups each bound the result from above (the minimum is taken).
    """

    OVERRIDE = "override"
    CAP = "cap"


class Scope(Enum):
    """Where a profile must be installed to count for a connector."""

    STATION = "station"  # installed on connector/EVSE 0
    CONNECTOR = "connector"  # installed on the connector/EVSE asked about


@dataclass(frozen=True, slots=True)
class Group:
    role: Role
    purpose: Purpose
    scope: Scope
    for_grid: bool  # counts when the composite is asked for connector 0 (the grid connection)


#: The one table of purpose precedence. Within a group the highest stack level active at the
#: instant wins; a group with nothing active is skipped (so an expired TxProfile falls back to
#: the TxDefault of the connector, then to the station-wide TxDefault).
COMPOSITION: tuple[Group, ...] = (
    Group(Role.OVERRIDE, Purpose.TX, Scope.CONNECTOR, for_grid=False),
    Group(Role.OVERRIDE, Purpose.TX_DEFAULT, Scope.CONNECTOR, for_grid=False),
    Group(Role.OVERRIDE, Purpose.TX_DEFAULT, Scope.STATION, for_grid=False),
    Group(Role.CAP, Purpose.STATION_MAX, Scope.STATION, for_grid=True),
    Group(Role.CAP, Purpose.EXTERNAL_CONSTRAINTS, Scope.STATION, for_grid=True),
    Group(Role.CAP, Purpose.EXTERNAL_CONSTRAINTS, Scope.CONNECTOR, for_grid=False),
)


# Enum members read in the evaluation's inner loops, as plain names: reading a member through its class costs
# ~5x a plain attribute on CPython 3.11 (``EnumType`` routes class attribute lookups through a Python hook).
_OVERRIDE, _STATION = Role.OVERRIDE, Scope.STATION
_RELATIVE, _ABSOLUTE, _RECURRING = Kind.RELATIVE, Kind.ABSOLUTE, Kind.RECURRING


def convert(
    value: float,
    from_unit: RateUnit,
    to_unit: RateUnit,
    number_phases: int | None,
    volts_per_phase: float = DEFAULT_VOLTS_PER_PHASE,
    phases: int = DEFAULT_PHASES,
) -> float:
    """Convert a limit between amperes (per phase) and watts (total).

    Args:
        number_phases: the period's own numberPhases; ``phases`` is used when it is None.
        volts_per_phase: phase-to-neutral voltage [V].
    """
    if from_unit is to_unit:
        return value
    n = number_phases or phases
    if from_unit is RateUnit.A:
        return value * volts_per_phase * n
    return value / (volts_per_phase * n)


def _anchor(profile: ChargingProfile, schedule: ChargingSchedule, t: float, reference: float) -> float | None:
    """Start of the schedule occurrence covering ``t`` (None: the schedule has not begun)."""
    kind = profile.kind
    if kind is _RELATIVE:
        return reference
    if kind is _ABSOLUTE:
        # 1.6: an Absolute schedule without startSchedule is "relative to start of charging".
        return reference if schedule.start_schedule is None else schedule.start_schedule
    base = schedule.start_schedule
    if base is None or profile.recurrency is None or t < base:
        return None
    period_s = profile.recurrency.period_s
    return base + math.floor((t - base) / period_s) * period_s


def reads_reference(profile: ChargingProfile) -> bool:
    """Whether any answer about ``profile`` depends on ``reference``: only through :func:`_anchor`, for a
    Relative profile or an Absolute schedule without a start."""
    kind = profile.kind
    if kind is _RELATIVE:
        return True
    return kind is _ABSOLUTE and any(s.start_schedule is None for s in profile.schedules)


def active_period(
    profile: ChargingProfile, t: float, reference: float
) -> tuple[ChargingSchedule, SchedulePeriod] | None:
    """The schedule and period of ``profile`` in force at ``t``, or None where it is not active.

    A profile is active inside its validity window, after its schedule start and before the
    schedule's duration runs out; the last period lasts until then (or forever without one).
    With several schedules (2.0.1) the first one active at ``t`` is used.
    """
    if not profile.is_valid_at(t):
        return None
    for schedule in profile.schedules:
        anchor = _anchor(profile, schedule, t, reference)
        if anchor is None:
            continue
        offset = t - anchor
        if offset < 0 or (schedule.duration_s is not None and offset >= schedule.duration_s):
            continue
        current: SchedulePeriod | None = None
        for period in schedule.periods:
            if period.start_period_s > offset:
                break
            current = period
        if current is not None:
            return schedule, current
    return None


def _anchors(
    profile: ChargingProfile, schedule: ChargingSchedule, t0: float, t1: float, reference: float
) -> Iterator[float]:
    if profile.kind is not _RECURRING:
        anchor = _anchor(profile, schedule, t0, reference)
        if anchor is not None:
            yield anchor
        return
    base = schedule.start_schedule
    if base is None or profile.recurrency is None or math.isinf(t1):
        return
    period_s = profile.recurrency.period_s
    first = max(0, math.floor((t0 - base) / period_s))
    last = math.floor((t1 - base) / period_s)
    for k in range(first, last + 1):
        yield base + k * period_s


def _breakpoints(profile: ChargingProfile, t0: float, t1: float, reference: float) -> Iterator[float]:
    """Instants in ``(t0, t1)`` where ``profile`` may start, stop or change period."""
    candidates: list[float] = [v for v in (profile.valid_from, profile.valid_to) if v is not None]
    for schedule in profile.schedules:
        for anchor in _anchors(profile, schedule, t0, t1, reference):
            candidates.append(anchor)
            candidates.extend(anchor + p.start_period_s for p in schedule.periods)
            if schedule.duration_s is not None:
                candidates.append(anchor + schedule.duration_s)
    return (c for c in candidates if t0 < c < t1)


def next_breakpoint(profiles: Sequence[ChargingProfile], now: float, reference: float) -> float:
    """The first instant after ``now`` at which any profile may start, stop or change period (``inf``: none).

    :func:`limit_at` answers the same for every instant in ``[now, next_breakpoint)`` (for one ``reference``),
    so its answer can be kept until then. A Recurring profile repeats within its recurrency period, so one
    period ahead always holds its next occurrence.
    """
    nearest = math.inf
    for profile in profiles:
        horizon = math.inf
        if profile.kind is _RECURRING and profile.recurrency is not None:
            first = max([now, *(s.start_schedule for s in profile.schedules if s.start_schedule is not None)])
            horizon = first + profile.recurrency.period_s + 1.0
        for t in _breakpoints(profile, now, horizon, reference):
            nearest = min(nearest, t)
    return nearest


def _wanted(group: Group, connector_id: int) -> int | None:
    """The connector id a profile of ``group`` must be installed on to count for ``connector_id`` (None: none
    counts: a group not for the grid, asked for connector 0)."""
    if connector_id == 0:
        return 0 if group.for_grid else None
    return 0 if group.scope is _STATION else connector_id


def _winners(
    profiles: Sequence[ChargingProfile], connector_id: int, t: float, reference: float
) -> tuple[tuple[ChargingSchedule, SchedulePeriod] | None, list[tuple[ChargingSchedule, SchedulePeriod]]]:
    """The OVERRIDE chain's winner and each CAP group's winner at ``t``."""
    override: tuple[ChargingSchedule, SchedulePeriod] | None = None
    caps: list[tuple[ChargingSchedule, SchedulePeriod]] = []
    for group in COMPOSITION:
        overriding = group.role is _OVERRIDE
        if overriding and override is not None:
            continue
        wanted = _wanted(group, connector_id)
        if wanted is None:
            continue
        purpose = group.purpose
        best: tuple[int, int, ChargingSchedule, SchedulePeriod] | None = None
        for order, profile in enumerate(profiles):
            if profile.purpose is not purpose or profile.connector_id != wanted:
                continue
            hit = active_period(profile, t, reference)
            if hit is not None and (best is None or (profile.stack_level, order) > best[:2]):
                best = (profile.stack_level, order, *hit)
        if best is None:
            continue
        if overriding:
            override = (best[2], best[3])
        else:
            caps.append((best[2], best[3]))
    return override, caps


def limit_at(
    profiles: Sequence[ChargingProfile],
    connector_id: int,
    t: float,
    reference: float,
    unit: RateUnit | None = None,
    volts_per_phase: float = DEFAULT_VOLTS_PER_PHASE,
    phases: int = DEFAULT_PHASES,
) -> Limit | None:
    """The composite limit for ``connector_id`` at ``t`` (None: nothing limits it).

    Args:
        unit: the unit wanted; None keeps the unit of the highest-precedence active profile.
    """
    override, caps = _winners(profiles, connector_id, t, reference)
    contenders = ([override] if override is not None else []) + caps
    if not contenders:
        return None
    out = unit or contenders[0][0].rate_unit
    best: Limit | None = None
    for schedule, period in contenders:
        value = convert(period.limit, schedule.rate_unit, out, period.number_phases, volts_per_phase, phases)
        if best is None or value < best.value:
            best = Limit(value, out, period.number_phases)
    return best


def composite(
    profiles: Sequence[ChargingProfile],
    connector_id: int,
    start: float,
    duration_s: float,
    reference: float,
    unit: RateUnit | None = None,
    volts_per_phase: float = DEFAULT_VOLTS_PER_PHASE,
    phases: int = DEFAULT_PHASES,
) -> CompositeSchedule:
    """The composite schedule over ``[start, start + duration_s)``, adjacent equal periods merged.

    ``unit`` None takes the unit of the first limit found in the window (amperes if none).
    """
    end = start + duration_s
    points = sorted({start, *(b for p in profiles for b in _breakpoints(p, start, end, reference))})
    if unit is None:
        found = (limit_at(profiles, connector_id, t, reference) for t in points)
        unit = next((lim.unit for lim in found if lim is not None), RateUnit.A)
    periods: list[CompositePeriod] = []
    for t in points:
        lim = limit_at(profiles, connector_id, t, reference, unit, volts_per_phase, phases)
        if lim is None:
            period = CompositePeriod(t - start, None)
        else:
            period = CompositePeriod(t - start, lim.value, lim.number_phases)
        if periods and (periods[-1].limit, periods[-1].number_phases) == (period.limit, period.number_phases):
            continue
        periods.append(period)
    return CompositeSchedule(connector_id, start, duration_s, unit, tuple(periods))


def next_change(
    profiles: Sequence[ChargingProfile],
    connector_id: int,
    now: float,
    reference: float,
) -> float | None:
    """The first instant after ``now`` at which :func:`limit_at` gives another answer.

    Past the last one-off breakpoint only Recurring profiles change anything, and they repeat
    within a week, so one week beyond it is searched; None means the limit never changes.
    """
    # With an infinite end, Recurring profiles yield only their validity bounds here.
    finite = [b for p in profiles for b in _breakpoints(p, now, math.inf, reference)]
    horizon = max(finite, default=now)
    repeating = [p for p in profiles if p.kind is _RECURRING and p.recurrency is not None]
    if repeating:
        horizon += max(p.recurrency.period_s for p in repeating if p.recurrency is not None)
    points = sorted({*finite, *(b for p in repeating for b in _breakpoints(p, now, horizon + 1, reference))})
    current = limit_at(profiles, connector_id, now, reference)
    for t in points:
        if limit_at(profiles, connector_id, t, reference) != current:
            return t
    return None
