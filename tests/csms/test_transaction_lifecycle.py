"""The transaction lifecycle table of csms/domain/transaction.py: every legal and illegal move."""

from __future__ import annotations

import pytest

from csms.domain.transaction import (
    DUPLICATE,
    TRANSITIONS,
    IllegalTransactionMove,
    TransactionReport,
    TransactionStatus,
    move,
)

ACTIVE, COMPLETED = TransactionStatus.ACTIVE, TransactionStatus.COMPLETED
STARTED, UPDATED, ENDED, REPEATED = (
    TransactionReport.STARTED,
    TransactionReport.UPDATED,
    TransactionReport.ENDED,
    TransactionReport.REPEATED,
)

LEGAL = [
    # No row yet: any report opens the transaction (its Started may be lost or still queued).
    (None, STARTED, ACTIVE),
    (None, UPDATED, ACTIVE),
    (None, ENDED, COMPLETED),
    (ACTIVE, STARTED, ACTIVE),  # 2.0.1: the Started of a transaction an Updated opened
    (ACTIVE, UPDATED, ACTIVE),
    (ACTIVE, ENDED, COMPLETED),
    (ACTIVE, REPEATED, DUPLICATE),
    (COMPLETED, STARTED, COMPLETED),  # replayed out of order: fills in, stays completed
    (COMPLETED, UPDATED, COMPLETED),
    (COMPLETED, ENDED, DUPLICATE),  # a second stop is answered as the first
    (COMPLETED, REPEATED, DUPLICATE),
]


@pytest.mark.parametrize(("status", "report", "after"), LEGAL)
def test_legal_moves(status, report, after):
    assert move(status, report) is after
    assert move(None if status is None else status.value, report) is after  # as the row stores it


def test_the_table_has_exactly_these_moves():
    table = {(s, r): a for s, moves in TRANSITIONS.items() for r, a in moves.items()}
    assert table == {(s, r): a for s, r, a in LEGAL}


def test_a_repeat_of_a_report_never_recorded_is_illegal():
    with pytest.raises(IllegalTransactionMove, match="REPEATED"):
        move(None, REPEATED)


@pytest.mark.parametrize("report", list(TransactionReport))
@pytest.mark.parametrize("status", ["", "Active", "stopped"])
def test_an_unknown_status_is_illegal(status, report):
    with pytest.raises(IllegalTransactionMove):
        move(status, report)


def test_statuses_are_stored_as_before():
    assert [s.value for s in TransactionStatus] == ["active", "completed"]
