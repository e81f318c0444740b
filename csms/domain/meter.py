"""Meter readings from sampled values: the one place that says which samples count, and how.

The version adapters hand over :class:`~csms.domain.events.Sample`\\ s in base units (Wh, W, A; a 2.0.1
multiplier applied). A reading is what the samples of one timestamp say about the power path of a port
(or, for EVSE/connector 0, of the whole station: a site's grid meter). The rules, after OCPP 1.6 §4.7 and
7.31 and 2.0.1 part 2 "Meter values" (SampledValueType, LocationEnumType, PhaseEnumType):

* **Location.** ``Outlet`` (the spec's default, also when the location is missing) and ``Inlet`` are on the
  power path: an EVSE's meter measures at its outlet, a station's main meter at the grid inlet. Samples
  taken by the ``EV``, in the ``Body`` or on the ``Cable`` are left out. When one timestamp has a quantity
  both at the outlet and at the inlet, the outlet's values are used.
* **Phase.** A value without phase is the overall value. ``L1``, ``L2``, ``L3`` and their line-to-neutral
  forms ``L1-N``, ``L2-N``, ``L3-N`` are that line's value; ``N`` (the neutral conductor) and line-to-line
  values (``L1-L2`` …) are no line's value and are left out.
* **Energy register and power** (``Energy.Active.Import.Register``, ``Power.Active.Import``): the overall
  value; without one, the sum of the lines reported (a single-phase meter reports L1 only).
* **Current** (``Current.Import``): kept per line, and the value without phase apart (a DC charger reports
  one current). A port's current is its largest line current, else the value without phase.
* **Units.** A sample counts only in its measurand's base unit (no unit: the base unit is meant); a value
  in any other unit (an energy register in varh) is left out.
* The same value reported twice for one timestamp, line and location: the last one given counts, except
  that a ``Transaction.Begin`` value never replaces another: some firmware repeats the register at the
  start beside each periodic reading, with the periodic reading's timestamp (docs/hardware.md).
* **A transaction's end** (:func:`end_register`): the larger of the station's stop value and its newest
  register reading. A register does not run backwards within a transaction, so a smaller stop value is not
  the end: firmware that does not know it sends 0 or -1, and some send the closing reading (context
  ``Transaction.End``) in a MeterValues after the StopTransaction (docs/hardware.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from csms.domain import events as ev

POWER = "Power.Active.Import"
BEGIN = "Transaction.Begin"
CURRENT = "Current.Import"
#: The quantities a reading is made of, and the one unit each is counted in.
BASE_UNITS = {ev.ENERGY_REGISTER: "Wh", POWER: "W", CURRENT: "A"}
#: The locations on the power path, the preferred first (no location: the spec's default, Outlet).
PATH = ("Outlet", "Inlet")
#: A phase that names a line, and that line's index (None: the overall value).
LINES = {None: None, "L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}


def _slots() -> dict[tuple[str, str | None, str | None, str | None], int]:
    """(measurand, location, phase, unit) of a sample that counts → its place in a flat list of values: per
    quantity and location, the overall value then the three lines. Built once: a reading is made for every
    transaction message, and one lookup per sample is what keeps that cheap."""
    slots = {}
    for q, (measurand, unit) in enumerate(BASE_UNITS.items()):
        for w, location in enumerate(PATH):
            for phase, line in LINES.items():
                place = (q * len(PATH) + w) * 4 + (0 if line is None else 1 + line)
                for where in (location, None) if location == "Outlet" else (location,):
                    for given in (unit, None):
                        slots[(measurand, where, phase, given)] = place
    return slots


_SLOTS = _slots()
_SIZE = len(BASE_UNITS) * len(PATH) * 4
#: The energy register is the first quantity: its slots are the first of each reading's values.
_REGISTER_SIZE = len(PATH) * 4

Lines = tuple[float | None, float | None, float | None]
NO_LINES: Lines = (None, None, None)


class Reading(NamedTuple):
    """What a meter said at one time (each value None when the station did not report it)."""

    at: datetime
    energy_wh: float | None = None
    power_w: float | None = None
    #: Current.Import per line (L1, L2, L3).
    currents_a: Lines = NO_LINES
    #: Current.Import without phase (DC).
    current_a: float | None = None

    @property
    def line_currents_a(self) -> list[float]:
        """The line currents reported."""
        return [c for c in self.currents_a if c is not None]

    @property
    def port_current_a(self) -> float | None:
        """The largest line current, else the current without phase."""
        lines = self.line_currents_a
        return max(lines) if lines else self.current_a


#: The last tuple of samples read and its readings: a committed report's samples are read by the alert feed and
#: then load management (the same tuple), and by the services before them when the batch held only that report
#: (half of the demo's parses). The tuple is kept, so ``is`` cannot match another object at a reused address.
_last: tuple[tuple[ev.Sample, ...] | None, tuple[Reading, ...]] = (None, ())


def readings(samples: Iterable[ev.Sample]) -> list[Reading]:
    """The samples as readings, one per timestamp, oldest first (timestamps with nothing that counts: none)."""
    global _last  # the one-entry cache above
    last = _last
    if last[0] is samples:
        return list(last[1])
    found = _read(samples)
    if type(samples) is tuple:
        _last = (samples, tuple(found))
    return found


def _read(samples: Iterable[ev.Sample]) -> list[Reading]:
    by_time = _slotted(samples, _SIZE)
    return [_reading(at, by_time[at]) for at in sorted(by_time)]


def _slotted(samples: Iterable[ev.Sample], size: int, only: str | None = None) -> dict[datetime, list[float | None]]:
    """Each instant's values by slot (the first ``size`` slots; ``only``: of that measurand alone); a
    transaction's Begin value never overwrites another reading of the same slot."""
    by_time: dict[datetime, list[float | None]] = {}
    for s in samples:
        if only is not None and s.measurand != only:
            continue
        place = _SLOTS.get((s.measurand, s.location, s.phase, s.unit))
        if place is None:
            continue
        values = by_time.get(s.timestamp)
        if values is None:
            values = by_time[s.timestamp] = [None] * size
        if s.context != BEGIN or values[place] is None:
            values[place] = s.value
    return by_time


