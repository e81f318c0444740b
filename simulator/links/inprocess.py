"""The in-process link: one charger and the embedded CSMS joined by text frames in SimPy's virtual time.

It is the SimPy counterpart of the gateway's WebSocket and of the charger's socket: it feeds the charger its
frames with ``now``, drains what it has to send, arms one alarm at its next deadline, and is the CSMS host's
:class:`~csms.core.host.Transport` for the station's connection (the host keeps the CSMS side's timers
itself). The network is modelled, not assumed: a per-direction latency with jitter (TCP keeps order, so a
frame never overtakes the previous one), optional loss, and outages (``set_network``) during which
connection attempts fail.
"""

from __future__ import annotations

import functools
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from simpy.events import NORMAL

from csms.core.host import Connection, Transport
from csms.core.scheduler import Alarm
from csms.ocpp.versions import Version
from simulator.links.offer import Offer, offer
from simulator.scheduler import SimPyScheduler
from simulator.station.charger import Charger
from simulator.station.transfers import Transfer, TransferResult

#: The embedded CSMS's host name (its wss:// certificate names it) and the URL chargers start with.
SERVER_NAME = "csms.twin"
DEFAULT_URL = f"ws://{SERVER_NAME}/ocpp"


class Refused(Exception):
    """The CSMS refused the connection at the handshake (down, unknown station, bad credentials)."""


class CsmsEndpoint(Protocol):
    """What a link needs of the CSMS in the same process (:class:`simulator.embedded_csms.EmbeddedCsms`)."""

    def connect(self, station_id: str, offered: Version | None, transport: Transport, credentials: Offer) -> Connection:
        """The handshake with what the charger offers (HTTP Basic, TLS). Raises :class:`Refused`."""
        ...

    def receive(self, connection: Connection, frame: str) -> None: ...

    def disconnect(self, connection: Connection, detail: str) -> None: ...

    def transfer(self, request: Transfer, done: Callable[[TransferResult], None]) -> None:
        """A charger's download or upload (firmware, logs), ``done`` once it ended, in virtual time."""
        ...


@dataclass(frozen=True)
class NetworkModel:
    latency_s: float = 0.05
    jitter_s: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:  # a frame would arrive before it left
            raise ValueError(f"negative latency or jitter: {self.latency_s}, {self.jitter_s}")


