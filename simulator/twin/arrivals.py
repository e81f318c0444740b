"""The arrival generator: turns the fleets of a ``TwinSpec`` into the vehicles that will come, when they
arrive, how charged they are and when they mean to leave.

A fleet is sampled from distributions (``FleetSpec``) or replayed from explicit sessions
(``ReplayFleetSpec``); both become the same ``Arrival`` plans. Every random draw of vehicle planning happens
here, from the one generator the world hands in, in a fixed order per sampled vehicle: model, arrival, state
of charge, departure. Changing that order changes every seeded run. Replay draws nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from simulator.twin.catalogue import CATALOGUE
from simulator.twin.curves import FLAT, TaperCurve
from simulator.twin.specs import (
    FixedSoc,
    FixedTime,
    Fleet,
    NormalTime,
    ReplayFleetSpec,
    SocSpec,
    TimeSpec,
    UniformSoc,
    UniformTime,
)
from simulator.twin.vehicle import Vehicle

__all__ = ["MIN_STAY_S", "Arrival", "plan_fleet", "plan_replay", "sample_soc", "sample_time_s"]

#: A vehicle stays at least this long after plugging in, whatever its departure draw says.
MIN_STAY_S = 60.0


@dataclass(frozen=True)
class Arrival:
    """One planned visit: the vehicle (its battery state changes as it charges) and the plan it follows."""

    vehicle: Vehicle
    group: str | None
    id_token: str | None
    arrival_s: float
    plug_in_delay_s: float
    planned_departure_s: float
    allowed: frozenset[str] | None
    assign: Literal["first_free", "random"]
    soc_on_arrival: float
    plug_and_charge: bool = False
    iso15118: bool = False
    pays_by_card: bool = False


def sample_time_s(spec: TimeSpec, rng: random.Random) -> float:
    """Seconds after the start; draws from ``rng`` except for a fixed time."""
    if isinstance(spec, FixedTime):
        return spec.at_s
    if isinstance(spec, UniformTime):
        return rng.uniform(spec.low_s, spec.high_s)
    assert isinstance(spec, NormalTime)
    return rng.gauss(spec.mean_s, spec.std_s)


def sample_soc(spec: SocSpec, rng: random.Random) -> float:
    """A state of charge in [0, 1]; draws from ``rng`` except for a fixed one."""
    if isinstance(spec, FixedSoc):
        return spec.soc
    if isinstance(spec, UniformSoc):
        return rng.uniform(spec.low, spec.high)
    return min(max(rng.gauss(spec.mean, spec.std), 0.0), 1.0)


def plan_fleet(fleet: Fleet, rng: random.Random, end_s: float) -> list[Arrival]:
    """The fleet's vehicles, numbered 1.. within the fleet; sampled arrivals are clipped to the run."""
    if isinstance(fleet, ReplayFleetSpec):
        return plan_replay(fleet)
    names, weights = [name for name, _ in fleet.models], [weight for _, weight in fleet.models]
    curve = TaperCurve(fleet.curve) if fleet.curve is not None else None
    arrivals = []
    for n, id_token in enumerate(fleet.id_tokens, start=1):
        model = CATALOGUE[rng.choices(names, weights)[0]]
        arrival_s = min(max(round(sample_time_s(fleet.arrival, rng)), 0.0), end_s)
        soc = min(sample_soc(fleet.soc_on_arrival, rng), fleet.charge_limit_soc)
        departure_s = float(round(sample_time_s(fleet.departure, rng)))
        departure_s = max(departure_s, arrival_s + fleet.plug_in_delay_s + MIN_STAY_S)
        vehicle = Vehicle(
            vehicle_id=f"{fleet.name}-{n}", battery_kwh=fleet.battery_kwh or model.battery_kwh, soc=soc,
            target_soc=fleet.target_soc,
            max_ac_kw=model.max_ac_kw if fleet.max_ac_kw is None else fleet.max_ac_kw,
            max_dc_kw=model.max_dc_kw if fleet.max_dc_kw is None else fleet.max_dc_kw,
            curve=curve or model.curve, ac_phases=fleet.ac_phases or model.ac_phases,
            pack_voltage_v=model.pack_voltage_v, charge_limit_soc=fleet.charge_limit_soc, model=model.name,
        )  # fmt: skip
        plan = Arrival(
            vehicle, fleet.group, id_token, arrival_s, fleet.plug_in_delay_s, departure_s, fleet.allowed,
            fleet.assign, soc, fleet.plug_and_charge, fleet.iso15118, fleet.pays_by_card,
        )  # fmt: skip
        arrivals.append(plan)
    return arrivals


def plan_replay(fleet: ReplayFleetSpec) -> list[Arrival]:
    """One vehicle per session, plugged in at its arrival (no plug-in delay) at its station (or the first
    free connector) and unplugged at its departure.

    The vehicle accepts up to the session's ``max_kw`` (else its model's AC and DC peaks) along the fleet's
    curve (flat: an ideal battery) and stops when it holds the requested energy: it arrives at SoC
    ``target_soc - energy_kwh / battery_kwh`` and its charge limit is ``target_soc``.
    """
    model = CATALOGUE[fleet.model]
    curve = TaperCurve(fleet.curve) if fleet.curve is not None else FLAT
    arrivals = []
    for n, session in enumerate(fleet.sessions, start=1):
        soc = fleet.target_soc - session.energy_kwh / session.battery_kwh
        soc = 0.0 if abs(soc) < 1e-9 else soc  # the full battery below target, less rounding; more is an error
        vehicle = Vehicle(
            vehicle_id=f"{fleet.name}-{n}", battery_kwh=session.battery_kwh, soc=soc, target_soc=fleet.target_soc,
            max_ac_kw=model.max_ac_kw if session.max_kw is None else session.max_kw,
            max_dc_kw=model.max_dc_kw if session.max_kw is None else session.max_kw,
            curve=curve, ac_phases=fleet.ac_phases or model.ac_phases, pack_voltage_v=model.pack_voltage_v,
            charge_limit_soc=fleet.target_soc, model=model.name,
        )  # fmt: skip
        allowed = None if session.station is None else frozenset((session.station,))
        plan = Arrival(
            vehicle, fleet.group, session.id_token, session.arrival_s, 0.0, session.departure_s, allowed,
            "first_free", soc,
        )  # fmt: skip
        arrivals.append(plan)
    return arrivals
