"""The charger's keyed deadline heap."""

from __future__ import annotations

from simulator.station.timers import Deadlines, Timer


def test_the_next_deadline_is_the_earliest_armed_one() -> None:
    d = Deadlines()
    assert d.next_deadline() is None
    d.arm(Timer.HEARTBEAT, 300.0)
    d.arm(Timer.SAMPLE, 60.0, connector_id=1)
    d.arm(Timer.SAMPLE, 90.0, connector_id=2)
    assert d.next_deadline() == 60.0
    assert len(d) == 3


def test_arming_a_key_again_moves_it_and_cancelling_forgets_it() -> None:
    d = Deadlines()
    d.arm(Timer.HEARTBEAT, 100.0)
    d.arm(Timer.HEARTBEAT, 400.0)
    assert d.at(Timer.HEARTBEAT) == 400.0
    assert d.next_deadline() == 400.0
    d.cancel(Timer.HEARTBEAT)
    assert d.at(Timer.HEARTBEAT) is None and d.next_deadline() is None
    d.set(Timer.BOOT, 5.0)
    d.set(Timer.BOOT, None)
    assert d.next_deadline() is None


def test_dormant_kinds_do_not_wake_the_owner() -> None:
    d = Deadlines()
    d.arm(Timer.RECONNECT, 10.0)
    d.arm(Timer.TX_RETRY, 20.0)
    d.arm(Timer.HEARTBEAT, 30.0)
    assert d.next_deadline() == 10.0
    assert d.next_deadline(dormant={Timer.RECONNECT}) == 20.0
    assert d.next_deadline(dormant={Timer.RECONNECT, Timer.TX_RETRY}) == 30.0
    assert d.next_deadline(dormant=set(Timer)) is None
    assert d.at(Timer.RECONNECT) == 10.0  # dormant, still armed


def test_pop_if_due_fires_once_at_or_after_the_deadline() -> None:
    d = Deadlines()
    d.arm(Timer.REBOOT, 50.0)
    assert not d.pop_if_due(Timer.REBOOT, 49.9)
    assert d.pop_if_due(Timer.REBOOT, 50.0)
    assert not d.pop_if_due(Timer.REBOOT, 51.0)


def test_pop_due_gives_the_due_connectors_earliest_first_ties_in_arming_order() -> None:
    d = Deadlines()
    d.arm(Timer.CONNECTION_TIMEOUT, 20.0, connector_id=3)
    d.arm(Timer.CONNECTION_TIMEOUT, 10.0, connector_id=2)
    d.arm(Timer.CONNECTION_TIMEOUT, 20.0, connector_id=1)
    d.arm(Timer.CONNECTION_TIMEOUT, 99.0, connector_id=4)
    d.arm(Timer.LIMIT_CHECK, 5.0, connector_id=1)
    assert d.pop_due(Timer.CONNECTION_TIMEOUT, 20.0) == [2, 3, 1]
    assert d.pop_due(Timer.CONNECTION_TIMEOUT, 20.0) == []
    assert d.at(Timer.CONNECTION_TIMEOUT, 4) == 99.0
    assert d.at(Timer.LIMIT_CHECK, 1) == 5.0  # another kind is left alone
    d.cancel_all(Timer.CONNECTION_TIMEOUT)
    assert d.next_deadline() == 5.0
