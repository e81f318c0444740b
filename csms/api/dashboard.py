"""The operator console's pages (docs/console.md): the sites overview at ``/``, a station's page with its actions,
the audit trail and the users of the caller's organisation. Server-rendered Jinja2 templates
(csms/api/templates/console), htmx for the overview's refresh and the actions, every asset served by this process
from csms/api/static/console; the pages' Content-Security-Policy allows nothing from elsewhere.

No second permission check: every page and action names the API route it shows or is (``PAGES``, ``ACTIONS``),
and needs that route's permission from the one table, csms/api/permissions.py; objects of another organisation
are the same 404 as in the API (:func:`csms.api.auth.check_tenant`), lists are the services' organisation-scoped
queries. An action runs the API route's own function, and the audit middleware (csms/api/audit.py) records
every console form as it records API writes. Every form carries the session's CSRF token.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from csms import uptime as up
from csms.api import auth, permissions
from csms.api.console import HEADERS, form, signed_in
from csms.api.deps import DbSession, GatewayDep, read_factory, transaction
from csms.api.routes import calls as call_routes
from csms.api.routes import configuration as configuration_routes
from csms.api.routes import diagnostics as diagnostics_routes
from csms.api.routes import stations as station_routes
from csms.api.routes.diagnostics import AvailabilityRequest
from csms.api.routes.stations import station_out
from csms.api.schemas import (
    RemoteStartRequest,
    RemoteStopRequest,
    ResetRequest,
    TransactionOut,
    UnlockRequest,
    VariablesGetRequest,
)
from csms.gateway.server import Gateway
from csms.services import (
    alerts,
    audit,
    configuration,
    diagnostics,
    message_log,
    organisations,
    security_events,
    sites,
    stations,
    transactions,
    uptime,
    users,
)
from csms.services.errors import DomainError
from csms.services.roles import PLATFORM_ADMIN, ROLES, Permission
from csms.store.models import Cdr, Station, Transaction, TransactionStatus

router = APIRouter(include_in_schema=False)

HERE = Path(__file__).parent
STATIC_URL = "/console/static"
templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | None) -> str:
    """A time as the pages show it: UTC to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


templates.env.filters["when"] = _when

#: Scripts, styles and requests from this origin only; nothing inline but the power bars' widths.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY}

#: console page → the API route whose data it shows (and whose permission it needs).
PAGES: dict[str, tuple[str, str]] = {
    "overview": ("GET", "/sites"),
    "station": ("GET", "/stations/{station_id}"),
    "audit": ("GET", "/audit"),
    "site": ("GET", "/sites/{site_id}"),
    "transactions": ("GET", "/transactions"),
}
#: console action → the API route it is.
ACTIONS: dict[str, tuple[str, str]] = {
    "disconnect": ("POST", "/stations/{station_id}/disconnect"),
    "reset": ("POST", "/stations/{station_id}/reset"),
    "unlock": ("POST", "/stations/{station_id}/unlock"),
    "remote-start": ("POST", "/stations/{station_id}/remote-start"),
    "remote-stop": ("POST", "/stations/{station_id}/remote-stop"),
    "change-availability": ("POST", "/stations/{station_id}/change-availability"),
    "trigger": ("POST", "/stations/{station_id}/trigger"),
    "diagnostics": ("POST", "/stations/{station_id}/diagnostics"),
    "firmware": ("POST", "/stations/{station_id}/firmware"),
    "fetch-configuration": ("POST", "/stations/{station_id}/variables/get"),
}
#: What the console's Trigger button offers (the API takes more: docs/api.md).
TRIGGER_MESSAGES = ("StatusNotification", "Heartbeat", "MeterValues", "BootNotification", "FirmwareStatusNotification",
                    "DiagnosticsStatusNotification")  # fmt: skip
#: Sections of the station page that show another API route's data (and need its permission).
SECTIONS: dict[str, tuple[str, str]] = {
    "messages": ("GET", "/stations/{station_id}/messages"),
    "variables": ("GET", "/stations/{station_id}/variables"),
}
#: A port's state on the overview: its last status, or ``offline`` while its station is not connected.
STATES = ("Available", "Charging", "Faulted", "Unavailable", "offline")
RECENT = 20
RECENT_MESSAGES = 20
ACTION_TIMEOUT_S = 30.0


