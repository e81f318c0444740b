"""Built-in vehicle models that scenarios refer to by name (``model: van-68``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.twin.curves import CURVES, TaperCurve

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "VehicleModelSpec"]


@dataclass(frozen=True)
class VehicleModelSpec:
    """Static description of a vehicle model.

    ``max_dc_kw × curve(soc)`` is the battery's acceptance; AC charging is additionally capped by the onboard
    charger (``max_ac_kw`` over ``ac_phases`` phases).
    """

    name: str
    battery_kwh: float
    max_ac_kw: float
    max_dc_kw: float
    ac_phases: Literal[1, 3]
    pack_voltage_v: float
    curve: TaperCurve


CATALOGUE: dict[str, VehicleModelSpec] = {
    spec.name: spec
    for spec in (
        VehicleModelSpec("city-52", 52.0, 22.0, 50.0, 3, 400.0, CURVES["city-52"]),
        VehicleModelSpec("hatch-40", 40.0, 6.6, 50.0, 1, 350.0, CURVES["hatch-40"]),
        VehicleModelSpec("compact-58", 58.0, 11.0, 120.0, 3, 400.0, CURVES["compact-58"]),
        VehicleModelSpec("midsize-80", 80.0, 11.0, 150.0, 3, 400.0, CURVES["midsize-80"]),
        VehicleModelSpec("sedan-75", 75.0, 11.0, 170.0, 3, 400.0, CURVES["sedan-75"]),
        VehicleModelSpec("suv-95", 95.0, 11.0, 150.0, 3, 400.0, CURVES["suv-95"]),
        VehicleModelSpec("van-68", 68.0, 11.0, 115.0, 3, 400.0, CURVES["van-68"]),
    )
}

DEFAULT_MODEL = "midsize-80"
