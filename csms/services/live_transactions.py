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


@dataclass(slots=True)
class LiveTransaction:
    id: int
    #: :class:`~csms.domain.transaction.TransactionStatus` value, as stored.
    status: str
    evse_id: int | None
    has_token: bool
    #: 2.0.1 sequence numbers recorded for this transaction.
    seq_nos: set[int] = field(default_factory=set)


class LiveTransactions:
    def __init__(self) -> None:
        self._by_station: dict[str, dict[str, LiveTransaction]] = {}
        #: Transactions found to have no tariff: their reports are answered without a cost (:mod:`.cdrs`).
        self.unpriced: set[int] = set()

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

    def clear(self) -> None:
        self._by_station = {}
        self.unpriced = set()

    def __len__(self) -> int:
        return sum(len(known) for known in self._by_station.values())
