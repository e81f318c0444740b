"""A small eMSP on its own HTTP server (FastAPI + uvicorn on a free loopback port), the other side of the CPO's
OCPI API in the tests: it registers with the CPO (or lets the CPO register with it), checks every token it is
called with, keeps what the CPO pushes, answers real-time authorisation and takes command results."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

COUNTRY, PARTY = "DE", "EMS"


def envelope(data: Any = None, status_code: int = 1000, http: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"status_code": status_code, "timestamp": "2026-12-04T12:00:00Z"}
    if data is not None:
        body["data"] = data
    return JSONResponse(body, status_code=http)


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


class Emsp:
    def __init__(self) -> None:
        self.app = FastAPI()
        self.base = ""
        #: Tokens the CPO may call us with: the token A we hand out, then the token B we give it (we register),
        #: or the token B we sent in our credentials (it registered... we call it with C).
        self.accepted: set[str] = {"emsp-token-a"}
        self.our_token_b = "emsp-token-b"
        self.our_token_c = "emsp-token-c"
        self.cpo_token: str | None = None  # the token we call the CPO with
        self.cpo_versions: str | None = None
        self.received: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.headers: list[dict[str, str]] = []  # the headers of each request received, in order
        self.down = False  # answer every push with 503
        self.authorize_answer = "ALLOWED"
        self.token_list: list[dict[str, Any]] = []  # what GET tokens lists
        self.token_pages: list[int] = []  # the offsets asked for
        self.role = ("EMSP", COUNTRY, PARTY)  # what its credentials say it is (a hub: HUB)
        self._routes()

    # ---- the eMSP's API ----------------------------------------------------------------------------------------
    def _check(self, request: Request) -> JSONResponse | None:
        self.headers.append(dict(request.headers))
        value = request.headers.get("authorization", "").removeprefix("Token ").strip()
        try:
            token = base64.b64decode(value).decode()
        except ValueError:
            token = value
        if token not in self.accepted:
            return envelope(None, 2000, 401)
        return None

    def _routes(self) -> None:
        app = self.app

        @app.get("/emsp/versions")
        async def versions(request: Request) -> JSONResponse:
            return self._check(request) or envelope([{"version": "2.2.1", "url": f"{self.base}/2.2.1"}])

        @app.get("/emsp/2.2.1")
        async def details(request: Request) -> JSONResponse:
            endpoints = [
                {"identifier": "credentials", "role": "SENDER", "url": f"{self.base}/2.2.1/credentials"},
                {"identifier": "credentials", "role": "RECEIVER", "url": f"{self.base}/2.2.1/credentials"},
                {"identifier": "locations", "role": "RECEIVER", "url": f"{self.base}/2.2.1/locations"},
                {"identifier": "sessions", "role": "RECEIVER", "url": f"{self.base}/2.2.1/sessions"},
                {"identifier": "tokens", "role": "SENDER", "url": f"{self.base}/2.2.1/tokens"},
                {"identifier": "commands", "role": "SENDER", "url": f"{self.base}/2.2.1/commands"},
                {"identifier": "cdrs", "role": "RECEIVER", "url": f"{self.base}/2.2.1/cdrs"},
            ]
            return self._check(request) or envelope({"version": "2.2.1", "endpoints": endpoints})

        @app.post("/emsp/2.2.1/credentials")
        async def credentials(request: Request) -> JSONResponse:
            """The CPO registers with us: check its versions with the token B it sent, answer with token C."""
            if refused := self._check(request):
                return refused
            theirs = await request.json()
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(theirs["url"], headers=token_header(theirs["token"]))
                assert answer.json()["status_code"] == 1000
            self.cpo_token, self.cpo_versions = theirs["token"], theirs["url"]
            self.accepted = {self.our_token_c}
            return envelope(self.credentials(self.our_token_c))

        @app.get("/emsp/2.2.1/tokens")
        async def tokens(request: Request, offset: int = 0, limit: int = 2) -> JSONResponse:
            """The tokens sender, two a page."""
            if refused := self._check(request):
                return refused
            self.token_pages.append(offset)
            answer = envelope(self.token_list[offset : offset + limit])
            answer.headers["X-Total-Count"] = str(len(self.token_list))
            if offset + limit < len(self.token_list):
                answer.headers["Link"] = f'<{self.base}/2.2.1/tokens?offset={offset + limit}&limit={limit}>; rel="next"'
            return answer

        @app.post("/emsp/2.2.1/cdrs")
        async def cdr(request: Request) -> JSONResponse:
            if refused := self._check(request):
                return refused
            if self.down:
                return envelope(None, 3000, 503)
            self.received.append(("POST", "cdrs/", await request.json()))
            return envelope(http=201)

        @app.delete("/emsp/2.2.1/credentials")
        async def unregister(request: Request) -> JSONResponse:
            if refused := self._check(request):
                return refused
            self.received.append(("DELETE", "credentials", None))
            self.accepted = set()
            return envelope()

        @app.api_route("/emsp/2.2.1/{module}/{rest:path}", methods=["GET", "PUT", "PATCH", "POST"])
        async def anything(request: Request, module: str, rest: str) -> JSONResponse:
            if refused := self._check(request):
                return refused
            if self.down:
                return envelope(None, 3000, 503)
            body = await request.json() if request.method != "GET" else None
            self.received.append((request.method, f"{module}/{rest}", body))
            if module == "tokens" and rest.endswith("/authorize"):
                uid = rest.split("/")[0]
                return envelope({"allowed": self.authorize_answer, "token": self.token(uid),
                                 "authorization_reference": "AUTH-REF-1"})  # fmt: skip
            return envelope()

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": f"{self.base}/versions",
            "roles": [{"role": self.role[0], "business_details": {"name": "Test eMSP"}, "party_id": self.role[2],
                       "country_code": self.role[1]}],
        }  # fmt: skip

    @staticmethod
    def token(uid: str, whitelist: str = "ALLOWED", valid: bool = True) -> dict[str, Any]:
        return {
            "country_code": COUNTRY,
            "party_id": PARTY,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"DE-EMS-C{uid}",
            "issuer": "Test eMSP",
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": "2026-12-04T10:00:00Z",
        }

    def pushes(self, module: str) -> list[tuple[str, str, Any]]:
        return [r for r in self.received if r[1].startswith(module + "/")]

    # ---- calling the CPO --------------------------------------------------------------------------------------
    async def register(self, cpo_versions: str, token_a: str) -> dict[str, Any]:
        """The handshake as the party that starts it: token A → our token B → the CPO's token C."""
        self.accepted = {self.our_token_b}
        async with httpx.AsyncClient(timeout=10) as client:
            versions = (await client.get(cpo_versions, headers=token_header(token_a))).json()["data"]
            details = (await client.get(versions[0]["url"], headers=token_header(token_a))).json()["data"]
            url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "credentials")
            answer = await client.post(url, headers=token_header(token_a), json=self.credentials(self.our_token_b))
        body = answer.json()
        assert answer.status_code == 200, body
        self.cpo_token, self.cpo_versions = body["data"]["token"], body["data"]["url"]
        return body

    def client(self) -> httpx.AsyncClient:
        """A client that calls the CPO with the token it gave us."""
        assert self.cpo_token is not None
        return httpx.AsyncClient(timeout=10, headers=token_header(self.cpo_token))


@contextlib.asynccontextmanager
async def running_emsp() -> AsyncIterator[Emsp]:
    emsp = Emsp()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    emsp.base = f"http://127.0.0.1:{port}/emsp"
    server = uvicorn.Server(uvicorn.Config(emsp.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield emsp
    finally:
        server.should_exit = True
        await task
