"""An EV that speaks ISO 15118 behind a 2.0.1 charger (K15–K18), sans-IO: what it tells the CSMS.

The charger relays the EV's needs (NotifyEVChargingNeeds: energy to its target, departure, what it can take)
as soon as it knows them — at plug-in, and again when they change (the EV renegotiates, K18) — and, after
each TxProfile for the EV's transaction, the schedule the EV will follow (NotifyEVChargingSchedule): the
profile's periods, each capped at what the EV takes, on the profile's own time base. The car then draws what
the profile allows (the twin applies the profile as for any vehicle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csms.ocpp.convert import format_time, from_posix

#: The most schedule periods the EV accepts (ISO 15118-2 allows up to 1024; 24 is a common SAScheduleTuple size).
MAX_SCHEDULE_TUPLES = 24
#: The least current an AC EV draws (IEC 61851: 6 A).
EV_MIN_CURRENT_A = 6


@dataclass(frozen=True)
class EvNeeds:
    """What the EV on a connector asks for: energy [Wh], departure (POSIX s, None: not told), the most it
    takes [W] on a ``dc`` or AC connector of ``phases`` × ``voltage_v``."""

    energy_wh: float
    departure: float | None
    max_power_w: float
    dc: bool
    phases: int = 3
    voltage_v: float = 230.0

    @property
    def max_current_a(self) -> float:
        """Per phase (AC) or on the DC link."""
        return self.max_power_w / (self.voltage_v if self.dc else self.phases * self.voltage_v)

    def max_in(self, unit: str) -> float:
        return self.max_power_w if unit == "W" else self.max_current_a


def needs_payload(evse_id: int, needs: EvNeeds) -> dict[str, Any]:
    """NotifyEVChargingNeeds."""
    energy, volts = int(needs.energy_wh), int(needs.voltage_v)
    charging: dict[str, Any]
    if needs.dc:
        params = {"evMaxCurrent": int(needs.max_current_a), "evMaxVoltage": volts, "energyAmount": energy,
                  "evMaxPower": int(needs.max_power_w)}  # fmt: skip
        charging = {"requestedEnergyTransfer": "DC", "dcChargingParameters": params}
    else:
        transfer = "AC_single_phase" if needs.phases == 1 else "AC_three_phase"
        params = {"energyAmount": energy, "evMinCurrent": EV_MIN_CURRENT_A,
                  "evMaxCurrent": max(EV_MIN_CURRENT_A, int(needs.max_current_a)), "evMaxVoltage": volts}  # fmt: skip
        charging = {"requestedEnergyTransfer": transfer, "acChargingParameters": params}
    if needs.departure is not None:
        charging["departureTime"] = format_time(from_posix(needs.departure))
    return {"evseId": evse_id, "maxScheduleTuples": MAX_SCHEDULE_TUPLES, "chargingNeeds": charging}


def schedule_payload(evse_id: int, profile: dict[str, Any], needs: EvNeeds, now: float) -> dict[str, Any]:
    """NotifyEVChargingSchedule: the TxProfile's first schedule as the EV will follow it."""
    given = profile["chargingSchedule"][0]
    unit = given["chargingRateUnit"]
    cap = needs.max_in(unit)
    periods = [
        {**{k: v for k, v in p.items() if k != "limit"}, "limit": round(min(float(p["limit"]), cap), 1)}
        for p in given["chargingSchedulePeriod"]
    ][:MAX_SCHEDULE_TUPLES]
    schedule = {"id": given["id"], "chargingRateUnit": unit, "chargingSchedulePeriod": periods}
    time_base = given.get("startSchedule") or format_time(from_posix(now))
    return {"timeBase": time_base, "evseId": evse_id, "chargingSchedule": schedule}
