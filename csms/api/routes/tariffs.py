"""Tariffs in the OCPI 2.2.1 shape (`PUT` a tariff, its price history), where each applies (site, station, EVSE,
driver group), and what a session would cost a driver before it starts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response, status
from pydantic import ConfigDict, Field

from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.routes.stations import StationPath
from csms.api.schemas import Out, Strict, examples
from csms.core.plugins.aligned_metering import AlignedMetering
from csms.services import authorization, tariffs
from csms.services.errors import Invalid
from csms.tariffs.pricing import CdrResult

router = APIRouter(tags=["tariffs"])

TariffId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")]
EXAMPLE: dict[str, Any] = {
    "id": "STANDARD",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": "1.00", "vat": "20", "step_size": 1}]},
        {"price_components": [{"type": "ENERGY", "price": "0.30", "vat": "20", "step_size": 1}]},
        {
            "price_components": [{"type": "TIME", "price": "2.00", "vat": "20", "step_size": 60}],
            "restrictions": {"min_duration": 3600},
        },
    ],
}


class TariffIn(Strict):
    """An OCPI 2.2.1 Tariff object (the fields the CSMS prices with; others are kept)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE]})
    id: str | None = Field(None, description="the path's id (given here, it must match)")
    currency: str
    elements: list[dict[str, Any]] = Field(min_length=1, max_length=100)
    min_price: dict[str, Any] | None = None
    max_price: dict[str, Any] | None = None
    start_date_time: str | None = None
    end_date_time: str | None = None


class TariffOut(Out):
    id: str
    version: int
    currency: str
    body: dict[str, Any] = Field(description="the OCPI tariff")
    updated_at: datetime


class VersionOut(Out):
    version: int
    valid_from: datetime
    body: dict[str, Any]


class AssignmentIn(Strict):
    model_config = examples(
        {"tariff_id": "STANDARD", "site_id": "depot"},
        {"tariff_id": "RESIDENTS", "station_id": "CP-1", "evse_id": 1, "group_id": "residents"},
    )
    tariff_id: str = Field(min_length=1, max_length=36)
    site_id: str | None = Field(None, max_length=48)
    station_id: str | None = Field(None, max_length=48)
    evse_id: int | None = Field(None, ge=1, le=1000)
    group_id: str | None = Field(None, max_length=36, description="a driver group (token group); none: everyone")


class AssignmentOut(Out):
    id: int
    tariff_id: str
    site_id: str | None
    station_id: str | None
    evse_id: int | None
    group_id: str | None


def _out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "version": row.version,
        "currency": row.currency,
        "body": row.body,
        "updated_at": row.updated_at,
    }


def _aligned_follow(request: Request, background: BackgroundTasks, db: Any, tariff_id: str) -> None:
    """The connected stations where the tariff applies are set to read their meters on its time-of-day
    boundaries (:mod:`csms.core.plugins.aligned_metering`) once the change is committed (the response first)."""
    gateway = getattr(request.app.state, "gateway", None)
    host = getattr(gateway, "host", None)
    plugin = next((p for p in getattr(host, "plugins", ()) if isinstance(p, AlignedMetering)), None)
    if plugin is None:
        return
    station_ids = tariffs.stations_assigned(db, tariff_id)
    if station_ids:

        async def follow() -> None:  # on the event loop, as the host's plugins run
            plugin.tariffs_changed(station_ids)

        background.add_task(follow)


