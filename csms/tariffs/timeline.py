"""A session as the pricing sees it: meter samples, charging/parking changes, start, stop, time zone."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class State(enum.StrEnum):
    CHARGING = "CHARGING"
    PARKING = "PARKING"  # plugged in (or occupying the bay) but not charging: priced as PARKING_TIME


@dataclass(frozen=True)
class MeterSample:
    at: datetime
    wh: Decimal  # the energy register (cumulative Wh), as csms/domain/meter.py reads it
    current_a: Decimal | None = None  # sum over phases, for min/max_current restrictions


@dataclass(frozen=True)
class StateChange:
    at: datetime
    state: State


@dataclass(frozen=True)
class SessionTimeline:
    start: datetime
    stop: datetime
    time_zone: str
    samples: tuple[MeterSample, ...]
    states: tuple[StateChange, ...] = ()  # the session starts CHARGING unless a change at ``start`` says otherwise
