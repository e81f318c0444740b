"""The console's operations pages (docs/console.md): the station list with its filters, the alerts with their
acknowledge and resolve buttons, NEVI uptime per port with its CSV export, a site's load management, and the
Server-Sent-Event streams that keep the overview, the station list, a station's page and the load chart live.

The same rules as csms/api/dashboard.py: each page names the API route whose data it shows (``PAGES``), each
button the API route it is (``ACTIONS``), and needs that route's permission from csms/api/permissions.py; lists
are the caller's organisation's. A live stream renders the fragments its page shows, from the store and the
gateway, when the host's feed (csms/api/live.py) says a station changed; it checks the session on every batch.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from csms import uptime as up
from csms.api import auth, live
from csms.api.console import HEADERS, signed_in
from csms.api.dashboard import (
    NEVI_MINIMUM_PCT,
    PAGE_HEADERS,
    STATES,
    _csrf_ok,
    _form,
    _may,
    _now,
    _port_state,
    _refused,
    caller,
    overview,
    render,
    templates,
)
from csms.api.deps import DbSession, GatewayDep, read_factory
from csms.api.routes import alerts as alert_routes
from csms.api.routes.alerts import AlertOut, ByWhom
from csms.api.routes.stations import station_out
from csms.gateway.server import Gateway
from csms.services import alerts, sites, stations, transactions, uptime
from csms.services.errors import DomainError
from csms.store.models import Station, TransactionStatus

router = APIRouter(include_in_schema=False)

#: console page → the API route whose data it shows (and whose permission it needs).
PAGES: dict[str, tuple[str, str]] = {
    "stations": ("GET", "/stations"),
    "station": ("GET", "/stations/{station_id}"),
    "overview": ("GET", "/sites"),
    "alerts": ("GET", "/alerts"),
    "uptime": ("GET", "/uptime"),
    "load": ("GET", "/sites/{site_id}"),
}
#: console button → the API route it is.
ACTIONS: dict[str, tuple[str, str]] = {
    "acknowledge": ("POST", "/alerts/{alert_id}/acknowledge"),
    "resolve": ("POST", "/alerts/{alert_id}/resolve"),
}
STATIONS_PER_PAGE = 25
ALERTS_PER_PAGE = 50
#: A site meter reading older than this is not the site's import now.
FRESH_READING = timedelta(minutes=5)
#: The load chart gets a point at least this often, changes or not.
LOAD_TICK_S = 5.0


# ---- the station list -----------------------------------------------------------------------------------
def _row(row: Station, ports: list[Any], gateway: Gateway, placed: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    out = station_out(row, ports, gateway)
    return {
        "id": out.id,
        "vendor": out.vendor or "",
        "model": out.model or "",
        "ocpp_version": out.ocpp_version,
        "serial": out.serial_number or "",
        "registration": out.registration_status or out.registration_policy,
        "connected": out.connected,
        "last_seen": out.last_seen_at,
        "sites": placed.get(out.id, []),
        "ports": [
            {"evse_id": p.evse_id, "connector_id": p.connector_id, "state": _port_state(out.connected, p.status)}
            for p in out.connectors
            if p.connector_id != 0 and p.evse_id != 0
        ],
    }


def station_rows(db: Session, principal: auth.Principal, gateway: Gateway, ids: set[str] | None = None) -> list[Any]:
    """The station list's rows (of ``ids`` only, when given), the caller's organisation's."""
    rows = stations.list_stations(db, principal.scope, ids)
    ports = stations.connectors(db, [r.id for r in rows])
    placed = sites.sites_of_stations(db, principal.scope, ids)
    return [_row(r, ports, gateway, placed) for r in rows]


def _matches(row: dict[str, Any], f: dict[str, str]) -> bool:
    if f["site"] and f["site"] not in {site_id for site_id, _ in row["sites"]}:
        return False
    if f["status"] and f["status"] not in {p["state"] for p in row["ports"]}:
        return False
    if f["connection"] and (f["connection"] == "online") != row["connected"]:
        return False
    if f["vendor"] and f["vendor"].lower() not in f"{row['vendor']} {row['model']}".lower():
        return False
    haystack = " ".join([row["id"], row["vendor"], row["model"], row["serial"], *(n for _, n in row["sites"])])
    return not f["q"] or f["q"].lower() in haystack.lower()


