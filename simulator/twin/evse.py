"""One connector's electrical delivery: how much power flows, and the energy register it drives.

Theory of operation: power is piecewise constant. ``set_power`` picks the power for the interval that
starts now, from the minimum of the vehicle's acceptance, the EVSE rating and the charging-profile limit;
``advance`` integrates that constant power over the elapsed interval, moves the energy into the battery and
adds it to the register. The caller (``world.py``) ends an interval at every physics step and at every event
that could change the power (plug, unplug, limit change, battery full), so energy is integrated exactly:
the register delta equals the energy handed to the battery divided by the efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.twin.vehicle import CurrentKind, Vehicle

__all__ = ["DeliveryStep", "EvsePowerModel"]


@dataclass(frozen=True)
class DeliveryStep:
    """What happened over one interval of constant power."""

    duration_s: float
    power_w: float
    energy_wh: float
    stored_wh: float


class EvsePowerModel:
    """Electrical model of one connector.

    Args:
        rating_kw: the connector's maximum output power.
        current: ``"AC"`` or ``"DC"``.
        phases: AC phases wired to the connector (1 or 3); ignored for DC.
        voltage_v: AC phase-to-neutral voltage; for DC the vehicle's pack voltage is used.
        efficiency: fraction of delivered energy that ends up in the battery (1.0 by default).
    """

    __slots__ = ("_energy_register_wh", "_power_w", "_vehicle", "current", "efficiency", "nominal_voltage_v",
                 "phases", "rating_kw")  # fmt: skip

    def __init__(
        self,
        rating_kw: float,
        current: CurrentKind = "AC",
        phases: Literal[1, 3] = 3,
        voltage_v: float = 230.0,
        efficiency: float = 1.0,
    ) -> None:
        if rating_kw <= 0:
            raise ValueError("rating_kw must be positive")
        if not 0.0 < efficiency <= 1.0:
            raise ValueError("efficiency must be within (0, 1]")
        self.rating_kw = rating_kw
        self.current: CurrentKind = current
        self.phases: Literal[1, 3] = phases if current == "AC" else 1
        self.nominal_voltage_v = voltage_v
        self.efficiency = efficiency
        self._vehicle: Vehicle | None = None
        self._power_w = 0.0
        self._energy_register_wh = 0.0

    # -- readings -------------------------------------------------------------------------------------
    @property
    def energy_register_wh(self) -> float:
        """Cumulative delivered energy; never decreases."""
        return self._energy_register_wh

    @property
    def power_w(self) -> float:
        """Power held over the present interval."""
        return self._power_w

    @property
    def active_phases(self) -> int:
        """Phases carrying current: the EVSE's, or fewer if the vehicle's onboard charger has fewer."""
        if self.current == "DC":
            return 1
        if self._vehicle is None:
            return self.phases
        return min(self.phases, self._vehicle.ac_phases)

    @property
    def voltage_v(self) -> float:
        """AC: phase voltage. DC: the vehicle's pack voltage (0 with nothing plugged)."""
        if self.current == "AC":
            return self.nominal_voltage_v
        return self._vehicle.dc_voltage_v() if self._vehicle is not None else 0.0

    @property
    def current_a(self) -> float:
        """Current on each active phase (AC) or the DC current; P = V · I · active_phases."""
        voltage_v = self.voltage_v
        if voltage_v <= 0:
            return 0.0
        return self._power_w / (voltage_v * self.active_phases)

    @property
    def phase_currents_a(self) -> tuple[float, float, float]:
        """Currents on L1, L2, L3 (a single active phase is L1). DC reports (I, 0, 0)."""
        i = self.current_a
        if self.current == "AC" and self.active_phases == 3:
            return (i, i, i)
        return (i, 0.0, 0.0)

    @property
    def soc(self) -> float | None:
        """The vehicle's SoC as a DC charger learns it; AC chargers do not know it (None)."""
        if self.current == "DC" and self._vehicle is not None:
            return self._vehicle.soc
        return None

    # -- control --------------------------------------------------------------------------------------
    def max_power_w(self, vehicle: Vehicle | None, limit_w: float | None = None, limit_a: float | None = None) -> float:
        """min(vehicle acceptance, rating, profile limit) without changing any state."""
        if vehicle is None:
            return 0.0
        rating_w = self.rating_kw * 1000.0
        if self.current == "AC":
            phases_used = min(self.phases, vehicle.ac_phases)
            # The rating is a current per phase: a one-phase car on a three-phase EVSE gets a third.
            rating_w = rating_w * phases_used / self.phases
            volts_x_phases = self.nominal_voltage_v * phases_used
        else:
            volts_x_phases = vehicle.dc_voltage_v()
        power_w = min(vehicle.acceptance_kw(self.current) * 1000.0, rating_w)
        if limit_w is not None:
            power_w = min(power_w, limit_w)
        if limit_a is not None:
            power_w = min(power_w, limit_a * volts_x_phases)
        return max(power_w, 0.0)

    def set_power(
        self, vehicle: Vehicle | None, *, limit_w: float | None = None, limit_a: float | None = None
    ) -> float:
        """Choose the power for the interval starting now and return it in W.

        ``vehicle`` None means nothing plugged or the connector is not energized: power 0.
        """
        self._vehicle = vehicle
        self._power_w = self.max_power_w(vehicle, limit_w, limit_a)
        return self._power_w

    def seconds_until_full(self) -> float | None:
        """Time at the present power until the vehicle's battery is at its charge limit (None if idle)."""
        if self._vehicle is None or self._power_w <= 0:
            return None
        needed_wh = self._vehicle.headroom_kwh * 1000.0 / self.efficiency
        return needed_wh / self._power_w * 3600.0

    def advance(self, dt_s: float) -> DeliveryStep:
        """Integrate the present power over ``dt_s`` seconds.

        If the battery reaches its charge limit inside the interval only the energy it takes is delivered
        and the power drops to 0 from then on.

        Raises:
            ValueError: for a negative interval.
        """
        if dt_s < 0:
            raise ValueError(f"cannot advance by a negative interval {dt_s} s")
        vehicle = self._vehicle
        if vehicle is None or self._power_w <= 0 or dt_s == 0:
            return DeliveryStep(dt_s, self._power_w if dt_s == 0 else 0.0, 0.0, 0.0)
        power_w = self._power_w
        energy_wh, stored_kwh = self._integrate(vehicle, dt_s)
        return DeliveryStep(dt_s, power_w, energy_wh, stored_kwh * 1000.0)

    def run_for(self, dt_s: float) -> None:
        """:meth:`advance` without its record, for ``dt_s`` > 0: the twin settles a delivering connector at
        every read and step and reads the register and the vehicle afterwards, never the step."""
        vehicle = self._vehicle
        if vehicle is not None and self._power_w > 0:
            self._integrate(vehicle, dt_s)

    def _integrate(self, vehicle: Vehicle, dt_s: float) -> tuple[float, float]:
        """The present power over ``dt_s`` > 0 into ``vehicle``: (energy delivered [Wh], stored [kWh])."""
        energy_wh = self._power_w * dt_s / 3600.0
        needed_wh = vehicle.headroom_kwh * 1000.0 / self.efficiency
        if energy_wh >= needed_wh or needed_wh - energy_wh <= 1e-6:
            energy_wh = needed_wh
        stored_kwh = vehicle.absorb(energy_wh * self.efficiency / 1000.0)
        self._energy_register_wh += energy_wh
        if vehicle.is_full:
            self._power_w = 0.0
        return energy_wh, stored_kwh

    def deliver(
        self,
        vehicle: Vehicle | None,
        dt_s: float,
        *,
        limit_w: float | None = None,
        limit_a: float | None = None,
    ) -> DeliveryStep:
        """One fixed step: ``set_power`` then ``advance(dt_s)``."""
        self.set_power(vehicle, limit_w=limit_w, limit_a=limit_a)
        return self.advance(dt_s)
