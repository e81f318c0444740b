"""The in-process link: one charger and the embedded CSMS joined by text frames in SimPy's virtual time.

It is the SimPy counterpart of the asyncio gateway: for each endpoint it feeds frames with ``now``,
drains what the endpoint has to send and arms one timer at the endpoint's next deadline. The network is
modelled, not assumed: a per-direction latency with jitter (TCP keeps order, so a frame never overtakes
the previous one), optional loss, and outages (``set_network``) during which connection attempts fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from csms.core.session import StationSession
from simulator.embedded_csms import EmbeddedCsms, Refused
from simulator.station.charger import Charger


@dataclass(frozen=True)
class NetworkModel:
    latency_s: float = 0.05
    jitter_s: float = 0.0
    loss: float = 0.0


class _Alarm:
    """One SimPy timeout armed at an endpoint's next deadline; re-armed only when it must fire earlier."""

    def __init__(self, env: simpy.Environment, epoch: float, fire: Callable[[], None]) -> None:
        self.env, self.epoch, self.fire = env, epoch, fire
        self.at: float | None = None

    def arm(self, deadline: float | None) -> None:
        if deadline is None:
            return
        if self.at is not None and self.at <= deadline and self.at >= self.epoch + self.env.now:
            return  # an earlier (or equal) wake-up is already pending; it re-arms after firing
        self.at = deadline
        event = self.env.timeout(max(0.0, deadline - (self.epoch + self.env.now)))
        event.callbacks.append(lambda _e, when=deadline: self._ring(when))

    def _ring(self, when: float) -> None:
        if self.at != when:
            return  # superseded by an earlier alarm
        self.at = None
        self.fire()


class InProcessLink:
    def __init__(
        self,
        env: simpy.Environment,
        epoch: float,
        charger: Charger,
        csms: EmbeddedCsms,
        rng: random.Random,
        network: NetworkModel | None = None,
        on_charger_change: Callable[[Charger], None] | None = None,
        on_link: Callable[[str, bool, float], None] | None = None,
    ) -> None:
        self.env, self.epoch, self.charger, self.csms, self.rng = env, epoch, charger, csms, rng
        self.network = network or NetworkModel()
        self.on_charger_change = on_charger_change or (lambda _c: None)
        self.on_link = on_link  # the twin's truth: (station, up, now) when a connection opens or closes
        self.network_up = True
        self.session: StationSession | None = None
        self._generation = 0  # frames of a closed connection are dropped on arrival
        self._last_arrival = {"up": 0.0, "down": 0.0}
        self._charger_alarm = _Alarm(env, epoch, self._charger_timer)
        self._csms_alarm = _Alarm(env, epoch, self._csms_timer)
        self.frames_lost = 0

    def now(self) -> float:
        return self.epoch + self.env.now

    # ---- connection management ---------------------------------------------------------------------------
    def start(self) -> None:
        self._maybe_connect()

    def _maybe_connect(self) -> None:
        now = self.now()
        if self.session is not None or not self.charger.wants_connection(now):
            self._pump_charger()
            return
        if not self.network_up:
            self.charger.connection_failed(now)
            self._pump_charger()
            return
        try:
            self.session = self.csms.connect(self.charger.station_id, now, self.charger.version)
        except Refused:
            self.charger.connection_failed(now)
            self._pump_charger()
            return
        self._generation += 1
        if self.on_link is not None:
            self.on_link(self.charger.station_id, True, now)
        self.charger.connected(now)
        self._pump_charger()

    def _close(self, detail: str) -> None:
        if self.session is None:
            return
        now = self.now()
        self.csms.disconnect(self.session, now, detail)
        self.session = None
        if self.on_link is not None:
            self.on_link(self.charger.station_id, False, now)
        self._generation += 1
        self.charger.disconnected(now)

    def drop(self) -> None:
        """The CSMS side vanished (a crash): the charger sees the socket die; the CSMS writes nothing."""
        if self.session is None:
            return
        self.session = None
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
        if self.network.loss and self.rng.random() < self.network.loss:
            self.frames_lost += 1
            return
        delay = self.network.latency_s + (self.rng.random() * self.network.jitter_s if self.network.jitter_s else 0.0)
        arrival = max(self.env.now + delay, self._last_arrival[direction])
        self._last_arrival[direction] = arrival
        generation = self._generation
        event = self.env.timeout(arrival - self.env.now)
        event.callbacks.append(lambda _e: deliver(frame) if generation == self._generation else None)

    def _to_csms(self, frame: str) -> None:
        if self.session is None:
            return
        self.csms.deliver(
            self.session, frame, self.now(), lambda frames, session=self.session: self._answer(session, frames)
        )

    def _answer(self, session: StationSession, frames: list[str]) -> None:
        if self.session is session:  # else the connection closed before the commit: the answers die with it
            self.send_from_csms(frames)

    def _to_charger(self, frame: str) -> None:
        self.charger.receive_frame(frame, self.now())
        self._pump_charger()

    def send_from_csms(self, frames: list[str]) -> None:
        for frame in frames:
            self._transit("down", frame, self._to_charger)
        if self.session is not None:
            self._csms_alarm.arm(self.session.next_deadline())

    def flush_csms(self) -> None:
        """Send what the CSMS session has queued outside a delivery (load-management calls)."""
        if self.session is not None:
            frames = self.session.frames_to_send()
            self.csms.frames_out += len(frames)
            self.send_from_csms(frames)

    def _pump_charger(self) -> None:
        for frame in self.charger.frames_to_send():
            if self.session is not None:
                self._transit("up", frame, self._to_csms)
        if self.charger.close_requested():
            self._close("closed by the station")
        self._charger_alarm.arm(self.charger.next_deadline())
        self.on_charger_change(self.charger)

    # ---- timers ----------------------------------------------------------------------------------------
    def _charger_timer(self) -> None:
        now = self.now()
        self.charger.handle_timer(now)
        if self.session is None and self.charger.wants_connection(now):
            self._maybe_connect()
        else:
            self._pump_charger()

    def _csms_timer(self) -> None:
        if self.session is not None:
            self.send_from_csms(self.csms.handle_timer(self.session, self.now()))

    # ---- the twin's events, passed on to the firmware -----------------------------------------------------
    def poke(self) -> None:
        """Something changed the charger from outside (plug-in, unplug, fault): send what it has to say."""
        self._pump_charger()
