"""Uptime per port (NEVI, 23 CFR 680.116(b)), outage records (680.112(a)(7)-(8)), exclusion windows; JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import Field

from csms import uptime as up
from csms.api.auth import Caller
from csms.api.deps import DbSession
from csms.api.routes.stations import StationPath
from csms.api.schemas import Out, StationId, Strict, UtcDatetime, examples
from csms.services import uptime
from csms.services.errors import Invalid

router = APIRouter(tags=["uptime"])

Format = Annotated[Literal["json", "csv"], Query(description="`csv` for a spreadsheet export")]
When = Annotated[datetime | None, Query(description="ISO 8601; naive is UTC")]


class UptimeOut(Out):
    station_id: str
    evse_id: int
    period_start: datetime
    period_end: datetime
    basis_minutes: float = Field(description="M: 525,600 for twelve months, else the period's minutes")
    outage_minutes: float
    excluded_minutes: float
    uptime_pct: float | None


class OutageOut(Out):
    station_id: str
    evse_id: int
    start: datetime
    end: datetime
    duration_minutes: float
    cause: str
    excluded: bool
    exclusion_cause: str | None
    exclusion_id: int | None


class ExclusionCreate(Strict):
    model_config = examples(
        {
            "station_id": "CP-1",
            "evse_id": 1,
            "start": "2026-01-15T08:00:00Z",
            "end": "2026-01-15T12:00:00Z",
            "cause": "scheduled_maintenance",
            "note": "RCD replaced",
            "declared_by": "field service",
        }
    )

    station_id: StationId
    evse_id: int | None = Field(None, ge=1, le=2**31 - 1, description="null: every port of the station")
    start: UtcDatetime
    end: UtcDatetime
    # Built from the one list of causes for FastAPI's validation and schema; mypy cannot read a computed Literal.
    cause: Literal[tuple(sorted(up.ALL_EXCLUSION_CAUSES))]  # type: ignore[valid-type]
    note: str | None = Field(None, max_length=500, pattern=r"^[^\x00]*$")
    declared_by: str | None = Field(None, max_length=100, pattern=r"^[^\x00]*$")


class ExclusionOut(Out):
    id: int
    station_id: str
    evse_id: int | None
    start: datetime
    end: datetime
    cause: str
    note: str | None
    declared_at: datetime
    declared_by: str | None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _period(start: datetime | None, end: datetime | None) -> up.Period:
    """Default: the twelve months before the start of the current month (the monthly recomputation)."""
    start, end = _utc(start), _utc(end)
    if start is None and end is None:
        now = datetime.now(UTC)
        return up.trailing_twelve_months(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    if start is None or end is None:
        raise Invalid("give both period_start and period_end, or neither")
    if end <= start:
        raise Invalid("period_end must be after period_start")
    return up.Period(start, end)


def _policy(request: Request) -> up.ExclusionPolicy:
    return getattr(request.app.state, "uptime_policy", None) or up.DEFAULT_POLICY


def _csv(rows: list[dict[str, Any]], columns: list[str], name: str) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(buffer.getvalue(), media_type="text/csv", headers=headers)


@router.get("/uptime", response_model=list[UptimeOut])
def get_uptime(
    request: Request,
    db: DbSession,
    caller: Caller,
    period_start: When = None,
    period_end: When = None,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    format: Format = "json",
) -> Any:
    """µ per port: (M − (T_outage − T_excluded)) / M × 100 with M = 525,600 for twelve months, else the
    period's minutes. Without a period: the twelve months before the current month."""
    period = _period(period_start, period_end)
    rows = uptime.port_uptime(db, period, _policy(request), station_id, caller.scope)
    if format == "csv":
        return _csv(rows, list(UptimeOut.model_fields), "uptime")
    return rows


@router.get("/stations/{station_id}/outages", response_model=list[OutageOut])
def get_outages(
    request: Request,
    station_id: StationPath,
    db: DbSession,
    period_start: When = None,
    period_end: When = None,
    format: Format = "json",
) -> Any:
    """Outage records per port: start, end, duration, cause, whether excluded (and why)."""
    rows = uptime.station_outages(db, station_id, _period(period_start, period_end), _policy(request))
    if format == "csv":
        return _csv(rows, list(OutageOut.model_fields), f"outages-{station_id}")
    return rows


@router.get("/exclusions", response_model=list[ExclusionOut])
def list_exclusions(
    db: DbSession, caller: Caller, station_id: Annotated[str | None, Query(max_length=48)] = None
) -> Any:
    return uptime.list_exclusions(db, station_id, caller.scope)


@router.post("/exclusions", response_model=ExclusionOut, status_code=status.HTTP_201_CREATED)
def create_exclusion(body: ExclusionCreate, db: DbSession) -> Any:
    """Declare an exclusion window. Scheduled maintenance counts only if declared before it starts."""
    return uptime.create_exclusion(
        db,
        body.station_id,
        evse_id=body.evse_id,
        start=body.start,
        end=body.end,
        cause=body.cause,
        now=datetime.now(UTC),
        note=body.note,
        declared_by=body.declared_by,
    )


class ExclusionEnd(Strict):
    model_config = examples({"end": "2026-01-15T09:12:00Z"})

    end: UtcDatetime = Field(description="when the excluded outage really ended (never later than declared)")


@router.post("/exclusions/{exclusion_id}/end", response_model=ExclusionOut)
def end_exclusion(exclusion_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: ExclusionEnd, db: DbSession) -> Any:
    """End a declared window early: a planned outage that took less than declared is excluded only for as
    long as it took. A window is never lengthened (an end after the declared one keeps the declared one)."""
    return uptime.end_exclusion(db, exclusion_id, body.end)


@router.delete("/exclusions/{exclusion_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_exclusion(exclusion_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: DbSession) -> Response:
    uptime.delete_exclusion(db, exclusion_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
