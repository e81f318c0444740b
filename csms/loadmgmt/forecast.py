"""The building's own load ahead: what the site meter's non-EV load will be, learnt from its readings.

A building's load repeats by time of day (the evening peak of the flats, a depot's workshop shift). The load of
now says nothing of the step at 18:00 that a plan made at 17:59 will meet, and a plan over the night that holds
the evening's load until the morning overrates what the night takes. So every reading is filed into its slot of
the day (:data:`SLOT_S`, UTC); when a slot is over, the day's mean and highest reading per phase in that slot
update the slot's two profiles, exponentially weighted across days (:data:`WEIGHT` for the newest day; the
first day stands alone).

The planner plans the first step with the higher of its latest estimate and the highest profile over the next
interval (a step it has seen before is met before it comes: a limit is kept at the slot's highest, not its
mean), and the strategies take the mean profile over their horizon (the night's flat import, what the
cheaper hours hold) where it has been learnt; ``optimal`` plans each step of its horizon with the slot's
highest under the tree's limits and its mean on the peak (:meth:`BuildingForecast.step_a`).

What was learnt outlives the process: :meth:`BuildingForecast.record` is its plain form, which the shell stores
(table ``building_forecasts``) whenever a slot closed (``version`` counts the closings: at most one write per
site every :data:`SLOT_S`) and hands back to a starting process (:meth:`BuildingForecast.from_record`).
Sans-IO: readings and times come from the caller.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DAY_S = 86_400.0
#: The profile's resolution.
SLOT_S = 900.0
#: The newest day's weight in a slot's profile.
WEIGHT = 0.3


class BuildingForecast:
    """Per-phase load profiles (A) by slot of the day, the mean and the highest, exponentially weighted across
    days."""

    def __init__(self, slot_s: float = SLOT_S, weight: float = WEIGHT) -> None:
        self.slot_s = slot_s
        self.weight = weight
        self.slots = round(DAY_S / slot_s)
        self.mean = np.full((self.slots, 3), np.nan)
        self.high = np.full((self.slots, 3), np.nan)
        #: The slot being filled: (absolute slot number, sum of readings per phase, count, highest per phase).
        self._open: tuple[int, np.ndarray, int, np.ndarray] | None = None
        #: The last slot (absolute number) filed into the profiles: readings of it or before count no more (a
        #: restarted process replays the meter's last minutes, which a stored forecast has counted already).
        self.closed_through = -1
        #: How many slots were filed: the shell stores the forecast when this changed.
        self.version = 0

    def observe(self, t: float, phases_a: tuple[float, float, float]) -> None:
        """A reading of the building's load at ``t`` (POSIX seconds), per phase (A)."""
        number = int(t // self.slot_s)
        if number <= self.closed_through:
            return
        load = np.asarray(phases_a, dtype=float)
        if self._open is not None and self._open[0] == number:
            _, total, count, high = self._open
            self._open = (number, total + load, count + 1, np.maximum(high, load))
            return
        if self._open is not None and number > self._open[0]:
            self._close()
        if self._open is None or number > self._open[0]:
            self._open = (number, load.copy(), 1, load.copy())

    def _close(self) -> None:
        assert self._open is not None
        number, total, count, high = self._open
        slot = number % self.slots
        for profile, value in ((self.mean, total / count), (self.high, high)):
            known = profile[slot]
            profile[slot] = value if np.isnan(known).any() else (1 - self.weight) * known + self.weight * value
        self._open = None
        self.closed_through = number
        self.version += 1

    def record(self) -> dict[str, Any]:
        """The learnt profiles as plain JSON-able data (None for a slot not learnt)."""

        def rows(profile: np.ndarray) -> list[list[float] | None]:
            return [None if np.isnan(row).any() else [float(v) for v in row] for row in profile]

        return {"slot_s": self.slot_s, "weight": self.weight, "closed_through": self.closed_through,
                "mean": rows(self.mean), "high": rows(self.high)}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BuildingForecast:
        """A forecast as :meth:`record` left it (a record of another resolution is not used: nothing learnt)."""
        forecast = cls(float(record.get("slot_s", SLOT_S)), float(record.get("weight", WEIGHT)))
        mean, high = record.get("mean") or [], record.get("high") or []
        if len(mean) != forecast.slots or len(high) != forecast.slots:
            return cls()
        for profile, rows in ((forecast.mean, mean), (forecast.high, high)):
            for slot, row in enumerate(rows):
                if row is not None and len(row) == 3:
                    profile[slot] = row
        forecast.closed_through = int(record.get("closed_through", -1))
        return forecast

    def step_a(self, start: float, end: float) -> tuple[np.ndarray, float] | None:
        """For a plan's step ``[start, end)``: the highest profile per phase (A; what the tree's limits must
        hold) and the mean profile summed over the phases (A; what the step's average import carries); None
        where a slot is not learnt."""
        high = self.highest_a(start, end)
        mean = self.mean_a(start, end)
        if high is None or mean is None:
            return None
        return np.asarray(high, dtype=float), mean

    def learnt(self, start: float, end: float) -> bool:
        return self._learnt(self._slots(start, end))

    def _learnt(self, slots: np.ndarray) -> bool:
        return not np.isnan(self.mean[slots]).any()

    def highest_a(self, start: float, end: float) -> tuple[float, float, float] | None:
        """The highest profile's per-phase load over ``[start, end]``; None where a slot is not learnt yet."""
        slots = self._slots(start, end)
        if not self._learnt(slots):
            return None
        peak = np.max(self.high[slots], axis=0)
        return (float(peak[0]), float(peak[1]), float(peak[2]))

    def mean_a(self, start: float, end: float) -> float | None:
        """The mean profile's load summed over the phases (A) over ``[start, end]``; None where not learnt."""
        slots = self._slots(start, end)
        if not self._learnt(slots):
            return None
        return float(np.mean(np.sum(self.mean[slots], axis=1)))

    def _slots(self, start: float, end: float) -> np.ndarray:
        first = int(start // self.slot_s)
        last = max(first, math.ceil(end / self.slot_s) - 1)
        last = min(last, first + self.slots - 1)  # a horizon beyond a day sees every slot once
        return np.arange(first, last + 1) % self.slots
