"""The OCTT's reusable states of a 2.0.1 CSMS case, played by the case itself.

The OCTT drives its simulated station with scripted messages: each TransactionEvent carries the trigger reason,
charging state and stop reason the case is about (EVDetected, SignedDataReceived, EVConnectTimeout, …). The
firmware's own start and stop points are fixed, so these cases compose the messages here and send them through
the station's RPC endpoint (message ids, one CALL at a time, the frame checks) — a :class:`ScriptedTransaction`
keeps its transaction id and seqNo; the module-level helpers send the connector's status and authorize a token.

What the CSMS must answer is checked where the OCTT checks it: an ``idTokenInfo`` with the expected status
whenever an event carries an idToken (the schema makes it required then), and an AuthorizeResponse Accepted.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.ocpp.framing import Call
from simulator.conformance.operator_thread import OperatorJob, OperatorThread
from simulator.conformance.station import Answer, CaseFailed, StationUnderTest
from simulator.operators.base import CallOutcome

ENERGY = "Energy.Active.Import.Register"
#: The token type the cases present (the firmware's own default).
TOKEN_TYPE = "ISO14443"
#: Refusals of an idToken the CSMS does not accept.
NOT_VALID = ("Invalid", "Unknown")
#: How often a wait for the CSMS's CALL looks whether the operator gave up meanwhile.
POLL_S = 0.25


def now_text(shift_s: float = 0.0) -> str:
    """UTC now (plus ``shift_s``) as OCPP writes it."""
    return (datetime.now(UTC) + timedelta(seconds=shift_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def id_token(token: str, token_type: str = TOKEN_TYPE) -> dict[str, str]:
    return {"idToken": token, "type": token_type}


def token_status(station: StationUnderTest, answer: dict[str, Any], what: str) -> str:
    """The ``idTokenInfo.status`` of an answer that must carry one."""
    info = answer.get("idTokenInfo")
    if not isinstance(info, dict) or "status" not in info:
        station.fail(f"{what}: the answer {answer} has no idTokenInfo, required when the request carries an idToken")
        raise AssertionError("unreachable")
    return str(info["status"])


def expect_token_status(station: StationUnderTest, answer: dict[str, Any], what: str, *allowed: str) -> None:
    status = token_status(station, answer, what)
    if status not in allowed:
        station.fail(f"{what}: idTokenInfo.status {status!r}, the case expects {' or '.join(allowed)}")


def authorize(station: StationUnderTest, token: str, token_type: str = TOKEN_TYPE, *allowed: str) -> dict[str, Any]:
    """AuthorizeRequest; the CSMS must answer with one of ``allowed`` (default Accepted)."""
    answer = station.call("Authorize", {"idToken": id_token(token, token_type)})
    expect_token_status(station, answer, f"AuthorizeResponse for {token}", *(allowed or ("Accepted",)))
    return answer


def notify_event(
    station: StationUnderTest,
    component: dict[str, Any],
    variable: str,
    value: str,
    *,
    trigger: str = "Delta",
    notification: str = "HardWiredNotification",
) -> dict[str, Any]:
    """A NotifyEventRequest with one event (the CSMS answers it with an empty payload)."""
    event = {
        "eventId": 1,
        "timestamp": now_text(),
        "trigger": trigger,
        "actualValue": value,
        "eventNotificationType": notification,
        "component": component,
        "variable": {"name": variable},
    }
    return station.call("NotifyEvent", {"generatedAt": now_text(), "seqNo": 0, "tbc": False, "eventData": [event]})


def connector_status(station: StationUnderTest, status: str, evse_id: int = 1, connector_id: int = 1) -> None:
    """The OCTT's "notifies the CSMS about the state of the connector": a StatusNotificationRequest and the
    NotifyEventRequest of the connector's AvailabilityState."""
    station.call(
        "StatusNotification",
        {"timestamp": now_text(), "connectorStatus": status, "evseId": evse_id, "connectorId": connector_id},
    )
    component = {"name": "Connector", "evse": {"id": evse_id, "connectorId": connector_id}}
    notify_event(station, component, "AvailabilityState", status)


