"""A small asyncio TCP proxy for tests: in front of PostgreSQL to cut the database away from a node and give
it back, or in front of several ``csms serve`` nodes as the one address chargers dial (a balancer that tries
the next backend when one refuses)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools


class TcpProxy:
    """Listens on 127.0.0.1 (``port``) and pipes each connection to a backend, round robin over ``backends``
    (host, port), skipping backends that refuse. :meth:`cut` drops every piped connection and refuses new
    ones until :meth:`restore`."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._next = itertools.count()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.cut_off = False
        self.port = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        self.cut_off = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._next) % len(self.backends)]
            with contextlib.suppress(OSError):
                return await asyncio.open_connection(host, port)
        return None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = None if self.cut_off else await self._connect()
        if backend is None:
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = backend
        self._open.update((writer, upstream_writer))
        try:
            await asyncio.gather(_copy(reader, upstream_writer), _copy(upstream_reader, writer))
        finally:
            for w in (writer, upstream_writer):
                self._open.discard(w)
                w.transport.abort()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