def registers(samples: Iterable[ev.Sample]) -> list[tuple[datetime, float]]:
    """(time, Wh) of each reading that has an energy register, oldest first: the ``energy_wh`` of
    :func:`readings`, by the same slots and rules, without making the rest of each reading (every meter value
    of a running transaction moves its register: this is on the path of each one)."""
    by_time = _slotted(samples, _REGISTER_SIZE, ev.ENERGY_REGISTER)
    found = []
    for at in sorted(by_time):
        values = by_time[at]
        wh = _total(values, _on_path(values, 0))
        if wh is not None:
            found.append((at, wh))
    return found


def _on_path(values: list[float | None], quantity: int) -> int:
    """Where one quantity's overall value and lines start: at the outlet if it reported any, else the inlet."""
    start = quantity * len(PATH) * 4
    outlet = values[start] is not None or values[start + 1] is not None
    return start if outlet or values[start + 2] is not None or values[start + 3] is not None else start + 4


def _total(values: list[float | None], start: int) -> float | None:
    overall = values[start]
    if overall is not None:
        return overall
    lines = [v for v in values[start + 1 : start + 4] if v is not None]
    return sum(lines) if lines else None


def _reading(at: datetime, values: list[float | None]) -> Reading:
    energy, power, current = _on_path(values, 0), _on_path(values, 1), _on_path(values, 2)
    lines = (values[current + 1], values[current + 2], values[current + 3])
    return Reading(at, _total(values, energy), _total(values, power), lines, values[current])


def latest(samples: Iterable[ev.Sample]) -> Reading | None:
    """The newest value of each quantity among the samples' readings, at the newest reading's time (a
    message may carry a backlog of readings, not every one with every value)."""
    found = readings(samples)
    if not found:
        return None
    energy = power = current = None
    currents = NO_LINES
    for r in found:
        energy = r.energy_wh if r.energy_wh is not None else energy
        power = r.power_w if r.power_w is not None else power
        current = r.current_a if r.current_a is not None else current
        currents = r.currents_a if r.line_currents_a else currents
    return Reading(found[-1].at, energy, power, currents, current)


def end_register(stop_wh: float | None, newest_wh: float | None) -> float | None:
    """The energy register at a transaction's end from its stop value (1.6 meterStop, the 2.0.1 Ended event's
    register) and the newest register reading recorded for it; None when neither is known."""
    if stop_wh is None or newest_wh is None:
        return newest_wh if stop_wh is None else stop_wh
    return max(stop_wh, newest_wh)


def session_energy_wh(start_wh: float | None, stop_wh: float | None, newest_wh: float | None) -> float:
    """The energy a transaction delivered: its end register (:func:`end_register`) less its start, never
    negative; 0 while either end is unknown."""
    end = end_register(stop_wh, newest_wh)
    if end is None or start_wh is None:
        return 0.0
    return max(0.0, end - start_wh)


def grid_readings(samples: Iterable[ev.Sample]) -> list[Reading]:
    """The readings of a site's grid meter (EVSE/connector 0 of its meter station) that say what the site
    draws: those with a power or a line current. A reading with a negative or non-finite value is left out
    whole: the site exports (its currents are then no draw either), or the meter is wrong."""
    out = []
    for r in readings(samples):
        values = [v for v in (r.power_w, *r.currents_a) if v is not None]
        if values and all(math.isfinite(v) and v >= 0 for v in values):
            out.append(r)
    return out
