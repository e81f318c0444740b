"""The vehicle's battery as the charger sees it: how much power it accepts and where the energy goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from simulator.twin.curves import TaperCurve

__all__ = ["FULL_EPSILON_KWH", "CurrentKind", "Vehicle"]

CurrentKind = Literal["AC", "DC"]

# Below this remaining headroom the battery counts as full; avoids chasing a vanishing remainder with
# ever shorter steps.
FULL_EPSILON_KWH = 1e-9


@dataclass
class Vehicle:
    """A plug-in vehicle's battery state.

    Acceptance: the battery takes at most ``max_dc_kw × curve(soc)``; on AC the onboard charger further caps
    it at ``max_ac_kw``. At ``charge_limit_soc`` (the car's own charge limit, 1.0 by default) acceptance
    drops to zero and the vehicle sits idle until it leaves. ``target_soc`` is what the driver wants at
    departure; it does not stop charging.
    """

    vehicle_id: str
    battery_kwh: float
    soc: float
    target_soc: float
    max_ac_kw: float
    max_dc_kw: float
    curve: TaperCurve
    ac_phases: Literal[1, 3] = 3
    pack_voltage_v: float = 400.0
    charge_limit_soc: float = 1.0
    model: str = "custom"
    energy_received_kwh: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.battery_kwh <= 0:
            raise ValueError("battery_kwh must be positive")
        if not 0.0 <= self.soc <= 1.0:
            raise ValueError(f"soc must be within [0, 1], got {self.soc}")
        if not 0.0 < self.charge_limit_soc <= 1.0:
            raise ValueError("charge_limit_soc must be within (0, 1]")

    @property
    def headroom_kwh(self) -> float:
        """Energy the battery still takes before reaching its charge limit."""
        return max(0.0, (self.charge_limit_soc - self.soc) * self.battery_kwh)

    @property
    def is_full(self) -> bool:
        # headroom_kwh's expression, inlined: asked at every settle of a plugged connector.
        return max(0.0, (self.charge_limit_soc - self.soc) * self.battery_kwh) <= FULL_EPSILON_KWH

    def acceptance_kw(self, current: CurrentKind) -> float:
        """Largest power the vehicle draws right now on an ``current`` (AC/DC) connector."""
        if self.is_full:
            return 0.0
        battery_kw = self.max_dc_kw * self.curve.fraction(self.soc)
        if current == "AC":
            return min(self.max_ac_kw, battery_kw)
        return battery_kw

    def absorb(self, energy_kwh: float) -> float:
        """Store ``energy_kwh`` in the battery and return the amount stored.

        Energy beyond the charge limit is refused (the return value is then smaller); the SoC never exceeds
        the charge limit, hence never 1.0.

        Raises:
            ValueError: for negative energy (the twin does not model V2G).
        """
        if energy_kwh < 0:
            raise ValueError(f"cannot absorb negative energy {energy_kwh} kWh")
        stored = min(energy_kwh, self.headroom_kwh)
        self.soc += stored / self.battery_kwh
        if self.headroom_kwh <= FULL_EPSILON_KWH:
            self.soc = self.charge_limit_soc
        self.energy_received_kwh += stored
        return stored

    def dc_voltage_v(self) -> float:
        """Pack voltage, rising roughly linearly with SoC (±8 % around nominal)."""
        return self.pack_voltage_v * (0.92 + 0.16 * self.soc)