def mount_static(app: FastAPI) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static" / "console"), name="console-static")


# ---- who may see what -----------------------------------------------------------------------------------
class SignInFirst(Exception):
    """No session: the browser goes to the sign-in page."""


def _may(principal: auth.Principal, method: str, api_path: str) -> bool:
    needed = permissions.required(method, api_path)
    if needed is None:  # a console page naming an undeclared route: fail closed, as the API does
        return False
    return needed == permissions.PUBLIC or principal.can(needed)


def caller(request: Request, db: Session, method: str, api_path: str) -> auth.Principal:
    """The signed-in caller, allowed what ``method api_path`` of the API needs, and the objects the console
    path names in their organisation (403/404 as the API answers)."""
    principal = signed_in(request, db)
    if principal is None:
        if request.headers.get("Authorization"):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key")
        raise SignInFirst
    if not _may(principal, method, api_path):
        needed = permissions.required(method, api_path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} lacks the permission {needed}")
    auth.check_tenant(principal, request.path_params.items(), db)
    return principal


def _nav(principal: auth.Principal) -> dict[str, bool]:
    return {
        "audit": _may(principal, *PAGES["audit"]),
        "users": principal.can(Permission.USERS),
        "stations": _may(principal, "GET", "/stations"),
        "alerts": _may(principal, "GET", "/alerts"),
        "uptime": _may(principal, "GET", "/uptime"),
        "tokens": _may(principal, "GET", "/tokens"),
        "tariffs": _may(principal, "GET", "/tariffs"),
    }


def render(
    request: Request, name: str, principal: auth.Principal, here: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    context = {"me": principal, "csrf": principal.csrf, "nav": _nav(principal), "here": here, **context}
    return templates.TemplateResponse(request, f"console/{name}", context, status_code, headers=PAGE_HEADERS)


def _csrf_ok(principal: auth.Principal, fields: dict[str, str]) -> bool:
    sent = fields.get("csrf_token", "")
    return principal.csrf is not None and hmac.compare_digest(principal.csrf.encode(), sent.encode())


async def _form(request: Request) -> dict[str, str]:
    return await form(request)  # the one form reader (content type, size, field count)


def _refused(request: Request, message: str, status_code: int) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "console/_result.html", {"ok": False, "message": message}, status_code, headers=PAGE_HEADERS
    )


def _now() -> datetime:
    return datetime.now(UTC)


#: For the registry pages (csms/api/console_registry.py): the same guards and form reader as these pages.
may = _may
csrf_ok = _csrf_ok
form_fields = _form
refused = _refused


# ---- the sites overview ---------------------------------------------------------------------------------
def _port_state(connected: bool, port_status: str | None) -> str:
    if not connected:
        return "offline"
    if port_status in ("SuspendedEV", "SuspendedEVSE", "Preparing", "Finishing", "Occupied"):
        return "Charging" if port_status in ("SuspendedEV", "SuspendedEVSE") else port_status
    return port_status or "Unavailable"


def _station_view(row: Station, ports: list[Any], gateway: Gateway) -> dict[str, Any]:
    out = station_out(row, ports, gateway)
    return {
        "id": out.id,
        "ocpp_version": out.ocpp_version,
        "registration": out.registration_status or out.registration_policy,
        "connected": out.connected,
        "last_seen": out.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") if out.last_seen_at else None,
        "ports": [
            {"evse_id": p.evse_id, "connector_id": p.connector_id, "state": _port_state(out.connected, p.status)}
            for p in out.connectors
            if p.connector_id != 0 and p.evse_id != 0
        ],
    }


def _power_kw(db: Session, tx_ids: list[int]) -> float:
    """The sessions' newest measured power (their samples read by csms/domain/meter.py), summed."""
    total_w = 0.0
    for tx_id in tx_ids:
        powers = [r.power_w for r in transactions.stored_readings(db, tx_id) if r.power_w is not None]
        total_w += powers[-1] if powers else 0.0
    return total_w / 1000


