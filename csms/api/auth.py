"""Who is calling and what they may do: API keys (``Authorization: Bearer KEY``) and the console's session
cookie, one permission check for both (:mod:`csms.api.permissions`), CSRF on every unsafe request made with the
cookie, and the organisation boundary on every object a route's path names.

No credential is taken from a query string: a request to a secured route that carries one (``?key=`` and its
like) is refused with 400 before anything else, so a key pasted into a URL fails loudly instead of working
while it leaks into access logs, browser history and proxies.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from csms.api import permissions
from csms.api.deps import read_factory, unauthorized
from csms.services import apikeys, organisations, users
from csms.services.roles import PLATFORM_ADMIN, Permission, allows
from csms.store.models import (
    DEFAULT_ORGANISATION_ID,
    Alert,
    BillingAccount,
    ExclusionWindowRow,
    FileTransfer,
    FleetDriver,
    FleetVehicle,
    IdToken,
    Invoice,
    LedgerEntry,
    Property,
    Reservation,
    Site,
    Station,
    TariffAssignment,
    TariffRow,
    Transaction,
    User,
)

#: The session cookie; under TLS with the ``__Host-`` prefix (Secure, path /, no Domain: no subdomain can set it).
COOKIE = "ct_session"
SECURE_COOKIE = "__Host-ct_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Query parameters that look like a credential: refused on every secured route.
QUERY_CREDENTIALS = frozenset({"key", "api_key", "apikey", "access_token", "session", "ct_session", "password"})

#: Path parameters that name an organisation's object: (model, what its 404 calls it).
SCOPED_PARAMS: dict[str, tuple[type[Any], str]] = {
    "station_id": (Station, "station"),
    "site_id": (Site, "site"),
    "id_token": (IdToken, "id token"),
    "tariff_id": (TariffRow, "tariff"),
    "account_id": (BillingAccount, "account"),
    "vehicle_id": (FleetVehicle, "vehicle"),
    "driver_id": (FleetDriver, "driver"),
    "depot_id": (Site, "depot"),
    "property_id": (Property, "property"),
    "user_id": (User, "user"),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``kind``: ``key`` or ``user``; ``csrf``: the session's token (users only)."""

    kind: str
    id: str
    name: str
    role: str
    organisation_id: int
    csrf: str | None = None

    @property
    def scope(self) -> int | None:
        """The organisation it is limited to; None for a platform admin (every organisation)."""
        return users.scope_of(self.organisation_id, self.role)

    def can(self, permission: Permission) -> bool:
        return allows(self.role, permission)

    def sees(self, organisation_id: int) -> bool:
        return organisations.visible(self.scope, organisation_id)

    @property
    def manager(self) -> users.Manager:
        """As a manager of users (a key has no e-mail of its own)."""
        return users.Manager(self.role, self.organisation_id, self.name if self.kind == "user" else None)

    def adopt(self, row: Any) -> None:
        """A new object made by this caller belongs to its organisation."""
        row.organisation_id = self.organisation_id

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}"


def session_token(request: Request) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE) or None


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if request.url.scheme == "https" else COOKIE


def refuse_query_credentials(request: Request) -> None:
    found = sorted(name for name in request.query_params if name.lower() in QUERY_CREDENTIALS)
    if found:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"credentials are never accepted in a query string ({', '.join(found)}): "
            "send Authorization: Bearer KEY, or sign in to the console",
        )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def authenticate(request: Request, db: Session) -> Principal | None:
    """The caller of ``request``: a bearer key when one is sent (a wrong one is not rescued by a cookie), else
    the session cookie; None when neither identifies anyone."""
    key = _bearer(request)
    if key is not None:
        return _key_principal(request, db, key)
    token = session_token(request)
    if token is None:
        return None
    found = users.session_for(db, token, datetime.now(UTC))
    if found is None:
        return None
    session, user = found
    return Principal("user", str(user.id), user.email, user.role, user.organisation_id, session.csrf_token)


def _key_principal(request: Request, db: Session, key: str) -> Principal | None:
    fixed: str | None = request.app.state.api_key
    if fixed and hmac.compare_digest(fixed.encode(), key.encode()):
        return Principal("key", "fixed", "the fixed key", PLATFORM_ADMIN, DEFAULT_ORGANISATION_ID)
    row = apikeys.lookup(db, key)
    if row is None:
        return None
    return Principal("key", str(row.id), row.name, row.role, row.organisation_id)


