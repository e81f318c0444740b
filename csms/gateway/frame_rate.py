"""The rate of frames one connection may send: a token bucket, enforced by backpressure.

Every WebSocket frame a station sends (text, binary, continuation, ping, pong, close) takes one token; the
bucket holds ``burst`` tokens and refills at ``per_second``. A connection that runs out is not read again
until its debt is paid: the gateway stops reading its socket (``transport.pause_reading``), so TCP's own
flow control pushes back on the station and the frames wait in its send buffer, not in our memory. An OCPP
station waits for each answer before its next call, so when it is slowed it simply sends later — a burst of
queued transactions after an outage arrives intact. Only a connection that pipelines far ahead of its
allowance (more than ``close_after_s`` seconds of its rate in the frames already read) is closed, with the
policy-violation code 1008: that is a flood, and reading it at any pace would only feed it. The close is
recorded as a security event (``frame_flood``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: WebSocket close code of a connection closed for flooding (RFC 6455 §7.4.1: policy violation).
POLICY_VIOLATION = 1008
#: The security event recorded when a connection is closed for flooding (csms.services.security_events).
FLOOD_EVENT = "frame_flood"


@dataclass(frozen=True, slots=True)
class FrameRate:
    #: Frames a connection may send per second, sustained. A charger sends well under one a second on average,
    #: and replays a queue kept through an outage one call per round trip: at 20 a second, 2,000 queued
    #: messages take under two minutes. What N stations can cost together is N times this (docs/security.md).
    per_second: float = 20.0
    #: Frames a connection may send at once on top of that (a fresh connection starts with a full bucket).
    burst: float = 200.0
    #: A connection whose debt exceeds this many seconds of its rate is closed instead of slowed.
    close_after_s: float = 10.0

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1 or self.close_after_s <= 0:
            raise ValueError("a frame rate needs per_second > 0, burst >= 1 and close_after_s > 0")

    def take(self, allowance: float, elapsed_s: float, frames: int) -> float:
        """The allowance left after ``frames`` arrived ``elapsed_s`` after the last count (negative: a debt)."""
        return min(self.burst, allowance + elapsed_s * self.per_second) - frames

    def pause_s(self, allowance: float) -> float:
        """How long to stop reading a connection with this allowance (0: keep reading)."""
        return 0.0 if allowance >= 0 else -allowance / self.per_second

    def floods(self, allowance: float) -> bool:
        """Whether the debt is so deep the connection is closed rather than slowed."""
        return -allowance > self.per_second * self.close_after_s
