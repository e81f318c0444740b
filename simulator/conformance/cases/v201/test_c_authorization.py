"""2.0.1 block C, Authorization: Authorize and TransactionEvent answers for valid, unknown, blocked and expired
tokens, the authorization cache, group ids, the master pass and ISO 15118 contract certificates (CSMS side).

The station composes the transaction messages itself (OCTT's reusable states EVConnectedPreSession,
EnergyTransferStarted, …) so that each step sends exactly what OCTT sends: a token the station found in its
cache or local list reaches the CSMS in a TransactionEvent without an Authorize first.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from simulator.conformance.cases.v201.certificates import OcspResponder, Pki
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import NotRun, StationUnderTest

case = case_marker("2.0.1")

TOKEN_TYPE = "ISO14443"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _token(value: str, token_type: str = TOKEN_TYPE) -> dict[str, str]:
    return {"idToken": value, "type": token_type}


def _authorize(station: StationUnderTest, token: str, **extra: Any) -> dict[str, Any]:
    return station.call("Authorize", {"idToken": _token(token), **extra})


class Session:
    """One transaction on EVSE ``evse`` as the station reports it, message by message."""

    def __init__(self, station: StationUnderTest, evse: int = 1) -> None:
        self.station, self.evse = station, evse
        self.transaction_id = str(uuid.uuid4())
        self.seq_no = 0

    def event(self, event_type: str, trigger: str, *, token: str | None = None, **info: Any) -> dict[str, Any]:
        """Send a TransactionEvent and return the CSMS's answer."""
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": _now(),
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": {"transactionId": self.transaction_id, **info},
            "evse": {"id": self.evse, "connectorId": 1},
        }
        if token is not None:
            payload["idToken"] = _token(token)
        self.seq_no += 1
        return self.station.call("TransactionEvent", payload)

    def connector(self, status: str) -> None:
        self.station.call(
            "StatusNotification",
            {"timestamp": _now(), "connectorStatus": status, "evseId": self.evse, "connectorId": 1},
        )

    def ev_connected(self) -> None:
        """EVConnectedPreSession: the cable is in, the transaction started (TxStartPoint EVConnected)."""
        self.connector("Occupied")
        self.event("Started", "CablePluggedIn", chargingState="EVConnected")

    def authorized(self, token: str) -> dict[str, Any]:
        """The driver's token, found in the station's cache or local list: no Authorize first."""
        return self.event("Updated", "Authorized", token=token, chargingState="EVConnected")

    def energy_transfer(self) -> None:
        self.event("Updated", "ChargingStateChanged", chargingState="Charging")

    def stop_authorized(self, token: str) -> dict[str, Any]:
        return self.event("Updated", "StopAuthorized", token=token, chargingState="EVConnected")

    def ev_disconnected(self, reason: str = "Local") -> dict[str, Any]:
        """EVConnectedPostSession then EVDisconnected: the transaction ends, the connector is free."""
        answer = self.event("Ended", "EVCommunicationLost", chargingState="Idle", stoppedReason=reason)
        self.connector("Available")
        return answer


def _status(answer: dict[str, Any], where: str) -> str:
    info = answer.get("idTokenInfo")
    assert info is not None, f"{where}: the CSMS answered without idTokenInfo: {answer}"
    return str(info["status"])


def _accepted_in_group(answer: dict[str, Any], group: str, where: str) -> None:
    assert _status(answer, where) == "Accepted", f"{where}: idTokenInfo {answer['idTokenInfo']}, not Accepted"
    got = answer["idTokenInfo"].get("groupIdToken", {}).get("idToken")
    assert got == group, f"{where}: groupIdToken {got!r}, the token's group is {group!r}"


def _group_tokens(operator: OperatorThread, count: int = 2, prefix: str = "GRP") -> tuple[str, list[str]]:
    """A new group and ``count`` valid tokens in it (through the operator)."""
    tag = secrets.token_hex(3).upper()
    group = f"CT-{prefix}-{tag}"
    members = [f"CT-{prefix}-{tag}-{n}" for n in range(1, count + 1)]
    for member in members:
        if not operator.provision_token(member, "Accepted", group):
            raise NotRun(f"the operator cannot provision tokens with a group id: {operator.cannot('provision_token')}")
    return group, members


# ==== Authorize ================================================================================================
@case("TC_C_02_CSMS", "Local start transaction - Authorization Invalid/Unknown")
def test_TC_C_02_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    answer = _authorize(station, tokens.unknown)
    status = _status(answer, "AuthorizeResponse")
    assert status in {"Invalid", "Unknown"}, f"an unknown idToken answered {status!r}, not Invalid or Unknown"


@case("TC_C_06_CSMS", "Local start transaction - Authorization Blocked")
def test_TC_C_06_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    if not tokens.provisioned:
        raise NotRun("the blocked idToken is not provisioned at the CSMS (no operator to do it)")
    station.ready()
    status = _status(_authorize(station, tokens.blocked), "AuthorizeResponse")
    assert status in {"Blocked", "Invalid"}, f"a blocked idToken answered {status!r}, not Blocked or Invalid"


