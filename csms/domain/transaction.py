"""A charging session's lifecycle as the CSMS records it, for both OCPP versions: one table.

Theory of operation
-------------------
A transaction row is ``active`` or ``completed`` (:class:`TransactionStatus`); before its first report it
has no row (``None``). Each report a station sends about it (:class:`TransactionReport`) moves it along
:data:`TRANSITIONS`:

* Real fleets lose and reorder messages, so a transaction may be *opened* by any report: an Updated
  whose Started was lost or is still queued at the station opens it active, an Ended opens it completed.
* A Started or Updated arriving after the Ended (an offline replay out of order) fills in what it carries
  and leaves it completed.
* A report already recorded (2.0.1: the same seqNo; 1.6: a StartTransaction of the same port, start and
  meterStart) and a second Ended change nothing: :data:`DUPLICATE`, answered as the first one was.

A 1.6 StopTransaction names the transaction by the id we assigned; for an id we never gave out there is no
row to move, and ``services/transactions.end`` answers it without consulting this table.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class TransactionStatus(StrEnum):
    """As ``transactions.status`` stores it."""

    ACTIVE = "active"
    COMPLETED = "completed"


class TransactionReport(Enum):
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"
    #: A report recorded already.
    REPEATED = "repeated"


class Duplicate(Enum):
    DUPLICATE = "duplicate"


#: The report changes nothing and is acknowledged as before.
DUPLICATE = Duplicate.DUPLICATE

Move = TransactionStatus | Duplicate

ACTIVE, COMPLETED = TransactionStatus.ACTIVE, TransactionStatus.COMPLETED
STARTED, UPDATED, ENDED, REPEATED = tuple(TransactionReport)

#: status (None: no row yet) -> report -> new status, or DUPLICATE. Missing: an illegal move.
TRANSITIONS: dict[TransactionStatus | None, dict[TransactionReport, Move]] = {
    None: {STARTED: ACTIVE, UPDATED: ACTIVE, ENDED: COMPLETED},
    ACTIVE: {STARTED: ACTIVE, UPDATED: ACTIVE, ENDED: COMPLETED, REPEATED: DUPLICATE},
    COMPLETED: {STARTED: COMPLETED, UPDATED: COMPLETED, ENDED: DUPLICATE, REPEATED: DUPLICATE},
}


class IllegalTransactionMove(ValueError):
    """A move :data:`TRANSITIONS` does not have: a bug in the CSMS, never the station's doing."""


def move(status: str | None, report: TransactionReport) -> Move:
    """Where ``report`` takes a transaction in ``status`` (None: no row yet).

    Raises:
        IllegalTransactionMove: ``status`` is no status, or the move is not in the table (a report
            "recorded already" for a transaction without a row).
    """
    try:
        return TRANSITIONS[None if status is None else TransactionStatus(status)][report]
    except (KeyError, ValueError):
        raise IllegalTransactionMove(f"can't handle {report.name} when the transaction is {status}") from None
