"""The ``meter_frozen`` rule's pieces: what a meter reading says, and whether a port's energy register keeps
moving while energy flows. Pure; :class:`~csms.alerts.engine.AlertEngine` owns the alert.

A reading is a point in time of one port: the energy register (Wh), the active power (W) and the largest
phase current (A), each None when the station did not report it. Several sampled values with the same
timestamp make one reading; a message may carry several (a 1.6 MeterValues with an offline backlog).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from csms.domain import events as ev

POWER = "Power.Active.Import"
CURRENT = "Current.Import"
#: Units that are a thousand times the base unit (Wh, W).
KILO = frozenset({"kWh", "kW"})


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # the reading's own timestamp, POSIX seconds
    energy_wh: float | None
    power_w: float | None
    current_a: float | None


def _total(samples: list[ev.Sample]) -> float | None:
    """The value without a phase if there is one, else the sum over phases (a meter may report either)."""
    if not samples:
        return None
    total = [s for s in samples if s.phase is None]
    chosen = total[-1:] if total else samples
    return sum(s.value * (1000.0 if s.unit in KILO else 1.0) for s in chosen)


def readings(samples: Iterable[ev.Sample]) -> list[Reading]:
    """The samples as readings, oldest first (samples measured at the vehicle, like SoC, are left out)."""
    by_time: dict[float, list[ev.Sample]] = defaultdict(list)
    for sample in samples:
        if sample.location != "EV":
            by_time[sample.timestamp.timestamp()].append(sample)
    out = []
    for at in sorted(by_time):
        group = by_time[at]
        currents = [s.value for s in group if s.measurand == CURRENT and s.phase != "N"]
        out.append(
            Reading(
                at,
                _total([s for s in group if s.measurand == ev.ENERGY_REGISTER]),
                _total([s for s in group if s.measurand == POWER]),
                max(currents) if currents else None,
            )
        )
    return out


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