def overview(db: Session, principal: auth.Principal, gateway: Gateway) -> dict[str, Any]:
    rows = stations.list_stations(db, principal.scope)
    ports = stations.connectors(db, [r.id for r in rows])
    views = {r.id: _station_view(r, ports, gateway) for r in rows}
    active = list(db.scalars(transactions.query(status=TransactionStatus.ACTIVE, organisation_id=principal.scope)))
    open_alerts = Counter(a.station_id for a in alerts.list_alerts(db, open_only=True, limit=10_000,
                                                                   organisation_id=principal.scope))  # fmt: skip
    placed: set[str] = set()
    site_views = []
    for site in sites.list_sites(db, principal.scope):
        evses = sites.evses_of(db, site.id)
        on_site = {(e.station_id, e.evse_id) for e in evses}
        ids = sorted({e.station_id for e in evses if e.station_id in views})
        placed.update(ids)
        site_ports = [p for i in ids for p in views[i]["ports"] if (i, p["evse_id"]) in on_site]
        counts = Counter(p["state"] for p in site_ports)
        running = [t for t in active if (t.station_id, t.evse_id) in on_site]
        roots = [n for n in sites.nodes_of(db, site.id) if n.parent_id is None]
        site_views.append(
            {
                "id": site.id,
                "name": site.name,
                "ports": len(site_ports),
                "counts": {s: counts[s] for s in STATES} | {s: n for s, n in counts.items() if s not in STATES},
                "active": len(running),
                "power_kw": _power_kw(db, [t.id for t in running]),
                "limit_kw": roots[0].limit_kw if roots else None,
                "open_alerts": sum(open_alerts[i] for i in ids),
                "stations": [views[i] for i in ids],
            }
        )
    loose = [v for i, v in views.items() if i not in placed]
    return {"sites": site_views, "loose": loose, "now": _now()}


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, db: DbSession, gateway: GatewayDep) -> Response:
    principal = caller(request, db, *PAGES["overview"])
    return render(request, "overview.html", principal, "overview", title="Sites", **overview(db, principal, gateway))


@router.get("/console/partials/sites", response_class=HTMLResponse)
def overview_partial(request: Request, db: DbSession, gateway: GatewayDep) -> Response:
    principal = caller(request, db, *PAGES["overview"])
    return render(request, "_sites.html", principal, "overview", **overview(db, principal, gateway))


# ---- a site and its power --------------------------------------------------------------------------------
SLOT = timedelta(minutes=5)


