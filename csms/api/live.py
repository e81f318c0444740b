"""What the console's pages learn as it happens: a host plugin that hears the CSMS's own changes (a station
connected or disconnected, the reports of a committed batch) and tells the browsers' Server-Sent-Event streams
which stations changed (docs/console.md#live-pages).

The feed carries no data, only *which* station changed and how (``connection``, ``status``, ``power``): each
stream coalesces what it was told for a moment, then renders the fragments its page shows from the store and
the gateway (csms/api/dashboard.py), so a page sees what a reload would show, and a burst of reports is one
render, not one per frame. A stream that falls behind loses nothing: changes of the same station merge.

The host tells its plugins on the scheduler's thread (the event loop of ``csms serve``); subscribers are woken
through their loop (``call_soon_threadsafe``), so the feed may be told from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from csms.core.host import CsmsHost, Reports
from csms.domain import events as ev
from csms.ocpp.versions import Version

log = logging.getLogger(__name__)

#: How a station changed.
CONNECTION, STATUS, POWER = "connection", "status", "power"
_POWER_REPORTS = (ev.MeterValuesReported, ev.TransactionStarted, ev.TransactionUpdated, ev.TransactionEnded)


class Subscriber:
    """One stream's pending changes: station → how it changed, merged until the stream takes them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[str, set[str]] = {}
        self.woken = asyncio.Event()

    def _add(self, station_id: str, kinds: frozenset[str]) -> None:
        self.pending.setdefault(station_id, set()).update(kinds)
        self.woken.set()

    def tell(self, station_id: str, kinds: frozenset[str]) -> None:
        with contextlib.suppress(RuntimeError):  # its loop closed: the stream is gone
            self.loop.call_soon_threadsafe(self._add, station_id, kinds)

    def take(self) -> dict[str, set[str]]:
        taken, self.pending = self.pending, {}
        self.woken.clear()
        return taken


class LiveFeed:
    """Host plugin: tells every subscribed stream which station changed."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.told = 0  # changes told to the streams (tests, diagnostics)
        self.closed = False
        #: In a cluster, tells the other nodes' feeds of this node's changes (csms/runtime/cluster.py): a
        #: browser's stream on any node hears every station, wherever its socket is.
        self.relay: Callable[[str, frozenset[str]], None] | None = None

    # ---- plugin ------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        pass

    def stop(self) -> None:
        pass

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        self._changed(station_id, frozenset({CONNECTION}))

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        for station_id in station_ids:
            self._changed(station_id, frozenset({CONNECTION}))

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        kinds = set()
        for report, _ in reports:
            if isinstance(report, ev.StatusReported):
                kinds.add(STATUS)
            elif isinstance(report, _POWER_REPORTS):
                kinds.add(POWER)
            elif isinstance(report, ev.BootReported):
                kinds.add(CONNECTION)  # registration, vendor, model, firmware
        if kinds:
            self._changed(station_id, frozenset(kinds))

    def _changed(self, station_id: str, kinds: frozenset[str]) -> None:
        self.publish(station_id, kinds)
        if self.relay is not None:
            self.relay(station_id, kinds)

    # ---- streams -----------------------------------------------------------------------------------------
    def publish(self, station_id: str, kinds: frozenset[str]) -> None:
        """Tell this node's streams (a change here, or one another node relayed)."""
        for subscriber in list(self.subscribers):
            subscriber.tell(station_id, kinds)
            self.told += 1

    def close(self) -> None:
        """The process stops: every stream ends now (a graceful stop does not wait for browsers to leave)."""
        self.closed = True
        for subscriber in list(self.subscribers):
            subscriber.tell("", frozenset())

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscriber]:
        subscriber = Subscriber(asyncio.get_running_loop())
        self.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self.subscribers.discard(subscriber)


def frame(event: str, data: str) -> str:
    """One Server-Sent Event (``data`` may span lines: each is its own ``data:`` field)."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


#: Renders the events of a stream for the changes taken: ``None`` ends the stream (the session ended).
Render = Callable[[dict[str, set[str]]], Awaitable[list[tuple[str, str]] | None]]


async def stream(
    feed: LiveFeed,
    render: Render,
    *,
    coalesce_s: float = 0.25,
    keepalive_s: float = 15.0,
    tick_s: float | None = None,
    lifetime_s: float = 600.0,
) -> AsyncIterator[str]:
    """The text of an ``text/event-stream`` answer: the events :func:`render` makes of each batch of changes
    (and of an empty batch every ``tick_s``, when given), a comment every ``keepalive_s`` so proxies keep the
    connection, and an end after ``lifetime_s`` (the browser's EventSource reconnects by itself, and the
    session is checked anew)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + lifetime_s
    with feed.subscribe() as subscriber:
        yield "retry: 2000\n\n"
        while loop.time() < end and not feed.closed:
            wait = min(keepalive_s, tick_s or keepalive_s, max(0.0, end - loop.time()))
            try:
                await asyncio.wait_for(subscriber.woken.wait(), wait)
            except TimeoutError:
                if tick_s is None:
                    yield ": keep-alive\n\n"
                    continue
            if feed.closed:
                return
            await asyncio.sleep(coalesce_s)
            changes = subscriber.take()
            changes.pop("", None)
            events = await render(changes)
            if events is None:
                yield frame("signed-out", "")
                return
            for name, data in events:
                yield frame(name, data)


def attach_feed(app: Any) -> LiveFeed:
    """The app's feed, added to its gateway's host once (``create_app``)."""
    feed = LiveFeed()
    app.state.gateway.add_plugin(feed)
    app.state.live = feed
    return feed