@case("TC_C_07_CSMS", "Local start transaction - Authorization Expired")
def test_TC_C_07_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    if not tokens.provisioned:
        raise NotRun("the expired idToken is not provisioned at the CSMS (no operator to do it)")
    station.ready()
    status = _status(_authorize(station, tokens.expired), "AuthorizeResponse")
    assert status in {"Expired", "Invalid"}, f"an expired idToken answered {status!r}, not Expired or Invalid"


# ==== authorization cache ======================================================================================
@case("TC_C_08_CSMS", "Authorization through authorization cache - Accepted")
def test_TC_C_08_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    session = Session(station)
    session.ev_connected()
    status = _status(session.authorized(tokens.valid), "TransactionEventResponse")
    assert status == "Accepted", f"a valid idToken from the cache answered {status!r} (C12.FR.03)"


@case("TC_C_20_CSMS", "Authorization through authorization cache - Invalid")
def test_TC_C_20_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    session = Session(station)
    session.ev_connected()
    status = _status(session.authorized(tokens.unknown), "TransactionEventResponse")
    assert status in {"Invalid", "Unknown"}, (
        f"an idToken the CSMS does not know, found in the station's cache, answered {status!r} (C12.FR.03)"
    )


@case("TC_C_37_CSMS", "Clear Authorization Data in Authorization Cache - Accepted")
def test_TC_C_37_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.answer("ClearCache", {"status": "Accepted"})
    job = operator.request(station, "ClearCache", {})
    call = station.wait_call("ClearCache")
    assert not {k for k in call.payload if k != "customData"}, f"ClearCache carries no fields: {call.payload}"
    outcome = job.outcome(station)
    if outcome.response is not None:
        assert outcome.response.get("status") == "Accepted", f"the CSMS reported {outcome.response}"


@case("TC_C_38_CSMS", "Clear Authorization Data in Authorization Cache - Rejected")
def test_TC_C_38_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    station.answer("ClearCache", {"status": "Rejected"})
    job = operator.request(station, "ClearCache", {})
    station.wait_call("ClearCache")
    outcome = job.outcome(station)
    if outcome.response is not None:
        assert outcome.response.get("status") == "Rejected", f"the CSMS reported {outcome.response}, not Rejected"
    station.call("Heartbeat", {})  # the CSMS carries on with the station


# ==== group id =================================================================================================
@case("TC_C_39_CSMS", "Authorization by GroupId - Success")
def test_TC_C_39_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    group, (first, second) = _group_tokens(operator)
    station.ready()
    session = Session(station)
    session.ev_connected()
    _accepted_in_group(_authorize(station, second), group, "AuthorizeResponse (second token)")
    _accepted_in_group(session.authorized(first), group, "TransactionEventResponse (Authorized)")
    session.energy_transfer()
    _accepted_in_group(_authorize(station, second), group, "AuthorizeResponse (second token, to stop)")
    _accepted_in_group(session.stop_authorized(second), group, "TransactionEventResponse (StopAuthorized)")
    session.ev_disconnected()


@case("TC_C_40_CSMS", "Authorization by GroupId - Success with Local Authorization List", "local-auth-list")
def test_TC_C_40_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    group, (first, second) = _group_tokens(operator)
    station.ready()
    session = Session(station)
    session.ev_connected()
    _accepted_in_group(session.authorized(first), group, "TransactionEventResponse (Authorized)")
    session.energy_transfer()
    _accepted_in_group(session.stop_authorized(second), group, "TransactionEventResponse (StopAuthorized)")
    session.ev_disconnected()


@case("TC_C_43_CSMS", "Authorization by GroupId - Invalid status with Local Authorization List", "local-auth-list")
def test_TC_C_43_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    group, (first, second) = _group_tokens(operator)
    station.ready()
    session = Session(station)
    session.ev_connected()
    _accepted_in_group(session.authorized(first), group, "TransactionEventResponse (Authorized)")
    session.energy_transfer()
    _accepted_in_group(_authorize(station, second), group, "AuthorizeResponse (second token)")
    _accepted_in_group(session.stop_authorized(second), group, "TransactionEventResponse (StopAuthorized)")
    session.ev_disconnected()


# ==== master pass ==============================================================================================
def _two_charging_sessions(station: StationUnderTest, operator: OperatorThread) -> list[Session]:
    """EnergyTransferStarted on EVSE 1 and EVSE 2, each with a valid token of its own."""
    _, drivers = _group_tokens(operator, prefix="DRV")
    station.ready()
    sessions = []
    for evse, token in zip((1, 2), drivers, strict=True):
        session = Session(station, evse)
        session.ev_connected()
        status = _status(session.authorized(token), f"TransactionEventResponse (EVSE {evse})")
        assert status == "Accepted", f"valid token {token} on EVSE {evse} answered {status!r}"
        session.energy_transfer()
        sessions.append(session)
    return sessions


