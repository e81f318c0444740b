"""The charger's deadlines: one keyed heap instead of a field per timer.

Every deadline the firmware keeps is armed here under a key, (:class:`Timer`, connector id), with 0 as
the connector id of station-wide timers. Arming a key again moves its deadline; cancelling forgets it.
The heap keeps stale entries and skips them lazily (the pattern of :mod:`csms.alerts.engine`), so arming
and cancelling are cheap, and drops them all once they are half of it; ties are broken by the arming order.

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
    RELINK = "relink"  # new credentials were accepted: drop the link and connect with them
    TX_RETRY = "tx_retry"  # resend the head of the transaction-message queue no earlier than this
    SAMPLE = "sample"  # per connector: the running transaction's next periodic meter values
    ALIGNED = "aligned"  # the next clock-aligned meter values (station-wide: every connector at that instant)
    CONNECTION_TIMEOUT = "connection_timeout"  # per connector: authorized, waiting for the cable
    LIMIT_CHECK = "limit_check"  # per connector: the charging-profile limit changes
    RESERVATION = "reservation"  # per connector: its reservation expires
    FIRMWARE = "firmware"  # a firmware update's next step (scheduled download, retry, install)
    LOG_UPLOAD = "log_upload"  # a log upload's retry

    # Members are singletons compared by identity, so identity is a valid hash. ``Enum.__hash__`` is a Python
    # function (it hashes the name): every arm, lookup and dormant test paid a call for it.
    __hash__ = object.__hash__


Key = tuple[Timer, int]
#: A deadline as the heap holds it: (when, arming order, key).
Entry = tuple[float, int, Key]


#: What an unarmed kind reads as (never written).
_NONE: dict[int, Entry] = {}
#: The heap is compacted once it has more entries than this and twice as many as there are deadlines.
_COMPACT_AT = 8


class Deadlines:
    """Deadlines by key; :meth:`next_deadline` is the earliest one."""

    __slots__ = ("_at", "_heap", "_seq")

    def __init__(self) -> None:
        # Per kind, connector id -> deadline and arming order: asking for one kind never scans the others. A kind
        # gets its map when first armed (most chargers never arm most kinds; a fleet holds thousands of them).
        # The map holds the very heap entry of a deadline: an entry is live when its kind's map still holds it.
        self._at: dict[Timer, dict[int, Entry]] = {}
        self._heap: list[Entry] = []
        self._seq = itertools.count()

    def arm(self, timer: Timer, when: float, connector_id: int = STATION) -> None:
        seq = next(self._seq)
        kind = self._at.get(timer)
        if kind is None:
            kind = self._at[timer] = {}
        kind[connector_id] = entry = (when, seq, (timer, connector_id))
        heap = self._heap
        heapq.heappush(heap, entry)
        if len(heap) > _COMPACT_AT and len(heap) > 2 * len(self):
            self._compact()

    def _compact(self) -> None:
        """Drop the stale entries (cancelled or re-armed): a charging connector re-arms its sample and limit
        deadlines all session long, and the heap only forgets an entry when it reaches the top."""
        at = self._at
        self._heap = [e for e in self._heap if at.get(e[2][0], _NONE).get(e[2][1]) is e]
        heapq.heapify(self._heap)

    def set(self, timer: Timer, when: float | None, connector_id: int = STATION) -> None:
        """Arm at ``when``, or cancel when it is None."""
        if when is None:
            self.cancel(timer, connector_id)
        else:
            self.arm(timer, when, connector_id)

    def cancel(self, timer: Timer, connector_id: int = STATION) -> None:
        kind = self._at.get(timer)
        if kind:
            kind.pop(connector_id, None)

    def cancel_all(self, timer: Timer) -> None:
        kind = self._at.get(timer)
        if kind:
            kind.clear()

    def at(self, timer: Timer, connector_id: int = STATION) -> float | None:
        armed = self._at.get(timer, _NONE).get(connector_id)
        return None if armed is None else armed[0]

    def pop_if_due(self, timer: Timer, now: float, connector_id: int = STATION) -> bool:
        """True (and cancelled) when the deadline is at or before ``now``."""
        kind = self._at.get(timer)
        armed = None if kind is None else kind.get(connector_id)
        if kind is None or armed is None or now < armed[0]:
            return False
        del kind[connector_id]
        return True

    def pop_due(self, timer: Timer, now: float) -> list[int]:
        """The connector ids whose ``timer`` is due at ``now``, earliest deadline first (ties: armed first),
        all cancelled."""
        kind = self._at.get(timer)
        if not kind:
            return []
        due = [(armed, cid) for cid, armed in kind.items() if armed[0] <= now]
        if len(due) > 1:
            due.sort()
        for _, cid in due:
            del kind[cid]
        return [cid for _, cid in due]

    def earliest(self) -> Entry | None:
        """The earliest live deadline as the heap holds it, (when, arming order, (timer, connector id))."""
        heap, at = self._heap, self._at
        while heap:
            entry = heap[0]
            timer, cid = entry[2]
            if at.get(timer, _NONE).get(cid) is entry:
                return entry
            heapq.heappop(heap)  # cancelled or re-armed
        return None

    def next_deadline(self, dormant: Collection[Timer] = ()) -> float | None:
        """The earliest deadline, leaving out the kinds in ``dormant`` (armed, but not waking anyone now)."""
        entry = self.earliest()
        if entry is None:
            return None
        if entry[2][0] not in dormant:
            return entry[0]
        awake = [e[0] for timer, kind in self._at.items() if timer not in dormant for e in kind.values()]
        return min(awake) if awake else None

    def __len__(self) -> int:
        return sum(len(kind) for kind in self._at.values())
