"""Reports: usage per site, station, driver, group, day or month (JSON, CSV, JSON Lines, Parquet), the session
export streamed in any size, and the report pictures (PNG)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from csms.api.auth import Caller
from csms.api.deps import DbSession, read_factory
from csms.api.schemas import Out
from csms.reports import formats, plots
from csms.services import usage_reports
from csms.services.errors import Invalid

router = APIRouter(tags=["reports"])

Start = Annotated[
    datetime, Query(description="period start, ISO 8601 (naive is UTC)", examples=["2026-11-01T00:00:00Z"])
]
End = Annotated[datetime, Query(description="period end (excluded)", examples=["2026-12-01T00:00:00Z"])]
Tz = Annotated[str, Query(description="IANA time zone of days, months and hours", examples=["Europe/Amsterdam"])]
SiteFilter = Annotated[str | None, Query(description="only this site's ports")]
UsageFormat = Annotated[Literal["json", "csv", "jsonl", "parquet"], Query(description="file format")]
ExportFormat = Annotated[Literal["csv", "jsonl", "parquet"], Query(description="file format")]
USAGE_COLUMNS = [
    "sessions",
    "energy_kwh",
    "currency",
    "revenue_excl_vat",
    "revenue_incl_vat",
    "occupied_hours",
    "utilisation_pct",
    "uptime_pct",
]
Currency = Annotated[
    str | None,
    Query(pattern=r"^[A-Z]{3}$", description="revenue in this currency (default: the one the period's CDRs have)"),
]


class UsageOut(Out):
    key: str = Field(description="the site, station, driver token, group, day or month")
    sessions: int = Field(description="sessions started in the period")
    energy_kwh: float
    currency: str | None = Field(description="of the revenue; null when no session of the period was priced")
    revenue_excl_vat: Decimal = Field(description="the CDR totals of the sessions started in the period")
    revenue_incl_vat: Decimal
    occupied_hours: float = Field(description="plug-in to plug-out, clipped to the period")
    utilisation_pct: float | None = Field(description="occupied over the ports' time (sites, stations, days, months)")
    uptime_pct: float | None = Field(description="mean NEVI uptime of the ports (sites and stations)")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"tz: unknown time zone {name!r}") from exc


def _attachment(name: str, fmt: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}


def _file(rows: list[dict[str, Any]], columns: list[str], fmt: str, name: str) -> Response:
    if fmt == "parquet":
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as out:
            formats.write_parquet(rows, columns, out)
            out.seek(0)
            body: bytes | str = out.read()
    elif fmt == "csv":
        body = "".join(formats.csv_lines(rows, columns))
    else:
        body = b"".join(formats.jsonl_lines(rows, columns))
    return Response(body, media_type=formats.MEDIA_TYPES[fmt], headers=_attachment(name, fmt))


@router.get("/reports/usage", response_model=list[UsageOut])
def get_usage(  # noqa: PLR0913 - one query parameter per filter
    db: DbSession,
    caller: Caller,
    start: Start,
    end: End,
    by: Annotated[
        Literal["site", "station", "driver", "group", "vehicle", "cost_centre", "day", "month"],
        Query(description="one row per (vehicle and cost_centre: fleet cost allocation)"),
    ],
    tz: Tz = "UTC",
    site_id: SiteFilter = None,
    currency: Currency = None,
    format: UsageFormat = "json",
) -> Any:
    """Sessions, energy, revenue, occupancy, utilisation and uptime per key over ``[start, end)``."""
    rows = usage_reports.usage(
        db, start, end, by, tz=_zone(tz), site_id=site_id, currency=currency, organisation_id=caller.scope
    )
    if format == "json":
        return [{"key": r[by], **{c: r[c] for c in USAGE_COLUMNS}} for r in rows]
    return _file(rows, [by, *USAGE_COLUMNS], format, f"usage-by-{by}")


@router.get("/reports/sessions", response_class=StreamingResponse)
def export_sessions(
    request: Request,
    caller: Caller,
    start: Start,
    end: End,
    site_id: SiteFilter = None,
    station_id: Annotated[str | None, Query(description="only this station's sessions")] = None,
    format: ExportFormat = "csv",
) -> StreamingResponse:
    """Every session started in the period, one row each, streamed (a year of a thousand stations is read
    2,000 rows at a time, never held whole)."""
    start, end = usage_reports.period(start, end)
    factory = read_factory(request)
    columns = list(usage_reports.SESSION_COLUMNS)

    def rows() -> Iterator[dict[str, Any]]:
        with factory() as db:
            scoped = usage_reports.sessions(
                db, start, end, site_id=site_id, station_id=station_id, organisation_id=caller.scope
            )
            for row in scoped:
                yield {c: getattr(row, c) for c in columns}

    body: Iterator[bytes] | Iterator[str]
    if format == "csv":
        body = formats.csv_lines(rows(), columns)
    elif format == "jsonl":
        body = formats.jsonl_lines(rows(), columns)
    else:
        body = _parquet_chunks(rows(), columns)
    return StreamingResponse(body, media_type=formats.MEDIA_TYPES[format], headers=_attachment("sessions", format))


def _parquet_chunks(rows: Iterator[dict[str, Any]], columns: list[str]) -> Iterator[bytes]:
    """Parquet needs its footer written last: the file goes to a spooled temporary file, then out in chunks."""
    with tempfile.SpooledTemporaryFile(max_size=16 << 20) as out:
        formats.write_parquet(rows, columns, out)
        out.seek(0)
        while chunk := out.read(1 << 16):
            yield chunk


@router.get("/reports/plots/energy-per-day.png", response_class=Response)
def plot_energy(
    db: DbSession, caller: Caller, start: Start, end: End, tz: Tz = "UTC", site_id: SiteFilter = None
) -> Response:
    """Energy delivered per local day (a bar a day)."""
    rows = usage_reports.usage(db, start, end, "day", tz=_zone(tz), site_id=site_id, organisation_id=caller.scope)
    title = f"Energy per day{' — ' + site_id if site_id else ''} ({tz})"
    return Response(plots.per_day(rows, "energy_kwh", "kWh", title), media_type="image/png")


@router.get("/reports/plots/revenue-per-day.png", response_class=Response)
def plot_revenue(
    db: DbSession,
    caller: Caller,
    start: Start,
    end: End,
    tz: Tz = "UTC",
    site_id: SiteFilter = None,
    currency: Currency = None,
) -> Response:
    """Revenue (incl. VAT, the sessions' CDRs) per local day (a bar a day)."""
    rows = usage_reports.usage(
        db, start, end, "day", tz=_zone(tz), site_id=site_id, currency=currency, organisation_id=caller.scope
    )
    code = next((r["currency"] for r in rows if r["currency"]), currency or "")
    title = f"Revenue per day{' — ' + site_id if site_id else ''} ({tz})"
    png = plots.per_day(rows, "revenue_incl_vat", f"{code} incl. VAT".strip(), title, color="#1c7ed6")
    return Response(png, media_type="image/png")


@router.get("/reports/plots/utilisation-heatmap.png", response_class=Response)
def plot_utilisation(
    db: DbSession, caller: Caller, start: Start, end: End, tz: Tz = "UTC", site_id: SiteFilter = None
) -> Response:
    """Share of ports occupied by weekday and local hour over the period."""
    matrix = usage_reports.occupancy_by_hour(
        db, start, end, tz=_zone(tz), site_id=site_id, organisation_id=caller.scope
    )
    title = f"Ports occupied by hour{' — ' + site_id if site_id else ''} ({tz})"
    return Response(plots.occupancy_heatmap(matrix, title), media_type="image/png")
