"""The "ready by departure" board: for every vehicle, whether it will reach its target by its next departure
at the power load management gives it now, and if not, why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from csms.services import fleet
from csms.store.models import FleetVehicle

#: A vehicle whose deliverable energy covers its need with less than this margin is at risk.
AT_RISK_MARGIN = 1.15


@dataclass(frozen=True, slots=True)
class BoardRow:
    vehicle_id: str
    name: str
    status: str
    reason: str | None
    departure: datetime | None
    target: str | None
    soc_pct: float | None
    soc_age_minutes: float | None
    energy_needed_kwh: float | None
    station_id: str | None
    evse_id: int | None
    power_kw: float | None
    deliverable_kwh: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def board(
    db: Session,
    now: datetime,
    limits_w: Mapping[tuple[str, int], float],
    depot_id: str | None = None,
    organisation_id: int | None = None,
) -> list[BoardRow]:
    """Every vehicle (of one depot, of one organisation, when given) and whether it will be ready."""
    return [_row(db, v, now, limits_w) for v in fleet.list_vehicles(db, depot_id, organisation_id)]


def _row(db: Session, vehicle: FleetVehicle, now: datetime, limits_w: Mapping[tuple[str, int], float]) -> BoardRow:
    session = fleet.running_session(db, vehicle)
    needs = fleet.needs(db, vehicle, now, session)
    departure = needs.departure
    target = None
    if departure is not None:
        target = (
            f"{departure.target_soc_pct:g} %"
            if departure.target_soc_pct is not None
            else f"{departure.target_kwh:g} kWh"
        )
    base: dict[str, Any] = {
        "vehicle_id": vehicle.id,
        "name": vehicle.name,
        "departure": None if departure is None else departure.at,
        "target": target,
        "soc_pct": needs.soc_pct,
        "soc_age_minutes": None if needs.soc_age_s is None else round(needs.soc_age_s / 60, 1),
        "energy_needed_kwh": None if needs.energy_needed_wh is None else round(needs.energy_needed_wh / 1000, 2),
        "station_id": None if session is None else session.station_id,
        "evse_id": None if session is None else session.evse_id,
    }
    status, reason, power_kw, deliverable = _verdict(vehicle, needs, session, now, limits_w)
    return BoardRow(status=status, reason=reason, power_kw=power_kw, deliverable_kwh=deliverable, **base)


def _verdict(
    vehicle: FleetVehicle,
    needs: fleet.Needs,
    session: Any,
    now: datetime,
    limits_w: Mapping[tuple[str, int], float],
) -> tuple[str, str | None, float | None, float | None]:
    if needs.departure is None:
        return "no_departure", f"no departure planned in the next {fleet.HORIZON_DAYS} days", None, None
    if needs.energy_needed_wh is None:
        return "at_risk", "; ".join(needs.notes) or "its need is unknown", None, None
    if needs.energy_needed_wh <= 0:
        return "ready", None, None, None
    if session is None or session.evse_id is None:
        return "not_plugged_in", f"needs {needs.energy_needed_wh / 1000:.1f} kWh and is not plugged in", None, None
    hours = max(0.0, (needs.departure.at - now).total_seconds() / 3600)
    allowed_w = limits_w.get((session.station_id, session.evse_id))
    cap_kw = vehicle.max_ac_kw or vehicle.max_dc_kw
    power_kw = (allowed_w / 1000) if allowed_w is not None else cap_kw
    if power_kw is None:
        return "at_risk", "no plan for its charger and no power limit known for the vehicle", None, None
    if cap_kw is not None:
        power_kw = min(power_kw, cap_kw)
    deliverable = round(power_kw * hours, 2)
    needed = needs.energy_needed_wh / 1000
    notes = "; ".join(needs.notes)
    if deliverable < needed:
        why = f"needs {needed:.1f} kWh, {power_kw:.1f} kW for {hours:.1f} h gives {deliverable:.1f} kWh"
        return "will_miss", why + (f" ({notes})" if notes else ""), round(power_kw, 2), deliverable
    if deliverable < needed * AT_RISK_MARGIN or notes:
        why = (
            f"little margin: needs {needed:.1f} kWh of {deliverable:.1f} kWh deliverable"
            if deliverable < needed * AT_RISK_MARGIN
            else notes
        )
        return "at_risk", why, round(power_kw, 2), deliverable
    return "on_track", None, round(power_kw, 2), deliverable


def departure_at_risk(
    db: Session, site_id: str, start: datetime, end: datetime, limit_kw: float, now: datetime
) -> bool:
    """Whether a fleet vehicle charging at ``site_id`` would miss its departure if the site could give its
    charging vehicles only ``limit_kw`` between ``start`` and ``end`` (shared equally; the demand-response
    opt-out rule)."""
    charging = [(v, fleet.running_session(db, v)) for v in fleet.list_vehicles(db, site_id)]
    charging = [(v, s) for v, s in charging if s is not None]
    share_kw = limit_kw / max(1, len(charging))
    for vehicle, session in charging:
        needs = fleet.needs(db, vehicle, now, session)
        if needs.departure is None or needs.energy_needed_wh is None or needs.departure.at > end:
            continue
        cap_kw = vehicle.max_ac_kw or vehicle.max_dc_kw or share_kw
        before = max(0.0, (min(start, needs.departure.at) - now).total_seconds()) / 3600 * cap_kw
        during = max(0.0, (needs.departure.at - max(start, now)).total_seconds()) / 3600 * min(share_kw, cap_kw)
        if before + during < needs.energy_needed_wh / 1000:
            return True
    return False
