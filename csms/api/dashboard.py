"""A minimal server-rendered dashboard at ``/``: the caller's organisation's stations with live status and
connectors, recent transactions. It needs a console session (the sign-in page, csms/api/console.py) or
``Authorization: Bearer KEY``; never a key in the URL. It refreshes itself every 10 s."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from csms.api.console import HEADERS, signed_in
from csms.api.deps import DbSession, GatewayDep
from csms.api.routes.stations import station_out
from csms.api.schemas import StationOut, TransactionOut
from csms.services import stations, transactions
from csms.services.roles import Permission

router = APIRouter(include_in_schema=False)

RECENT = 20

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>chargetwin CSMS</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.on{{color:#070}}.off{{color:#999}}</style>
</head><body><h1>chargetwin CSMS</h1>
{account}
<h2>Stations ({station_count})</h2>
<table><tr><th>Station</th><th>OCPP</th><th>Registration</th><th>Connection</th><th>Last seen</th>
<th>Connectors</th></tr>{station_rows}</table>
<h2>Recent transactions</h2>
<table><tr><th>Id</th><th>Station</th><th>EVSE</th><th>Token</th><th>Status</th><th>Started</th><th>Stopped</th>
<th>kWh</th></tr>{transaction_rows}</table>
</body></html>
"""


def _cells(*values: Any) -> str:
    return "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in values) + "</tr>"


def _station_row(s: StationOut) -> str:
    ports = ", ".join(
        f"{p.evse_id}/{p.connector_id} {p.status or '?'}"
        + (f" ({p.error_code})" if p.error_code not in (None, "NoError") else "")
        for p in s.connectors
    )
    link = '<td class="on">connected</td>' if s.connected else '<td class="off">offline</td>'
    row = _cells(s.id, s.ocpp_version, s.registration_status or s.registration_policy)
    return row.removesuffix("</tr>") + link + _cells(s.last_seen_at, ports).removeprefix("<tr>")


def _transaction_row(t: TransactionOut) -> str:
    return _cells(
        t.id, t.station_id, t.evse_id, t.id_token, t.status, t.started_at, t.stopped_at, f"{t.energy_kwh:.3f}"
    )


def _account(user: str, csrf: str | None) -> str:
    if csrf is None:
        return ""
    return (
        f'<form method="post" action="/signout"><p>Signed in as {escape(user)} · '
        f'<a href="/account/password">change password</a> · <input type="hidden" name="csrf_token" '
        f'value="{escape(csrf)}"><button>Sign out</button></p></form>'
    )


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, db: DbSession, gateway: GatewayDep) -> Response:
    principal = signed_in(request, db)
    if principal is None:
        if request.headers.get("Authorization"):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key")
        return RedirectResponse("/signin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    if not principal.can(Permission.READ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} lacks the permission read")
    ports = stations.connectors(db)
    rows = [row for row in stations.list_stations(db) if principal.sees(row.organisation_id)]
    station_views = [station_out(row, ports, gateway) for row in rows]
    recent = transactions.recent(db, RECENT, principal.scope)
    html = PAGE.format(
        account=_account(principal.name, principal.csrf),
        station_count=len(station_views),
        station_rows="".join(_station_row(s) for s in station_views),
        transaction_rows="".join(
            _transaction_row(TransactionOut.model_validate(transactions.summary(t))) for t in recent
        ),
    )
    return HTMLResponse(
        html,
        headers={
            **HEADERS,
            "Content-Security-Policy": "default-src 'none'; "
            "style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        },
    )
