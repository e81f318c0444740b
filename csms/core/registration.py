"""A station's registration as the CSMS sees it (OCPP 1.6 §4.2, 2.0.1 B01-B03): two tables.

Theory of operation
-------------------
The truth is the station's row, ``Station.registration_status``: :func:`csms.services.stations.boot` writes
it in the transaction that answers a BootNotification, with the answer the operator's registration policy
gives (accept: Accepted, pending: Pending, reject: Rejected; the service reads the policy from the same
row). A :class:`~csms.core.session.StationSession` keeps a derived copy so that it can refuse a call
without reading the database: the copy is read from the row when the station connects, and moves along
:data:`TRANSITIONS` only with an answer of a batch that committed (``StationSession.deliver``), so it is
never ahead of the row. Nothing else writes either.

:data:`ADMISSION` says which calls are served in each state: until its last BootNotification was Accepted
a station may send only BootNotification and, once per request, a message we asked for with
TriggerMessage; anything else is refused with a SecurityError CALLERROR.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Registration(StrEnum):
    """The OCPP RegistrationStatus last answered to the station, or NEW before the first answer."""

    NEW = "New"
    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"

    @classmethod
    def stored(cls, status: str | None) -> Registration:
        """The state of a station whose row holds ``status`` (None: never answered).

        Raises:
            IllegalRegistration: not a status the CSMS answers.
        """
        if status is None:
            return cls.NEW
        return after_boot(cls.NEW, status)

    @property
    def status(self) -> str | None:
        """As the row stores it."""
        return None if self is Registration.NEW else self.value


class IllegalRegistration(ValueError):
    """A move :data:`TRANSITIONS` does not have: a bug in the CSMS, never the station's doing."""


class Message(Enum):
    """A call from the station, as admission sees it."""

    BOOT = "BootNotification"
    #: Asked for by a TriggerMessage the station accepted, and not sent since.
    TRIGGERED = "triggered"
    OTHER = "other"


class Verdict(Enum):
    SERVE = "serve"
    #: Serve it, and the trigger that admitted it is used up.
    SERVE_TRIGGERED = "serve triggered"
    #: SecurityError.
    REFUSE = "refuse"


#: state -> BootNotification answer -> state. Every state takes every answer: the operator may change the
#: policy between two boots. No answer leads back to NEW.
TRANSITIONS: dict[Registration, dict[str, Registration]] = {
    state: {
        "Accepted": Registration.ACCEPTED,
        "Pending": Registration.PENDING,
        "Rejected": Registration.REJECTED,
    }
    for state in Registration
}

_BEFORE_ACCEPTANCE = {
    Message.BOOT: Verdict.SERVE,
    Message.TRIGGERED: Verdict.SERVE_TRIGGERED,
    Message.OTHER: Verdict.REFUSE,
}

#: state -> kind of call -> what the session does with it.
ADMISSION: dict[Registration, dict[Message, Verdict]] = {
    Registration.NEW: _BEFORE_ACCEPTANCE,
    Registration.PENDING: _BEFORE_ACCEPTANCE,
    Registration.REJECTED: _BEFORE_ACCEPTANCE,
    Registration.ACCEPTED: {
        Message.BOOT: Verdict.SERVE,
        Message.TRIGGERED: Verdict.SERVE,
        Message.OTHER: Verdict.SERVE,
    },
}


def after_boot(state: Registration, answer: str) -> Registration:
    """The state once a BootNotification answered ``answer`` committed.

    Raises:
        IllegalRegistration: ``answer`` is not a RegistrationStatus.
    """
    try:
        return TRANSITIONS[state][answer]
    except KeyError:
        raise IllegalRegistration(f"can't answer a boot {answer!r} when the registration is {state}") from None


def admission(state: Registration, action: str, *, triggered: bool) -> Verdict:
    """What to do with a call of ``action``; ``triggered``: we asked for it and it has not come since."""
    message = Message.BOOT if action == "BootNotification" else Message.TRIGGERED if triggered else Message.OTHER
    return ADMISSION[state][message]
