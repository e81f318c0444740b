"""The console's pages of an organisation's registry (issue 21): id tokens (the drivers' cards and app tokens),
tariffs and API keys — list, create, block or revoke — in the style and with the guards of the other pages
(csms/api/dashboard.py): a session, the permission of the API route each page or button stands for, the CSRF
token on every form, the organisation boundary, the same services and input schemas as the API (a field the API
refuses, 422, is refused here too), and every form's audit entry in the transaction of its change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from csms.api import auth, dashboard
from csms.api.console import HEADERS
from csms.api.deps import DbSession, transaction
from csms.api.local_lists import list_sync
from csms.api.routes.fleet import DriverIn
from csms.api.routes.tariffs import TariffIn
from csms.api.schemas import TokenCreate
from csms.services import apikeys, authorization, fleet, local_lists, organisations, tariffs
from csms.services.errors import DomainError, Invalid, NotFound
from csms.services.roles import PLATFORM_ADMIN, ROLES
from csms.store.models import ApiKey

router = APIRouter(include_in_schema=False)

#: page or button → the API route it stands for (its permission decides who sees it); API keys have no API
#: route (the CLI and this page make them): they are the ``users`` permission's, like the users they stand beside.
ROUTES: dict[str, tuple[str, str]] = {
    "tokens": ("GET", "/tokens"),
    "token-create": ("POST", "/tokens"),
    "token-status": ("PATCH", "/tokens/{id_token}"),
    "driver-create": ("POST", "/fleet/drivers"),
    "tariffs": ("GET", "/tariffs"),
    "tariff-put": ("PUT", "/tariffs/{tariff_id}"),
    "tariff-delete": ("DELETE", "/tariffs/{tariff_id}"),
}
FORM_EXPIRED = "the form expired or was not sent from this site: reload the page"


def _caller(request: Request, db: Session, page: str) -> auth.Principal:
    return dashboard.caller(request, db, *ROUTES[page])


def _can(principal: auth.Principal, page: str) -> bool:
    return dashboard.may(principal, *ROUTES[page])


def _error(refused: ValidationError) -> str:
    first = refused.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'form'}: {first['msg']}"


async def _submit(request: Request, work: Any) -> Response:
    """A form's work on a worker thread, in the one transaction that the audit trail commits with its entry."""

    def run() -> Response:
        with transaction(request, last=True) as db:
            return work(db)

    return await run_in_threadpool(run)


# ---- id tokens ----------------------------------------------------------------------------------------------
def _tokens_page(request: Request, db: Session, principal: auth.Principal, code: int = 200, **context: Any) -> Response:
    rows = authorization.list_tokens(db, organisation_id=principal.scope)
    drivers = fleet.list_drivers(db, principal.scope)
    vehicles = fleet.list_vehicles(db, organisation_id=principal.scope)
    cards = {v.driver_id: v.id_token for v in vehicles if v.driver_id and v.id_token}
    return dashboard.render(request, "tokens.html", principal, "tokens", code, title="Id tokens and drivers",
                            tokens=rows, drivers=drivers, cards=cards, can_create=_can(principal, "token-create"),
                            can_block=_can(principal, "token-status"), can_add_driver=_can(principal, "driver-create"),
                            **context)  # fmt: skip


