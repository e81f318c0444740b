"""The OCPP-J WebSocket gateway: the asyncio shell around :class:`~csms.core.host.CsmsHost`.

It does transport and clock only: the WebSocket handshake (path, HTTP Basic through the host's admission
rule on a thread pool, subprotocol), one writer per connection so frames leave in order, and the asyncio
:class:`~csms.gateway.scheduler.AsyncioScheduler` that runs the host's timers on the loop and its group
commits on a worker thread. Every rule of the CSMS lives in the host, its sessions and plugins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.core.host import Connection, CsmsHost, Plugin, StationNotConnected
from csms.gateway.scheduler import AsyncioScheduler
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import OCPP16, SUBPROTOCOLS, Version, parse_version
from csms.services.admission import Admission
from csms.services.config import CsmsConfig

log = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"
#: What an open connection keeps as its handshake request (see ``Gateway._handle``).
_OPENED = Request(PATH_PREFIX, Headers())


class Link:
    """One live WebSocket: the host's :class:`~csms.core.host.Transport` for its connection.

    Tens of thousands live at once, so it holds only what an idle connection needs: the outbox exists
    while frames wait, the writer task while it writes."""

    __slots__ = ("connection", "gateway", "outbox", "station_id", "writer", "ws")

    def __init__(self, station_id: str, ws: ServerConnection, gateway: Gateway) -> None:
        self.station_id = station_id
        self.ws = ws
        self.gateway = gateway
        self.outbox: deque[str] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.connection: Connection | None = None

    def send(self, frames: list[str]) -> None:
        if self.outbox is None:
            self.outbox = deque(frames)
        else:
            self.outbox.extend(frames)
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        """The link's only writer, so frames leave in the order the session produced them."""
        try:
            with contextlib.suppress(ConnectionClosed):
                while self.outbox:
                    await self.ws.send(self.outbox.popleft())
        finally:
            self.outbox = self.writer = None

    def close(self, reason: str) -> None:
        # Closing waits for the old peer's close handshake (up to its timeout when it is half-open): do it in
        # the background so the new connection is served at once.
        self.gateway.close_in_background(self.ws, reason)


