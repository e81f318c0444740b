"""File transfers the charger asks its shell for, and the log of its own frames it uploads.

The charger never opens a connection: like a frame, a transfer is an *output* (:class:`Download` of a URL,
:class:`Upload` of bytes to a URL) that the shell drains with :meth:`TransferDesk.take` and carries out —
with httpx over real HTTP in real time, through the embedded CSMS's own services in virtual time — and
then reports as an *input*, a :class:`TransferResult` handed to :meth:`TransferDesk.done` with ``now``.
Each request carries an id; a result for an id nobody waits for any more (a job the CSMS replaced) is
dropped.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from csms.ocpp.convert import format_time, from_posix


@dataclass(frozen=True, slots=True)
class Download:
    transfer_id: int
    url: str


@dataclass(frozen=True, slots=True)
class Upload:
    transfer_id: int
    url: str
    file_name: str
    content: bytes
    content_type: str = "text/plain"


Transfer = Download | Upload


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a transfer ended: ``ok`` with the bytes downloaded (empty for an upload), or not, with why."""

    transfer_id: int
    ok: bool
    content: bytes = b""
    detail: str = ""


class TransferDesk:
    """The charger's outbox of transfers and the callbacks waiting for their results."""

    __slots__ = ("_ids", "_outbox", "_waiting")

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._outbox: list[Transfer] = []
        self._waiting: dict[int, Callable[[TransferResult, float], None]] = {}

    def download(self, url: str, then: Callable[[TransferResult, float], None]) -> int:
        transfer_id = next(self._ids)
        self._outbox.append(Download(transfer_id, url))
        self._waiting[transfer_id] = then
        return transfer_id

    def upload(self, url: str, file_name: str, content: bytes, then: Callable[[TransferResult, float], None]) -> int:
        transfer_id = next(self._ids)
        self._outbox.append(Upload(transfer_id, url, file_name, content))
        self._waiting[transfer_id] = then
        return transfer_id

    def forget(self, transfer_id: int | None) -> None:
        """The job that asked for it is gone: its result will be dropped."""
        if transfer_id is not None:
            self._waiting.pop(transfer_id, None)

    def take(self) -> list[Transfer]:
        out, self._outbox = self._outbox, []
        return out

    def done(self, result: TransferResult, now: float) -> None:
        then = self._waiting.pop(result.transfer_id, None)
        if then is not None:
            then(result, now)


@dataclass(frozen=True, slots=True)
class LoggedFrame:
    at: float
    direction: str  # "in" (from the CSMS) or "out"
    text: str


class FrameLog:
    """The charger's most recent frames, both ways, up to ``budget_bytes`` of frame text (the oldest go
    first): what a diagnostics or log file is made of. The budget is small by default because every twin
    charger holds one (a fleet of thousands is the point); a scenario or test that reads logs raises it.

    Outgoing frames are stamped with the latest instant the charger was told (they leave right after the
    input that made them)."""

    # Every twin charger keeps ~10 frames here all run long, so they are kept flat: their texts end to end in
    # one string and, per frame, its instant and its length (negative when sent) in one array of doubles:
    # 16 bytes a frame instead of a frame object, its float and its string's header (~130 bytes).
    __slots__ = ("_marks", "_text", "budget_bytes", "last_now")

    def __init__(self, budget_bytes: int = 2048) -> None:
        self.budget_bytes = budget_bytes
        self._text = ""
        self._marks = array("d")
        self.last_now = 0.0

    def told(self, now: float) -> None:
        """The charger was given ``now`` (an input): what it sends next leaves at that instant."""
        if now > self.last_now:
            self.last_now = now

    def received(self, text: str | bytes, now: float) -> None:
        if now > self.last_now:
            self.last_now = now
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        self._keep(decoded, now, len(decoded))

    def sent(self, frames: list[str]) -> None:
        for text in frames:
            self._keep(text, self.last_now, -len(text))

    def _keep(self, text: str, at: float, mark: int) -> None:
        budget = self.budget_bytes
        if len(text) > budget:
            return
        kept = self._text + text
        marks = self._marks
        marks.append(at)
        marks.append(mark)
        excess = len(kept) - budget
        if excess > 0:  # drop the oldest frames until the rest fits
            drop, chars = 0, 0
            while chars < excess:
                length = marks[drop + 1]
                chars += int(length if length > 0 else -length)
                drop += 2
            del marks[:drop]
            kept = kept[chars:]
        self._text = kept

    def between(self, oldest: float | None, latest: float | None) -> Iterator[LoggedFrame]:
        frames, start = [], 0
        for i in range(0, len(self._marks), 2):
            at, length = self._marks[i], int(self._marks[i + 1])
            end = start + abs(length)
            if (oldest is None or at >= oldest) and (latest is None or at <= latest):
                frames.append(LoggedFrame(at, "out" if length < 0 else "in", self._text[start:end]))
            start = end
        return iter(frames)


def render_log(header: str, frames: Iterator[LoggedFrame]) -> bytes:
    """A plain-text log file: a header line, then one line per frame (time, direction, the frame)."""
    lines = [f"# {header}"]
    lines += [f"{format_time(from_posix(f.at))} {f.direction:<3} {f.text}" for f in frames]
    return ("\n".join(lines) + "\n").encode()
