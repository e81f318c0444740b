"""The OCPP-J WebSocket gateway: the asyncio shell around :class:`~csms.core.session.StationSession`.

Per connection it does three things only: feed each frame with ``now``, mark the session for the next group
commit, and send what the session has to send (arming one timer for its next deadline). A single worker
task commits the gathered work of all stations in one database transaction on a worker thread, so the event
loop that holds the sockets never waits for the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from csms.core.processor import BatchProcessor, release
from csms.core.session import StationSession
from csms.domain.events import Decision, StationReport
from csms.gateway.auth import Admission, Admissions
from csms.ocpp.convert import from_posix
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import SUBPROTOCOLS, VERSION_SUBPROTOCOL
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.services.uow import UnitOfWork

log = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"


class StationNotConnected(LookupError):
    pass


class StationObserver(Protocol):
    """Told about connections and about what each committed batch handled (the alert monitor implements it).

    Called on the event loop, after the fact; must not block (hand database work to a thread).
    """

    def connected(self, station_id: str, version: str, now: float) -> None: ...

    def disconnected(self, station_id: str, now: float) -> None: ...

    def committed(self, station_id: str, reports: list[tuple[StationReport, Decision]], now: float) -> None: ...


class Observers:
    """Several observers behind the one hook: each is told in the order it was added; one that raises is
    logged and does not keep the others from hearing."""

    def __init__(self, *observers: StationObserver) -> None:
        self.observers: list[StationObserver] = list(observers)

    def add(self, observer: StationObserver) -> None:
        self.observers.append(observer)

    def _each(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                log.exception("observer %r failed in %s", observer, method)

    def connected(self, station_id: str, version: str, now: float) -> None:
        self._each("connected", station_id, version, now)

    def disconnected(self, station_id: str, now: float) -> None:
        self._each("disconnected", station_id, now)

    def committed(self, station_id: str, reports: list[tuple[StationReport, Decision]], now: float) -> None:
        self._each("committed", station_id, reports, now)


@dataclass(eq=False)
class Link:
    """One live connection: the socket, its session, its timer and the API futures waiting on its calls."""

    station_id: str
    ws: ServerConnection
    session: StationSession
    connected_at: float
    timer: asyncio.TimerHandle | None = None
    waiters: dict[int, asyncio.Future[PendingCall]] = field(default_factory=dict)
    outbox: deque[str] = field(default_factory=deque)
    writer: asyncio.Future[None] | None = None
    closed: bool = False


class Gateway:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        config: CsmsConfig,
        *,
        max_frame_bytes: int = 256 * 1024,
        ping_interval_s: float | None = 30.0,
        ping_timeout_s: float | None = 30.0,
    ) -> None:
        self.config = config
        self.session_factory = session_factory
        self.admissions = Admissions(session_factory, config)
        self.processor = BatchProcessor(session_factory, config)
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.links: dict[str, Link] = {}
        self._dirty: dict[Link, None] = {}
        self._wake = asyncio.Event()
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csms-commit")
        self._auth_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="csms-auth")
        self._worker: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self._connection_count = 0
        self._closing: set[asyncio.Future[None]] = set()
        #: Optional hook (uptime/alerts, load management): connections and committed reports. None: nobody
        #: listens. :meth:`add_observer` adds one more (an :class:`Observers` fan-out).
        self.observer: StationObserver | None = None
        #: :class:`csms.runtime.cluster.Cluster` when this process is one node of several (``--broker``).
        self.cluster: Any = None

    def add_observer(self, observer: StationObserver) -> None:
        if self.observer is None:
            self.observer = observer
        elif isinstance(self.observer, Observers):
            self.observer.add(observer)
        else:
            self.observer = Observers(self.observer, observer)

    # ---- lifecycle ---------------------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> Server:
        self._worker = asyncio.create_task(self._commit_loop(), name="csms-group-commit")
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            subprotocols=list(SUBPROTOCOLS),
            max_size=self.max_frame_bytes,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            compression=None,
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
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._db_thread.shutdown(wait=True)
        self._auth_threads.shutdown(wait=False)

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
            self.admissions.admit,
            station_id,
            request.headers.get("Authorization"),
            offered_version,
        )
        if admission.status == 401:
            response = connection.respond(HTTPStatus.UNAUTHORIZED, f"{admission.reason}\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="chargetwin", charset="UTF-8"'
            return response
        if admission.status != 101:
            return connection.respond(HTTPStatus(admission.status), f"{admission.reason}\n")
        connection.admission = admission  # type: ignore[attr-defined]
        return None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> str | None:
        admission: Admission = connection.admission  # type: ignore[attr-defined]
        preferred = VERSION_SUBPROTOCOL.get(admission.ocpp_version or "")  # type: ignore[arg-type]
        if preferred in subprotocols:
            return preferred
        return next((p for p in subprotocols if p in SUBPROTOCOLS), None)

    # ---- connection --------------------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        admission: Admission = ws.admission  # type: ignore[attr-defined]
        if ws.subprotocol is not None:
            version = SUBPROTOCOLS[ws.subprotocol]
        elif ws.request is not None and _offers_any(ws.request.headers):
            await ws.close(1002, "no supported OCPP subprotocol offered")
            return
        else:
            version = admission.ocpp_version or "1.6"  # type: ignore[assignment]
        station_id = admission.station_id
        self._connection_count += 1
        session = StationSession(
            station_id,
            version,  # type: ignore[arg-type]
            self.config,
            registration_status=admission.registration_status,
            id_prefix=f"{self._connection_count:x}-",
        )
        now = time.time()
        link = Link(station_id, ws, session, connected_at=now)
        previous = self.links.get(station_id)
        self.links[station_id] = link
        if self.cluster is not None:
            self.cluster.station_connected(station_id)
        if previous is not None:
            await self._close_link(previous, "replaced by a new connection")
            # Closing waits for the old peer's close handshake (up to its timeout when it is half-open):
            # do it in the background so the new connection is served at once.
            closing = asyncio.ensure_future(previous.ws.close(1000, "replaced by a new connection"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            now = time.time()  # after the old link's "disconnected", so the history reads in order by time
        session.record(lambda uow: stations.connection_changed(uow, station_id, "connected", _dt(now)))
        self._mark(link)
        if self.observer is not None:
            self.observer.connected(station_id, version, now)
        try:
            async for frame in ws:
                session.receive_frame(frame, time.time())
                self._after_input(link)
        except ConnectionClosed:
            pass
        finally:
            if self.links.get(station_id) is link:
                del self.links[station_id]
                if self.cluster is not None:
                    self.cluster.station_disconnected(station_id)
            await self._close_link(link, f"closed {ws.close_code}")

    async def _close_link(self, link: Link, detail: str) -> None:
        if link.closed:
            return
        link.closed = True
        now = time.time()
        link.session.close(now)
        self._resolve(link)
        if link.timer:
            link.timer.cancel()
        link.session.record(
            lambda uow: stations.connection_changed(uow, link.station_id, "disconnected", _dt(now), detail)
        )
        self._mark(link)
        if self.observer is not None:
            self.observer.disconnected(link.station_id, now)

    def _after_input(self, link: Link) -> None:
        self._resolve(link)
        if link.session.has_work():
            self._mark(link)
        self._flush(link)

    def _mark(self, link: Link) -> None:
        self._dirty[link] = None
        self._wake.set()

    def _flush(self, link: Link) -> None:
        frames = link.session.frames_to_send()
        if frames and not link.closed:
            link.outbox.extend(frames)
            if link.writer is None or link.writer.done():
                link.writer = asyncio.ensure_future(_write(link))
        self._arm_timer(link)

    def _arm_timer(self, link: Link) -> None:
        deadline = link.session.next_deadline()
        if link.timer:
            link.timer.cancel()
            link.timer = None
        if deadline is not None and not link.closed:
            loop = asyncio.get_running_loop()
            link.timer = loop.call_at(loop.time() + max(0.0, deadline - time.time()), self._on_timer, link)

    def _on_timer(self, link: Link) -> None:
        link.timer = None
        link.session.handle_timer(time.time())
        self._resolve(link)
        self._flush(link)

    def _resolve(self, link: Link) -> None:
        for pending in link.session.completed_calls():
            future = link.waiters.pop(id(pending), None)
            if future is not None and not future.done():
                future.set_result(pending)

    # ---- group commit ------------------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            links, self._dirty = list(self._dirty), {}
            batch = [(link.session, link.session.take_work()) for link in links]
            batch_links = [link for link, (_, work) in zip(links, batch, strict=True) if work or work.log_rows]
            batch = [(s, w) for s, w in batch if w or w.log_rows]
            if not batch:
                continue
            started = time.time()
            results = await loop.run_in_executor(self._db_thread, self.processor.process, batch, started)
            release(results, batch)
            if self.observer is not None:  # after the commit: observers only see what was stored
                for session, staged in results:
                    if staged is not None and staged.reports:
                        self.observer.committed(session.station_id, staged.reports, started)
            for link in batch_links:
                self._flush(link)

    async def _drain(self) -> None:
        """Wait until every gathered piece of work has been committed (shutdown, tests)."""
        for _ in range(100):
            if not self._dirty and not self._wake.is_set():
                await asyncio.sleep(0)
                if not self._dirty:
                    break
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._db_thread, lambda: None)

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
        link = self.links.get(station_id)
        if link is None:
            raise StationNotConnected(station_id)
        pending = link.session.send_call(action, payload, time.time(), timeout_s)
        future: asyncio.Future[PendingCall] = asyncio.get_running_loop().create_future()
        link.waiters[id(pending)] = future
        self._flush(link)
        self._mark(link)  # the message log row
        return await future


def _offers_any(headers: Headers) -> bool:
    return bool(headers.get_all("Sec-WebSocket-Protocol"))


_dt = from_posix


async def _write(link: Link) -> None:
    """The link's only writer, so frames leave in the order the session produced them."""
    with contextlib.suppress(ConnectionClosed):
        while link.outbox:
            await link.ws.send(link.outbox.popleft())


__all__ = ["Gateway", "Observers", "StationNotConnected", "UnitOfWork"]