@router.get("/console/stations", response_class=HTMLResponse)
def stations_page(  # noqa: PLR0913 - one query parameter per filter
    request: Request,
    db: DbSession,
    gateway: GatewayDep,
    site: str = Query("", max_length=48),
    status_: str = Query("", alias="status", max_length=20),
    vendor: str = Query("", max_length=100),
    connection: str = Query("", pattern="^(|online|offline)$"),
    q: str = Query("", max_length=100),
    page: int = Query(1, ge=1, le=100_000),
) -> Response:
    principal = caller(request, db, *PAGES["stations"])
    f = {"site": site, "status": status_, "vendor": vendor.strip(), "connection": connection, "q": q.strip()}
    rows = station_rows(db, principal, gateway)
    found = [r for r in rows if _matches(r, f)]
    pages = max(1, math.ceil(len(found) / STATIONS_PER_PAGE))
    page = min(page, pages)
    shown = found[(page - 1) * STATIONS_PER_PAGE : page * STATIONS_PER_PAGE]
    query = {k: v for k, v in f.items() if v}

    def link(n: int) -> str:
        return "/console/stations?" + urlencode({**query, "page": n})

    site_list = sites.list_sites(db, principal.scope)
    vendors = sorted({f"{r['vendor']} {r['model']}".strip() for r in rows} - {""})
    return render(request, "stations.html", principal, "stations", title="Stations", rows=shown, f=f,
                  total=len(rows), found=len(found), page=page, pages=pages, link=link, sites=site_list,
                  states=[*STATES, *sorted({p["state"] for r in rows for p in r["ports"]} - set(STATES))],
                  vendors=vendors)  # fmt: skip