def route_path(scope: Any) -> str | None:
    """The matched route's path template in full (``/api/v1/stations/{station_id}``); None: no route matched.
    FastAPI's included routers report the template without the prefix they were included under."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return None
    prefix = permissions.PREFIX
    return prefix + path if scope.get("path", "").startswith(prefix + "/") and not path.startswith(prefix) else path


def check_access(request: Request, db: Session) -> Principal:
    """Authenticate and authorize one request to a secured ``/api/v1`` route (raises the 4xx otherwise)."""
    refuse_query_credentials(request)
    principal = authenticate(request, db)
    if principal is None:
        if _bearer(request) is not None:
            raise unauthorized("invalid or revoked API key")
        raise unauthorized("an API key (Authorization: Bearer KEY) or a console session is required")
    request.state.principal = principal
    needed = permissions.required(request.method, route_path(request.scope) or request.url.path)
    if needed is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route is not declared in the permission table")
    if needed != permissions.PUBLIC and not principal.can(needed):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role} lacks the permission {needed}")
    if principal.kind == "user" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not principal.csrf or not hmac.compare_digest(sent.encode(), principal.csrf.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong CSRF token ({CSRF_HEADER} header)")
    check_tenant(principal, request.path_params.items(), db)
    return principal


#: Path parameters that name an object of a station: (model, what its 404 calls it); the station decides.
STATION_OWNED_PARAMS: dict[str, tuple[type[Any], str]] = {
    "transaction_id": (Transaction, "transaction"),
    "alert_id": (Alert, "alert"),
    "exclusion_id": (ExclusionWindowRow, "exclusion window"),
    "reservation_id": (Reservation, "reservation"),
    "transfer_id": (FileTransfer, "transfer"),
}
#: Path parameters that name an object of a billing account (a ledger entry, an invoice); the account decides.
ACCOUNT_OWNED_PARAMS: dict[str, tuple[type[Any], str]] = {
    "entry_id": (LedgerEntry, "ledger entry"),
    "number": (Invoice, "invoice"),
}
#: Path parameters that name an object of a tariff (where it applies); the tariff decides.
TARIFF_OWNED_PARAMS: dict[str, tuple[type[Any], str]] = {
    "assignment_id": (TariffAssignment, "tariff assignment"),
}
#: Every parameter that names an organisation's object, with the column of the object that decides (None: its
#: own ``organisation_id``) and that object's model.
_OWNERS: dict[str, tuple[dict[str, tuple[type[Any], str]], str | None, type[Any] | None]] = {
    "own": (SCOPED_PARAMS, None, None),
    "station": (STATION_OWNED_PARAMS, "station_id", Station),
    "account": (ACCOUNT_OWNED_PARAMS, "account_id", BillingAccount),
    "tariff": (TARIFF_OWNED_PARAMS, "tariff_id", TariffRow),
}
TENANT_PARAMS = frozenset(name for table, _, _ in _OWNERS.values() for name in table)
_MAX_ID = 2**63 - 1


def _key(model: type[Any], value: Any) -> Any:
    """``value`` as ``model``'s primary key (None: it cannot be one)."""
    python_type = model.__table__.primary_key.columns.values()[0].type.python_type
    if python_type is int:
        text = str(value)
        return int(text) if text.isdigit() and int(text) <= _MAX_ID else None
    return value if isinstance(value, str) else None


def organisation_of(db: Session, name: str, value: Any) -> tuple[int | None, str] | None:
    """The organisation of the object a parameter ``name`` names (None inside: no such object) and what a 404
    calls it; None when ``name`` names no organisation's object."""
    for table, via, parent in _OWNERS.values():
        if name not in table:
            continue
        model, what = table[name]
        key = _key(model, value)
        row = db.get(model, key) if key is not None else None
        if row is not None and via is not None and parent is not None:
            owner_key = getattr(row, via)
            row = db.get(parent, owner_key) if owner_key is not None else None
        label = f"{what} {value!r}" if isinstance(key, str) else f"{what} {value}"
        return (row.organisation_id if row is not None else None), label
    return None


def check_tenant(principal: Principal, named: Iterable[tuple[str, Any]], db: Session) -> None:
    """404 for an object of another organisation named in the path or the body (``named``: name, value pairs),
    worded as for one that does not exist, so ids of other tenants cannot be probed."""
    if principal.scope is None:
        return
    for name, value in named:
        found = organisation_of(db, name, value)
        if found is None:
            continue
        organisation_id, label = found
        if organisation_id is not None and not principal.sees(organisation_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{label} not found")


def named_in_body(body: Any) -> Iterator[tuple[str, Any]]:
    """The objects a JSON body names: its top-level keys, and those of the objects in its top-level lists
    (a site's ``evses``)."""
    if not isinstance(body, dict):
        return
    for key, value in body.items():
        if key in TENANT_PARAMS:
            yield key, value
        elif isinstance(value, list):
            for item in value[:100_000]:
                if isinstance(item, dict):
                    yield from ((k, v) for k, v in item.items() if k in TENANT_PARAMS)


async def _json_body(request: Request) -> Any:
    if request.method in SAFE_METHODS:
        return None
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return None
    try:
        return json.loads(await request.body())
    except ValueError:
        return None  # the route's own validation answers


_bearer_scheme = HTTPBearer(auto_error=False, description="an API key: `csms apikeys create` or $CHARGETWIN_API_KEY")


async def require_access(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]
) -> Principal:
    """The dependency of every secured ``/api/v1`` router (the bearer scheme is named for the OpenAPI document;
    the header is read by :func:`authenticate`). The database work runs on a worker thread."""
    body = await _json_body(request)

    def check() -> Principal:
        with read_factory(request)() as db:
            principal = check_access(request, db)
            check_tenant(principal, named_in_body(body), db)
            return principal

    return await run_in_threadpool(check)


def caller(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


Caller = Annotated[Principal, Depends(caller)]