class InProcessLink:
    __slots__ = (
        "_charger_alarm",
        "_generation",
        "_last_arrival",
        "_rng",
        "_seed",
        "charger",
        "connection",
        "csms",
        "env",
        "frames_lost",
        "network",
        "network_up",
        "on_charger_change",
        "on_link",
        "password",
        "scheduler",
    )

    def __init__(
        self,
        scheduler: SimPyScheduler,
        charger: Charger,
        csms: CsmsEndpoint,
        seed: int,
        network: NetworkModel | None = None,
        on_charger_change: Callable[[Charger], None] | None = None,
        on_link: Callable[[str, bool, float], None] | None = None,
        password: str | None = None,
    ) -> None:
        self.scheduler, self.env = scheduler, scheduler.env
        self.password = password
        self.charger, self.csms = charger, csms
        self._seed = seed
        self._rng: random.Random | None = None  # the network's generator, made when it first draws
        self.network = network or NetworkModel()
        self.on_charger_change = on_charger_change or (lambda _c: None)
        self.on_link = on_link  # the twin's truth: (station, up, now) when a connection opens or closes
        self.network_up = True
        self.connection: Connection | None = None
        self._generation = 0  # frames of a closed connection are dropped on arrival
        self._last_arrival = {"up": 0.0, "down": 0.0}
        self._charger_alarm = Alarm(scheduler, self._charger_timer)
        self.frames_lost = 0

    def now(self) -> float:
        return self.scheduler.now()

    @property
    def rng(self) -> random.Random:
        """The network's own generator (loss, jitter): made at its first draw, since a link without loss or
        jitter never draws (a generator holds 2.5 kB of state)."""
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng

    # ---- connection management ---------------------------------------------------------------------------
    def start(self) -> None:
        self._maybe_connect()

    def _maybe_connect(self) -> None:
        now = self.now()
        if self.connection is not None or not self.charger.wants_connection(now):
            self._pump_charger()
            return
        if not self.network_up:
            self.charger.connection_failed(now)
            self._pump_charger()
            return
        self._generation += 1  # before the CSMS may send on the new connection
        try:
            credentials = offer(self.charger, self.charger.security.csms_url or DEFAULT_URL, self.password,
                                virtual_time=True)  # fmt: skip
            self.connection = self.csms.connect(self.charger.station_id, self.charger.version, _Down(self), credentials)
        except (Refused, ssl.SSLError):
            self.charger.connection_failed(now)
            self._pump_charger()
            return
        if self.on_link is not None:
            self.on_link(self.charger.station_id, True, now)
        self.charger.connected(now)
        self._pump_charger()

    def _close(self, detail: str) -> None:
        if self.connection is None:
            return
        now = self.now()
        connection, self.connection = self.connection, None
        self.csms.disconnect(connection, detail)
        if self.on_link is not None:
            self.on_link(self.charger.station_id, False, now)
        self._generation += 1
        self.charger.disconnected(now)

    def drop(self) -> None:
        """The CSMS side vanished (a crash) or closed the socket: the charger sees it die."""
        if self.connection is None:
            return
        self.connection = None
        self._generation += 1
        self.charger.disconnected(self.now())
        self._pump_charger()

    def set_network(self, up: bool) -> None:
        """An outage of the charger's network (the ``link_down`` fault) starts or ends."""
        self.network_up = up
        if not up:
            self._close("link down")
        self._maybe_connect()

    # ---- frames ----------------------------------------------------------------------------------------
    def _transit(self, direction: str, frame: str, deliver: Callable[[str], None]) -> None:
        network = self.network
        if network.loss and self.rng.random() < network.loss:
            self.frames_lost += 1
            return
        delay = network.latency_s + (self.rng.random() * network.jitter_s if network.jitter_s else 0.0)
        env = self.env
        now = env.now
        last = self._last_arrival
        arrival = max(now + delay, last[direction])
        last[direction] = arrival
        # The key, hence the order among simultaneous events, that ``env.timeout(arrival - now)`` would have had.
        env.schedule(_InTransit(self, frame, deliver), NORMAL, arrival - now)  # type: ignore[arg-type]

    def _to_csms(self, frame: str) -> None:
        if self.connection is not None:
            self.csms.receive(self.connection, frame)

    def _to_charger(self, frame: str) -> None:
        scheduler = self.scheduler
        self.charger.receive_frame(frame, scheduler.epoch + scheduler.env.now)  # scheduler.now(), inlined
        self._pump_charger()

    def send_from_csms(self, frames: list[str]) -> None:
        for frame in frames:
            self._transit("down", frame, self._to_charger)

    def _pump_charger(self) -> None:
        charger = self.charger
        for frame in charger.frames_to_send():
            if self.connection is not None:
                self._transit("up", frame, self._to_csms)
        if charger.close_requested():
            self._close("closed by the station")
        for request in charger.transfers_to_start():
            if self.network_up:
                self.csms.transfer(request, self._transfer_done)
            else:  # the outage cuts HTTP as well as the WebSocket
                failed = TransferResult(request.transfer_id, False, detail="no network (link down)")
                self.scheduler.call_later(0.0, functools.partial(self._transfer_done, failed))
        self._charger_alarm.arm(charger.next_deadline())
        self.on_charger_change(charger)

    def _transfer_done(self, result: TransferResult) -> None:
        self.charger.transfer_done(result, self.now())
        self._pump_charger()

    # ---- timers ----------------------------------------------------------------------------------------
    def _charger_timer(self) -> None:
        scheduler = self.scheduler
        now = scheduler.epoch + scheduler.env.now  # scheduler.now(), inlined
        deadline = self.charger.next_deadline()
        if deadline is None or now < deadline:
            # The alarm keeps an earlier deadline that has since moved (most often an answered call's
            # timeout): nothing is due, so the charger is not disturbed.
            self._charger_alarm.arm(deadline)
            return
        self.charger.handle_timer(now)
        if self.connection is None and self.charger.wants_connection(now):
            self._maybe_connect()
        else:
            self._pump_charger()

    # ---- the twin's events, passed on to the firmware -----------------------------------------------------
    def poke(self) -> None:
        """Something changed the charger from outside (plug-in, unplug, fault): send what it has to say."""
        self._pump_charger()


def _arrive(event: _InTransit) -> None:
    if event.generation == event.link._generation:  # else the connection it was sent on has closed
        event.deliver(event.frame)


#: Every frame's list of callbacks: one shared tuple (SimPy only iterates it, then sets the event's to None).
_ARRIVE = (_arrive,)


class _InTransit:
    """A frame on the wire, scheduled as its own SimPy event at its arrival: the key ``env.timeout`` would
    give it, without a ``Timeout``, its callback list and a closure per frame (~110,000 frames a demo run)."""

    __slots__ = ("callbacks", "deliver", "frame", "generation", "link")
    _ok = True

    def __init__(self, link: InProcessLink, frame: str, deliver: Callable[[str], None]) -> None:
        self.link, self.frame, self.deliver = link, frame, deliver
        self.generation = link._generation
        self.callbacks: Any = _ARRIVE


class _Down:
    """The CSMS host's transport for one connection of the link: frames go down the modelled network."""

    def __init__(self, link: InProcessLink) -> None:
        self.link = link

    def send(self, frames: list[str]) -> None:
        self.link.send_from_csms(frames)

    def close(self, reason: str) -> None:
        self.link.drop()
