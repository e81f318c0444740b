"""Fleet depots: drivers, vehicles, departure plans, telematics SoC, and the "ready by departure" board."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, status
from pydantic import Field

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.schemas import Out, Strict, examples
from csms.services import fleet, fleet_board
from csms.services.errors import Invalid

router = APIRouter(tags=["fleet"])

Id = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")]
Hhmm = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local time HH:MM")]


class DriverIn(Strict):
    model_config = examples({"id": "D-17", "name": "Sam Okafor", "cost_centre": "CC-NORTH"})
    id: str = Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")
    name: str = Field(min_length=1, max_length=200)
    cost_centre: str | None = Field(None, max_length=40)


class VehicleIn(Strict):
    model_config = examples(
        {"id": "VAN-07", "name": "eSprinter 07", "vin": "W1V3KCFZ0RP123456", "battery_kwh": 113, "max_ac_kw": 11,
         "max_dc_kw": 115, "id_token": "VAN07CARD", "driver_id": "D-17", "cost_centre": "CC-NORTH",
         "depot_id": "depot-north", "tz": "Europe/Amsterdam"}
    )  # fmt: skip
    id: str = Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")
    name: str = Field(min_length=1, max_length=200)
    battery_kwh: float = Field(gt=0, le=2000)
    vin: str | None = Field(None, min_length=17, max_length=17)
    max_ac_kw: float | None = Field(None, gt=0, le=50)
    max_dc_kw: float | None = Field(None, gt=0, le=1000)
    id_token: str | None = Field(None, max_length=36)
    emaid: str | None = Field(None, max_length=40, description="ISO 15118 contract id (Plug & Charge)")
    driver_id: str | None = Field(None, max_length=36)
    cost_centre: str | None = Field(None, max_length=40)
    depot_id: str | None = Field(None, max_length=36, description="the site it charges at")
    tz: str = Field("UTC", max_length=40, description="IANA zone its departure plan is written in")


class VehicleOut(Out):
    id: str
    name: str
    battery_kwh: float
    vin: str | None
    max_ac_kw: float | None
    max_dc_kw: float | None
    id_token: str | None
    emaid: str | None
    driver_id: str | None
    cost_centre: str | None
    depot_id: str | None
    tz: str


class WeeklyDeparture(Strict):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    time: Hhmm
    target_soc_pct: float | None = Field(None, gt=0, le=100)
    target_kwh: float | None = Field(None, gt=0, le=2000)


class WeeklyPlan(Strict):
    model_config = examples({"departures": [{"weekday": d, "time": "06:30", "target_soc_pct": 90} for d in range(5)]})
    departures: list[WeeklyDeparture] = Field(max_length=100)


class OverrideIn(Strict):
    model_config = examples({"date": "2026-12-24", "time": "05:00", "target_kwh": 80})
    date: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    time: Hhmm
    target_soc_pct: float | None = Field(None, gt=0, le=100)
    target_kwh: float | None = Field(None, gt=0, le=2000)


class DepartureOut(Out):
    weekday: int | None
    date: str | None
    time: str
    target_soc_pct: float | None
    target_kwh: float | None


class TelematicsIn(Strict):
    model_config = examples({"vin": "W1V3KCFZ0RP123456", "soc_pct": 41.5, "at": "2026-12-04T21:10:00Z"})
    vehicle_id: str | None = Field(None, max_length=36)
    vin: str | None = Field(None, min_length=17, max_length=17)
    soc_pct: float = Field(description="0 to 100")
    at: datetime
    source: str = Field("api", max_length=40)


class BoardRow(Out):
    vehicle_id: str
    name: str
    status: str = Field(description="ready, on_track, at_risk, will_miss, not_plugged_in, no_departure")
    reason: str | None = Field(description="why it is not on track")
    departure: datetime | None
    target: str | None
    soc_pct: float | None
    soc_age_minutes: float | None
    energy_needed_kwh: float | None
    station_id: str | None
    evse_id: int | None
    power_kw: float | None = Field(description="the power it may draw now")
    deliverable_kwh: float | None = Field(description="at that power until departure, capped by the vehicle")


def _vehicle_out(v: Any) -> dict[str, Any]:
    return {c: getattr(v, c) for c in VehicleOut.model_fields}


def _changed(request: Request, background: BackgroundTasks, vehicle_id: str) -> None:
    """After the commit, on the event loop: a charging vehicle's needs are told again."""
    plugin = getattr(request.app.state, "fleet", None)
    if plugin is not None:
        background.add_task(_tell, plugin, vehicle_id)


async def _tell(plugin: Any, vehicle_id: str) -> None:
    plugin.vehicle_changed(vehicle_id)


