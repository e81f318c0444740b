"""Transaction-related messages, kept until the CSMS acknowledged them and sent strictly in order.

Every transaction message (1.6 StartTransaction, StopTransaction, MeterValues of a transaction; 2.0.1
TransactionEvent) goes through this queue, online or not: the head is sent, and only its answer lets the
next one go, so a message that times out is retried before anything behind it (1.6 §3.14 / 2.0.1 E04).
While the link is down the queue simply grows. It is bounded: over capacity the oldest *droppable*
message (periodic meter values) goes first; starts and stops are never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(eq=False, slots=True)
class QueuedMessage:
    """One transaction message; ``tx_key`` is the charger's own number for its transaction."""

    action: str
    payload: dict[str, Any]
    tx_key: int
    droppable: bool = False
    attempts: int = 0
    created_at: float = 0.0
    phase: str = "update"  # start / update / end of its transaction
    register_wh: float | None = None  # the energy register reading it carries, if any


class OfflineQueue:
    __slots__ = ("_items", "capacity", "dropped")

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        # A list, not a deque: online it holds one or two messages, and an empty deque costs 0.6 kB per charger.
        self._items: list[QueuedMessage] = []
        self.dropped: list[QueuedMessage] = []

    def push(self, message: QueuedMessage) -> None:
        self._items.append(message)
        while len(self._items) > self.capacity:
            # The head may be in flight, so it is never the victim.
            victim = next((m for m in self._items[1:] if m.droppable), None)
            if victim is None:
                break
            self._items.remove(victim)
            self.dropped.append(victim)

    def head(self) -> QueuedMessage | None:
        return self._items[0] if self._items else None

    def pop(self) -> QueuedMessage:
        return self._items.pop(0)

    def discard(self, message: QueuedMessage) -> None:
        self._items.remove(message)
        self.dropped.append(message)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[QueuedMessage]:
        return iter(list(self._items))
