"""What a strategy sees (:class:`SiteState`, read-only) and what it returns (:class:`Allocation`).

The planner builds a :class:`SiteState` from what the CSMS knows; strategies never see the store, the
gateway or a clock: ``now`` (POSIX seconds) is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from csms.loadmgmt.forecast import BuildingForecast
from csms.loadmgmt.topology import EvseKey, Site

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


@dataclass(frozen=True)
class SessionState:
    """A vehicle at an EVSE, as far as the CSMS knows.

    ``accept_cap_a`` is the per-phase current the vehicle has shown it takes (measured draw + margin after
    the settling period, set by the planner): allowing more would strand headroom another EVSE could use.
    ``energy_needed_wh`` is the energy to the target from plug-in (fleet schedule, driver/app, 2.0.1
    NotifyEVChargingNeeds); ``departure`` POSIX seconds.
    """

    key: EvseKey
    plugged: bool = True
    plugged_at: float = 0.0
    phases_in_use: int | None = None
    measured_a: float | None = None
    accept_cap_a: float | None = None
    energy_wh: float = 0.0
    energy_needed_wh: float | None = None
    departure: float | None = None
    group: str | None = None
    transaction_id: str | None = None
    #: The limit this EVSE got at the previous re-plan (hysteresis: running EVSEs are paused last).
    allocated_a: float = 0.0
    #: When our plans last paused or resumed it, a first start included (POSIX seconds; None: not yet, or not since
    #: it was last not steered): within ``SiteState.dwell_s`` of it the strategies keep that state unless a limit
    #: forces otherwise.
    switched_at: float | None = None
    #: The energy still to charge to the target (None: no target). Worked out once (the state is frozen, and a planner
    #: keeps a session's between plans): the strategies ask it several times per session and plan.
    remaining_wh: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        needed = self.energy_needed_wh
        object.__setattr__(self, "remaining_wh", None if needed is None else max(0.0, needed - self.energy_wh))


#: At most this many of a zoned tariff's prices are kept (depot-night's 13 hours of plans ask 21,316 times for 4,557
#: different ones).
_ZONED_KEPT = 8192


@dataclass(frozen=True)
class Tariff:
    """Time-of-use energy prices and a demand charge.

    ``periods``: ``(seconds_of_day, price_per_kwh)`` sorted, local time = POSIX + ``utc_offset_s``; each price
    holds until the next period (the last one wraps over midnight). ``demand_charge_per_kw`` is charged on the
    billing period's peak grid import.
    """

    periods: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    utc_offset_s: float = 0.0
    demand_charge_per_kw: float = 0.0
    #: An IANA zone: local time follows its daylight-saving rules (``utc_offset_s`` is then not used).
    zone: str | None = None
    #: With a zone, :meth:`price_at`'s answers by time: the conversion costs more than the rest, and a night's plans
    #: ask for the same times again (the midpoints of 15-minute slices from ``now``, which moves by whole minutes).
    _zoned: dict[float, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def price_at(self, t: float) -> float:
        if self.zone is not None:
            known = self._zoned.get(t)
            if known is not None:
                return known
            local = datetime.fromtimestamp(t, ZoneInfo(self.zone))
            sod = float(local.hour * 3600 + local.minute * 60 + local.second)
            price = self._price_of_day(sod)
            if len(self._zoned) >= _ZONED_KEPT:
                self._zoned.clear()
            self._zoned[t] = price
            return price
        return self._price_of_day((t + self.utc_offset_s) % 86400.0)

    def _price_of_day(self, sod: float) -> float:
        """The price at ``sod`` seconds into the local day."""
        price = self.periods[-1][1]
        for start, p in self.periods:
            if start <= sod:
                price = p
            else:
                break
        return price


@dataclass(frozen=True)
class ExpectedVehicle:
    """A vehicle scheduled to depart from the site that is not plugged in yet (the fleet's records): the energy
    it will need by its ``departure`` (POSIX seconds), from its battery, its departure's target and its newest
    telematics state of charge."""

    vehicle_id: str
    energy_needed_wh: float
    departure: float


@dataclass(frozen=True)
class SiteState:
    """A read-only view of a site for one re-plan.

    ``building_load_a`` is the non-EV load per phase at the grid connection (the latest meter reading, or a
    conservative estimate when it is stale). ``reserved_a`` are EVSEs the CSMS cannot steer (station
    offline, profile rejected, no answer): they are planned at that per-phase current on every wired
    phase, counted against the tree and never changed. ``expected`` are vehicles on their way: nothing is
    allocated to them, but the energy they will need counts when a strategy plans the night's import.
    """

    site: Site
    building_load_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sessions: Mapping[EvseKey, SessionState] = field(default_factory=lambda: _EMPTY)
    reserved_a: Mapping[EvseKey, float] = field(default_factory=lambda: _EMPTY)
    tariff: Tariff | None = None
    #: The billing period's peak grid import so far (W): raising the peak up to it costs nothing more.
    peak_w: float = 0.0
    #: Vehicles scheduled to depart from the site that are not plugged in yet (their departure still ahead).
    expected: tuple[ExpectedVehicle, ...] = ()
    #: The building's load learnt by time of day (None: none kept): strategies plan their horizon with its mean.
    building_forecast: BuildingForecast | None = None
    #: Minimum on and off time (s): a session our plans paused or resumed keeps that state this long, unless a limit
    #: of the tree forces a pause or its departure a resume (:func:`csms.loadmgmt.strategies._core.finalize`).
    dwell_s: float = 0.0
    #: The building's load (W) a demand charge's level is kept against: its mean over the demand window (the charge is
    #: on a 15-minute average, so a minute's noise in the building need not move every vehicle under the level). None:
    #: ``building_load_a``. The tree's limits always hold with ``building_load_a``.
    building_billed_w: float | None = None

    @property
    def building_now_w(self) -> float:
        """The building's load of now (W): ``building_load_a`` at the root's voltage."""
        return float(np.sum(self.building_load_a)) * self.site.root.voltage

    @property
    def building_level_w(self) -> float:
        """The building's load a demand charge's level and peak are kept against (W): ``building_billed_w``, else
        the load of now."""
        return self.building_now_w if self.building_billed_w is None else self.building_billed_w


@dataclass(frozen=True)
class Allocation:
    """Per-EVSE per-phase current limits (A; 0 = paused) for every plugged EVSE the CSMS steers, with their
    power (W). EVSEs absent from ``limits_a`` get nothing from this plan (unplugged, reserved, unknown).
    ``overloaded`` names nodes whose fixed load alone (building, reserved EVSEs, margin) is above the limit."""

    strategy: str
    at: float
    limits_a: Mapping[EvseKey, float]
    power_w: Mapping[EvseKey, float]
    overloaded: tuple[str, ...] = ()

    def total_w(self) -> float:
        return float(sum(self.power_w.values()))