def sampled(
    value: float,
    context: str,
    *,
    measurand: str = ENERGY,
    unit: str = "Wh",
    signed: bool = False,
    phase: str | None = None,
) -> dict[str, Any]:
    """One sampledValue; ``signed`` adds a signedMeterValue (an OCMF-style blob: the CSMS stores, not verifies)."""
    sv: dict[str, Any] = {"value": value, "context": context, "measurand": measurand, "unitOfMeasure": {"unit": unit}}
    if phase is not None:
        sv["phase"] = phase
    if signed:
        blob = f'OCMF|{{"RD":[{{"RV":{value},"RU":"{unit}"}}]}}'.encode()
        sv["signedMeterValue"] = {
            "signedMeterData": base64.b64encode(blob).decode(),
            "signingMethod": "ECDSA-secp256r1-SHA256",
            "encodingMethod": "OCMF",
            "publicKey": base64.b64encode(b"conformance-test-public-key").decode(),
        }
    return sv


def meter_value(values: Iterable[dict[str, Any]], shift_s: float = 0.0) -> dict[str, Any]:
    return {"timestamp": now_text(shift_s), "sampledValue": list(values)}


@dataclass
class ScriptedTransaction:
    """One transaction the case plays on ``evse_id``/``connector_id``: its id, its seqNo, whether the EV is in."""

    station: StationUnderTest
    token: str
    token_type: str = TOKEN_TYPE
    evse_id: int = 1
    connector_id: int = 1
    transaction_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    seq_no: int = 0
    ev_connected: bool = False
    energy_wh: float = 0.0

    # ---- one TransactionEvent ------------------------------------------------------------------------------
    def payload(
        self,
        event_type: str,
        trigger: str,
        *,
        state: str | None = None,
        stopped: str | None = None,
        with_token: bool = False,
        meter: list[dict[str, Any]] | None = None,
        offline: bool = False,
        evse: bool = True,
        **info: Any,
    ) -> dict[str, Any]:
        """The next TransactionEventRequest (it takes the next seqNo)."""
        transaction_info: dict[str, Any] = {"transactionId": self.transaction_id, **info}
        if state is not None:
            transaction_info["chargingState"] = state
        if stopped is not None:
            transaction_info["stoppedReason"] = stopped
        body: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": now_text(),
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": transaction_info,
        }
        self.seq_no += 1
        if evse:
            body["evse"] = {"id": self.evse_id, "connectorId": self.connector_id}
        if with_token:
            body["idToken"] = id_token(self.token, self.token_type)
        if meter:
            body["meterValue"] = meter
        if offline:
            body["offline"] = True
        return body

    def event(self, event_type: str, trigger: str, **kwargs: Any) -> dict[str, Any]:
        """Send the next TransactionEvent and return the CSMS's answer; one that carried the idToken must be
        answered with an idTokenInfo (its status is the caller's to check)."""
        body = self.payload(event_type, trigger, **kwargs)
        answer = self.station.call("TransactionEvent", body)
        if "idToken" in body:
            token_status(self.station, answer, f"TransactionEventResponse ({event_type}, {trigger})")
        return answer

    def register(self, context: str, *, signed: bool = False, add_wh: float = 0.0) -> list[dict[str, Any]]:
        """A meterValue list with the energy register (grown by ``add_wh``) in ``context``."""
        self.energy_wh += add_wh
        return [meter_value([sampled(self.energy_wh, context, signed=signed)])]

    # ---- the OCTT's reusable states ------------------------------------------------------------------------
    def authorized(self, *, started: bool | None = None, evse: bool = True) -> dict[str, Any]:
        """Authorized: AuthorizeRequest (Accepted), then a TransactionEvent with the idToken and trigger
        Authorized — Started, or Updated when the transaction already started (EVConnectedPreSession)."""
        authorize(self.station, self.token, self.token_type)
        first = self.seq_no == 0 if started is None else started
        answer = self.event("Started" if first else "Updated", "Authorized", with_token=True, evse=evse)
        expect_token_status(self.station, answer, "TransactionEventResponse after Authorized", "Accepted")
        return answer

    def ev_connected_pre_session(self) -> dict[str, Any]:
        """EVConnectedPreSession: the connector is Occupied; the transaction starts on the cable (or, when the
        driver was authorized first, goes on with an Updated event)."""
        connector_status(self.station, "Occupied", self.evse_id, self.connector_id)
        self.ev_connected = True
        return self.event("Started" if self.seq_no == 0 else "Updated", "CablePluggedIn", state="EVConnected")

    def energy_transfer_started(self) -> dict[str, Any]:
        """EnergyTransferStarted: the cable (if not in yet), then chargingState Charging."""
        if not self.ev_connected:
            connector_status(self.station, "Occupied", self.evse_id, self.connector_id)
            self.ev_connected = True
            self.event("Updated", "CablePluggedIn", state="EVConnected")
        return self.event("Updated", "ChargingStateChanged", state="Charging")

    def energy_transfer_suspended(self) -> dict[str, Any]:
        return self.event("Updated", "ChargingStateChanged", state="SuspendedEV")

    def stop_authorized(self) -> dict[str, Any]:
        """StopAuthorized: the driver presents the token again (Authorize, then an Updated StopAuthorized)."""
        authorize(self.station, self.token, self.token_type)
        answer = self.event("Updated", "StopAuthorized", state="EVConnected", with_token=True)
        expect_token_status(self.station, answer, "TransactionEventResponse after StopAuthorized", "Accepted")
        return answer

    def ev_connected_post_session(self) -> dict[str, Any]:
        return self.event("Updated", "ChargingStateChanged", state="EVConnected")

    def ev_disconnected(self, *, ended: bool = True, **kwargs: Any) -> dict[str, Any]:
        """EVDisconnected: the connector is Available again and the transaction ends (EVDisconnected) — or,
        with ``ended`` False (a stop point after the cable, e.g. the parking bay), goes on Idle."""
        connector_status(self.station, "Available", self.evse_id, self.connector_id)
        self.ev_connected = False
        if not ended:
            return self.event("Updated", "EVCommunicationLost", state="Idle", **kwargs)
        return self.event("Ended", "EVCommunicationLost", state="Idle", stopped="EVDisconnected", **kwargs)

    def charging(self) -> None:
        """Authorized, then EnergyTransferStarted: the usual "a transaction is charging" before-state."""
        self.authorized()
        self.energy_transfer_started()


