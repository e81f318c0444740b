"""The ``meter_frozen`` rule's pieces: what a meter reading says, and whether a port's energy register keeps
moving while energy flows. Pure; :class:`~csms.alerts.engine.AlertEngine` owns the alert.

A reading is a point in time of one port: the energy register (Wh), the active power (W) and the largest
phase current (A), each None when the station did not report it. Several sampled values with the same
timestamp make one reading; a message may carry several (a 1.6 MeterValues with an offline backlog).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from csms.domain import events as ev

POWER = "Power.Active.Import"
CURRENT = "Current.Import"
USED = frozenset({ev.ENERGY_REGISTER, POWER, CURRENT})
#: Units that are a thousand times the base unit (Wh, W).
KILO = frozenset({"kWh", "kW"})


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # the reading's own timestamp, POSIX seconds
    energy_wh: float | None
    power_w: float | None
    current_a: float | None


def _reading(at: float, samples: list[ev.Sample]) -> Reading:
    # A meter may report a total (no phase), per-phase values, or both: the total wins, else the phases' sum.
    energy: dict[bool, float] = {}
    power: dict[bool, float] = {}
    current: float | None = None
    for s in samples:
        if s.measurand == CURRENT:
            if s.phase != "N":
                current = s.value if current is None else max(current, s.value)
            continue
        totals = energy if s.measurand == ev.ENERGY_REGISTER else power
        value = s.value * 1000.0 if s.unit in KILO else s.value
        if s.phase is None:
            totals[True] = value
        else:
            totals[False] = totals.get(False, 0.0) + value
    return Reading(
        at,
        energy.get(True, energy.get(False)),
        power.get(True, power.get(False)),
        current,
    )


def readings(samples: Iterable[ev.Sample]) -> list[Reading]:
    """The samples as readings, oldest first (samples measured at the vehicle, like SoC, are left out)."""
    by_time: dict[datetime, list[ev.Sample]] = {}
    for sample in samples:
        if sample.measurand in USED and sample.location != "EV":
            by_time.setdefault(sample.timestamp, []).append(sample)
    return [_reading(at.timestamp(), by_time[at]) for at in sorted(by_time)]


@dataclass(slots=True)
class RegisterWatch:
    """One transaction's register on one port.

    ``since`` is the time of the last reading at which the register was known to be right: it moved, it was
    first seen, or no energy was flowing. ``stalled`` counts the readings after it with energy flowing and
    the register unchanged.
    """

    transaction_id: str
    register_wh: float | None = None
    last_at: float | None = None
    since: float | None = None
    stalled: int = 0

    def observe(self, at: float, energy_wh: float | None, flowing: bool) -> bool | None:
        """True: the register moved; False: it stood still while energy flowed; None: nothing learnt (no
        register in the reading, the first one, one older than the last, or nothing flowing)."""
        if energy_wh is None or (self.last_at is not None and at <= self.last_at):
            return None
        self.last_at = at
        if self.register_wh is None or energy_wh != self.register_wh:
            first = self.register_wh is None
            self.register_wh, self.since, self.stalled = energy_wh, at, 0
            return None if first else True
        if not flowing:
            self.since, self.stalled = at, 0
            return None
        self.stalled += 1
        return False

    def stalled_for(self) -> float:
        return 0.0 if self.since is None or self.last_at is None else self.last_at - self.since
