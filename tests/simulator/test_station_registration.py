"""The charger's registration table: every move, the retry it asks for, and the typed error."""

from __future__ import annotations

import random

import pytest

from csms.ocpp import framing
from csms.ocpp.versions import OCPP16, OCPP201, Version
from simulator.station import Charger, Registration
from simulator.station.registration import (
    SERVES_CALLS,
    TRANSITIONS,
    IllegalRegistrationEvent,
    RegistrationEvent,
    Retry,
    answered,
    transition,
)
from tests.simulator.helpers import T0, FakeMeter

UNREGISTERED, PENDING = Registration.UNREGISTERED, Registration.PENDING
REJECTED, ACCEPTED = Registration.REJECTED, Registration.ACCEPTED

#: Written out by hand (not derived from the table): state, event -> next state, retry.
EXPECTED = {
    (state, RegistrationEvent.ACCEPTED): (ACCEPTED, Retry.NONE) for state in (UNREGISTERED, PENDING, REJECTED, ACCEPTED)
} | {
    (UNREGISTERED, RegistrationEvent.PENDING): (PENDING, Retry.INTERVAL),
    (PENDING, RegistrationEvent.PENDING): (PENDING, Retry.INTERVAL),
    (REJECTED, RegistrationEvent.PENDING): (PENDING, Retry.INTERVAL),
    (ACCEPTED, RegistrationEvent.PENDING): (PENDING, Retry.INTERVAL),  # 1.6: a triggered boot while Accepted
    (UNREGISTERED, RegistrationEvent.REJECTED): (REJECTED, Retry.INTERVAL),
    (PENDING, RegistrationEvent.REJECTED): (REJECTED, Retry.INTERVAL),
    (REJECTED, RegistrationEvent.REJECTED): (REJECTED, Retry.INTERVAL),
    (ACCEPTED, RegistrationEvent.REJECTED): (REJECTED, Retry.INTERVAL),
    (UNREGISTERED, RegistrationEvent.FAILED): (UNREGISTERED, Retry.DEFAULT),
    (PENDING, RegistrationEvent.FAILED): (PENDING, Retry.DEFAULT),
    (REJECTED, RegistrationEvent.FAILED): (REJECTED, Retry.DEFAULT),
    (ACCEPTED, RegistrationEvent.FAILED): (ACCEPTED, Retry.DEFAULT),
    (UNREGISTERED, RegistrationEvent.REBOOTED): (UNREGISTERED, Retry.NONE),
    (PENDING, RegistrationEvent.REBOOTED): (UNREGISTERED, Retry.NONE),
    (REJECTED, RegistrationEvent.REBOOTED): (UNREGISTERED, Retry.NONE),
    (ACCEPTED, RegistrationEvent.REBOOTED): (UNREGISTERED, Retry.NONE),
}


@pytest.mark.parametrize(("state", "event"), sorted(EXPECTED, key=lambda k: (k[0].value, k[1].value)))
def test_every_legal_move(state: Registration, event: RegistrationEvent) -> None:
    assert transition(state, event) == EXPECTED[state, event]


def test_the_table_has_exactly_the_expected_moves() -> None:
    table = {(s, e): move for s, row in TRANSITIONS.items() for e, move in row.items()}
    assert table == EXPECTED


@pytest.mark.parametrize("status", ["Accepted", "Pending", "Rejected"])
def test_boot_answers_are_events(status: str) -> None:
    assert answered(UNREGISTERED, status) == transition(UNREGISTERED, RegistrationEvent(status))


@pytest.mark.parametrize("status", ["Maybe", "accepted", "Failed", "Rebooted", ""])
def test_a_boot_status_no_version_defines_is_a_typed_error(status: str) -> None:
    with pytest.raises(IllegalRegistrationEvent) as info:
        answered(PENDING, status)
    assert info.value.state is PENDING and info.value.event == status


def test_only_pending_and_accepted_stations_serve_calls() -> None:
    assert {PENDING, ACCEPTED} == SERVES_CALLS


@pytest.mark.parametrize("version", [OCPP16, OCPP201])
def test_a_pending_answer_retries_after_its_interval_then_a_failure_after_boot_retry(version: Version) -> None:
    charger = Charger("CP1", version, meter=FakeMeter(), rng=random.Random(1), boot_retry_s=60.0)
    charger.connected(T0)
    [boot] = [framing.decode(f) for f in charger.frames_to_send()]
    assert isinstance(boot, framing.Call) and boot.action == "BootNotification"
    status = {"status": "Pending", "interval": 30, "currentTime": "2026-01-15T22:00:00Z"}
    charger.receive_frame(framing.encode(framing.CallResult(boot.unique_id, status)), T0 + 1)
    assert charger.registration is PENDING
    assert charger.next_deadline() == T0 + 31
    charger.handle_timer(T0 + 31)
    [again] = [framing.decode(f) for f in charger.frames_to_send()]
    assert isinstance(again, framing.Call) and again.action == "BootNotification"
    charger.receive_frame(framing.encode(framing.CallError(again.unique_id, "InternalError", "", {})), T0 + 32)
    assert charger.registration is PENDING  # no answer keeps the state
    assert charger.next_deadline() == T0 + 32 + 60