@router.get("/console/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, db: DbSession) -> Response:
    return _tokens_page(request, db, _caller(request, db, "tokens"))


@router.post("/console/tokens", response_class=HTMLResponse)
async def create_token(request: Request) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = _caller(request, db, "token-create")
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        try:
            body = TokenCreate.model_validate(
                {
                    "id_token": fields.get("id_token", ""),
                    "group_id": fields.get("group_id") or None,
                    "status": fields.get("status") or "Accepted",
                }
            )
            row = authorization.create(db, body.id_token, _now(), status=body.status, group_id=body.group_id)
        except ValidationError as invalid:
            db.rollback()
            return _tokens_page(request, db, principal, 422, error=_error(invalid))
        except DomainError as refused:
            db.rollback()
            return _tokens_page(request, db, principal, refused.status_code, error=refused.message)
        principal.adopt(row)
        return _follow(request, db, row.id_token, {row.group_id})

    return await _submit(request, work)


@router.post("/console/tokens/{id_token}/status", response_class=HTMLResponse)
async def set_token_status(request: Request, id_token: str) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = _caller(request, db, "token-status")
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        wanted = fields.get("status", "")
        if wanted not in ("Accepted", "Blocked"):
            return _tokens_page(request, db, principal, 422, error="status: Accepted or Blocked")
        row = authorization.update(db, id_token, {"status": wanted}, _now())
        return _follow(request, db, row.id_token, {row.group_id})

    return await _submit(request, work)


@router.post("/console/drivers", response_class=HTMLResponse)
async def create_driver(request: Request) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = _caller(request, db, "driver-create")
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        try:
            body = DriverIn.model_validate(
                {
                    "id": fields.get("id", ""),
                    "name": fields.get("name", ""),
                    "cost_centre": fields.get("cost_centre") or None,
                }
            )
            driver = fleet.create_driver(db, body.id, name=body.name, cost_centre=body.cost_centre)
        except ValidationError as invalid:
            db.rollback()
            return _tokens_page(request, db, principal, 422, error=_error(invalid))
        except DomainError as refused:
            db.rollback()
            return _tokens_page(request, db, principal, refused.status_code, error=refused.message)
        principal.adopt(driver)
        return RedirectResponse("/console/tokens", status.HTTP_303_SEE_OTHER, headers=HEADERS)

    return await _submit(request, work)


def _follow(request: Request, db: Session, id_token: str, groups: set[str | None]) -> Response:
    """Back to the list; the stations whose local list carries the token are updated once it is committed."""
    station_ids = local_lists.token_changed(db, id_token, groups, _now())
    task = BackgroundTask(list_sync(request).sync_quietly, station_ids) if station_ids else None
    return RedirectResponse("/console/tokens", status.HTTP_303_SEE_OTHER, headers=HEADERS, background=task)


# ---- tariffs ------------------------------------------------------------------------------------------------
def _tariffs_page(
    request: Request, db: Session, principal: auth.Principal, code: int = 200, **context: Any
) -> Response:
    rows = tariffs.list_tariffs(db, principal.scope)
    return dashboard.render(request, "tariffs.html", principal, "tariffs", code, title="Tariffs", tariffs=rows,
                            can_put=_can(principal, "tariff-put"), can_delete=_can(principal, "tariff-delete"),
                            prices={r.id: _prices(r.body) for r in rows}, **context)  # fmt: skip


def _prices(body: dict[str, Any]) -> str:
    """A tariff's price components in a line: ``0.30 per kWh, 1.00 per session``."""
    units = {"ENERGY": "per kWh", "FLAT": "per session", "TIME": "per hour", "PARKING_TIME": "per hour parked"}
    parts = []
    for element in body.get("elements", []):
        for component in element.get("price_components", []):
            parts.append(f"{component.get('price')} {units.get(component.get('type'), component.get('type'))}")
    return ", ".join(parts)


@router.get("/console/tariffs", response_class=HTMLResponse)
def tariffs_page(request: Request, db: DbSession) -> Response:
    return _tariffs_page(request, db, _caller(request, db, "tariffs"))


def _tariff_body(fields: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The OCPI tariff the form describes: an energy price, optionally a price per session, with VAT."""
    tariff_id = fields.get("id", "").strip()
    if not tariff_id or len(tariff_id) > 36 or not all(c.isalnum() or c in "._:-" for c in tariff_id):
        raise Invalid("id: 1-36 of A-Z a-z 0-9 . _ : -")
    try:
        energy, flat, vat = (Decimal(fields.get(k) or "0") for k in ("energy", "flat", "vat"))
    except InvalidOperation:
        raise Invalid("prices and VAT are decimal numbers") from None
    if energy <= 0:
        raise Invalid("energy: a price per kWh above 0")
    component = {"type": "ENERGY", "price": str(energy), "vat": str(vat), "step_size": 1}
    elements: list[dict[str, Any]] = [{"price_components": [component]}]
    if flat > 0:
        elements.insert(
            0, {"price_components": [{"type": "FLAT", "price": str(flat), "vat": str(vat), "step_size": 1}]}
        )
    body = TariffIn.model_validate({"id": tariff_id, "currency": fields.get("currency", ""), "elements": elements})
    return tariff_id, body.model_dump(exclude_none=True)


@router.post("/console/tariffs", response_class=HTMLResponse)
async def put_tariff(request: Request) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = _caller(request, db, "tariff-put")
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        try:
            tariff_id, body = _tariff_body(fields)
            auth.check_tenant(principal, [("tariff_id", tariff_id)], db)
            row, created = tariffs.put(db, tariff_id, body, _now())
        except ValidationError as invalid:
            db.rollback()
            return _tariffs_page(request, db, principal, 422, error=_error(invalid))
        except DomainError as refused:
            db.rollback()
            return _tariffs_page(request, db, principal, refused.status_code, error=refused.message)
        if created:
            principal.adopt(row)
        return RedirectResponse("/console/tariffs", status.HTTP_303_SEE_OTHER, headers=HEADERS)

    return await _submit(request, work)


@router.post("/console/tariffs/{tariff_id}/delete", response_class=HTMLResponse)
async def delete_tariff(request: Request, tariff_id: str) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = _caller(request, db, "tariff-delete")
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        try:
            tariffs.delete(db, tariff_id)
        except DomainError as refused:
            db.rollback()
            if isinstance(refused, NotFound):
                raise HTTPException(refused.status_code, refused.message) from None
            return _tariffs_page(request, db, principal, refused.status_code, error=refused.message)
        return RedirectResponse("/console/tariffs", status.HTTP_303_SEE_OTHER, headers=HEADERS)

    return await _submit(request, work)


# ---- API keys -----------------------------------------------------------------------------------------------
def _keys_page(request: Request, db: Session, principal: auth.Principal, code: int = 200, **context: Any) -> Response:
    rows = apikeys.list_keys(db, principal.scope)
    roles = [r for r in ROLES if r != PLATFORM_ADMIN or principal.role == PLATFORM_ADMIN]
    return dashboard.render(request, "apikeys.html", principal, "keys", code, title="API keys", keys=rows,
                            roles=roles, slugs=organisations.slugs(db), **context)  # fmt: skip


@router.get("/console/api-keys", response_class=HTMLResponse)
def keys_page(request: Request, db: DbSession) -> Response:
    return _keys_page(request, db, dashboard.users_caller(request, db))


@router.post("/console/api-keys", response_class=HTMLResponse)
async def create_key(request: Request) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = dashboard.users_caller(request, db)
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        role, name = fields.get("role", ""), fields.get("name", "").strip()
        if role == PLATFORM_ADMIN and principal.role != PLATFORM_ADMIN:
            return _keys_page(request, db, principal, 403, error="role: only a platform admin makes one")
        org = organisations.slugs(db).get(principal.organisation_id)
        try:
            _check_name(name)
            row, key = apikeys.create(db, name, _now(), role=role, organisation=org)
        except DomainError as refused:
            db.rollback()
            return _keys_page(request, db, principal, refused.status_code, error=refused.message)
        return _keys_page(request, db, principal, created={"name": row.name, "key": key})

    return await _submit(request, work)


def _check_name(name: str) -> None:
    if any(ord(c) < 32 for c in name):
        raise Invalid("name: no control characters")


@router.post("/console/api-keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_key(request: Request, key_id: int) -> Response:
    fields = await dashboard.form_fields(request)

    def work(db: Session) -> Response:
        principal = dashboard.users_caller(request, db)
        if not dashboard.csrf_ok(principal, fields):
            return dashboard.refused(request, FORM_EXPIRED, status.HTTP_403_FORBIDDEN)
        row = db.get(ApiKey, key_id)
        if row is None or not principal.sees(row.organisation_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"api key {key_id} not found")
        if row.role == PLATFORM_ADMIN and principal.role != PLATFORM_ADMIN:
            return _keys_page(request, db, principal, 403, error="only a platform admin revokes a platform admin's key")
        apikeys.revoke(db, key_id)
        return RedirectResponse("/console/api-keys", status.HTTP_303_SEE_OTHER, headers=HEADERS)

    return await _submit(request, work)


def _now() -> datetime:
    return datetime.now(UTC)
