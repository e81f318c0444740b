"""The console's sign-in pages: sign in (e-mail, password, TOTP code when the user turned it on), sign out,
change password, and the one-time set-password link that ``csms users add`` / ``csms users reset`` print.

Every form carries a CSRF token: a signed-in form the session's own (server-side) token; the sign-in and
set-password forms, made before there is a session, a random token that must equal the one in a short-lived
``ct_csrf`` cookie (double submit). Pages are served with ``Cache-Control: no-store``, a strict
Content-Security-Policy (no script, nothing from elsewhere), no framing and no referrer (the set-password link's
token must not travel in a Referer header).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from html import escape
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from csms.api import auth
from csms.api.deps import DbSession
from csms.services import users
from csms.services.errors import DomainError

router = APIRouter(include_in_schema=False)

PRE_CSRF_COOKIE = "ct_csrf"
#: A form body is small: anything bigger is not one of these forms.
MAX_FORM_BYTES = 8 * 1024
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

STYLE = (
    "body{font:15px system-ui,sans-serif;margin:0 auto;max-width:28em;padding:2em 1em}"
    "label{display:block;margin:.8em 0 .2em}input{width:100%;padding:.5em;box-sizing:border-box;font:inherit}"
    "button{margin-top:1.2em;padding:.6em 1.4em;font:inherit}.error{color:#a00}.note{color:#555}"
)


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · chargetwin</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def _error(message: str | None) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>' if message else ""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _with_pre_csrf(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(
        PRE_CSRF_COOKIE, token, max_age=3600, httponly=True, secure=_secure(request), samesite="strict", path="/"
    )
    return response


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as single values (400 for anything else)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "a form (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "form too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "malformed form") from None
    return {name: values[0] for name, values in fields.items()}


Form = Annotated[dict[str, str], Depends(form)]


def _pre_csrf_ok(request: Request, fields: dict[str, str]) -> bool:
    cookie = request.cookies.get(PRE_CSRF_COOKIE, "")
    sent = fields.get("csrf_token", "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def _csrf_refused() -> HTMLResponse:
    return page("Sign in", _error("the form expired or was not sent from this site: reload it and try again"), 403)


# ---- sign in / sign out -------------------------------------------------------------------------------------
def _signin_form(token: str, email: str = "", message: str | None = None) -> str:
    return (
        f"{_error(message)}"
        f'<form method="post" action="/signin"><input type="hidden" name="csrf_token" value="{escape(token)}">'
        f'<label for="email">E-mail</label><input id="email" name="email" type="email" autocomplete="username" '
        f'required maxlength="254" value="{escape(email)}">'
        f'<label for="password">Password</label><input id="password" name="password" type="password" '
        f'autocomplete="current-password" required maxlength="{users.MAX_PASSWORD}">'
        f'<label for="code">Code from your authenticator app (if you turned it on)</label>'
        f'<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6">'
        f"<button>Sign in</button></form>"
    )


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> Response:
    token = secrets.token_urlsafe(32)
    return _with_pre_csrf(request, page("Sign in", _signin_form(token)), token)


@router.post("/signin", response_class=HTMLResponse)
def signin(request: Request, fields: Form, db: DbSession) -> Response:
    if not _pre_csrf_ok(request, fields):
        return _csrf_refused()
    email = fields.get("email", "")[:254]
    request.state.signin_email = email.strip().lower()
    client = request.client.host if request.client else None
    result = users.sign_in(db, email, fields.get("password", ""), fields.get("code") or None, _now(), client)
    request.state.signin = result  # for the audit trail
    if result.token is None:
        token = secrets.token_urlsafe(32)
        code = status.HTTP_429_TOO_MANY_REQUESTS if result.locked else status.HTTP_401_UNAUTHORIZED
        return _with_pre_csrf(request, page("Sign in", _signin_form(token, email, result.refusal), code), token)
    response = RedirectResponse("/", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    response.set_cookie(
        auth.cookie_name(request),
        result.token,
        max_age=int(users.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=_secure(request),
        samesite="lax",
        path="/",
    )
    response.delete_cookie(PRE_CSRF_COOKIE, path="/")
    return response


def signed_in(request: Request, db: Session) -> auth.Principal | None:
    """The console's caller (a session cookie, or a bearer key for scripts); refuses ``?key=``."""
    auth.refuse_query_credentials(request)
    principal = auth.authenticate(request, db)
    if principal is not None:
        request.state.principal = principal
    return principal