@router.get("/console/sites/{site_id}", response_class=HTMLResponse)
def site_page(
    request: Request, site_id: str, db: DbSession, gateway: GatewayDep, hours: int = Query(6, ge=1, le=48)
) -> Response:
    principal = caller(request, db, *PAGES["site"])
    site = sites.get(db, site_id)
    ports = {(e.station_id, e.evse_id) for e in sites.evses_of(db, site_id)}
    rows = [r for r in stations.list_stations(db, principal.scope) if r.id in {p[0] for p in ports}]
    connectors = stations.connectors(db, [r.id for r in rows])
    now = _now()
    until = now.replace(second=0, microsecond=0) + timedelta(minutes=5 - now.minute % 5)
    points = transactions.power_history(db, ports, until - timedelta(hours=hours), until, SLOT)
    roots = [n for n in sites.nodes_of(db, site_id) if n.parent_id is None]
    limit_kw = roots[0].limit_kw if roots else None
    series = [{"label": "sessions (kW)", "values": [round(kw, 3) for _, kw in points], "color": "#3c8dde"}]
    if limit_kw is not None:
        series.append({"label": "site limit", "values": [limit_kw] * len(points), "color": "#d33", "dash": [6, 4]})
    chart = {"t": [int(at.timestamp()) for at, _ in points], "series": series, "unit": "kW"}
    return render(request, "site.html", principal, "overview", title=f"Site {site.name or site.id}", site=site,
                  stations=[_station_view(r, connectors, gateway) for r in rows], limit_kw=limit_kw, hours=hours,
                  points=points, chart=chart, charts=True, step_min=int(SLOT.total_seconds() // 60),
                  peak_kw=max((kw for _, kw in points), default=0.0))  # fmt: skip


# ---- transactions ---------------------------------------------------------------------------------------
TRANSACTION_ROWS = 100


@router.get("/console/transactions", response_class=HTMLResponse)
def transactions_page(request: Request, db: DbSession, station_id: str = Query("", max_length=48)) -> Response:
    principal = caller(request, db, *PAGES["transactions"])
    query = transactions.query(station_id=station_id.strip() or None, organisation_id=principal.scope)
    found = list(db.scalars(query.order_by(None).order_by(Transaction.id.desc()).limit(TRANSACTION_ROWS)))
    costs = {c.transaction_id: c for c in db.scalars(select(Cdr).where(Cdr.transaction_id.in_([t.id for t in found])))}
    rows = [(TransactionOut.model_validate(transactions.summary(t)), costs.get(t.id)) for t in found]
    return render(request, "transactions.html", principal, "transactions", title="Transactions", rows=rows,
                  station_id=station_id)  # fmt: skip


# ---- a station ------------------------------------------------------------------------------------------
#: The station page's uptime: the last 30 days per port.
UPTIME_DAYS = 30
#: 23 CFR 680.116(b): every port up at least 97 % of the time.
NEVI_MINIMUM_PCT = 97.0


def _station_context(db: Session, principal: auth.Principal, station_id: str, gateway: Gateway) -> dict[str, Any]:
    row = stations.get(db, station_id)
    out = station_out(row, stations.connectors(db, [station_id]), gateway)
    found = list(
        db.scalars(
            transactions.query(station_id=station_id).order_by(None).order_by(Transaction.id.desc()).limit(RECENT)
        )
    )
    costs = {c.transaction_id: c for c in db.scalars(select(Cdr).where(Cdr.transaction_id.in_([t.id for t in found])))}
    recent = [TransactionOut.model_validate(transactions.summary(t)) for t in found]
    may_audit = _may(principal, *PAGES["audit"])
    now = _now()
    period = up.Period(now - timedelta(days=UPTIME_DAYS), now)
    messages = None
    if _may(principal, *SECTIONS["messages"]):
        messages = [message_log.shown(m, out.ocpp_version) for m in message_log.recent(db, station_id, RECENT_MESSAGES)]
    actions = [name for name, route in ACTIONS.items() if _may(principal, *route)]
    return {
        "title": f"Station {station_id}",
        "st": out,
        "recent": recent,
        "sessions": [(t, costs.get(t.id)) for t in recent],
        "active": [t for t in recent if t.status == TransactionStatus.ACTIVE],
        "events": security_events.list_events(db, limit=RECENT, station_id=station_id),
        "audit": audit.search(db, audit.Filters(principal.scope, station_id), limit=RECENT, security_events=False)
        if may_audit
        else None,
        "actions": [a for a in actions if a != "fetch-configuration"],
        "firmware_files": [f.name for f in diagnostics.list_firmware(db, principal.scope)]
        if "firmware" in actions
        else [],
        "trigger_messages": TRIGGER_MESSAGES,
        "fetch_configuration": "fetch-configuration" in actions and out.ocpp_version == "1.6",
        "port_uptime": uptime.port_uptime(db, period, up.DEFAULT_POLICY, station_id),
        "minimum": NEVI_MINIMUM_PCT,
        "variables": configuration.listed(db, station_id) if _may(principal, *SECTIONS["variables"]) else [],
        "messages": messages,
    }


@router.get("/console/stations/{station_id}", response_class=HTMLResponse)
def station_page(request: Request, station_id: str, db: DbSession, gateway: GatewayDep) -> Response:
    principal = caller(request, db, *PAGES["station"])
    return render(request, "station.html", principal, "station", **_station_context(db, principal, station_id, gateway))


def _availability(fields: dict[str, str]) -> AvailabilityRequest:
    operative = {"true": True, "false": False}.get(fields.get("operative", ""), fields.get("operative"))
    return AvailabilityRequest.model_validate({"evse_id": fields.get("evse_id") or 0, "operative": operative})


#: action → the API's request model of it, from the form's fields (ValidationError: a bad field).
BODIES: dict[str, Callable[[dict[str, str]], Any]] = {
    "disconnect": lambda f: None,
    "reset": lambda f: ResetRequest.model_validate({"type": f.get("type", "soft")}),
    "unlock": lambda f: UnlockRequest.model_validate({"evse_id": f.get("evse_id"),
                                                      "connector_id": f.get("connector_id")}),
    "remote-start": lambda f: RemoteStartRequest.model_validate({"id_token": f.get("id_token"),
                                                                 "evse_id": f.get("evse_id") or None}),
    "remote-stop": lambda f: RemoteStopRequest.model_validate({"transaction_id": f.get("transaction_id") or None}),
    "change-availability": _availability,
    "trigger": lambda f: diagnostics_routes.TriggerRequest.model_validate({"message": f.get("message"),
                                                                          "evse_id": f.get("evse_id") or None}),
    "diagnostics": lambda f: diagnostics_routes.DiagnosticsRequest.model_validate(
        {"log_type": f.get("log_type", "DiagnosticsLog")}),
    "firmware": lambda f: diagnostics_routes.FirmwareRequest.model_validate({"name": f.get("name")}),
    "fetch-configuration": lambda f: VariablesGetRequest(),  # 1.6: every key
}  # fmt: skip


async def _fetch_configuration(request: Request, station_id: str, body: Any, gateway: Gateway) -> dict[str, Any]:
    answer = await configuration_routes.get_variables(request, station_id, body, gateway, ACTION_TIMEOUT_S)
    failed = [c for c in answer["calls"] if c.get("outcome") != "result"]
    if failed:
        return dict(failed[0])
    known = sum(1 for r in answer["results"] if r["status"] == "Accepted")
    return {"outcome": "result", "payload": {"status": f"with {known} keys (reload the page to see them)"}}


async def _disconnect(request: Request, station_id: str, gateway: Gateway) -> dict[str, Any]:
    done = await station_routes.disconnect(request, station_id, gateway)
    if done.disconnected:
        return {"outcome": "result", "note": "the connection is closed; the station reconnects on its own back-off"}
    return {"outcome": "result", "note": "the station was not connected", "ok": False}


async def _run(
    action: str, request: Request, station_id: str, body: Any, gateway: Gateway, principal: auth.Principal
) -> dict[str, Any]:
    """The API route's own function (csms/api/routes): the same commands, checks and records."""
    timeout = ACTION_TIMEOUT_S
    routes: dict[str, Callable[[], Awaitable[Any]]] = {
        "disconnect": lambda: _disconnect(request, station_id, gateway),
        "reset": lambda: call_routes.reset(request, station_id, gateway, body, timeout),
        "unlock": lambda: configuration_routes.unlock_connector(request, station_id, body, gateway, timeout),
        "remote-start": lambda: call_routes.remote_start(request, station_id, body, gateway, timeout),
        "remote-stop": lambda: call_routes.remote_stop(request, station_id, body, gateway, timeout),
        "change-availability": lambda: diagnostics_routes.change_availability(request, station_id, body, gateway,
                                                                              timeout),
        "trigger": lambda: diagnostics_routes.trigger_message(request, station_id, body, gateway, timeout),
        "diagnostics": lambda: diagnostics_routes.request_diagnostics(request, station_id, gateway, body, timeout),
        "firmware": lambda: diagnostics_routes.update_firmware(request, station_id, body, gateway, principal,
                                                               timeout),
        "fetch-configuration": lambda: _fetch_configuration(request, station_id, body, gateway),
    }  # fmt: skip
    result = await routes[action]()
    # a transfer (diagnostics upload, firmware download) answers with its call beside it; its progress shows in
    # the station's transfers and message log
    return dict(result.get("call", result))


def _outcome_message(action: str, outcome: dict[str, Any]) -> tuple[bool, str]:
    kind = outcome.get("outcome")
    if "note" in outcome:  # the CSMS's own doing (a disconnect), not a station's answer
        return bool(outcome.get("ok", True)), f"{action}: {outcome['note']}"
    if kind == "result":
        answer = (outcome.get("payload") or {}).get("status")
        ok = answer in (None, "Accepted", "Scheduled", "Unlocked") or str(answer).startswith("with ")
        return ok, f"{action}: the station answered {answer or 'with a result'}"
    if kind == "timeout":
        return False, f"{action}: the station did not answer in time"
    error = outcome.get("error") or {}
    return False, f"{action}: the station refused ({error.get('code', kind)}: {error.get('description', '')})".rstrip()


async def station_action(request: Request, station_id: str, action: str, gateway: Gateway) -> Response:
    fields = await _form(request)

    def check() -> auth.Principal:
        with read_factory(request)() as db:
            return caller(request, db, *ACTIONS[action])

    principal = await run_in_threadpool(check)
    if not _csrf_ok(principal, fields):
        return _refused(request, "the form expired or was not sent from this site: reload the page", 403)
    try:
        body = BODIES[action](fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "form"
        return _refused(request, f"{field}: {first['msg']}", 422)
    try:
        outcome = await _run(action, request, station_id, body, gateway, principal)
    except DomainError as refused:
        return _refused(request, f"{action}: {refused.message}", refused.status_code)
    ok, message = _outcome_message(action, outcome)
    if request.headers.get("HX-Request"):
        return templates.TemplateResponse(
            request, "console/_result.html", {"ok": ok, "message": message}, headers=PAGE_HEADERS
        )

    def page() -> Response:
        with read_factory(request)() as db:
            context = _station_context(db, principal, station_id, gateway)
            return render(request, "station.html", principal, "station", result=True, ok=ok, message=message, **context)

    return await run_in_threadpool(page)


def _action_route(action: str) -> None:
    """``POST /console/stations/{station_id}/ACTION``: the audit trail names the action in the route, as the
    API's ``POST /api/v1/stations/{station_id}/ACTION`` does."""

    async def act(request: Request, station_id: str, gateway: GatewayDep) -> Response:
        return await station_action(request, station_id, action, gateway)

    router.add_api_route(f"/console/stations/{{station_id}}/{action}", act, methods=["POST"],
                         response_class=HTMLResponse, name=f"console-{action}")  # fmt: skip


for _action in ACTIONS:
    _action_route(_action)


# ---- the audit trail ------------------------------------------------------------------------------------
AUDIT_PAGE_ROWS = 200


@router.get("/console/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    db: DbSession,
    q: str = Query("", max_length=100),
    station_id: str = Query("", max_length=48),
    user: str = Query("", max_length=254),
    since: str = Query("", max_length=10),
) -> Response:
    principal = caller(request, db, *PAGES["audit"])
    error = None
    since_at = None
    if since:
        try:
            since_at = datetime.combine(date.fromisoformat(since), time(), UTC)
        except ValueError:
            error = f"since: not a date (YYYY-MM-DD): {since!r}"
    filters = audit.Filters(principal.scope, station_id.strip() or None, user.strip() or None, since=since_at)
    rows = audit.search(db, filters, limit=AUDIT_PAGE_ROWS if not q else 10_000, security_events=False)
    if q:
        needle = q.lower()
        rows = [r for r in rows if needle in " ".join(str(r.get(k) or "") for k in _SEARCHED).lower()]
        rows = rows[:AUDIT_PAGE_ROWS]
    query = {"station_id": station_id, "user": user}
    if since_at is not None:
        query["since"] = since_at.isoformat()
    csv_url = "/api/v1/audit?" + urlencode({k: v for k, v in query.items() if v} | {"format": "csv", "limit": 10_000})
    f = {"q": q, "station_id": station_id, "user": user, "since": since}
    return render(request, "audit.html", principal, "audit", 422 if error else 200, title="Audit trail", audit=rows,
                  f=f, csv_url=csv_url, error=error)  # fmt: skip


_SEARCHED = ("actor", "actor_name", "action", "object_type", "object_id", "station_id", "client", "request_id")


# ---- users ----------------------------------------------------------------------------------------------
def _users_caller(request: Request, db: Session) -> auth.Principal:
    principal = signed_in(request, db)
    if principal is None:
        raise SignInFirst
    if not principal.can(Permission.USERS):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} lacks the permission users")
    return principal


users_caller = _users_caller


def _users_page(
    request: Request, db: Session, principal: auth.Principal, status_code: int = 200, **context: Any
) -> Response:
    listed = users.visible_users(db, principal.manager)
    roles = [r for r in ROLES if r != PLATFORM_ADMIN or principal.role == PLATFORM_ADMIN]
    slugs = organisations.slugs(db)
    return render(request, "users.html", principal, "users", status_code, title="Users", users=listed, roles=roles,
                  slugs=slugs, **context)  # fmt: skip


@router.get("/console/users", response_class=HTMLResponse)
def users_page(request: Request, db: DbSession) -> Response:
    principal = _users_caller(request, db)
    return _users_page(request, db, principal)


@router.post("/console/users", response_class=HTMLResponse)
async def add_user(request: Request) -> Response:
    fields = await _form(request)

    def work() -> Response:
        with transaction(request, last=True) as db:
            principal = _users_caller(request, db)
            if not _csrf_ok(principal, fields):
                return _refused(request, "the form expired or was not sent from this site: reload the page", 403)
            role = fields.get("role", "")
            try:
                user, token = users.add_by(db, principal.manager, fields.get("email", ""), role, None, _now())
            except DomainError as refused:
                db.rollback()
                with request.app.state.session_factory() as fresh:
                    return _users_page(request, fresh, principal, refused.status_code, error=refused.message)
            url = str(request.base_url).rstrip("/") + f"/set-password/{token}"
            return _users_page(request, db, principal, link={"email": user.email, "url": url})

    return await run_in_threadpool(work)


async def _change_user(
    request: Request, change: Callable[[Session, auth.Principal, dict[str, str]], object]
) -> Response:
    """One user-row button: ``change`` runs the users service in the request's transaction (audited with it);
    a dict it returns is shown on the page (a one-time link), else the page is reloaded."""
    fields = await _form(request)

    def work() -> Response:
        with transaction(request, last=True) as db:
            principal = _users_caller(request, db)
            if not _csrf_ok(principal, fields):
                return _refused(request, "the form expired or was not sent from this site: reload the page", 403)
            try:
                shown = change(db, principal, fields)
            except DomainError as refused:
                db.rollback()
                if refused.status_code == status.HTTP_404_NOT_FOUND:
                    raise HTTPException(refused.status_code, refused.message) from None
                with request.app.state.session_factory() as fresh:
                    return _users_page(request, fresh, principal, refused.status_code, error=refused.message)
            if isinstance(shown, dict):
                return _users_page(request, db, principal, **shown)
            return RedirectResponse("/console/users", status.HTTP_303_SEE_OTHER, headers=HEADERS)

    return await run_in_threadpool(work)


@router.post("/console/users/{user_id}/disable", response_class=HTMLResponse)
async def disable_user(request: Request, user_id: int) -> Response:
    return await _change_user(request, lambda db, p, f: users.set_disabled_by(db, p.manager, user_id, True, _now()))


@router.post("/console/users/{user_id}/enable", response_class=HTMLResponse)
async def enable_user(request: Request, user_id: int) -> Response:
    return await _change_user(request, lambda db, p, f: users.set_disabled_by(db, p.manager, user_id, False, _now()))


@router.post("/console/users/{user_id}/role", response_class=HTMLResponse)
async def change_user_role(request: Request, user_id: int) -> Response:
    return await _change_user(request, lambda db, p, f: users.change_role_by(db, p.manager, user_id, f.get("role", "")))


@router.post("/console/users/{user_id}/reset-link", response_class=HTMLResponse)
async def user_reset_link(request: Request, user_id: int) -> Response:
    def reset(db: Session, principal: auth.Principal, _fields: dict[str, str]) -> dict[str, Any]:
        user, token = users.reset_by(db, principal.manager, user_id, _now())
        return {"link": {"email": user.email, "url": str(request.base_url).rstrip("/") + f"/set-password/{token}"}}

    return await _change_user(request, reset)


def install(app: FastAPI) -> None:
    """The pages, their assets, and the redirect of a browser without a session to the sign-in page."""
    app.include_router(router)
    mount_static(app)

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, _exc: SignInFirst) -> Response:
        if request.headers.get("HX-Request"):  # htmx's refresh or action: the whole page goes, not the fragment
            return Response(status_code=status.HTTP_204_NO_CONTENT, headers={**HEADERS, "HX-Redirect": "/signin"})
        return RedirectResponse("/signin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
