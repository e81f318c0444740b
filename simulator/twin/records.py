"""Ground truth the twin hands to whoever judges a run: what happened to each vehicle, and each plugged-in
stay in the form the offline optimum (``simulator.verify.optimum``) takes."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.twin.interfaces import ConnectorRef

__all__ = ["SessionRecord", "VehicleRecord"]


@dataclass(frozen=True)
class VehicleRecord:
    """Ground truth for one vehicle. Times are seconds after the start; ``departure_s`` is None if the
    vehicle was still on site at the end (then ``soc_at_departure`` is its SoC at the end)."""

    vehicle_id: str
    model: str
    group: str | None
    id_token: str | None
    arrival_s: float
    plug_in_s: float | None
    planned_departure_s: float
    departure_s: float | None
    connector: ConnectorRef | None
    soc_on_arrival: float
    soc_at_departure: float
    target_soc: float
    energy_received_kwh: float
    full_at_s: float | None

    @property
    def reached_target(self) -> bool:
        return self.soc_at_departure >= self.target_soc - 1e-9


@dataclass(frozen=True)
class SessionRecord:
    """One plugged-in stay. Times in seconds after the scenario start; ``phases`` are the site phases the
    charging current flows on (a one-phase car on a three-phase EVSE: one phase); DC: all three."""

    id: str
    plug_in_s: float
    departure_s: float
    energy_needed_kwh: float
    max_kw: float
    phases: tuple[int, ...] = (0, 1, 2)
    voltage: float = 230.0
