"""The ``meter_frozen`` rule's pieces: what a meter reading says, and whether a port's energy register keeps
moving while energy flows. Pure; :class:`~csms.alerts.engine.AlertEngine` owns the alert.

A reading is a point in time of one port (:mod:`csms.domain.meter` says which samples make it; the feed hands
each to the engine as a :class:`~csms.alerts.engine.MeterRead`): the energy register (Wh), the active power (W)
and the port's current (A), each None when the station did not report it. A message may carry several (a 1.6
MeterValues with an offline backlog).
"""

from __future__ import annotations

from dataclasses import dataclass


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
