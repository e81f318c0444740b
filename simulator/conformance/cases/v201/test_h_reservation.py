"""2.0.1 block H, Reservation: reserve a specific EVSE, any EVSE, a connector type, for a group; cancel; a
reservation that expires or is removed by a fault; a refused one (CSMS side, profile Reservation).

A reservation is the CSMS's (H01): the operator asks for one — which EVSE or connector type, for which token
(and group), until when — but does not give its id; the CSMS must choose it, keep it distinct from its other
reservations, cancel that very reservation by it, and take the station's status updates about it. A CSMS that
can only relay a ReserveNow its operator wrote in full (no reservations of its own) cannot pass these.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.ocpp.convert import parse_time
from simulator.conformance.cases.v201.octt_states import ask, connector_status, id_token
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

#: How long the reservations the cases ask for last (the expiry case asks for a short one).
VALIDITY_S = 600.0
#: The group of the group reservation (the OCTT's <Configured GroupIdToken>).
GROUP = "CT-GROUP-01"


def expiry_text(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds").replace("+00:00", "Z")


def reserve(
    station: StationUnderTest,
    operator: OperatorThread,
    token: str,
    *,
    evse_id: int | None = 1,
    connector_type: str | None = None,
    group: str | None = None,
    validity_s: float = VALIDITY_S,
    reply: str = "Accepted",
) -> int:
    """The operator asks the CSMS to reserve (no id: the CSMS's own); the station answers ``reply``. The
    ReserveNow must be that reservation: token, EVSE (or none), connector type, group, expiry. Returns its id."""
    wanted: dict[str, Any] = {"idToken": id_token(token), "expiryDateTime": expiry_text(validity_s)}
    if evse_id is not None:
        wanted["evseId"] = evse_id
    if connector_type is not None:
        wanted["connectorType"] = connector_type
    if group is not None:
        wanted["groupIdToken"] = {"idToken": group, "type": "Central"}
    sent, _ = ask(
        station,
        operator,
        "ReserveNow",
        wanted,
        {"status": reply},
        evseId=evse_id,
        connectorType=connector_type,
    )
    for name in ("idToken", "groupIdToken"):
        asked_token, sent_token = wanted.get(name), sent.get(name)
        same = asked_token is None or (
            sent_token is not None
            and (sent_token["idToken"], sent_token["type"]) == (asked_token["idToken"], asked_token["type"])
        )
        if not same or (asked_token is None and sent_token is not None):
            station.fail(f"ReserveNow with {name} {sent_token}, the operator asked {asked_token or 'none'}")
    expiry, asked = parse_time(sent["expiryDateTime"]), parse_time(wanted["expiryDateTime"])
    assert expiry is not None and asked is not None
    if abs((expiry - asked).total_seconds()) > 60:
        station.fail(f"ReserveNow expires {sent['expiryDateTime']}, the operator asked {wanted['expiryDateTime']}")
    return int(sent["id"])


def status_update(station: StationUnderTest, reservation_id: int, status: str) -> None:
    station.call("ReservationStatusUpdate", {"reservationId": reservation_id, "reservationUpdateStatus": status})


# ==== reserve (H01) =========================================================================================
@case("TC_H_01_CSMS", "Reserve a specific EVSE - Accepted - Valid idToken", "reservation")
def test_TC_H_01_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reserve(station, operator, tokens.valid)
    connector_status(station, "Reserved")


@case("TC_H_08_CSMS", "Reserve an unspecified EVSE - Accepted", "reservation")
def test_TC_H_08_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reserve(station, operator, tokens.valid, evse_id=None)


@case(
    "TC_H_14_CSMS",
    "Reserve an unspecified EVSE - Amount of EVSEs available equals the amount of reservations",
    "reservation",
)
def test_TC_H_14_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens, operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    station.ready()
    ids = [reserve(station, operator, tokens.valid, evse_id=None) for _ in station.charger.connectors]
    if len(set(ids)) != len(ids):
        station.fail(f"the CSMS gave two reservations the same id {ids}: each needs its own")
    for evse_id in station.charger.connectors:  # every EVSE is now held for a reservation
        connector_status(station, "Reserved", evse_id)


@case("TC_H_15_CSMS", "Reserve a connector with a specific type - Success", "reservation")
def test_TC_H_15_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reserve(station, operator, tokens.valid, evse_id=None, connector_type="cType2")
    connector_status(station, "Reserved")


@case("TC_H_19_CSMS", "Reserve a specific EVSE - Use a reserved EVSE with GroupId", "reservation")
def test_TC_H_19_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reserve(station, operator, tokens.valid, group=GROUP)
    connector_status(station, "Reserved")


@case("TC_H_22_CSMS", "Reserve a specific EVSE - Configured to Reject", "reservation")
def test_TC_H_22_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reserve(station, operator, tokens.valid, reply="Rejected")
    station.call("Heartbeat", {})  # the refusal leaves the connection as it was


# ==== the reservation ends (H01.FR, H02, H04) ===============================================================
@case("TC_H_07_CSMS", "Reserve a specific EVSE - Reservation Ended / not used", "reservation")
def test_TC_H_07_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reservation_id = reserve(station, operator, tokens.valid, validity_s=2.0)
    connector_status(station, "Reserved")
    station.idle(2.0)  # nobody came: the reservation expires
    connector_status(station, "Available")
    status_update(station, reservation_id, "Expired")


@case("TC_H_17_CSMS", "Cancel reservation of an EVSE - Success", "reservation")
def test_TC_H_17_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reservation_id = reserve(station, operator, tokens.valid)
    connector_status(station, "Reserved")
    ask(
        station,
        operator,
        "CancelReservation",
        {"reservationId": reservation_id},
        {"status": "Accepted"},
        reservationId=reservation_id,
    )
    connector_status(station, "Available")


@case("TC_H_20_CSMS", "Charging Station cancels reservation when Faulted", "reservation")
def test_TC_H_20_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    reservation_id = reserve(station, operator, tokens.valid)
    connector_status(station, "Reserved")
    connector_status(station, "Faulted")
    status_update(station, reservation_id, "Removed")