# ---- live streams ---------------------------------------------------------------------------------------
def _event_stream(request: Request, render_changes: Callable[[Session, auth.Principal, dict[str, set[str]]], Any],
                  tick_s: float | None = None, coalesce_s: float = 0.25) -> StreamingResponse:  # fmt: skip
    """An SSE answer: each batch of changes rendered on a worker thread with the caller signed in anew (a
    session that ended ends the stream)."""
    feed: live.LiveFeed | None = getattr(request.app.state, "live", None)
    if feed is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no live feed in this process")

    def work(changes: dict[str, set[str]]) -> list[tuple[str, str]] | None:
        with read_factory(request)() as db:
            principal = signed_in(request, db)
            if principal is None:
                return None
            events: list[tuple[str, str]] = render_changes(db, principal, changes)
            return events

    async def batch(changes: dict[str, set[str]]) -> list[tuple[str, str]] | None:
        return await run_in_threadpool(work, changes)

    headers = {**PAGE_HEADERS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    body = live.stream(feed, batch, tick_s=tick_s, coalesce_s=coalesce_s)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get("/console/live/stations")
def live_stations(request: Request, db: DbSession, gateway: GatewayDep) -> Response:
    """``row-STATION`` events: the station list's row of each station that changed."""
    caller(request, db, *PAGES["stations"])
    row_template = templates.get_template("console/_station_row.html")

    def rows(db: Session, principal: auth.Principal, changes: dict[str, set[str]]) -> list[tuple[str, str]]:
        found = station_rows(db, principal, gateway, set(changes))
        return [(f"row-{r['id']}", row_template.render(st=r)) for r in found]

    return _event_stream(request, rows)


@router.get("/console/live/overview")
def live_overview(request: Request, db: DbSession, gateway: GatewayDep) -> Response:
    """``sites`` events: the overview's cards, again, when a station of the caller's changed."""
    caller(request, db, *PAGES["overview"])
    sites_template = templates.get_template("console/_sites.html")

    def cards(db: Session, principal: auth.Principal, changes: dict[str, set[str]]) -> list[tuple[str, str]]:
        if not stations.list_stations(db, principal.scope, changes):
            return []  # none of the caller's
        return [("sites", sites_template.render(**overview(db, principal, gateway)))]

    return _event_stream(request, cards, coalesce_s=1.0)


@router.get("/console/live/stations/{station_id}")
def live_station(request: Request, station_id: str, db: DbSession, gateway: GatewayDep) -> Response:
    """``station`` events: the station page's connection and connectors when the station changed."""
    caller(request, db, *PAGES["station"])
    state_template = templates.get_template("console/_station_state.html")

    def state(db: Session, principal: auth.Principal, changes: dict[str, set[str]]) -> list[tuple[str, str]]:
        if station_id not in changes:
            return []
        auth.check_tenant(principal, [("station_id", station_id)], db)
        out = station_out(stations.get(db, station_id), stations.connectors(db, [station_id]), gateway)
        return [("station", state_template.render(st=out))]

    return _event_stream(request, state)


# ---- alerts ---------------------------------------------------------------------------------------------
@router.get("/console/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    db: DbSession,
    show: str = Query("open", pattern="^(open|all)$"),
    station_id: str = Query("", max_length=48),
    page: int = Query(1, ge=1, le=100_000),
) -> Response:
    principal = caller(request, db, *PAGES["alerts"])
    rows = alerts.list_alerts(db, open_only=show == "open", station_id=station_id.strip() or None,
                              limit=ALERTS_PER_PAGE + 1, offset=(page - 1) * ALERTS_PER_PAGE,
                              organisation_id=principal.scope)  # fmt: skip
    more = len(rows) > ALERTS_PER_PAGE
    query = {"show": show, "station_id": station_id}
    return render(request, "alerts.html", principal, "alerts", title="Alerts", rows=rows[:ALERTS_PER_PAGE],
                  show=show, station_id=station_id, page=page, more=more,
                  prev_url="/console/alerts?" + urlencode({**query, "page": page - 1}),
                  next_url="/console/alerts?" + urlencode({**query, "page": page + 1}),
                  buttons=[name for name, route in ACTIONS.items() if _may(principal, *route)])  # fmt: skip


async def alert_action(request: Request, alert_id: int, action: str) -> Response:
    fields = await _form(request)

    def check() -> auth.Principal:
        with read_factory(request)() as db:
            return caller(request, db, *ACTIONS[action])

    principal = await run_in_threadpool(check)
    if not _csrf_ok(principal, fields):
        return _refused(request, "the form expired or was not sent from this site: reload the page", 403)
    by = ByWhom(by=principal.name[:100])
    try:
        if action == "acknowledge":

            def acknowledge() -> Any:
                with request.app.state.session_factory() as db, db.begin():
                    db.info["audit"] = getattr(request.state, "audit", None)
                    return AlertOut.model_validate(alert_routes.acknowledge(alert_id, db, by))

            row = await run_in_threadpool(acknowledge)
        else:
            row = await alert_routes.resolve(request, alert_id, by)
    except DomainError as refused:
        return _refused(request, f"{action}: {refused.message}", refused.status_code)
    message = f"alert {row.id} ({row.rule}, {row.station_id}) {action}d"
    if request.headers.get("HX-Request"):
        return templates.TemplateResponse(
            request, "console/_result.html", {"ok": True, "message": message}, headers=PAGE_HEADERS
        )
    return Response(status_code=status.HTTP_303_SEE_OTHER, headers={**HEADERS, "Location": "/console/alerts"})


def _alert_route(action: str) -> None:
    async def act(request: Request, alert_id: int) -> Response:
        return await alert_action(request, alert_id, action)

    router.add_api_route(f"/console/alerts/{{alert_id}}/{action}", act, methods=["POST"],
                         response_class=HTMLResponse, name=f"console-alert-{action}")  # fmt: skip


for _action in ACTIONS:
    _alert_route(_action)


# ---- NEVI uptime ----------------------------------------------------------------------------------------
UPTIME_COLUMNS = ["station_id", "evse_id", "period_start", "period_end", "basis_minutes", "outage_minutes",
                  "excluded_minutes", "uptime_pct"]  # fmt: skip
PERIODS = {"30d": "last 30 days", "12m": "the twelve months before this month"}


def _uptime_period(period: str, now: datetime) -> up.Period:
    if period == "12m":
        return up.trailing_twelve_months(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    return up.Period(now - timedelta(days=30), now)


def uptime_rows(request: Request, db: Session, principal: auth.Principal, period: up.Period,
                station_id: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """µ per port of the caller's organisation's stations (the API's ``GET /uptime`` rows)."""
    policy = getattr(request.app.state, "uptime_policy", None) or up.DEFAULT_POLICY
    visible = {r.id for r in stations.list_stations(db, principal.scope)}
    if station_id is not None and station_id not in visible:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"station {station_id!r} not found")
    return [r for r in uptime.port_uptime(db, period, policy, station_id) if r["station_id"] in visible]


@router.get("/console/uptime", response_class=HTMLResponse)
def uptime_page(
    request: Request,
    db: DbSession,
    period: str = Query("30d", pattern="^(30d|12m)$"),
    station_id: str = Query("", max_length=48),
) -> Response:
    principal = caller(request, db, *PAGES["uptime"])
    span = _uptime_period(period, _now())
    rows = uptime_rows(request, db, principal, span, station_id.strip() or None)
    query = {"period": period} | ({"station_id": station_id.strip()} if station_id.strip() else {})
    below = [r for r in rows if r["uptime_pct"] is not None and r["uptime_pct"] < NEVI_MINIMUM_PCT]
    return render(request, "uptime.html", principal, "uptime", title="Uptime (NEVI)", rows=rows, period=period,
                  periods=PERIODS, span=span, station_id=station_id, csv_url="/console/uptime.csv?" + urlencode(query),
                  minimum=NEVI_MINIMUM_PCT, below=len(below))  # fmt: skip


@router.get("/console/uptime.csv")
def uptime_csv(
    request: Request,
    db: DbSession,
    period: str = Query("30d", pattern="^(30d|12m)$"),
    station_id: str = Query("", max_length=48),
) -> Response:
    principal = caller(request, db, *PAGES["uptime"])
    rows = uptime_rows(request, db, principal, _uptime_period(period, _now()), station_id.strip() or None)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=UPTIME_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="uptime-{period}.csv"'}
    return Response(buffer.getvalue(), media_type="text/csv", headers=headers)


# ---- a site's load management ---------------------------------------------------------------------------
def load_point(request: Request, db: Session, site_id: str, now: datetime) -> dict[str, Any]:
    """The site now: its import (the grid meter when fresh, else the sessions' measured power), its limit,
    and each EVSE's allocation by the latest plan of the load manager (kW)."""
    evses = sites.evses_of(db, site_id)
    ports = {(e.station_id, e.evse_id) for e in evses}
    running = [t for t in db.scalars(transactions.query(status=TransactionStatus.ACTIVE))
               if (t.station_id, t.evse_id) in ports]  # fmt: skip
    drawn: dict[str, float] = {}
    for t in running:
        powers = [r.power_w for r in transactions.stored_readings(db, t.id) if r.power_w is not None]
        key = f"{t.station_id}/{t.evse_id}"
        drawn[key] = drawn.get(key, 0.0) + (powers[-1] / 1000 if powers else 0.0)
    ev_kw = sum(drawn.values())
    latest = sites.readings(db, site_id, 1)
    source = "sessions"
    import_kw = ev_kw
    if latest and latest[0].power_w is not None and now - latest[0].timestamp <= FRESH_READING:
        meter_kw = latest[0].power_w / 1000
        import_kw = meter_kw if latest[0].includes_ev else meter_kw + ev_kw
        source = "meter"
    lm = getattr(request.app.state, "load_management", None)
    limit_kw = lm.grid_limit_kw(site_id) if lm is not None else None
    if limit_kw is None:
        roots = [n for n in sites.nodes_of(db, site_id) if n.parent_id is None]
        limit_kw = roots[0].limit_kw if roots else None
    at = now.timestamp()
    curtailed = [c.limit_kw for c in (lm.curtailments(site_id) if lm is not None else []) if c.start <= at < c.end]
    if curtailed:  # a demand-response event lowers the limit while it lasts
        limit_kw = min([*curtailed, *([limit_kw] if limit_kw is not None else [])])
    allocated = lm.limits_now() if lm is not None else {}
    return {
        "t": int(now.timestamp()),
        "import_kw": round(import_kw, 3),
        "source": source,
        "limit_kw": limit_kw,
        "curtailed": bool(curtailed),
        "evses": {
            f"{s}/{e}": (round(allocated[(s, e)] / 1000, 3) if (s, e) in allocated else None) for s, e in sorted(ports)
        },
        "drawn": drawn,
        "planned": lm is not None,
    }


@router.get("/console/sites/{site_id}/load", response_class=HTMLResponse)
def load_page(request: Request, site_id: str, db: DbSession) -> Response:
    principal = caller(request, db, *PAGES["load"])
    site = sites.get(db, site_id)
    point = load_point(request, db, site_id, _now())
    return render(request, "load.html", principal, "overview", title=f"Load management · {site.name or site.id}",
                  site=site, point=point, charts=True)  # fmt: skip


@router.get("/console/live/sites/{site_id}/load")
def live_load(request: Request, site_id: str, db: DbSession) -> Response:
    """``load`` events: the site's point (JSON) when a station of the site changed, and every few seconds."""
    caller(request, db, *PAGES["load"])

    def point(db: Session, principal: auth.Principal, changes: dict[str, set[str]]) -> list[tuple[str, str]]:
        auth.check_tenant(principal, [("site_id", site_id)], db)
        return [("load", json.dumps(load_point(request, db, site_id, _now())))]

    return _event_stream(request, point, tick_s=LOAD_TICK_S)


def install(app: FastAPI) -> None:
    app.include_router(router)
    if getattr(app.state, "gateway", None) is not None:
        live.attach_feed(app)