def _session_csrf_ok(principal: auth.Principal, fields: dict[str, str]) -> bool:
    sent = fields.get("csrf_token", "")
    return principal.csrf is not None and hmac.compare_digest(principal.csrf.encode(), sent.encode())


@router.post("/signout")
def signout(request: Request, fields: Form, db: DbSession) -> Response:
    principal = signed_in(request, db)
    token = auth.session_token(request)
    if principal is None or principal.kind != "user" or token is None:
        return RedirectResponse("/signin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    if not _session_csrf_ok(principal, fields):
        return _csrf_refused()
    users.sign_out(db, token, _now())
    response = RedirectResponse("/signin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    response.delete_cookie(auth.cookie_name(request), path="/", secure=_secure(request), httponly=True)
    return response


# ---- password change ----------------------------------------------------------------------------------------
def _password_form(csrf: str, message: str | None = None, done: bool = False) -> str:
    note = '<p class="note">Password changed; your other browsers were signed out.</p>' if done else ""
    return (
        f"{note}{_error(message)}"
        f'<form method="post" action="/account/password"><input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<label for="current">Current password</label><input id="current" name="current_password" '
        f'type="password" autocomplete="current-password" required maxlength="{users.MAX_PASSWORD}">'
        f'<label for="new">New password ({users.MIN_PASSWORD} characters at least)</label><input id="new" '
        f'name="new_password" type="password" autocomplete="new-password" required minlength="{users.MIN_PASSWORD}" '
        f'maxlength="{users.MAX_PASSWORD}"><button>Change password</button></form><p><a href="/">Back</a></p>'
    )


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, db: DbSession) -> Response:
    principal = signed_in(request, db)
    if principal is None or principal.csrf is None:
        return RedirectResponse("/signin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    return page("Change password", _password_form(principal.csrf))


@router.post("/account/password", response_class=HTMLResponse)
def change_password(request: Request, fields: Form, db: DbSession) -> Response:
    principal = signed_in(request, db)
    if principal is None or principal.csrf is None:
        return RedirectResponse("/signin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    if not _session_csrf_ok(principal, fields):
        return _csrf_refused()
    user = users.by_email(db, principal.name)
    try:
        users.change_password(db, user, fields.get("current_password", ""), fields.get("new_password", ""), _now())
    except DomainError as refused:
        return page("Change password", _password_form(principal.csrf, refused.message), 422)
    # Every session of the user ended (this one too): this browser gets a new one.
    token, csrf = users.open_session(db, user, _now(), request.client.host if request.client else None)
    response = page("Change password", _password_form(csrf, done=True))
    response.set_cookie(
        auth.cookie_name(request),
        token,
        max_age=int(users.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=_secure(request),
        samesite="lax",
        path="/",
    )
    return response


# ---- one-time set-password link -----------------------------------------------------------------------------
LinkToken = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


def _set_form(link: str, csrf: str, email: str, message: str | None = None) -> str:
    return (
        f"<p>Choose the password of <strong>{escape(email)}</strong>.</p>{_error(message)}"
        f'<form method="post" action="/set-password/{escape(link)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<label for="new">New password ({users.MIN_PASSWORD} characters at least)</label><input id="new" '
        f'name="new_password" type="password" autocomplete="new-password" required minlength="{users.MIN_PASSWORD}" '
        f'maxlength="{users.MAX_PASSWORD}"><button>Set password</button></form>'
    )


@router.get("/set-password/{link}", response_class=HTMLResponse)
def set_password_page(request: Request, link: LinkToken, db: DbSession) -> Response:
    try:
        user = users.user_for_link(db, link, _now())
    except DomainError as refused:
        return page("Set password", _error(refused.message), refused.status_code)
    token = secrets.token_urlsafe(32)
    return _with_pre_csrf(request, page("Set password", _set_form(link, token, user.email)), token)


@router.post("/set-password/{link}", response_class=HTMLResponse)
def set_password(request: Request, link: LinkToken, fields: Form, db: DbSession) -> Response:
    if not _pre_csrf_ok(request, fields):
        return _csrf_refused()
    try:
        user = users.user_for_link(db, link, _now())
        users.set_password_with_link(db, link, fields.get("new_password", ""), _now())
    except DomainError as refused:
        token = secrets.token_urlsafe(32)
        body = _set_form(link, token, "", refused.message) if refused.status_code == 422 else _error(refused.message)
        return _with_pre_csrf(request, page("Set password", body, refused.status_code), token)
    request.state.user_changed = user.id
    return page("Set password", '<p>Password set. <a href="/signin">Sign in</a>.</p>')


def _now() -> datetime:
    return datetime.now(UTC)
