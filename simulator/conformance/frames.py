"""The frame log of one station under test: every frame both ways with its time, for verdicts people can read."""

from __future__ import annotations

from dataclasses import dataclass, field

#: At most this many frames are quoted in a verdict (the last ones: the failure is at the end).
QUOTED = 12
#: A frame longer than this is cut in a verdict (the log itself keeps it whole).
FRAME_CHARS = 400


@dataclass(frozen=True, slots=True)
class Frame:
    at: float  # seconds since the station under test was created
    outgoing: bool  # True: station -> CSMS
    text: str

    def __str__(self) -> str:
        arrow = "station -> CSMS" if self.outgoing else "CSMS -> station"
        text = self.text if len(self.text) <= FRAME_CHARS else self.text[:FRAME_CHARS] + "…"
        return f"{self.at:7.3f}s {arrow}: {text}"


@dataclass(slots=True)
class FrameLog:
    frames: list[Frame] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # handshakes, closes, timeouts

    def add(self, at: float, outgoing: bool, text: str) -> None:
        self.frames.append(Frame(at, outgoing, text))

    def note(self, at: float, what: str) -> None:
        self.events.append((at, what))

    def tail(self, count: int = QUOTED) -> str:
        """The last frames and link events, oldest first, one per line."""
        lines = [(f.at, str(f)) for f in self.frames[-count:]]
        lines += [(at, f"{at:7.3f}s link: {what}") for at, what in self.events if not lines or at >= lines[0][0]]
        lines.sort(key=lambda pair: pair[0])
        return "\n".join(text for _, text in lines) or "(no frames)"
