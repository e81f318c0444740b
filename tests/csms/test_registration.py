"""The registration tables of csms/core/registration.py: every move, every admission."""

from __future__ import annotations

import pytest

from csms.core.registration import (
    ADMISSION,
    TRANSITIONS,
    IllegalRegistration,
    Message,
    Registration,
    Verdict,
    admission,
    after_boot,
)

ANSWERS = {"Accepted": Registration.ACCEPTED, "Pending": Registration.PENDING, "Rejected": Registration.REJECTED}


@pytest.mark.parametrize("state", list(Registration))
@pytest.mark.parametrize("answer", list(ANSWERS))
def test_every_state_takes_every_boot_answer(state, answer):
    assert after_boot(state, answer) is ANSWERS[answer]


@pytest.mark.parametrize("state", list(Registration))
@pytest.mark.parametrize("answer", ["New", "accept", "Unknown", "accepted", ""])
def test_an_answer_that_is_no_registration_status_is_illegal(state, answer):
    with pytest.raises(IllegalRegistration, match=repr(answer)):
        after_boot(state, answer)


def test_no_answer_leads_back_to_new():
    assert all(Registration.NEW not in moves.values() for moves in TRANSITIONS.values())


def test_the_stored_status_is_read_back_as_the_state():
    assert Registration.stored(None) is Registration.NEW
    for text, state in ANSWERS.items():
        assert Registration.stored(text) is state
        assert state.status == text
    assert Registration.NEW.status is None
    with pytest.raises(IllegalRegistration):
        Registration.stored("accept")


BEFORE = {"BootNotification": Verdict.SERVE, "triggered": Verdict.SERVE_TRIGGERED, "other": Verdict.REFUSE}
EXPECTED = {
    Registration.NEW: BEFORE,
    Registration.PENDING: BEFORE,
    Registration.REJECTED: BEFORE,
    Registration.ACCEPTED: {"BootNotification": Verdict.SERVE, "triggered": Verdict.SERVE, "other": Verdict.SERVE},
}


@pytest.mark.parametrize("state", list(Registration))
@pytest.mark.parametrize("message", list(Message))
def test_admission_table(state, message):
    assert ADMISSION[state][message] is EXPECTED[state][message.value]


@pytest.mark.parametrize("state", list(Registration))
def test_admission_of_calls(state):
    accepted = state is Registration.ACCEPTED
    assert admission(state, "BootNotification", triggered=False) is Verdict.SERVE
    assert admission(state, "BootNotification", triggered=True) is Verdict.SERVE  # a boot is a boot
    assert admission(state, "Heartbeat", triggered=False) is (Verdict.SERVE if accepted else Verdict.REFUSE)
    assert admission(state, "StatusNotification", triggered=True) is (
        Verdict.SERVE if accepted else Verdict.SERVE_TRIGGERED
    )
