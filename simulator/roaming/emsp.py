"""An eMSP on its own HTTP server (FastAPI + uvicorn on a free loopback port), the other side of the CSMS's OCPI
2.2.1 CPO API: it registers with the CPO (token A → its token B → the CPO's token C) or lets the CPO register
with it, checks every token it is called with, pulls locations and tariffs, pushes its drivers' tokens, starts
sessions by command, answers real-time authorisation, and keeps the sessions, CDRs and command results the CPO
sends. ``down`` makes it answer every push with 503, as an eMSP that is unavailable.

The scenario's roaming partner (:mod:`simulator.embedded_ocpi` drives it in virtual time) and the OCPI tests'
peer are this one class."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

COUNTRY, PARTY = "DE", "EMS"


def _wall() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(data: Any = None, status_code: int = 1000, http: int = 200, at: datetime | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status_code": status_code, "timestamp": iso(at or _wall())}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status_code=http)


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


class EmspError(Exception):
    """The CPO refused or could not be reached."""


class Emsp:
    def __init__(
        self,
        country_code: str = COUNTRY,
        party_id: str = PARTY,
        *,
        name: str = "Test eMSP",
        clock: Callable[[], datetime] = _wall,
    ) -> None:
        self.app = FastAPI()
        self.base = ""
        self.country_code, self.party_id, self.name, self.clock = country_code, party_id, name, clock
        #: Tokens the CPO may call us with: the token A we hand out, then the token B we give it (we register),
        #: or the token B we sent in our credentials (it registered... we call it with C).
        self.accepted: set[str] = {"emsp-token-a"}
        self.our_token_b = "emsp-token-b"
        self.our_token_c = "emsp-token-c"
        self.cpo_token: str | None = None  # the token we call the CPO with
        self.cpo_versions: str | None = None
        #: The CPO's modules (identifier → URL), from its version details once registered.
        self.cpo_endpoints: dict[str, str] = {}
        self.received: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.headers: list[dict[str, str]] = []  # the headers of each request received, in order
        self.down = False  # answer every push with 503
        self.refused_while_down = 0
        self.authorize_answer = "ALLOWED"
        #: Real-time authorisation requests: (token uid, when).
        self.authorize_requests: list[tuple[str, datetime]] = []
        self.token_list: list[dict[str, Any]] = []  # what GET tokens lists
        self.token_pages: list[int] = []  # the offsets asked for
        self.token_since: list[str | None] = []  # the date_from of each first page asked for
        self.role = ("EMSP", country_code, party_id)  # what its credentials say it is (a hub: HUB)
        self._routes()

    # ---- the eMSP's API ----------------------------------------------------------------------------------------
    def _envelope(self, data: Any = None, status_code: int = 1000, http: int = 200) -> JSONResponse:
        return envelope(data, status_code, http, self.clock())

    def _check(self, request: Request) -> JSONResponse | None:
        self.headers.append(dict(request.headers))
        value = request.headers.get("authorization", "").removeprefix("Token ").strip()
        try:
            token = base64.b64decode(value).decode()
        except ValueError:
            token = value
        if token not in self.accepted:
            return self._envelope(None, 2000, 401)
        return None

    def _routes(self) -> None:  # noqa: C901 - one nested function per route of the eMSP's API
        app = self.app

        @app.get("/emsp/versions")
        async def versions(request: Request) -> JSONResponse:
            return self._check(request) or self._envelope([{"version": "2.2.1", "url": f"{self.base}/2.2.1"}])

        @app.get("/emsp/2.2.1")
        async def details(request: Request) -> JSONResponse:
            endpoints = [
                {"identifier": "credentials", "role": "SENDER", "url": f"{self.base}/2.2.1/credentials"},
                {"identifier": "credentials", "role": "RECEIVER", "url": f"{self.base}/2.2.1/credentials"},
                {"identifier": "locations", "role": "RECEIVER", "url": f"{self.base}/2.2.1/locations"},
                {"identifier": "tariffs", "role": "RECEIVER", "url": f"{self.base}/2.2.1/tariffs"},
                {"identifier": "sessions", "role": "RECEIVER", "url": f"{self.base}/2.2.1/sessions"},
                {"identifier": "tokens", "role": "SENDER", "url": f"{self.base}/2.2.1/tokens"},
                {"identifier": "commands", "role": "SENDER", "url": f"{self.base}/2.2.1/commands"},
                {"identifier": "cdrs", "role": "RECEIVER", "url": f"{self.base}/2.2.1/cdrs"},
            ]
            return self._check(request) or self._envelope({"version": "2.2.1", "endpoints": endpoints})

        @app.post("/emsp/2.2.1/credentials")
        async def credentials(request: Request) -> JSONResponse:
            """The CPO registers with us: check its versions with the token B it sent, answer with token C."""
            if refused := self._check(request):
                return refused
            theirs = await request.json()
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(theirs["url"], headers=token_header(theirs["token"]))
            if answer.json().get("status_code") != 1000:
                return self._envelope(None, 3001, 400)
            self.cpo_token, self.cpo_versions = theirs["token"], theirs["url"]
            self.accepted = {self.our_token_c}
            return self._envelope(self.credentials(self.our_token_c))

        @app.get("/emsp/2.2.1/tokens")
        async def tokens(
            request: Request, offset: int = 0, limit: int = 2, date_from: str | None = None
        ) -> JSONResponse:
            """The tokens sender, two a page (``date_from`` noted, not applied)."""
            if refused := self._check(request):
                return refused
            self.token_pages.append(offset)
            if offset == 0:
                self.token_since.append(date_from)
            answer = self._envelope(self.token_list[offset : offset + limit])
            answer.headers["X-Total-Count"] = str(len(self.token_list))
            if offset + limit < len(self.token_list):
                answer.headers["Link"] = f'<{self.base}/2.2.1/tokens?offset={offset + limit}&limit={limit}>; rel="next"'
            return answer

        @app.post("/emsp/2.2.1/cdrs")
        async def cdr(request: Request) -> JSONResponse:
            if refused := self._check(request):
                return refused
            if self.down:
                self.refused_while_down += 1
                return self._envelope(None, 3000, 503)
            self.received.append(("POST", "cdrs/", await request.json()))
            return self._envelope(http=201)

        @app.delete("/emsp/2.2.1/credentials")
        async def unregister(request: Request) -> JSONResponse:
            if refused := self._check(request):
                return refused
            self.received.append(("DELETE", "credentials", None))
            self.accepted = set()
            return self._envelope()

        @app.api_route("/emsp/2.2.1/{module}/{rest:path}", methods=["GET", "PUT", "PATCH", "POST", "DELETE"])
        async def anything(request: Request, module: str, rest: str) -> JSONResponse:
            if refused := self._check(request):
                return refused
            if self.down:
                self.refused_while_down += 1
                return self._envelope(None, 3000, 503)
            body = await request.json() if request.method not in ("GET", "DELETE") else None
            self.received.append((request.method, f"{module}/{rest}", body))
            if module == "tokens" and rest.endswith("/authorize"):
                uid = rest.split("/")[0]
                self.authorize_requests.append((uid, self.clock()))
                return self._envelope({"allowed": self.authorize_answer, "token": self.token(uid),
                                       "authorization_reference": "AUTH-REF-1"})  # fmt: skip
            return self._envelope()

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": f"{self.base}/versions",
            "roles": [{"role": self.role[0], "business_details": {"name": self.name}, "party_id": self.role[2],
                       "country_code": self.role[1]}],
        }  # fmt: skip

    @staticmethod
    def token(uid: str, whitelist: str = "ALLOWED", valid: bool = True, country: str = COUNTRY,
              party: str = PARTY, last_updated: str = "2026-12-04T10:00:00Z") -> dict[str, Any]:  # fmt: skip
        """An OCPI Token of this eMSP (an RFID card)."""
        return {
            "country_code": country,
            "party_id": party,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{country}-{party}-C{uid}",
            "issuer": "Test eMSP",
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": last_updated,
        }

    def our_token(self, uid: str, whitelist: str = "ALLOWED") -> dict[str, Any]:
        return self.token(uid, whitelist, True, self.country_code, self.party_id, iso(self.clock()))

    def pushes(self, module: str) -> list[tuple[str, str, Any]]:
        return [r for r in self.received if r[1].startswith(module + "/")]

    # ---- what the CPO sent, by object -------------------------------------------------------------------------
    def sessions(self) -> dict[str, dict[str, Any]]:
        """Each session the CPO sent, by its id: the last PUT with the PATCHes after it merged in."""
        out: dict[str, dict[str, Any]] = {}
        for method, path, body in self.pushes("sessions"):
            session_id = path.rsplit("/", 1)[-1]
            if method == "PUT":
                out[session_id] = dict(body)
            elif method == "PATCH" and session_id in out:
                out[session_id].update(body)
        return out

    def cdrs(self) -> list[dict[str, Any]]:
        """Every CDR POSTed to us, in order (a CDR received twice is here twice)."""
        return [body for method, path, body in self.received if method == "POST" and path == "cdrs/"]

    def command_results(self) -> dict[str, dict[str, Any]]:
        """The CommandResults POSTed to our response URLs, by the reference at the URL's end."""
        return {path.rsplit("/", 1)[-1]: body for method, path, body in self.pushes("commands") if method == "POST"}

    # ---- calling the CPO --------------------------------------------------------------------------------------
    async def register(self, cpo_versions: str, token_a: str) -> dict[str, Any]:
        """The handshake as the party that starts it: token A → our token B → the CPO's token C; then the CPO's
        modules as token C sees them."""
        self.accepted = {self.our_token_b}
        async with httpx.AsyncClient(timeout=10) as client:
            versions = (await client.get(cpo_versions, headers=token_header(token_a))).json()["data"]
            details = (await client.get(versions[0]["url"], headers=token_header(token_a))).json()["data"]
            url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "credentials")
            answer = await client.post(url, headers=token_header(token_a), json=self.credentials(self.our_token_b))
            body = answer.json()
            if answer.status_code != 200 or body.get("status_code") != 1000:
                raise EmspError(f"registration refused: {answer.status_code} {body}")
            self.cpo_token, self.cpo_versions = body["data"]["token"], body["data"]["url"]
            details = (await client.get(versions[0]["url"], headers=token_header(self.cpo_token))).json()["data"]
        self.cpo_endpoints = {e["identifier"]: e["url"] for e in details["endpoints"]}
        return dict(body)

    def client(self) -> httpx.AsyncClient:
        """A client that calls the CPO with the token it gave us."""
        assert self.cpo_token is not None
        return httpx.AsyncClient(timeout=10, headers=token_header(self.cpo_token))

    async def pull(self, module: str, **params: str) -> list[dict[str, Any]]:
        """Every object of the CPO's ``module`` (locations, tariffs, sessions, cdrs), following its Link pages."""
        url: str | None = self.cpo_endpoints[module]
        out: list[dict[str, Any]] = []
        async with self.client() as client:
            query: dict[str, str] | None = params or None
            while url is not None:
                answer = await client.get(url, params=query)
                body = answer.json()
                if answer.status_code != 200 or body.get("status_code") != 1000:
                    raise EmspError(f"GET {url}: {answer.status_code} {body}")
                out.extend(body["data"])
                url = answer.links.get("next", {}).get("url")
                query = None
        return out

    async def push_token(self, token: dict[str, Any]) -> None:
        """PUT one of our tokens into the CPO's tokens receiver."""
        url = f"{self.cpo_endpoints['tokens']}/{token['country_code']}/{token['party_id']}/{token['uid']}"
        async with self.client() as client:
            answer = await client.put(url, params={"type": token["type"]}, json=token)
        if not answer.is_success or answer.json().get("status_code") != 1000:
            raise EmspError(f"PUT {url}: {answer.status_code} {answer.text}")

    async def command(self, command: str, body: dict[str, Any], reference: str) -> dict[str, Any]:
        """POST a command; the CPO's CommandResponse (the result comes to our ``commands/{command}/{reference}``)."""
        sent = {"response_url": f"{self.base}/2.2.1/commands/{command}/{reference}", **body}
        async with self.client() as client:
            answer = await client.post(f"{self.cpo_endpoints['commands']}/{command}", json=sent)
        data: dict[str, Any] = answer.json().get("data") or {"result": f"HTTP {answer.status_code}"}
        return data


@contextlib.asynccontextmanager
async def serving(emsp: Emsp, host: str = "127.0.0.1") -> AsyncIterator[Emsp]:
    """Serve ``emsp`` on a free port of ``host`` while the block runs."""
    sock = socket.create_server((host, 0))
    port = sock.getsockname()[1]
    emsp.base = f"http://{host}:{port}/emsp"
    server = uvicorn.Server(uvicorn.Config(emsp.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield emsp
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_emsp() -> AsyncIterator[Emsp]:
    async with serving(Emsp()) as emsp:
        yield emsp
