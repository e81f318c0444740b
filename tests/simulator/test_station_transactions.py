"""The charger-side transaction lifecycle table: every legal move, and a typed error for the others."""

from __future__ import annotations

import itertools

import pytest

from simulator.station.connector import ConnectorError
from simulator.station.transactions import (
    LIFECYCLE,
    WAITING,
    IllegalTransactionEvent,
    TxEvent,
    TxState,
    transition,
)

IDLE, AUTHORIZING, AUTHORIZED, ACTIVE = TxState.IDLE, TxState.AUTHORIZING, TxState.AUTHORIZED, TxState.ACTIVE
E = TxEvent

#: Written out by hand (not derived from the table).
LEGAL = {
    (IDLE, E.ASK): AUTHORIZING,
    (IDLE, E.GRANT): AUTHORIZED,  # no Authorize needed (offline, pre-authorized, remote), or a late answer
    (IDLE, E.REFUSE): IDLE,
    (IDLE, E.UNPLUG): IDLE,
    (IDLE, E.REBOOT): IDLE,
    (AUTHORIZING, E.ASK): AUTHORIZING,
    (AUTHORIZING, E.GRANT): AUTHORIZED,
    (AUTHORIZING, E.REFUSE): IDLE,
    (AUTHORIZING, E.TIMEOUT): IDLE,
    (AUTHORIZING, E.UNPLUG): IDLE,
    (AUTHORIZING, E.REBOOT): IDLE,
    (AUTHORIZED, E.ASK): AUTHORIZED,
    (AUTHORIZED, E.GRANT): AUTHORIZED,
    (AUTHORIZED, E.REFUSE): IDLE,
    (AUTHORIZED, E.START): ACTIVE,
    (AUTHORIZED, E.TIMEOUT): IDLE,
    (AUTHORIZED, E.UNPLUG): IDLE,
    (AUTHORIZED, E.REBOOT): IDLE,
    (ACTIVE, E.REFUSE): ACTIVE,
    (ACTIVE, E.STOP): IDLE,
    (ACTIVE, E.UNPLUG): ACTIVE,
    (ACTIVE, E.REBOOT): ACTIVE,
}
ILLEGAL = sorted((set(itertools.product(TxState, TxEvent)) - set(LEGAL)), key=lambda k: (k[0].value, k[1].value))


@pytest.mark.parametrize(("state", "event"), sorted(LEGAL, key=lambda k: (k[0].value, k[1].value)))
def test_every_legal_move(state: TxState, event: TxEvent) -> None:
    assert transition(1, state, event) is LEGAL[state, event]


def test_the_table_has_exactly_the_legal_moves() -> None:
    assert {(s, e): new for s, row in LIFECYCLE.items() for e, new in row.items()} == LEGAL


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_every_other_move_is_a_typed_error(state: TxState, event: TxEvent) -> None:
    with pytest.raises(IllegalTransactionEvent) as info:
        transition(2, state, event)
    assert (info.value.state, info.value.event) == (state, event)
    assert "connector 2" in str(info.value)
    assert isinstance(info.value, ConnectorError)  # our own mistake, counted like the connector table's


def test_the_illegal_moves_include_the_ones_the_charger_guards_against() -> None:
    for move in [(IDLE, E.START), (IDLE, E.STOP), (ACTIVE, E.START), (ACTIVE, E.ASK), (ACTIVE, E.GRANT)]:
        assert move in ILLEGAL


def test_waiting_is_what_1_6_reports_as_preparing_without_a_cable() -> None:
    assert {AUTHORIZING, AUTHORIZED} == WAITING
