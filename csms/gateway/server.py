"""The OCPP-J WebSocket gateway: the asyncio shell around :class:`~csms.core.host.CsmsHost`.

It does transport and clock only: the WebSocket handshake (path, HTTP Basic through the host's admission
rule on a thread pool, subprotocol), frames in and out in order, keepalive pings, and the asyncio
:class:`~csms.gateway.scheduler.AsyncioScheduler` that runs the host's timers on the loop and its group
commits on a worker thread. Every rule of the CSMS lives in the host, its sessions and plugins.

Each connection is one :class:`Link`: an ``asyncio.Protocol`` around websockets' sans-IO
:class:`~websockets.server.ServerProtocol`. The websockets asyncio server would give each connection a
connection object with its own queues, a handler task, a keepalive task and their futures — about 10 kB
that an idle charger does not need. Here an idle connection is its transport, its protocol state and the
host's session; one gateway task sends the keepalive pings of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from websockets.exceptions import InvalidState, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING, OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

from csms import log_context
from csms.core.host import Connection, CsmsHost, Plugin, StationNotConnected
from csms.gateway.collector import CollectorPacing
from csms.gateway.fast_frames import between_frames, can_write_plain, plain_frames, text_frames
from csms.gateway.frame_rate import FLOOD_EVENT, POLICY_VIOLATION, FrameRate
from csms.gateway.lookups import ThreadedLookups
from csms.gateway.scheduler import AsyncioScheduler
from csms.gateway.tls import TlsHandshake, channel_of
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import OCPP16, SUBPROTOCOLS, Version, parse_version
from csms.pki.lookups import Lookups
from csms.services.admission import REFUSED_REASON, Admission, record_bad_certificate
from csms.services.config import CsmsConfig

log = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"
OFFERED = [Subprotocol(p) for p in SUBPROTOCOLS]
CLOSE_TIMEOUT_S = 10.0  # for the peer's part of a closing handshake, as websockets' default
#: When the gateway stops: how long all peers together get to answer the 1001 close frames before the rest of
#: the sockets are aborted. Everything that arrived before the close is committed either way, and a peer that
#: answers late has nothing left to say that the stop would store; waiting for each one (up to the shutdown
#: grace) only kept 10,000 chargers from reconnecting to the next process (issue 13).
STOP_CLOSE_WAIT_S = 1.0
#: At most this much is read from a socket at a time (an OCPP frame is a few hundred bytes; a larger one, up to
#: ``max_frame_bytes``, arrives over several reads).
READ_BUFFER_BYTES = 64 * 1024


class _ServerProtocol(ServerProtocol):
    """websockets' sans-IO server side, choosing the subprotocol of the admitted station's version."""

    admission: Admission | None = None  # set for the duration of ``accept``

    def select_subprotocol(self, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
        assert self.admission is not None
        preferred = next((p for p, v in SUBPROTOCOLS.items() if v == self.admission.ocpp_version), None)
        if preferred is not None and preferred in subprotocols:
            return Subprotocol(preferred)
        return next((p for p in subprotocols if p in SUBPROTOCOLS), None)


class Link(asyncio.BufferedProtocol):
    """One WebSocket connection: the asyncio protocol around websockets' sans-IO protocol, and the host's
    :class:`~csms.core.host.Transport` once the handshake admitted the station.

    Tens of thousands live at once, so it holds only what an idle connection needs (slots; a timer only
    during the handshake and the closing handshake; message fragments only while a message is split)."""

    __slots__ = (
        "allowance", "connection", "counted_at", "fragments", "gateway", "next_ping", "ping_sent", "protocol",
        "resume", "station_id", "timer", "transport",
    )  # fmt: skip

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.protocol = _ServerProtocol(subprotocols=OFFERED, max_size=gateway.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self.station_id = ""
        self.connection: Connection | None = None
        self.fragments: tuple[Opcode, bytearray] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.next_ping = 0.0
        self.ping_sent: float | None = None
        # The frame-rate bucket (see csms.gateway.frame_rate): tokens left, when last counted, the timer that
        # resumes reading a paused connection.
        self.allowance = gateway.frame_rate.burst if gateway.frame_rate is not None else 0.0
        self.counted_at = 0.0
        self.resume: asyncio.TimerHandle | None = None

    # ---- asyncio ---------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(self.gateway.handshake_timeout_s, transport.abort)

    def get_buffer(self, sizehint: int) -> memoryview:
        # One buffer for every connection's reads (the loop reads one socket at a time): otherwise asyncio
        # allocates 256 kB per read of a few hundred bytes and shrinks it, on the hot path of every frame.
        return self.gateway.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.gateway.read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        rate = self.gateway.frame_rate
        if rate is not None:
            self._refill(rate)
        if self.connection is not None and between_frames(self.protocol):
            if not self._plain_frames(data, rate):
                return
        else:
            self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                self._admit(event)
            elif isinstance(event, Frame):
                if rate is not None and self._floods(rate):
                    return  # the rest of what was read is not looked at
                self._frame(event)
        if rate is not None and self.allowance < 0:
            self._pause(rate)
        self._flush()

    def _plain_frames(self, data: bytes, rate: FrameRate | None) -> bool:
        """Whole plain frames read here (see :mod:`csms.gateway.fast_frames`), the rest handed to websockets from
        the first frame it has to read; False when the connection was closed for flooding."""
        frames, read = plain_frames(data, self.protocol.max_message_size)
        for opcode, payload in frames:
            if rate is not None and self._floods(rate):
                return False  # the rest of what was read is not looked at
            self._message(opcode, payload)
        if read < len(data):
            self.protocol.receive_data(data[read:])
        return True

    def _floods(self, rate: FrameRate) -> bool:
        """A frame is counted; past the burst the connection is closed (True)."""
        self.allowance -= 1
        if rate.floods(self.allowance):
            self._close_flood(rate)
            return True
        return False

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self.resume is not None:
            self.resume.cancel()
            self.resume = None
        self.protocol.receive_eof()  # idempotent; moves the state to CLOSED so the close code is known
        connection, self.connection = self.connection, None
        if connection is not None:
            self.gateway.closed(self, connection, f"closed {self.protocol.close_code}")

    # ---- handshake -------------------------------------------------------------------------------------------
    def _admit(self, request: Request) -> None:
        path = request.path.split("?", 1)[0]
        prefix = next((p for p in self.gateway.path_prefixes if path.startswith(p) and len(path) > len(p)), None)
        if prefix is None:
            self.gateway.refused("bad_path")
            self._refuse(HTTPStatus.NOT_FOUND, "Connect to /ocpp/{station_id}\n")
            return
        station_id = path[len(prefix) :].rstrip("/")
        offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
        offered_version = next((SUBPROTOCOLS[p] for p in offered if p in SUBPROTOCOLS), None)
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        channel = channel_of(self.transport)
        if self.gateway.host.refuse_early(channel):
            self.gateway.refused("throttled")
            self._unauthorized(REFUSED_REASON)
            return
        checked = loop.run_in_executor(
            self.gateway.auth_threads,
            self.gateway.host.admit,
            station_id,
            request.headers.get("Authorization"),
            offered_version,
            channel,
        )
        checked.add_done_callback(lambda future: self._admitted(request, bool(offered), future))

    def _admitted(self, request: Request, offered_any: bool, future: asyncio.Future[Admission] | Future) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            admission: Admission = future.result()
        except Exception:
            log.exception("admission failed")
            self.gateway.refused("admission_failed")
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, "admission failed\n")
            return
        if not admission.admitted:
            self.gateway.refused(admission.refusal or str(admission.status))
            log.info("handshake refused (%d %s)", admission.status, admission.reason,
                     extra={"station_id": admission.station_id, "peer": _host_of(self.remote_address)})  # fmt: skip
            if admission.status == 401:
                self._unauthorized(admission.reason)
            else:
                self._refuse(HTTPStatus(admission.status), f"{admission.reason}\n")
            return
        self.protocol.admission = admission
        response = self.protocol.accept(request)
        del self.protocol.admission
        self._respond(response)
        # websockets' frame parser keeps the request alive for the connection's life: its headers (some kB,
        # a good part of what an idle connection would cost) are not needed past this point.
        request.headers.clear()
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS or self.protocol.state is not OPEN:
            return
        _drop_handshake_parser(self.protocol)
        self._cancel_timer()
        version: Version
        if self.protocol.subprotocol is not None:
            version = SUBPROTOCOLS[self.protocol.subprotocol]
        elif offered_any:
            self.gateway.refused("no_subprotocol")
            self.protocol.send_close(1002, "no supported OCPP subprotocol offered")
            self._flush()
            return
        else:
            version = parse_version(admission.ocpp_version or OCPP16)
        self.station_id = admission.station_id
        self.next_ping = asyncio.get_running_loop().time() + (self.gateway.ping_interval_s or 0.0)
        self.connection = self.gateway.opened(self, admission, version)

    def _unauthorized(self, reason: str) -> None:
        response = self.protocol.reject(HTTPStatus.UNAUTHORIZED, f"{reason}\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="chargetwin", charset="UTF-8"'
        self._respond(response)

    def _refuse(self, status: HTTPStatus, text: str) -> None:
        self._respond(self.protocol.reject(status, text))

    def _respond(self, response: Response) -> None:
        self.protocol.send_response(response)
        self._flush()

    # ---- frames ----------------------------------------------------------------------------------------------
    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode, bytes(frame.data))
            else:
                self.fragments = (opcode, bytearray(frame.data))
        elif opcode is Opcode.CONT and self.fragments is not None:
            self.fragments[1].extend(frame.data)
            if frame.fin:
                (opcode, data), self.fragments = self.fragments, None
                self._message(opcode, bytes(data))
        elif opcode is Opcode.PONG:
            self.ping_sent = None
            self.next_ping = asyncio.get_running_loop().time() + (self.gateway.ping_interval_s or 0.0)
        # PING and CLOSE: the protocol has queued its answer already.

    def _message(self, opcode: Opcode, data: bytes) -> None:
        if self.connection is None:
            return
        if opcode is Opcode.TEXT:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8")
                return
            self.gateway.frame_context.run(self._receive, text)
        else:
            self.gateway.frame_context.run(self._receive, data)

    def _receive(self, frame: str | bytes) -> None:
        assert self.connection is not None
        with log_context.bound(station_id=self.station_id):
            self.gateway.host.receive(self.connection, frame)

    # ---- frame rate -------------------------------------------------------------------------------------------
    def _refill(self, rate: FrameRate) -> None:
        now = asyncio.get_running_loop().time()
        elapsed = now - self.counted_at if self.counted_at else 0.0
        self.allowance, self.counted_at = rate.take(self.allowance, elapsed, 0), now

    def _pause(self, rate: FrameRate) -> None:
        """Past the allowance: the socket is not read again until the debt is paid."""
        if self.resume is not None or self.transport is None or self.protocol.state is not OPEN:
            return
        self.gateway.pauses += 1
        self.transport.pause_reading()
        self.resume = asyncio.get_running_loop().call_later(rate.pause_s(self.allowance), self.resume_reading)

    def _close_flood(self, rate: FrameRate) -> None:
        log.warning("station %s closed: floods beyond %g frames/s", self.station_id, rate.per_second)
        self.gateway.flooders_closed += 1
        if self.connection is not None:
            peer = self.remote_address
            detail = {"frames_per_s": rate.per_second, "burst": rate.burst, "close_code": POLICY_VIOLATION}
            source = peer[0] if isinstance(peer, tuple) and peer else None
            self.gateway.host.security_event(self.connection, FLOOD_EVENT, detail, source)
        # Close frame and FIN at once, nothing more read: no closing handshake, which would mean reading the
        # flood on until its close frame turns up (the close timer of _flush aborts the socket).
        self.protocol.fail(POLICY_VIOLATION, f"more than {rate.per_second:g} frames/s")
        if self.transport is not None:
            self.transport.pause_reading()
        self._flush()

    def resume_reading(self) -> None:
        self.resume = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _flush(self) -> None:
        transport = self.transport
        assert transport is not None
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if self.protocol.close_expected() and self.timer is None and not transport.is_closing():
            self.timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.abort)

    def quiet(self) -> None:
        """Read nothing more from the peer (the gateway stops): what it sends now waits in the socket."""
        if self.resume is not None:
            self.resume.cancel()
            self.resume = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # ---- the host's transport --------------------------------------------------------------------------------
    def send(self, frames: list[str]) -> None:
        if self.protocol.state is not OPEN:
            return
        if self.transport is not None and can_write_plain(self.protocol):
            self.transport.write(text_frames(frames))
            return
        for frame in frames:
            self.protocol.send_text(frame.encode())
        self._flush()

    def end(self, reason: str) -> None:
        """The operator withdrew what admitted this connection: no frame is served from now on, and the
        socket closes (1008, policy violation)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            self.gateway.closed(self, connection, reason)
        self.close(reason, 1008)

    def close(self, reason: str, code: int = 1000) -> None:
        if self.protocol.state is OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.protocol.state is CONNECTING and self.transport is not None:
            self.transport.abort()

    # ---- keepalive -------------------------------------------------------------------------------------------
    def keepalive(self, now: float, interval: float, timeout: float | None) -> None:
        if self.protocol.state is not OPEN:
            return
        if self.ping_sent is not None:
            if timeout is not None and now - self.ping_sent > timeout and self.transport is not None:
                # The peer is gone or stuck: no closing handshake to wait for.
                self.protocol.fail(1011, "keepalive ping timeout")
                self._flush()
                self.transport.abort()
        elif now >= self.next_ping:
            with contextlib.suppress(InvalidState, ProtocolError):
                self.protocol.send_ping(b"")
                self.ping_sent = now
                self._flush()

    @property
    def remote_address(self) -> Any:
        return None if self.transport is None else self.transport.get_extra_info("peername")