@router.post("/fleet/drivers", status_code=status.HTTP_201_CREATED, response_model=DriverIn)
def create_driver(db: DbSession, body: DriverIn, caller: Caller) -> dict[str, Any]:
    caller.adopt(fleet.create_driver(db, body.id, name=body.name, cost_centre=body.cost_centre))
    return body.model_dump()


@router.post("/fleet/vehicles", status_code=status.HTTP_201_CREATED, response_model=VehicleOut)
def create_vehicle(db: DbSession, body: VehicleIn, caller: Caller) -> dict[str, Any]:
    fields = body.model_dump()
    vehicle = fleet.create_vehicle(db, fields.pop("id"), now=datetime.now(UTC), **fields)
    caller.adopt(vehicle)
    return _vehicle_out(vehicle)


@router.get("/fleet/vehicles", response_model=list[VehicleOut])
def list_vehicles(
    db: DbSession, caller: Caller, depot_id: Annotated[str | None, Query()] = None
) -> list[dict[str, Any]]:
    return [_vehicle_out(v) for v in fleet.list_vehicles(db, depot_id, caller.scope)]


@router.get("/fleet/vehicles/{vehicle_id}", response_model=VehicleOut)
def get_vehicle(db: DbSession, vehicle_id: Id) -> dict[str, Any]:
    return _vehicle_out(fleet.get_vehicle(db, vehicle_id))


@router.put("/fleet/vehicles/{vehicle_id}/plan", response_model=list[DepartureOut])
def set_plan(
    db: DbSession, request: Request, background: BackgroundTasks, vehicle_id: Id, body: WeeklyPlan
) -> list[dict[str, Any]]:
    """Replace the weekly departures (one-off overrides stay)."""
    fleet.set_weekly_plan(db, vehicle_id, [d.model_dump() for d in body.departures])
    _changed(request, background, vehicle_id)
    return [_departure_out(d) for d in fleet.plan_of(db, vehicle_id)]


@router.post(
    "/fleet/vehicles/{vehicle_id}/overrides", status_code=status.HTTP_201_CREATED, response_model=list[DepartureOut]
)
def add_override(
    db: DbSession, request: Request, background: BackgroundTasks, vehicle_id: Id, body: OverrideIn
) -> list[dict[str, Any]]:
    """A one-off departure; that day's weekly departures do not apply."""
    fleet.add_override(db, vehicle_id, body.model_dump(), now=datetime.now(UTC))
    _changed(request, background, vehicle_id)
    return [_departure_out(d) for d in fleet.plan_of(db, vehicle_id)]


@router.get("/fleet/vehicles/{vehicle_id}/plan", response_model=list[DepartureOut])
def get_plan(db: DbSession, vehicle_id: Id) -> list[dict[str, Any]]:
    return [_departure_out(d) for d in fleet.plan_of(db, vehicle_id)]


def _departure_out(d: Any) -> dict[str, Any]:
    return {"weekday": d.weekday, "date": d.on_date, "time": d.time, "target_soc_pct": d.target_soc_pct,
            "target_kwh": d.target_kwh}  # fmt: skip


@router.post("/fleet/telematics", status_code=status.HTTP_202_ACCEPTED)
def post_telematics(
    db: DbSession, request: Request, background: BackgroundTasks, body: TelematicsIn, caller: Caller
) -> dict[str, Any]:
    """A vehicle's state of charge from its telematics (by vehicle id or VIN), used while it charges on a
    charger that does not know it."""
    if (body.vehicle_id is None) == (body.vin is None):
        raise Invalid("give vehicle_id or vin")
    at = body.at if body.at.tzinfo else body.at.replace(tzinfo=UTC)
    row = fleet.record_soc(db, vehicle_id=body.vehicle_id, vin=body.vin, soc_pct=body.soc_pct, at=at,
                           now=datetime.now(UTC), source=body.source, organisation_id=caller.scope)  # fmt: skip
    _changed(request, background, row.vehicle_id)
    return {"vehicle_id": row.vehicle_id, "soc_pct": row.soc_pct, "at": row.at}


@router.get("/fleet/board", response_model=list[BoardRow])
def board(
    request: Request, db: DbSession, caller: Caller, depot_id: Annotated[str | None, Query()] = None
) -> list[dict[str, Any]]:
    """Every vehicle: will it be ready by its departure, and if not, why."""
    plugin = getattr(request.app.state, "load_management", None)
    limits = plugin.limits_now() if plugin is not None else {}
    return [row.as_dict() for row in fleet_board.board(db, datetime.now(UTC), limits, depot_id, caller.scope)]