class Gateway:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        config: CsmsConfig,
        *,
        max_frame_bytes: int = 256 * 1024,
        ping_interval_s: float | None = 30.0,
        ping_timeout_s: float | None = 30.0,
        accept_backlog: int = 4096,
        handshake_timeout_s: float = 30.0,
        scheduler: AsyncioScheduler | None = None,
    ) -> None:
        self.config = config
        self.session_factory = session_factory
        self.scheduler = scheduler or AsyncioScheduler()
        self.host = CsmsHost(session_factory, config, self.scheduler)
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        # A fleet reconnecting at once (boot storm, after a blackout) arrives faster than the loop accepts;
        # Python's default backlog of 100 makes the kernel drop SYNs, and the 10 s default opening
        # handshake times out while admissions queue behind scrypt.  The kernel caps the backlog at somaxconn.
        self.accept_backlog = accept_backlog
        self.handshake_timeout_s = handshake_timeout_s
        self.links: dict[str, Link] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self._auth_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="csms-auth")
        self._server: Server | None = None
        #: :class:`csms.runtime.cluster.Cluster` when this process is one node of several (``--broker``).
        self.cluster: Any = None

    def add_plugin(self, plugin: Plugin) -> None:
        self.host.add_plugin(plugin)

    # ---- lifecycle ---------------------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> Server:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
            max_size=self.max_frame_bytes,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            compression=None,
            open_timeout=self.handshake_timeout_s,
            backlog=self.accept_backlog,
        )
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._drain()
        self.host.stop()
        self.scheduler.shutdown()
        self._auth_threads.shutdown(wait=False)

    def close_in_background(self, ws: ServerConnection, reason: str) -> None:
        closing = asyncio.ensure_future(ws.close(1000, reason))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    # ---- handshake ---------------------------------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX) or len(path) <= len(PATH_PREFIX):
            return connection.respond(HTTPStatus.NOT_FOUND, "Connect to /ocpp/{station_id}\n")
        station_id = path[len(PATH_PREFIX) :].rstrip("/")
        offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
        offered_version = next((SUBPROTOCOLS[p] for p in offered if p in SUBPROTOCOLS), None)
        loop = asyncio.get_running_loop()
        admission: Admission = await loop.run_in_executor(
            self._auth_threads,
            self.host.admit,
            station_id,
            request.headers.get("Authorization"),
            offered_version,
        )
        if admission.status == 401:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, f"{admission.reason}\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="chargetwin", charset="UTF-8"'
            return response
        if not admission.admitted:
            return connection.respond(HTTPStatus(admission.status), f"{admission.reason}\n")
        connection.admission = admission  # type: ignore[attr-defined]
        return None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
        admission: Admission = connection.admission  # type: ignore[attr-defined]
        preferred = next((p for p, v in SUBPROTOCOLS.items() if v == admission.ocpp_version), None)
        if preferred is not None and preferred in subprotocols:
            return Subprotocol(preferred)
        return next((p for p in subprotocols if p in SUBPROTOCOLS), None)

    # ---- connection --------------------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        admission: Admission = ws.admission  # type: ignore[attr-defined]
        version: Version
        if ws.subprotocol is not None:
            version = SUBPROTOCOLS[ws.subprotocol]
        elif ws.request is not None and _offers_any(ws.request.headers):
            await ws.close(1002, "no supported OCPP subprotocol offered")
            return
        else:
            version = parse_version(admission.ocpp_version or OCPP16)
        # The handshake's request and response (their headers: some kB) are not needed once the connection
        # is open; at tens of thousands of connections they would be a good part of what each one costs.
        # websockets tells the handshake from later frames by ``request`` being set (a shared stand-in), and
        # its frame parser keeps the request object alive (emptied here).
        if ws.request is not None:
            ws.request.headers.clear()
        ws.request, ws.response = _OPENED, None
        del ws.admission  # type: ignore[attr-defined]
        station_id = admission.station_id
        link = Link(station_id, ws, self)
        self.links[station_id] = link
        if self.cluster is not None:
            self.cluster.station_connected(station_id)
        connection = link.connection = self.host.connect(admission, version, link)
        try:
            async for frame in ws:
                self.host.receive(connection, frame)
        except ConnectionClosed:
            pass
        finally:
            if self.links.get(station_id) is link:
                del self.links[station_id]
                if self.cluster is not None:
                    self.cluster.station_disconnected(station_id)
            self.host.disconnect(connection, f"closed {ws.close_code}")

    async def _drain(self) -> None:
        """Wait until every gathered piece of work has been committed (shutdown, tests)."""
        for _ in range(500):
            await self.scheduler.idle()
            await asyncio.sleep(0)
            if self.host.idle:
                break
            await asyncio.sleep(0.01)

    # ---- calls from the API ------------------------------------------------------------------------------
    def is_connected(self, station_id: str) -> bool:
        """Connected here, or (in a cluster) to any node."""
        if station_id in self.links:
            return True
        return self.cluster is not None and self.cluster.is_connected_anywhere(station_id)

    async def route_call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """:meth:`call` on whichever node holds the station's socket; the outcome as the API returns it."""
        if self.cluster is not None and station_id not in self.links:
            return await self.cluster.call(station_id, action, payload, timeout_s)
        return (await self.call(station_id, action, payload, timeout_s)).as_dict()

    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> PendingCall:
        """Send a call and wait for its result, error, timeout or cancellation.

        Raises:
            StationNotConnected: no live connection.  LocalCallError: invalid for the station's version.
        """
        future: asyncio.Future[PendingCall] = asyncio.get_running_loop().create_future()

        def done(pending: PendingCall) -> None:
            if not future.done():
                future.set_result(pending)

        self.host.call(station_id, action, payload, timeout_s, on_done=done)
        return await future


def _offers_any(headers: Headers) -> bool:
    return bool(headers.get_all("Sec-WebSocket-Protocol"))


__all__ = ["Gateway", "Link", "StationNotConnected"]