class Gateway:
    def __init__(  # noqa: PLR0913 - one keyword-only option per transport setting
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
        collector: CollectorPacing | None = None,
        lookups: Lookups | None = None,
        frame_rate: FrameRate | None = FrameRate(),
        accept_paths: Sequence[str] = (),
        stop_close_wait_s: float = STOP_CLOSE_WAIT_S,
    ) -> None:
        self.config = config
        #: Where stations connect: /ocpp/ and the aliases (a former CSMS's path, for a DNS cut-over).
        self.path_prefixes = (PATH_PREFIX, *(p.rstrip("/") + "/" for p in accept_paths))
        self.session_factory = session_factory
        self.scheduler = scheduler or AsyncioScheduler()
        self.lookups = lookups or ThreadedLookups(config.lookup_timeout_s)
        self.host = CsmsHost(session_factory, config, self.scheduler, self.lookups)
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        # A fleet reconnecting at once (boot storm, after a blackout) arrives faster than the loop accepts;
        # Python's default backlog of 100 makes the kernel drop SYNs, and the 10 s default opening
        # handshake times out while admissions queue behind scrypt.  The kernel caps the backlog at somaxconn.
        self.accept_backlog = accept_backlog
        self.handshake_timeout_s = handshake_timeout_s
        #: The bound on waiting for the peers' closing handshakes when the gateway stops (see STOP_CLOSE_WAIT_S).
        self.stop_close_wait_s = stop_close_wait_s
        #: Frames per second and burst per connection (None: unlimited); see :mod:`csms.gateway.frame_rate`.
        self.frame_rate = frame_rate
        #: How often a connection was paused for its frame rate, and how many were closed for flooding.
        self.pauses = 0
        self.flooders_closed = 0
        #: Handshakes refused, by reason (the security event's type where there is one): for the metrics.
        self.refusals: dict[str, int] = {}
        self.links: dict[str, Link] = {}
        #: While the gateway stops: the connections that ended, told to the host in one batch at the end.
        self._ended: list[tuple[Connection, str]] | None = None
        self.auth_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="csms-auth")
        self._server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._keepalive: asyncio.Task[None] | None = None
        #: Pauses of the garbage collector kept short while many connections are held (see its module).
        self.collector = collector or CollectorPacing()
        #: How long each step of the last :meth:`stop` took, in order (name, seconds).
        self.stop_steps: list[tuple[str, float]] = []
        #: :class:`csms.runtime.cluster.Cluster` when this process is one node of several (``--broker``).
        self.cluster: Any = None
        #: Where every connection's frames are served (the log context is bound there, per frame). asyncio runs a
        #: socket's callbacks in a copy of the context it was opened in, kept for the connection's life; binding
        #: in that copy left each one its own context mapping (~120 bytes a connection held).
        self.frame_context = contextvars.copy_context()
        #: What each connection's socket is read into (see :meth:`Link.get_buffer`).
        self.read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))

    def add_plugin(self, plugin: Plugin) -> None:
        self.host.add_plugin(plugin)

    # ---- lifecycle ---------------------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Link(self), host, port, backlog=self.accept_backlog)
        if self.ping_interval_s:
            self._keepalive = asyncio.create_task(self._ping_all(self.ping_interval_s), name="csms-keepalive")
        self.collector.start()
        return self._server

    async def start_tls(self, host: str, port: int, context: ssl.SSLContext) -> asyncio.Server:
        """A second listener for ``wss://`` (security profiles 2 and 3), beside the plain one of :meth:`start`.

        The TLS handshake runs in :class:`~csms.gateway.tls.TlsHandshake` rather than in the server
        (``create_server(ssl=…)`` drops a failed handshake without a word): a client certificate the
        handshake refuses (expired, self-signed, another CA) is recorded as a ``bad_certificate`` event."""
        loop = asyncio.get_running_loop()
        self._tls_server = await loop.create_server(
            lambda: TlsHandshake(context, self.handshake_timeout_s, lambda: Link(self), self.tls_refused),
            host,
            port,
            backlog=self.accept_backlog,
        )
        return self._tls_server

    def tls_refused(self, source: str | None, error: ssl.SSLCertVerificationError) -> None:
        """A client certificate failed the TLS handshake: a ``bad_certificate`` security event."""
        self.refused("bad_certificate")
        reason = str(error.verify_message or error.reason or error)
        at = datetime.fromtimestamp(self.scheduler.now(), UTC)

        def store() -> None:
            with self.session_factory() as db:
                record_bad_certificate(db, reason, source, at)
                db.commit()

        future = asyncio.get_running_loop().run_in_executor(self.auth_threads, store)
        future.add_done_callback(_log_failure)

    def refused(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    @property
    def listening(self) -> bool:
        """The plain listener accepts connections (readiness)."""
        return self._server is not None and self._server.is_serving()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def tls_port(self) -> int | None:
        return None if self._tls_server is None else self._tls_server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        """Refuse new connections from now on; held ones stay."""
        for server in (self._server, self._tls_server):
            if server is not None:
                server.close()

    def stop_reading(self) -> None:
        """The first step of a graceful shutdown: no new connections, and nothing more read from the held ones
        (what chargers send from now on waits in their sockets until :meth:`stop` reads it with their close
        frames: committed, never answered); what was read is still committed and answered. Called before the
        API's stop, not after it: 10,000 chargers kept sending meanwhile, and each frame read then was one
        more to commit before the close frames could go out."""
        self.stop_accepting()
        for link in self.links.values():
            link.quiet()

    async def stop(self, close_timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop listening, stop reading (chargers that keep sending would keep the drain from ending), finish
        the batch in flight and what was read (its answers go out), close every station's connection
        with 1001 (going away: the charger reconnects, to another node behind the same address), wait a short
        while (``stop_close_wait_s``, at most ``close_timeout_s``: what is left of the shutdown grace) for their
        closing handshakes, abort the sockets still open, commit what arrived meanwhile, stop the plugins.
        How long each step took is kept in :attr:`stop_steps` and logged."""
        clock = _StepClock()
        self.stop_reading()
        if self._keepalive is not None:
            self._keepalive.cancel()
        self.collector.hold()  # no collection until the end of the stop
        try:
            links = list(self.links.values())
            await self._drain()
            clock.mark("drain")
            self._ended = []
            answered = await self._close_links(links, min(close_timeout_s, self.stop_close_wait_s), clock)
            ended, self._ended = self._ended, None
            self.host.disconnect_all(ended)
            clock.mark("disconnections")
            await self._drain()
            clock.mark("last commit")
            self.host.stop()
            self.scheduler.shutdown()
            self.auth_threads.shutdown(wait=False, cancel_futures=True)  # queued handshakes are not checked any more
            if isinstance(self.lookups, ThreadedLookups):
                self.lookups.shutdown()
        finally:
            self.collector.stop()
        clock.mark("plugins and threads")
        self.stop_steps = clock.steps
        log.info("stopped %d connections (%d closed by the peer in time) in %.2f s: %s", len(links), answered,
                 clock.total, ", ".join(f"{name} {s:.2f} s" for name, s in clock.steps))  # fmt: skip

    async def _close_links(self, links: list[Link], wait_s: float, clock: _StepClock) -> int:
        """The 1001 close frames, at most ``wait_s`` for the peers' closing handshakes, then the sockets still
        open aborted; how many peers answered in time."""
        loop = asyncio.get_running_loop()
        for link in links:
            link.close("going away", 1001)
            link.resume_reading()  # the peers' close frames; what else comes is committed, never answered
        clock.mark("close frames")
        deadline = loop.time() + wait_s
        while any(link.connection is not None for link in links) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        answered = sum(1 for link in links if link.connection is None)
        clock.mark("closing handshakes")
        for link in links:
            if link.transport is not None and link.connection is not None:
                link.transport.abort()
        await asyncio.sleep(0)
        for server in (self._server, self._tls_server):
            if server is not None:  # (Python 3.12 waits here for the connections closed above)
                await server.wait_closed()
        clock.mark("aborts")
        return answered

    async def _ping_all(self, interval: float) -> None:
        """Every connection's keepalive from one task: a ping ``interval`` after the last pong, and the
        connection failed when its pong is ``ping_timeout_s`` late."""
        loop = asyncio.get_running_loop()
        tick = min(1.0, interval)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for link in list(self.links.values()):
                link.keepalive(now, interval, self.ping_timeout_s)

    # ---- connections -------------------------------------------------------------------------------------
    def opened(self, link: Link, admission: Admission, version: Version) -> Connection:
        station_id = admission.station_id
        log.info("station connected (OCPP %s)", version, extra={"station_id": station_id,
                 "peer": _host_of(link.remote_address)})  # fmt: skip
        self.links[station_id] = link
        if self.cluster is not None:
            self.cluster.station_connected(station_id)
        return self.host.connect(admission, version, link)

    def closed(self, link: Link, connection: Connection, detail: str) -> None:
        station_id = link.station_id
        log.info("station disconnected (%s)", detail, extra={"station_id": station_id})
        if self.links.get(station_id) is link:
            del self.links[station_id]
            if self.cluster is not None:
                self.cluster.station_disconnected(station_id)
        if self._ended is not None:  # stopping: what the peer sent before its close frame is still committed
            self._ended.append((connection, detail))
        else:
            self.host.disconnect(connection, detail)

    async def _drain(self) -> None:
        """Wait until every gathered piece of work has been committed (shutdown, tests)."""
        for _ in range(500):
            await self.scheduler.idle()
            await asyncio.sleep(0)
            if self.host.idle:
                break
            await asyncio.sleep(0.01)

    # ---- the operator's changes ---------------------------------------------------------------------------
    def disconnect(self, station_id: str, reason: str) -> bool:
        """End the station's connection to this node at once (True if it had one)."""
        link = self.links.get(station_id)
        if link is None:
            return False
        link.end(reason)
        return True

    async def route_disconnect(self, station_id: str, reason: str) -> None:
        """:meth:`disconnect` on whichever node holds the station's socket (the station's credentials,
        profile or registration changed: the next handshake must be checked against them)."""
        if self.disconnect(station_id, reason) or self.cluster is None:
            return
        await self.cluster.disconnect(station_id, reason)

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

        pending = self.host.call(station_id, action, payload, timeout_s, on_done=done)
        ids = {"station_id": station_id, "action": action, "message_id": pending.call.unique_id}
        log.info("call sent", extra=ids)  # the request id is the API's, bound by its middleware
        answered = await future
        outcome = answered.error_code or (answered.outcome.value if answered.outcome else "pending")
        log.info("call done: %s", outcome, extra=ids)
        return answered


def _drop_handshake_parser(protocol: ServerProtocol) -> None:
    """websockets' server-side parser is one generator that reads the HTTP request and then parses frames from
    inside the same generator frame, keeping the request (and that frame) alive for the connection's life,
    ~700 bytes a connection held. Once it waits for the first byte of a frame, with nothing buffered, it is
    replaced by the frame parser it was running (websockets' own :meth:`Protocol.parse`, started afresh at
    the same point). Any other state (a peer that sent data before the handshake's answer) keeps it."""
    parser = protocol.parser
    frames = getattr(parser, "gi_yieldfrom", None)  # Protocol.parse, run by ServerProtocol.parse
    waiting = getattr(frames, "gi_yieldfrom", None)  # StreamReader.at_eof: between frames
    if protocol.reader.buffer or getattr(waiting, "gi_code", None) is not StreamReader.at_eof.__code__:
        return
    protocol.parser = Protocol.parse(protocol)
    next(protocol.parser)
    parser.close()


class _StepClock:
    """The durations of a sequence of steps on the loop's clock (the gateway's stop)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._began = self._last = self._loop.time()
        self.steps: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = self._loop.time()
        self.steps.append((name, now - self._last))
        self._last = now

    @property
    def total(self) -> float:
        return self._last - self._began


def _host_of(address: Any) -> str | None:
    return address[0] if isinstance(address, tuple) and address else None


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a security event could not be stored", exc_info=future.exception())


__all__ = ["Gateway", "Link", "StationNotConnected"]
