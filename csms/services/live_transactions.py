"""The running transactions of the stations this process serves, kept in memory; the database is the record.

A station is connected to one process at a time, and only its own reports move its transactions, so that
process can remember what it needs to serve the most frequent reports — whose transaction a meter value
belongs to, which 2.0.1 sequence numbers were recorded — without a query each. What it remembers was read
from the database, or written to it in the batch now running; when a batch (or one call's savepoint) rolls
back, the cache is cleared and read again on demand. A station's entries are dropped when it connects, in
case another process served it meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from csms.tariffs.pricing import RunningCost
from csms.tariffs.timeline import State


@dataclass(slots=True)
class LiveTransaction:
    id: int
    #: :class:`~csms.domain.transaction.TransactionStatus` value, as stored.
    status: str
    evse_id: int | None
    has_token: bool
    #: 2.0.1 sequence numbers recorded for this transaction.
    seq_nos: set[int] = field(default_factory=set)


@dataclass(slots=True)
class LiveCost:
    """A priced session's cost so far, fed with each report's samples and charging state as it comes
    (:func:`csms.services.cdrs.running_cost`); rebuilt from the stored samples when it is not here (a restart,
    a rollback) or no longer fits (another tariff or version, a report older than what it has priced)."""

    running: RunningCost
    #: when the session started (the readings before it count at it)
    start: datetime
    #: (tariff id, its version) it prices with
    tariff: tuple[str, int]
    #: the report time when the tariff was last looked up (it is looked up again every few minutes)
    checked_at: datetime
    #: the newest instant fed (a reading or a state change)
    fed_until: datetime
    state: State
    #: when a version of the tariff set for later takes over (then it is rebuilt); None: none is
    valid_until: datetime | None
    #: an ad-hoc (card) session's cost at which it is stopped (:func:`csms.services.payments.cost_limit`)
    cost_limit: Decimal | None


class LiveTransactions:
    def __init__(self) -> None:
        self._by_station: dict[str, dict[str, LiveTransaction]] = {}
        #: Transactions found to have no tariff: their reports are answered without a cost (:mod:`.cdrs`).
        self.unpriced: set[int] = set()
        #: Running costs of priced sessions, by station and transaction id.
        self._costs: dict[str, dict[int, LiveCost]] = {}
        #: When ``stations.last_seen_at`` was last queued per station (:func:`csms.services.reports.handle`).
        self.seen_at: dict[str, float] = {}

    def seen_due(self, station_id: str, at: float, every_s: float) -> bool:
        """Whether a sign of life at ``at`` (POSIX seconds) writes ``stations.last_seen_at``: the first one this
        node saw of the station, else one ``every_s`` or more after the last it wrote (:func:`mark_seen`)."""
        last = self.seen_at.get(station_id)
        return last is None or at - last >= every_s

    def mark_seen(self, station_id: str, at: float, every_s: float) -> bool:
        """:meth:`seen_due`, and if so remembered as the last written."""
        if self.seen_due(station_id, at, every_s):
            self.seen_at[station_id] = at
            return True
        return False

    def cost(self, station_id: str, transaction_id: int) -> LiveCost | None:
        known = self._costs.get(station_id)
        return None if known is None else known.get(transaction_id)

    def keep_cost(self, station_id: str, transaction_id: int, cost: LiveCost | None) -> None:
        """Keep (or, with None, drop) a session's running cost."""
        if cost is None:
            self._costs.get(station_id, {}).pop(transaction_id, None)
        else:
            self._costs.setdefault(station_id, {})[transaction_id] = cost

    def get(self, station_id: str, charger_tx_id: str) -> LiveTransaction | None:
        known = self._by_station.get(station_id)
        return None if known is None else known.get(charger_tx_id)

    def put(self, station_id: str, charger_tx_id: str, tx: LiveTransaction) -> None:
        self._by_station.setdefault(station_id, {})[charger_tx_id] = tx

    def forget(self, station_id: str, charger_tx_id: str) -> None:
        known = self._by_station.get(station_id)
        if known is not None:
            known.pop(charger_tx_id, None)

    def forget_station(self, station_id: str) -> None:
        self._by_station.pop(station_id, None)
        self._costs.pop(station_id, None)

    def clear(self) -> None:
        self._by_station = {}
        self.unpriced = set()
        self._costs = {}
        self.seen_at = {}

    def __len__(self) -> int:
        return sum(len(known) for known in self._by_station.values())
