"""The charger's deadlines: one keyed heap instead of a field per timer.

Every deadline the firmware keeps is armed here under a key, (:class:`Timer`, connector id), with 0 as
the connector id of station-wide timers. Arming a key again moves its deadline; cancelling forgets it.
The heap keeps stale entries and skips them lazily (the pattern of :mod:`csms.alerts.engine`), so arming
and cancelling are cheap; ties are broken by the arming order.

The deadlines do not fire by themselves: :meth:`Charger.handle_timer` asks which are due, timer kind by
timer kind, in an order that is part of the firmware's behaviour (see there).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection
from enum import Enum

STATION = 0  # the connector id of a station-wide deadline


class Timer(Enum):
    BOOT = "boot"  # retry a BootNotification (failed, Pending or Rejected)
    HEARTBEAT = "heartbeat"
    RECONNECT = "reconnect"  # the link is down: reconnect no earlier than this
    REBOOT = "reboot"  # a reset was accepted: go down
    TX_RETRY = "tx_retry"  # resend the head of the transaction-message queue no earlier than this
    SAMPLE = "sample"  # per connector: the running transaction's next periodic meter values
    CONNECTION_TIMEOUT = "connection_timeout"  # per connector: authorized, waiting for the cable
    LIMIT_CHECK = "limit_check"  # per connector: the charging-profile limit changes


Key = tuple[Timer, int]


class Deadlines:
    """Deadlines by key; :meth:`next_deadline` is the earliest one."""

    def __init__(self) -> None:
        self._at: dict[Key, tuple[float, int]] = {}  # deadline and arming order
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()

    def arm(self, timer: Timer, when: float, connector_id: int = STATION) -> None:
        key, seq = (timer, connector_id), next(self._seq)
        self._at[key] = (when, seq)
        heapq.heappush(self._heap, (when, seq, key))

    def set(self, timer: Timer, when: float | None, connector_id: int = STATION) -> None:
        """Arm at ``when``, or cancel when it is None."""
        if when is None:
            self.cancel(timer, connector_id)
        else:
            self.arm(timer, when, connector_id)

    def cancel(self, timer: Timer, connector_id: int = STATION) -> None:
        self._at.pop((timer, connector_id), None)

    def cancel_all(self, timer: Timer) -> None:
        for key in [k for k in self._at if k[0] is timer]:
            del self._at[key]

    def at(self, timer: Timer, connector_id: int = STATION) -> float | None:
        armed = self._at.get((timer, connector_id))
        return None if armed is None else armed[0]

    def pop_if_due(self, timer: Timer, now: float, connector_id: int = STATION) -> bool:
        """True (and cancelled) when the deadline is at or before ``now``."""
        when = self.at(timer, connector_id)
        if when is None or now < when:
            return False
        del self._at[timer, connector_id]
        return True

    def pop_due(self, timer: Timer, now: float) -> list[int]:
        """The connector ids whose ``timer`` is due at ``now``, earliest deadline first (ties: armed first),
        all cancelled."""
        due = sorted((armed, cid) for (kind, cid), armed in self._at.items() if kind is timer and armed[0] <= now)
        for _, cid in due:
            del self._at[timer, cid]
        return [cid for _, cid in due]

    def next_deadline(self, dormant: Collection[Timer] = ()) -> float | None:
        """The earliest deadline, leaving out the kinds in ``dormant`` (armed, but not waking anyone now)."""
        while self._heap:
            when, seq, key = self._heap[0]
            if self._at.get(key) != (when, seq):
                heapq.heappop(self._heap)  # cancelled or re-armed
                continue
            if key[0] not in dormant:
                return when
            break
        awake = [when for (kind, _), (when, _seq) in self._at.items() if kind not in dormant]
        return min(awake) if awake else None

    def __len__(self) -> int:
        return len(self._at)