def _master_pass(station: StationUnderTest, operator: OperatorThread) -> tuple[str, str]:
    group, (master,) = _group_tokens(operator, count=1, prefix="MASTER")
    answer = _authorize(station, master)
    _accepted_in_group(answer, group, "AuthorizeResponse (master pass)")
    return group, master


@case("TC_C_47_CSMS", "Stop Transaction with a Master Pass - With UI - All transactions")
def test_TC_C_47_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    sessions = _two_charging_sessions(station, operator)
    _, master = _master_pass(station, operator)
    for session in sessions:
        session.event("Ended", "StopAuthorized", token=master, chargingState="EVConnected", stoppedReason="MasterPass")
        session.connector("Occupied")


@case("TC_C_48_CSMS", "Stop Transaction with a Master Pass - With UI - Specific transactions")
def test_TC_C_48_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    first, second = _two_charging_sessions(station, operator)
    _, master = _master_pass(station, operator)
    first.event("Ended", "StopAuthorized", token=master, chargingState="EVConnected", stoppedReason="MasterPass")
    second.event("Updated", "MeterValuePeriodic", chargingState="Charging")  # the other transaction goes on


@case("TC_C_49_CSMS", "Stop Transaction with a Master Pass - Without UI")
def test_TC_C_49_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    sessions = _two_charging_sessions(station, operator)
    _, master = _master_pass(station, operator)
    for session in sessions:
        session.event("Ended", "StopAuthorized", token=master, chargingState="EVConnected", stoppedReason="MasterPass")


# ==== ISO 15118 contract certificates ==========================================================================
EMAID_TYPE = "eMAID"


def _contract_authorize(station: StationUnderTest, emaid: str, **extra: Any) -> dict[str, Any]:
    return station.call("Authorize", {"idToken": _token(emaid, EMAID_TYPE), **extra})


def _emaid(operator: OperatorThread) -> str:
    emaid = f"NL-CTW-C{secrets.token_hex(4).upper()}"
    if not operator.provision_token(emaid, "Accepted"):
        raise NotRun("the eMAID cannot be provisioned at the CSMS (no operator to do it)")
    return emaid


def _hash_data_case(station: StationUnderTest, operator: OperatorThread, *, revoked: bool) -> dict[str, Any]:
    emaid = _emaid(operator)
    with Pki.create("chargetwin conformance MO root") as pki, OcspResponder(pki, revoked=revoked) as responder:
        contract, _ = pki.issue(emaid)
        hash_data = pki.hash_data(contract, responder.url)
        station.ready()
        session = Session(station)
        session.ev_connected()
        answer = _contract_authorize(station, emaid, iso15118CertificateHashData=hash_data)
        asked = responder.requests
    assert asked, "the CSMS did not ask the certificate's OCSP responder (C07.FR.05)"
    return answer


@case(
    "TC_C_50_CSMS",
    "Authorization using Contract Certificates 15118 - Online - Local contract certificate validation - Accepted",
    "iso15118",
)
def test_TC_C_50_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    answer = _hash_data_case(station, operator, revoked=False)
    assert _status(answer, "AuthorizeResponse") == "Accepted", f"idTokenInfo {answer['idTokenInfo']}, not Accepted"
    assert answer.get("certificateStatus") == "Accepted", f"certificateStatus {answer.get('certificateStatus')!r}"


@case(
    "TC_C_51_CSMS",
    "Authorization using Contract Certificates 15118 - Online - Local contract certificate validation - Rejected",
    "iso15118",
)
def test_TC_C_51_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    answer = _hash_data_case(station, operator, revoked=True)
    assert _status(answer, "AuthorizeResponse") == "Invalid", f"idTokenInfo {answer['idTokenInfo']}, not Invalid"
    assert answer.get("certificateStatus") == "CertificateRevoked", (
        f"certificateStatus {answer.get('certificateStatus')!r}, a revoked contract is CertificateRevoked (C07.FR.16)"
    )


@case(
    "TC_C_52_CSMS",
    "Authorization using Contract Certificates 15118 - Online - Central contract certificate validation - Accepted",
    "iso15118",
)
def test_TC_C_52_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    emaid = _emaid(operator)
    with Pki.create("chargetwin conformance MO root (central)") as pki, OcspResponder(pki, revoked=False) as responder:
        if not operator.install_contract_root(pki.ca_cert.read_text(), "MO"):
            raise NotRun(f"the operator cannot install a contract root: {operator.cannot('install_contract_root')}")
        contract, _ = pki.issue(emaid, ocsp_url=responder.url)
        station.ready()
        Session(station).ev_connected()
        answer = _contract_authorize(station, emaid, certificate=contract)  # C07.FR.06: the chain, no OCSP data
        asked = responder.requests
    assert asked, "the CSMS did not ask the OCSP responder the contract certificate names"
    assert _status(answer, "AuthorizeResponse") == "Accepted", f"idTokenInfo {answer['idTokenInfo']}, not Accepted"
    assert answer.get("certificateStatus") == "Accepted", f"certificateStatus {answer.get('certificateStatus')!r}"