@router.put("/tariffs/{tariff_id}", response_model=TariffOut)
def put_tariff(
    db: DbSession,
    tariff_id: TariffId,
    body: TariffIn,
    response: Response,
    caller: Caller,
    request: Request,
    background: BackgroundTasks,
) -> dict[str, Any]:
    """Create the tariff, or make this its next version (the price history keeps the old ones)."""
    data = body.model_dump(exclude_none=True)
    if data.get("id", tariff_id) != tariff_id:
        raise Invalid("id: does not match the path")
    row, created = tariffs.put(db, tariff_id, data, datetime.now(UTC))
    if created:
        caller.adopt(row)
    else:
        _aligned_follow(request, background, db, tariff_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _out(row)


@router.get("/tariffs", response_model=list[TariffOut])
def list_tariffs(db: DbSession, caller: Caller) -> list[dict[str, Any]]:
    return [_out(r) for r in tariffs.list_tariffs(db, caller.scope)]


@router.get("/tariffs/{tariff_id}", response_model=TariffOut)
def get_tariff(db: DbSession, tariff_id: TariffId) -> dict[str, Any]:
    return _out(tariffs.get(db, tariff_id))


@router.get("/tariffs/{tariff_id}/versions", response_model=list[VersionOut])
def tariff_versions(db: DbSession, tariff_id: TariffId) -> list[dict[str, Any]]:
    return [{"version": v.version, "valid_from": v.valid_from, "body": v.body} for v in tariffs.versions(db, tariff_id)]


@router.delete("/tariffs/{tariff_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_tariff(db: DbSession, tariff_id: TariffId) -> None:
    tariffs.delete(db, tariff_id)


@router.post("/tariff-assignments", response_model=AssignmentOut, status_code=status.HTTP_201_CREATED)
def assign(db: DbSession, body: AssignmentIn, request: Request, background: BackgroundTasks) -> Any:
    """The tariff of a site, a station or one EVSE, for a driver group or for everyone (docs/design/tariffs.md
    gives the precedence). Where it changes price at a time of day, the stations are set to read their meters
    on those boundaries (clock-aligned meter values)."""
    fields = body.model_dump()
    tariff_id = fields.pop("tariff_id")
    row = tariffs.assign(db, tariff_id, now=datetime.now(UTC), **fields)
    _aligned_follow(request, background, db, tariff_id)
    return row


@router.get("/tariff-assignments", response_model=list[AssignmentOut])
def list_assignments(db: DbSession, caller: Caller) -> Any:
    return tariffs.assignments(db, caller.scope)


@router.delete("/tariff-assignments/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
def unassign(db: DbSession, assignment_id: Annotated[int, Path(ge=1)]) -> None:
    tariffs.unassign(db, assignment_id)


@router.get("/stations/{station_id}/price-quote")
def price_quote(
    db: DbSession,
    station_id: StationPath,
    kwh: Annotated[Decimal, Query(ge=0, le=1000, description="energy the driver wants")],
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="minutes charging")],
    evse_id: Annotated[int, Query(ge=1, le=1000)] = 1,
    parking_minutes: Annotated[int, Query(ge=0, le=7 * 24 * 60, description="then plugged in, not charging")] = 0,
    id_token: Annotated[str | None, Query(max_length=36, description="the driver's token (its group's tariff)")] = None,
    time_zone: Annotated[str, Query(max_length=40)] = "UTC",
) -> dict[str, Any]:
    """What a session would cost before it starts, by the tariff that applies to this driver at this EVSE."""
    group = authorization.get(db, id_token).group_id if id_token else None
    tariff = tariffs.resolve(db, station_id, evse_id, group)
    if tariff is None:
        raise Invalid(f"no tariff applies at {station_id} EVSE {evse_id}")
    result = tariffs.quote(tariff, start=datetime.now(UTC), kwh=kwh, charging_minutes=minutes,
                           parking_minutes=parking_minutes, time_zone=time_zone)  # fmt: skip
    return {"tariff_id": tariff.id, "tariff_version": tariff.version, **_cdr(result)}


def _cdr(result: CdrResult) -> dict[str, Any]:
    return {
        "currency": result.currency,
        "total_energy": str(result.total_energy),
        "total_time": str(result.total_time),
        "total_parking_time": str(result.total_parking_time),
        "total_cost": {
            "excl_vat": str(result.total_cost.excl_vat),
            "incl_vat": None if result.total_cost.incl_vat is None else str(result.total_cost.incl_vat),
        },
        "costs": [
            {
                "type": c.dimension.value,
                "volume": str(c.volume),
                "billed_volume": str(c.billed_volume),
                "excl_vat": str(c.excl_vat),
                "incl_vat": str(c.incl_vat),
            }
            for c in result.costs
        ],
        "review_reasons": list(result.review_reasons),
    }
