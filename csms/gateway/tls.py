"""The TLS side of the gateway (security profiles 2 and 3): the server's context and what a connection's
handshake proved about its peer."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from csms.pki.tls import server_context
from csms.services.admission import Channel, channel_of_peer

__all__ = ["TlsHandshake", "address", "channel_of", "server_context"]

log = logging.getLogger(__name__)


def channel_of(transport: asyncio.BaseTransport) -> Channel:
    """Plain, or TLS with the subject CN and serial of the client certificate the handshake verified (None:
    none sent); with the peer's address either way."""
    source = address(transport.get_extra_info("peername"))
    if transport.get_extra_info("ssl_object") is None:
        return Channel(source=source)
    return channel_of_peer(transport.get_extra_info("peercert"), source)


def address(peername: Any) -> str | None:
    """The host of a socket's peer name (not the port: the throttle and the security events count per address)."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return None if peername is None else str(peername)


class Receiver(Protocol):
    """What takes a connection over once its TLS handshake is over (an ``asyncio.Protocol`` or a buffered one that
    also takes data as a whole)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class TlsHandshake(asyncio.Protocol):
    """A ``wss://`` connection until its TLS handshake is over; then the connection's own protocol
    (``make_protocol()``) takes the TLS transport. A handshake that refused the client's certificate is
    told to ``refused(source, error)``; other failures (a client that hangs up, speaks no TLS, or does
    not trust us) are only logged at debug level, as asyncio does."""

    #: Handshakes in progress (a task must be referenced until it ends).
    running: set[asyncio.Task[None]] = set()

    def __init__(
        self,
        context: ssl.SSLContext,
        timeout_s: float,
        make_protocol: Callable[[], Receiver],
        refused: Callable[[str | None, ssl.SSLCertVerificationError], None],
    ) -> None:
        self.context = context
        self.timeout_s = timeout_s
        self.make_protocol = make_protocol
        self.refused = refused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing may reach this protocol: the TLS layer reads from now on
        task = asyncio.ensure_future(self._handshake(transport))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        source = address(transport.get_extra_info("peername"))
        early = _Early()
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                transport, early, self.context, server_side=True, ssl_handshake_timeout=self.timeout_s
            )
        except ssl.SSLCertVerificationError as exc:
            self.refused(source, exc)
            return
        except (OSError, TimeoutError, ConnectionError) as exc:
            log.debug("TLS handshake with %s failed: %r", source, exc)
            return
        if tls is None:
            return
        protocol = self.make_protocol()
        protocol.connection_made(tls)
        tls.set_protocol(protocol)  # type: ignore[arg-type]  # an asyncio protocol, plain or buffered
        early.hand_over(protocol)


class _Early(asyncio.Protocol):
    """What arrives between the end of the handshake and the connection's protocol taking over (the
    first request can come in the same read as the handshake's last message)."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)

    def hand_over(self, protocol: Receiver) -> None:
        for data in self.data:
            protocol.data_received(data)
        if self.eof:
            protocol.eof_received()
        if self.lost is not None:
            protocol.connection_lost(self.lost[0])
