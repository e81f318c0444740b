"""``sim run … --realtime --vtn HOST:PORT``: the utility's OpenADR 2.0b VTN, hosted by the run, through which a
scenario's ``demand_response`` actions reach a real-time CSMS's VEN (``csms serve --openadr-vtn-url
http://HOST:PORT/OpenADR2/Simple/2.0b``) — as the utility would send them, not done on the CSMS from outside.

Every event of the scenario is published when the run starts (a utility announces its events ahead: the VEN
plans with the lower limit from the event's start instead of learning of it a poll late), as a ``LOAD_DISPATCH``
``setpoint`` of the event's ``limit_kw`` from the wall-clock instant at which the twin reaches the event's ``at``
for its ``duration`` (:meth:`~simulator.realtime.CsmsClock.to_wall`, on the CSMS's clock: with ``--start now`` and
``--speed 1`` the two clocks are one). The VTN registers any VEN (one CSMS), without signatures, and notes what
the VEN answered (``optIn``/``optOut``), which the report's notes tell.

This module is a shell (a socket): openleadr's server on the run's event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

#: The VEN the VTN registers (it serves one CSMS): the id its events are addressed to.
VEN_ID = "twin-ven"
PATH = "/OpenADR2/Simple/2.0b"


@dataclass
class PublishedEvent:
    event_id: str
    start: datetime
    duration_s: float
    limit_kw: float
    answer: str | None = None


@dataclass
class TwinVtn:
    """The run's VTN on ``host:port``; the VEN is asked to poll every ``poll_s`` wall seconds."""

    host: str
    port: int
    poll_s: float = 2.0
    #: The name the CSMS's VEN registered with (None until it did).
    registered: str | None = None
    events: list[PublishedEvent] = field(default_factory=list)
    _server: Any = None

    @classmethod
    def parse(cls, address: str, poll_s: float = 2.0) -> TwinVtn:
        """``HOST:PORT`` (``--vtn``); raises ValueError for anything else."""
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--vtn {address}: expected HOST:PORT, e.g. 127.0.0.1:8080")
        return cls(host, int(port), poll_s)

    @property
    def url(self) -> str:
        """What ``csms serve`` is given as ``openadr_vtn_url``."""
        return f"http://{self.host}:{self.port}{PATH}"

    async def start(self) -> None:
        from openleadr import OpenADRServer  # aiohttp and apscheduler: only for a run that hosts a VTN

        server = OpenADRServer(
            vtn_id="chargetwin-twin-vtn", http_host=self.host, http_port=self.port, show_fingerprint=False,
            requested_poll_freq=timedelta(seconds=self.poll_s), verify_message_signatures=False,
        )  # fmt: skip

        async def on_create_party_registration(info: dict[str, Any]) -> tuple[str, str]:
            self.registered = str(info.get("ven_name"))
            log.info("VTN: the VEN %r registered", self.registered)
            return VEN_ID, "twin-registration"

        async def on_register_report(*_: Any) -> None:
            return None  # the VEN's telemetry is not what the run measures: the twin's meter is

        server.add_handler("on_create_party_registration", on_create_party_registration)
        server.add_handler("on_register_report", on_register_report)
        await server.run()
        self._server = server

    def publish(self, start_wall: float, duration_s: float, limit_kw: float) -> PublishedEvent:
        """A ``LOAD_DISPATCH`` setpoint event from ``start_wall`` (POSIX s) for ``duration_s`` (wall seconds)."""
        assert self._server is not None, "start the VTN first"
        event = PublishedEvent(f"twin-dr-{len(self.events) + 1}", datetime.fromtimestamp(start_wall, UTC),
                               duration_s, limit_kw)  # fmt: skip

        def answered(ven_id: str, event_id: str, opt_type: str) -> None:
            event.answer = opt_type
            log.info("VTN: the VEN answered %s to %s", opt_type, event_id)

        self._server.add_event(
            ven_id=VEN_ID, signal_name="LOAD_DISPATCH", signal_type="setpoint", event_id=event.event_id,
            intervals=[{"dtstart": event.start, "duration": timedelta(seconds=duration_s), "signal_payload": limit_kw}],
            callback=answered,
        )  # fmt: skip
        self.events.append(event)
        return event

    def notes(self) -> list[str]:
        """What the report says of the demand response sent through the VTN."""
        if not self.events:
            return []
        if self.registered is None:
            return [
                f"demand response: {len(self.events)} event(s) published on the twin's VTN {self.url}, but no VEN "
                "registered there: start the CSMS with it as its VTN (csms serve --openadr-vtn-url URL)"
            ]
        answers = ", ".join(f"{e.event_id} {e.limit_kw:g} kW from {e.start:%H:%M:%S} UTC: {e.answer or 'no answer'}"
                            for e in self.events)  # fmt: skip
        return [f"demand response through the twin's VTN {self.url} (VEN {self.registered!r}): {answers}"]

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
