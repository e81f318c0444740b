"""The arrival generator: turns the fleets of a ``TwinSpec`` into the vehicles that will come, when they
arrive, how charged they are and when they mean to leave.

Every random draw of vehicle planning happens here, from the one generator the world hands in, in a fixed
order per vehicle: model, arrival, state of charge, departure. Changing that order changes every seeded run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from simulator.twin.catalogue import CATALOGUE
from simulator.twin.curves import TaperCurve
from simulator.twin.specs import (
    FixedSoc,
    FixedTime,
    FleetSpec,
    NormalTime,
    SocSpec,
    TimeSpec,
    UniformSoc,
    UniformTime,
)
from simulator.twin.vehicle import Vehicle

__all__ = ["MIN_STAY_S", "Arrival", "plan_fleet", "sample_soc", "sample_time_s"]

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


def plan_fleet(fleet: FleetSpec, rng: random.Random, end_s: float) -> list[Arrival]:
    """The fleet's vehicles, numbered 1.. within the fleet; arrivals are clipped to the run."""
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
            fleet.assign, soc,
        )  # fmt: skip
        arrivals.append(plan)
    return arrivals
