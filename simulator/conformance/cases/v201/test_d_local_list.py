"""2.0.1 block D, Local Authorization List Management: SendLocalList full and differential, GetLocalListVersion
(CSMS side, profile Local Authorization List Management).

The list's version is the CSMS's to keep (D01): the operator asks for a list — which tokens, with which status,
full or differential — but not for a version number, and the CSMS must number it: above 0, and above the
version the station already holds for a differential update. A CSMS that can only relay a call its operator
wrote in full (no list of its own) cannot pass these; GetLocalListVersion needs no list and passes on its own.
"""

from __future__ import annotations

from typing import Any

from simulator.conformance.cases.v201.octt_states import ask, id_token
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")


def entry(token: str, status: str | None) -> dict[str, Any]:
    """A list entry: with an idTokenInfo it adds (or replaces) the token, without one it removes it (D01.FR.17)."""
    body: dict[str, Any] = {"idToken": id_token(token)}
    if status is not None:
        body["idTokenInfo"] = {"status": status}
    return body


def send_local_list(
    station: StationUnderTest,
    operator: OperatorThread,
    update: str,
    entries: list[dict[str, Any]],
    *,
    above: int,
) -> int:
    """The operator asks for a list update (no versionNumber: the CSMS's own) while the station holds version
    ``above``; the station accepts it. The CALL must be that update, with those entries, numbered above
    ``above``. Returns the version the CSMS gave."""
    station.answer("GetLocalListVersion", {"versionNumber": above})  # a CSMS may ask first (optional step)
    payload: dict[str, Any] = {"updateType": update}
    if entries:
        payload["localAuthorizationList"] = entries
    sent, _ = ask(station, operator, "SendLocalList", payload, {"status": "Accepted"}, updateType=update)
    version = sent["versionNumber"]
    if version <= above:
        why = "above 0 (D01.FR.18)" if above == 0 else f"above the version {above} the station holds"
        station.fail(f"SendLocalList ({update}) with versionNumber {version}: it must be {why}")
    station.answer("GetLocalListVersion", {"versionNumber": version})  # what the station holds from now on
    listed = {item["idToken"]["idToken"]: item for item in sent.get("localAuthorizationList", [])}
    wanted = {item["idToken"]["idToken"]: item for item in entries}
    if set(listed) != set(wanted):
        station.fail(f"SendLocalList lists {sorted(listed)}, the operator asked for {sorted(wanted)}")
    for token, item in wanted.items():
        info = listed[token].get("idTokenInfo")
        if "idTokenInfo" not in item and info is not None:
            station.fail(f"SendLocalList removes {token} with an idTokenInfo {info}: a removal has none (D01.FR.17)")
        if "idTokenInfo" in item and (info is None or info.get("status") != item["idTokenInfo"]["status"]):
            station.fail(f"SendLocalList gives {token} idTokenInfo {info}, expected {item['idTokenInfo']}")
    return int(version)


def full_list(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> int:
    """The list the station holds before a differential update: the valid and the blocked token."""
    entries = [entry(tokens.valid, "Accepted"), entry(tokens.blocked, "Blocked")]
    return send_local_list(station, operator, "Full", entries, above=0)


# ==== send local list (D01) =================================================================================
@case("TC_D_01_CSMS", "Send Local Authorization List - Full", "local-auth-list")
def test_TC_D_01_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    full_list(station, operator, tokens)


@case("TC_D_02_CSMS", "Send Local Authorization List - Differential Update", "local-auth-list")
def test_TC_D_02_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    version = full_list(station, operator, tokens)
    send_local_list(station, operator, "Differential", [entry(tokens.expired, "Expired")], above=version)


@case("TC_D_03_CSMS", "Send Local Authorization List - Differential Remove", "local-auth-list")
def test_TC_D_03_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    version = full_list(station, operator, tokens)
    send_local_list(station, operator, "Differential", [entry(tokens.blocked, None)], above=version)


@case("TC_D_04_CSMS", "Send Local Authorization List - Full with empty list", "local-auth-list")
def test_TC_D_04_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    send_local_list(station, operator, "Full", [], above=0)


# ==== get local list version (D02) ==========================================================================
def local_list_version(station: StationUnderTest, operator: OperatorThread, version: int) -> None:
    """The CSMS asks the version; the station holds ``version``; a CSMS that reports the answer to its
    operator must report that version."""
    _, outcome = ask(station, operator, "GetLocalListVersion", {}, {"versionNumber": version})
    reported = outcome.response
    if reported is not None and reported.get("versionNumber") != version:
        station.fail(f"the CSMS reported version {reported.get('versionNumber')!r}, the station answered {version}")


@case("TC_D_08_CSMS", "Get Local List Version - Success", "local-auth-list")
def test_TC_D_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    local_list_version(station, operator, 1)


@case("TC_D_09_CSMS", "Get Local List Version - No list available", "local-auth-list")
def test_TC_D_09_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    local_list_version(station, operator, 0)
