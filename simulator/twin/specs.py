"""What the twin is built from: plain descriptions of the site, its stations and the vehicles that will come.

The harness maps a scenario onto these (``simulator.scenario.to_twin``); the twin knows nothing of YAML.
Times are seconds after the run's start, already resolved; distributions only describe; the twin's arrival
generator (``simulator.twin.arrivals``) draws from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from simulator.twin.vehicle import CurrentKind

__all__ = [
    "FixedSoc",
    "FixedTime",
    "Fleet",
    "FleetSpec",
    "NormalSoc",
    "NormalTime",
    "ReplayFleetSpec",
    "SessionSpec",
    "SiteSpec",
    "SocSpec",
    "StationSpec",
    "TimeSpec",
    "TwinSpec",
    "UniformSoc",
    "UniformTime",
]


@dataclass(frozen=True)
class FixedTime:
    at_s: float


@dataclass(frozen=True)
class UniformTime:
    """Uniform on ``[low_s, high_s]``."""

    low_s: float
    high_s: float


@dataclass(frozen=True)
class NormalTime:
    mean_s: float
    std_s: float


TimeSpec = FixedTime | UniformTime | NormalTime


@dataclass(frozen=True)
class FixedSoc:
    soc: float


@dataclass(frozen=True)
class UniformSoc:
    low: float
    high: float


@dataclass(frozen=True)
class NormalSoc:
    """Clipped to [0, 1]."""

    mean: float
    std: float


SocSpec = FixedSoc | UniformSoc | NormalSoc


@dataclass(frozen=True)
class SiteSpec:
    """The grid connection: limits (kW and/or per phase, A), phase-to-neutral voltage, and the building load
    as ``(hour_of_day, kw)`` points sorted by hour (linear in between) plus noise."""

    grid_limit_kw: float | None
    phase_limits_a: tuple[float, float, float] | None
    voltage: float
    building_load_points: tuple[tuple[float, float], ...]
    building_noise_kw: float


@dataclass(frozen=True)
class StationSpec:
    """One charger: ``connectors`` identical connectors of ``max_kw`` each, wired to ``site_phases`` (0 = L1)."""

    station_id: str
    connectors: int
    max_kw: float
    current: CurrentKind
    phases: Literal[1, 3]
    voltage: float
    site_phases: tuple[int, ...]


@dataclass(frozen=True)
class FleetSpec:
    """``len(id_tokens)`` vehicles sharing a model mix and arrival/departure/SoC distributions.

    ``models`` are ``(catalogue name, weight)`` pairs; the ``None`` fields take the model's value.
    ``allowed`` restricts the stations (None: any); ``assign`` picks among the free connectors.
    """

    name: str
    id_tokens: tuple[str | None, ...]
    models: tuple[tuple[str, float], ...]
    battery_kwh: float | None
    max_ac_kw: float | None
    max_dc_kw: float | None
    ac_phases: Literal[1, 3] | None
    curve: tuple[tuple[float, float], ...] | None
    arrival: TimeSpec
    departure: TimeSpec
    soc_on_arrival: SocSpec
    target_soc: float
    charge_limit_soc: float
    plug_in_delay_s: float
    group: str | None
    allowed: frozenset[str] | None
    assign: Literal["first_free", "random"]
    #: Each vehicle carries an ISO 15118 contract certificate (its eMAID: its id token).
    plug_and_charge: bool = False
    #: Each vehicle tells a 2.0.1 charger its needs over ISO 15118 (NotifyEVChargingNeeds).
    iso15118: bool = False
    #: Each driver pays by card at the charger's payment terminal (its id token: the card's reference).
    pays_by_card: bool = False


@dataclass(frozen=True)
class SessionSpec:
    """One replayed session: plugged in from ``arrival_s`` to ``departure_s`` at ``station`` (None: the first
    free connector), wanting ``energy_kwh`` into a ``battery_kwh`` battery at up to ``max_kw`` (None: the
    model's peaks)."""

    arrival_s: float
    departure_s: float
    energy_kwh: float
    battery_kwh: float
    max_kw: float | None
    station: str | None
    id_token: str | None


@dataclass(frozen=True)
class ReplayFleetSpec:
    """Vehicles replayed from explicit sessions rather than drawn from distributions (rules in
    ``simulator.twin.arrivals.plan_replay``). ``curve`` None is flat (an ideal battery)."""

    name: str
    sessions: tuple[SessionSpec, ...]
    model: str
    ac_phases: Literal[1, 3] | None
    curve: tuple[tuple[float, float], ...] | None
    target_soc: float
    group: str | None


Fleet = FleetSpec | ReplayFleetSpec


@dataclass(frozen=True)
class TwinSpec:
    """A whole run: ``start`` (aware, in the site's zone) only places the building-load profile on the clock."""

    start: datetime
    duration_s: float
    step_s: float
    efficiency: float
    site: SiteSpec
    stations: tuple[StationSpec, ...]
    fleets: tuple[Fleet, ...]