def ask(
    station: StationUnderTest,
    operator: OperatorThread,
    action: str,
    payload: dict[str, Any],
    reply: Answer,
    **expected: Any,
) -> tuple[dict[str, Any], CallOutcome]:
    """The operator asks the CSMS to send ``action``; the station answers ``reply``; every ``expected`` field
    (``evse=None``: absent) must be in the CALL as given. Returns the CALL's payload and the operator's outcome."""
    station.answer(action, reply)
    job = operator.request(station, action, payload)
    call = requested_call(station, job, action)
    for name, value in expected.items():
        sent = call.payload.get(name)
        if sent != value:
            wanted = "absent" if value is None else repr(value)
            station.fail(f"{action} with {name} {sent!r}, the case expects {wanted}")
    outcome = job.outcome(station)
    assert isinstance(outcome, CallOutcome)
    return call.payload, outcome


def requested_call(station: StationUnderTest, job: OperatorJob, action: str) -> Call:
    """The CSMS's CALL of ``action`` that the operator asked for — or, as soon as the operator reports that the
    CSMS refused the request (it then sends nothing), a failure quoting the refusal instead of a timeout."""
    deadline = station.now() + station.target.wait_s
    while True:
        station.check()  # a broken rule fails now, not when the wait is over
        if job.future.done() and job.future.exception() is not None:
            job.outcome(station)  # fails the case with the operator's error
        try:
            return station.wait_call(action, timeout=POLL_S)
        except CaseFailed:
            if station.now() >= deadline:
                station.fail(f"the operator asked, but the CSMS sent no {action} within {station.target.wait_s:g} s")
                raise


def reconnect(station: StationUnderTest, offline_s: float) -> None:
    """The OCTT closes the WebSocket, waits ``offline_s`` and connects again (no new boot: still accepted)."""
    station.auto_reconnect = False
    station.disconnect()
    station.idle(offline_s)
    station.connect()
    station.auto_reconnect = True
