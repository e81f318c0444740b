"""The WebSocket link: one sans-IO :class:`~simulator.station.charger.Charger` on a real socket to any CSMS.

It is the asyncio counterpart of :mod:`simulator.links.inprocess`: it connects to ``{csms_url}/{station_id}``
with the charger's OCPP subprotocol (and HTTP Basic ``station_id:password`` when a password is given), feeds
every received text frame with ``now``, sends :meth:`Charger.frames_to_send` in order through one writer,
arms one timer at :meth:`Charger.next_deadline`, and follows the charger's own reconnect back-off
(``wants_connection`` / ``connection_failed`` / ``close_requested``). A refused handshake (401, 404, no
listener, timeout) is a ``connection_failed`` and a log line, never an exception.

Time: the charger lives in the run's virtual time. A :class:`LinkClock` converts: ``sync()`` brings the
twin up to the wall clock and returns the charger's ``now`` (called on every input from the loop), ``now()``
reads it without stepping (called from inside the twin's own events), ``wall_delay(t)`` is how many wall
seconds until virtual instant ``t``, and ``kick()`` tells the twin's stepper that something may have
scheduled an earlier event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from csms.core.scheduler import Alarm
from csms.ocpp.versions import VERSION_SUBPROTOCOL
from simulator.links.offer import offer
from simulator.station.charger import Charger
from simulator.station.transfers import Download, Transfer, TransferResult

log = logging.getLogger(__name__)

#: While a handshake is in progress the charger's reconnect deadline is already due; poll it this slowly.
CONNECTING_POLL_S = 0.05
#: A firmware download or log upload that takes longer (wall seconds) has failed.
TRANSFER_TIMEOUT_S = 60.0


class LinkClock(Protocol):
    def now(self) -> float: ...
    def sync(self) -> float: ...
    def wall_delay(self, when: float) -> float: ...
    def kick(self) -> None: ...


class WebSocketLink:
    """Drives one charger over ``ws://`` / ``wss://``; :meth:`start` inside a running loop, :meth:`stop` at the end."""

    def __init__(
        self,
        charger: Charger,
        clock: LinkClock,
        csms_url: str,
        *,
        password: str | None = None,
        on_charger_change: Callable[[Charger], None] | None = None,
        open_timeout_s: float = 10.0,
        on_link: Callable[[str, bool, float], None] | None = None,
        tls_url: str | None = None,
    ) -> None:
        self.charger, self.clock, self.password = charger, clock, password
        #: Where the charger connects once on security profile 2 or 3, unless the CSMS gave it a URL.
        self.tls_url = tls_url
        self.url = f"{csms_url.rstrip('/')}/{quote(charger.station_id, safe='')}"
        self.subprotocol = VERSION_SUBPROTOCOL[charger.version]
        self.on_charger_change = on_charger_change or (lambda _c: None)
        self.open_timeout_s = open_timeout_s
        self.on_link = on_link  # the twin's truth: (station, up, now) when a connection opens or drops
        self.network_up = True
        #: Host cut-overs (a platform migration): ``host:port`` the charger dials -> where it leads now
        #: (None: nowhere, the old endpoint is switched off). What the charger is configured with is unchanged.
        self.hosts: dict[str, str | None] = {}
        self._dialled = ""  # the host:port the charger dialled last (before the cut-overs)
        #: The host:port the open connection reached, and whether a host cut-over led it there (else it is
        #: where the charger itself dialled: its configured or re-pointed URL).
        self.reached = ""
        self.via_cut_over = False
        self.ws: ClientConnection | None = None
        self._outbox: deque[str] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self._transfers: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._connecting = False
        self._alarm = Alarm(_TwinTimers(clock, self._timer_floor_s), self._on_timer)
        self._stopping = False
        self._last_failure: str | None = None
        # counters, for the report and tests
        self.frames_sent = 0
        self.frames_received = 0
        self.attempts = 0
        self.failures: list[str] = []

    # ---- life cycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"link {self.charger.station_id}")

    async def stop(self) -> None:
        """Close the socket and end every task of this link (bounded)."""
        self._stopping = True
        self._alarm.disarm()
        self._wake.set()
        ws, self.ws = self.ws, None
        tasks = [t for t in (self._task, self._writer, *self._closers, *self._transfers) if t is not None]
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "run ended"), timeout=2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def connected(self) -> bool:
        return self.ws is not None

    # ---- the fleet's entry points (called from the twin's events, so they never step the clock) ---------
    def poke(self) -> None:
        """The twin changed the charger (plug-in, unplug, ...): send what it has to say."""
        self._pump()

    def set_network(self, up: bool) -> None:
        """A network outage (the ``link_down`` fault) starts or ends: the socket dies, attempts fail meanwhile."""
        self.network_up = up
        if not up:
            self._drop("link down")
        self._wake.set()

    def cut_over(self, host: str, to: str | None) -> None:
        """The name ``host`` (``host:port``) now leads to ``to`` (None: nowhere), as when the operator changes
        DNS or the load balancer: a connection to it is closed, the next attempt dials the new address with
        the same path, password and certificate (the new CSMS accepts the old path: ``--accept-path``)."""
        self.hosts[host] = to
        if self.ws is not None and self._dialled == host:
            self._drop(f"host cut-over of {host}")
        self._wake.set()

    def _resolve(self, url: str) -> str | None:
        """``url`` after the host cut-overs (None: its host leads nowhere)."""
        parts = urlsplit(url)
        if parts.netloc not in self.hosts:
            return url
        to = self.hosts[parts.netloc]
        return None if to is None else parts._replace(netloc=to).geturl()

    # ---- connection --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self.clock.sync()
            if self.ws is None and self.charger.wants_connection(now):
                if self.network_up:
                    await self._connect_and_serve()
                else:
                    self._failed("no network (link down)")
                continue
            await self._wake.wait()

    def _target(self) -> tuple[str, dict[str, str], ssl.SSLContext | None]:
        """Where and how the next attempt connects: the charger's own URL, password and TLS settings (a CSMS
        may have changed them: SetNetworkProfile, AuthorizationKey, SecurityProfile) before the run's."""
        security = self.charger.security
        url = self.url
        base = security.csms_url or (self.tls_url if security.profile >= 2 else None)
        if base:
            url = f"{base.rstrip('/')}/{quote(self.charger.station_id, safe='')}"
        offered = offer(self.charger, url, self.password)
        headers = {"Authorization": offered.authorization} if offered.authorization else {}
        return url, headers, offered.tls if url.startswith("wss://") else None

    async def _connect_and_serve(self) -> None:
        self.attempts += 1
        try:
            url, headers, context = self._target()
        except ssl.SSLError as exc:
            self._failed(f"TLS: {exc}")
            return
        self._dialled = urlsplit(url).netloc
        resolved = self._resolve(url)
        if resolved is None:
            self._failed(f"{urlsplit(url).netloc} leads nowhere (the old CSMS's endpoint is switched off)")
            return
        via_cut_over, url = resolved != url, resolved
        self._connecting = True
        try:
            ws = await connect(
                url,
                subprotocols=[Subprotocol(self.subprotocol)],
                additional_headers=headers,
                open_timeout=self.open_timeout_s,
                compression=None,
                ssl=context,
            )
        except InvalidStatus as exc:
            self._failed(f"HTTP {exc.response.status_code} at the handshake")
            return
        except (WebSocketException, OSError, TimeoutError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._connecting = False
        if self._stopping or not self.network_up or ws.subprotocol != self.subprotocol:
            reason = "no network (link down)" if not self.network_up else f"subprotocol {ws.subprotocol!r} agreed"
            await ws.close(1000 if not self._stopping else 1001)
            if not self._stopping:
                self._failed(reason)
            return
        self.ws = ws
        self.reached, self.via_cut_over = urlsplit(url).netloc, via_cut_over
        self._last_failure = None
        log.info("%s: connected to %s (%s)", self.charger.station_id, self.url, self.subprotocol)
        now = self.clock.sync()
        if self.on_link is not None:
            self.on_link(self.charger.station_id, True, now)
        self.charger.connected(now)
        self._pump()
        await self._serve(ws)

    async def _serve(self, ws: ClientConnection) -> None:
        """Hand every text frame to the charger until the socket closes or is replaced."""
        try:
            async for frame in ws:
                if self.ws is not ws:
                    break
                if isinstance(frame, bytes):  # OCPP-J is text; a binary frame is the CSMS's mistake
                    log.warning("%s: binary frame ignored", self.charger.station_id)
                    continue
                self.frames_received += 1
                self.charger.receive_frame(frame, self.clock.sync())
                self._pump()
        except ConnectionClosed:
            pass
        if self.ws is ws:
            self.clock.sync()
            self._drop(f"closed by the CSMS ({ws.close_code})")

    def _failed(self, reason: str) -> None:
        """A connection attempt failed: a log line (once per distinct reason), then the charger's back-off."""
        self.failures.append(reason)
        level = logging.WARNING if reason != self._last_failure else logging.DEBUG
        log.log(
            level, "%s: cannot connect to %s: %s; retrying with back-off", self.charger.station_id, self.url, reason
        )
        self._last_failure = reason
        self.charger.connection_failed(self.clock.now())
        self._pump()

    def _drop(self, detail: str) -> None:
        """Forget the socket (closing it in the background) and tell the charger the link is down."""
        ws, self.ws = self.ws, None
        if ws is None:
            return
        log.info("%s: disconnected: %s", self.charger.station_id, detail)
        self._outbox.clear()
        closer = asyncio.get_running_loop().create_task(self._close(ws))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)
        now = self.clock.now()
        if self.on_link is not None:
            self.on_link(self.charger.station_id, False, now)
        self.charger.disconnected(now)
        self._pump()

    @staticmethod
    async def _close(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(1000), timeout=2.0)

    # ---- frames and timer ------------------------------------------------------------------------------
    def _pump(self) -> None:
        frames = self.charger.frames_to_send()
        if frames and self.ws is not None:
            self._outbox.extend(frames)
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write())
        if self.charger.close_requested():
            self._drop("closed by the station")
        for request in self.charger.transfers_to_start():
            task = asyncio.get_running_loop().create_task(self._transfer(request))
            self._transfers.add(task)
            task.add_done_callback(self._transfers.discard)
        self._arm(self.charger.next_deadline())
        self.on_charger_change(self.charger)
        self.clock.kick()

    async def _transfer(self, request: Transfer) -> None:
        """A download (GET) or upload (POST multipart/form-data, the file as its one part) over real HTTP; a
        refusal (4xx/5xx, e.g. 413 over the CSMS's limit) or a network error is a failed transfer."""
        try:
            if not self.network_up:  # the outage cuts HTTP as well as the WebSocket
                raise httpx.ConnectError("no network (link down)")
            async with httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S, follow_redirects=True) as client:
                if isinstance(request, Download):
                    response = await client.get(request.url)
                else:
                    files = {"file": (request.file_name, request.content, request.content_type)}
                    response = await client.post(request.url, files=files)
            ok = response.is_success
            result = TransferResult(
                request.transfer_id,
                ok,
                response.content if ok and isinstance(request, Download) else b"",
                "" if ok else f"HTTP {response.status_code}",
            )
        except httpx.HTTPError as exc:
            result = TransferResult(request.transfer_id, False, detail=f"{type(exc).__name__}: {exc}")
        if not result.ok:
            log.warning(
                "%s: transfer of %s failed: %s", self.charger.station_id, request.url.split("?")[0], result.detail
            )
        if self._stopping:
            return
        self.charger.transfer_done(result, self.clock.sync())
        self._pump()

    async def _write(self) -> None:
        """The only writer, so frames leave in the order the charger produced them."""
        while self._outbox and (ws := self.ws) is not None:
            frame = self._outbox.popleft()
            try:
                await ws.send(frame)
            except ConnectionClosed:
                continue  # the reader notices the close; what was queued for this socket is gone with it
            self.frames_sent += 1

    def _arm(self, deadline: float | None) -> None:
        if not self._stopping:
            self._alarm.arm(deadline)

    def _timer_floor_s(self) -> float:
        """While a handshake is under way, the charger's past-due deadlines wait a little (no busy loop)."""
        return CONNECTING_POLL_S if self._connecting else 0.0

    def _on_timer(self) -> None:
        if self._stopping:
            return
        now = self.clock.sync()
        self.charger.handle_timer(now)
        if self.ws is None and self.charger.wants_connection(now):
            self._wake.set()
        self._pump()


class _TwinTimers:
    """The twin's clock as :class:`~csms.core.scheduler.Timers` in real time: ``now`` is the chargers' POSIX
    time, a callback runs at the wall time of its twin instant (at least ``floor()`` wall seconds ahead)."""

    def __init__(self, clock: LinkClock, floor: Callable[[], float]) -> None:
        self.clock, self.floor = clock, floor

    def now(self) -> float:
        return self.clock.now()

    def call_at(self, when: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        delay = max(self.clock.wall_delay(when), self.floor(), 0.0)
        return asyncio.get_running_loop().call_later(delay, fn)

    def cancel(self, handle: asyncio.TimerHandle) -> None:
        handle.cancel()
