"""Users and sign-in as a person meets them: the CLI prints a one-time link, the browser sets a password and
signs in over real HTTP (the app served by uvicorn on loopback), the session cookie opens the console and the
API, CSRF guards every unsafe request made with it, lock-out, TOTP, sign-out and password change end sessions.

Every test runs on SQLite and on PostgreSQL (``session_factory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import uvicorn
from sqlalchemy import select

from csms.api.app import create_app
from csms.services import users
from csms.services.passwords import api_key_hash
from csms.store.models import ConsoleSession, SignInFailure, User

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@contextlib.asynccontextmanager
async def served(session_factory: Any, gateway: Any) -> AsyncIterator[str]:
    """The app on a loopback port; yields its base URL."""
    app = create_app(session_factory, gateway, None)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


def add_user(session_factory: Any, email: str, role: str = "owner", org: str | None = None) -> str:
    """A user with PASSWORD set; returns nothing useful but the e-mail."""
    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        _, token = users.add(db, email, role, org, now)
        users.set_password_with_link(db, token, PASSWORD, now)
    return email


def form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD, code: str = "") -> httpx.Response:
    page = await http.get("/signin")
    return await http.post(
        "/signin", data={"csrf_token": form_token(page.text), "email": email, "password": password, "code": code}
    )


async def test_first_owner_from_the_cli_link_to_the_console_and_the_api(session_factory, gateway, database_url):
    env = {**os.environ, "CHARGETWIN_DATABASE_URL": database_url}
    async with served(session_factory, gateway) as base:
        command = [sys.executable, "-m", "csms.cli", "users", "add", "Ada@Example.com", "--role", "owner"]
        command += ["--console-url", base]
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        link = done.stdout.split()[-1]
        assert link.startswith(f"{base}/set-password/")
        listed = subprocess.run(
            [sys.executable, "-m", "csms.cli", "users", "list"], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert listed.stdout.splitlines()[1].split() == ["ada@example.com", "owner", "default", "not", "set", "off"]

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            form = await http.get(link)
            assert form.status_code == 200 and "ada@example.com" in form.text
            assert form.headers["referrer-policy"] == "no-referrer"
            short = await http.post(link, data={"csrf_token": form_token(form.text), "new_password": "short"})
            assert short.status_code == 422 and "12-256 characters" in short.text
            done_page = await http.post(link, data={"csrf_token": form_token(short.text), "new_password": PASSWORD})
            assert done_page.status_code == 200 and "Password set" in done_page.text
            again = await http.get(link)
            assert again.status_code == 404  # one time only

            assert (await http.get("/", follow_redirects=False)).headers["location"] == "/signin"
            signed = await sign_in(http, "ada@example.com")
            assert signed.status_code == 303 and signed.headers["location"] == "/"
            cookie = signed.headers["set-cookie"]
            assert cookie.startswith("ct_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
            assert "Path=/" in cookie and "Secure" not in cookie  # plain HTTP here; see the TLS test
            value = http.cookies["ct_session"]
            with session_factory() as db:
                stored = db.scalars(select(ConsoleSession)).one()
            assert stored.id_hash == api_key_hash(value) and value not in stored.id_hash  # only its hash is kept

            dashboard = await http.get("/")
            assert dashboard.status_code == 200 and "Signed in as ada@example.com" in dashboard.text
            assert (await http.get("/api/v1/stations")).status_code == 200  # the cookie opens the API too
            body = {"id_token": "TAG-1"}
            refused = await http.post("/api/v1/tokens", json=body)
            assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
            wrong = await http.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": "forged"})
            assert wrong.status_code == 403
            made = await http.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": stored.csrf_token})
            assert made.status_code == 201, made.text


async def test_wrong_passwords_lock_the_address_known_or_not(session_factory, gateway):
    add_user(session_factory, "bo@example.com")
    async with served(session_factory, gateway) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(users.MAX_FAILURES - 1):
            wrong = await sign_in(http, "bo@example.com", "wrong password 1")
            assert wrong.status_code == 401 and users.REFUSED in wrong.text
            unknown = await sign_in(http, "nobody@example.com", "wrong password 1")
            assert unknown.status_code == 401 and users.REFUSED in unknown.text  # the same answer
        locked = await sign_in(http, "bo@example.com", "wrong password 1")
        assert locked.status_code == 429 and "too many failed sign-ins" in locked.text
        assert (await sign_in(http, "nobody@example.com", "x")).status_code == 429  # unknown: locked alike
        still = await sign_in(http, "bo@example.com")  # the right password, while locked
        assert still.status_code == 429 and "ct_session" not in http.cookies


def test_the_lock_out_window_and_its_end(session_factory):
    add_user(session_factory, "cy@example.com")
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with session_factory() as db, db.begin():
        for minute in range(users.MAX_FAILURES - 1):
            assert users.sign_in(db, "cy@example.com", "bad", None, start + timedelta(minutes=minute)).locked is False
        # The window (15 min) passed: the count starts again, so the next failure does not lock.
        later = start + users.FAILURE_WINDOW + timedelta(minutes=1)
        assert users.sign_in(db, "cy@example.com", "bad", None, later).locked is False
        assert db.get(SignInFailure, "cy@example.com").failures == 1
        for _ in range(users.MAX_FAILURES - 1):
            result = users.sign_in(db, "cy@example.com", "bad", None, later)
        assert result.locked
        assert users.sign_in(db, "cy@example.com", PASSWORD, None, later + timedelta(minutes=5)).locked
        after = later + users.LOCK_TIME + timedelta(seconds=1)
        assert users.sign_in(db, "cy@example.com", PASSWORD, None, after).token is not None
        assert db.get(SignInFailure, "cy@example.com") is None  # a success clears the count


async def test_sign_out_and_password_change_end_sessions(session_factory, gateway):
    add_user(session_factory, "di@example.com", role="viewer")
    async with (
        served(session_factory, gateway) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as laptop,
        httpx.AsyncClient(base_url=base, timeout=30) as phone,
    ):
        assert (await sign_in(laptop, "di@example.com")).status_code == 303
        assert (await sign_in(phone, "di@example.com")).status_code == 303
        phone_cookie = phone.cookies["ct_session"]

        page = await laptop.get("/account/password")
        changed = await laptop.post(
            "/account/password",
            data={"csrf_token": form_token(page.text), "current_password": PASSWORD, "new_password": "a new one 12345"},
        )
        assert changed.status_code == 200 and "Password changed" in changed.text
        assert (await phone.get("/api/v1/stations")).status_code == 401  # the other browser is signed out
        assert (await laptop.get("/api/v1/stations")).status_code == 200  # this one got a new session
        assert (await sign_in(phone, "di@example.com")).status_code == 401  # the old password is gone
        assert (await sign_in(phone, "di@example.com", "a new one 12345")).status_code == 303
        assert phone.cookies["ct_session"] != phone_cookie

        page = await phone.get("/")
        no_token = await phone.post("/signout", data={"csrf_token": "forged"})
        assert no_token.status_code == 403  # a cross-site form cannot sign anyone out
        assert (await phone.get("/api/v1/stations")).status_code == 200
        out = await phone.post("/signout", data={"csrf_token": form_token(page.text)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        replayed = await phone.get("/api/v1/stations", headers={"Cookie": f"ct_session={phone_cookie}"})
        assert replayed.status_code == 401


async def test_totp_second_factor(session_factory, gateway):
    add_user(session_factory, "ed@example.com")
    with session_factory() as db, db.begin():
        uri = users.enable_totp(db, "ed@example.com")
    secret = pyotp.parse_uri(uri).secret
    async with served(session_factory, gateway) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await sign_in(http, "ed@example.com")).status_code == 401  # no code
        assert (await sign_in(http, "ed@example.com", code="12345x")).status_code == 401
        code = pyotp.TOTP(secret).now()
        assert (await sign_in(http, "ed@example.com", code=code)).status_code == 303
        http.cookies.clear()
        assert (await sign_in(http, "ed@example.com", code=code)).status_code == 401  # a code works once


async def test_forms_without_their_csrf_token_and_forged_cookies(session_factory, gateway):
    add_user(session_factory, "fa@example.com")
    async with served(session_factory, gateway) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        blind = await http.post("/signin", data={"email": "fa@example.com", "password": PASSWORD})
        assert blind.status_code == 403 and "ct_session" not in http.cookies  # a login-CSRF attempt
        forged = await http.get("/api/v1/stations", headers={"Cookie": "ct_session=" + "x" * 43})
        assert forged.status_code == 401
        assert (await http.get("/", headers={"Cookie": "ct_session=" + "x" * 43})).headers["location"] == "/signin"
        with session_factory() as db:
            user = db.scalars(select(User)).one()
        assert user.email == "fa@example.com"


def test_a_disabled_user_is_signed_out_and_kept_out(session_factory, database_url):
    add_user(session_factory, "ix@example.com")
    now = datetime.now(UTC)
    with session_factory() as db, db.begin():
        token = users.sign_in(db, "ix@example.com", PASSWORD, None, now).token
    env = {**os.environ, "CHARGETWIN_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "csms.cli", "users", "disable", "ix@example.com"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with session_factory() as db, db.begin():
        assert token is not None and users.session_for(db, token, now) is None
        assert users.sign_in(db, "ix@example.com", PASSWORD, None, now).token is None
        users.set_disabled(db, "ix@example.com", False, now)
        assert users.sign_in(db, "ix@example.com", PASSWORD, None, now).token is not None


def test_an_expired_session_no_longer_counts(session_factory):
    add_user(session_factory, "gu@example.com")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with session_factory() as db, db.begin():
        result = users.sign_in(db, "gu@example.com", PASSWORD, None, now)
        assert result.token is not None
        assert users.session_for(db, result.token, now + users.SESSION_LIFETIME - timedelta(seconds=1)) is not None
        assert users.session_for(db, result.token, now + users.SESSION_LIFETIME) is None


async def test_the_cookie_is_secure_and_host_bound_under_tls(session_factory, gateway):
    add_user(session_factory, "ha@example.com")
    app = create_app(session_factory, gateway, None)
    transport = httpx.ASGITransport(app=app)  # the scheme uvicorn reports behind TLS (or a trusted proxy)
    async with httpx.AsyncClient(transport=transport, base_url="https://csms", timeout=30) as http:
        signed = await sign_in(http, "ha@example.com")
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("__Host-ct_session=") and "Secure" in cookie and "HttpOnly" in cookie
        assert (await http.get("/api/v1/stations")).status_code == 200


async def test_no_credential_is_taken_from_a_query_string(session_factory, gateway, now):
    from csms.services import apikeys

    with session_factory() as db, db.begin():
        _, key = apikeys.create(db, "ops", now)
    async with served(session_factory, gateway) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        for url in ("/api/v1/stations", "/"):
            for name in ("key", "api_key", "access_token"):
                refused = await http.get(url, params={name: key})
                assert refused.status_code == 400 and "query string" in refused.json()["detail"]
        assert (await http.get("/api/v1/stations", headers={"Authorization": f"Bearer {key}"})).status_code == 200


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "<script>@x.org"])
def test_users_add_refuses_bad_addresses_and_roles(session_factory, email):
    from csms.services.errors import Invalid

    with session_factory() as db, pytest.raises(Invalid, match="email"):
        users.add(db, email, "viewer", None, datetime.now(UTC))
    with session_factory() as db, pytest.raises(Invalid, match="role"):
        users.add(db, "ok@example.com", "emperor", None, datetime.now(UTC))
