"""2.0.1 block G, Availability: ChangeAvailability of a station, an EVSE or a connector, and status reports
(CSMS side).

The operator asks the CSMS to change an availability; the CALL must name exactly the level asked (no ``evse``
for the whole station, ``evse.id`` for an EVSE, ``evse.connectorId`` too for a connector) and the status asked.
The station answers Accepted (or Scheduled while a transaction runs, then finishes it) and reports its
connectors' new state, which the CSMS must take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.conformance.cases.v201.octt_states import ScriptedTransaction, ask, connector_status, notify_event
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

EVSE = {"id": 1}
CONNECTOR = {"id": 1, "connectorId": 1}


def change_availability(
    station: StationUnderTest, operator: OperatorThread, status: str, evse: dict[str, int] | None, reply: str
) -> None:
    """The operator asks for ``status`` on ``evse`` (None: the whole station); the station answers ``reply``."""
    payload: dict[str, Any] = {"operationalStatus": status}
    if evse is not None:
        payload["evse"] = evse
    ask(station, operator, "ChangeAvailability", payload, {"status": reply}, operationalStatus=status, evse=evse)


def all_connectors(station: StationUnderTest, status: str) -> None:
    for evse_id in station.charger.connectors:
        connector_status(station, status, evse_id)


# ==== without a transaction (G03, G04) ======================================================================
@case("TC_G_03_CSMS", "Change Availability EVSE - Operative to inoperative")
def test_TC_G_03_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    change_availability(station, operator, "Inoperative", EVSE, "Accepted")
    connector_status(station, "Unavailable")


@case("TC_G_04_CSMS", "Change Availability EVSE - Inoperative to operative")
def test_TC_G_04_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    connector_status(station, "Unavailable")
    change_availability(station, operator, "Operative", EVSE, "Accepted")
    connector_status(station, "Available")


@case("TC_G_05_CSMS", "Change Availability Charging Station - Operative to inoperative")
def test_TC_G_05_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    station.ready()
    change_availability(station, operator, "Inoperative", None, "Accepted")
    all_connectors(station, "Unavailable")


@case("TC_G_06_CSMS", "Change Availability Charging Station - Inoperative to operative")
def test_TC_G_06_CSMS(make_station: Callable[..., StationUnderTest], operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    station.ready()
    all_connectors(station, "Unavailable")
    change_availability(station, operator, "Operative", None, "Accepted")
    all_connectors(station, "Available")


@case("TC_G_07_CSMS", "Change Availability Connector - Operative to inoperative")
def test_TC_G_07_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    change_availability(station, operator, "Inoperative", CONNECTOR, "Accepted")
    connector_status(station, "Unavailable")


@case("TC_G_08_CSMS", "Change Availability Connector - Inoperative to operative")
def test_TC_G_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    connector_status(station, "Unavailable")
    change_availability(station, operator, "Operative", CONNECTOR, "Accepted")
    connector_status(station, "Available")


# ==== with a transaction: Scheduled (G03.FR.05, G04) =======================================================
def finish(tx: ScriptedTransaction) -> None:
    """The driver ends the session; then the scheduled change applies and the connector is Unavailable."""
    tx.station.idle(0.5)
    tx.stop_authorized()
    tx.ev_connected_post_session()
    tx.ev_disconnected()
    connector_status(tx.station, "Unavailable", tx.evse_id, tx.connector_id)


@case("TC_G_11_CSMS", "Change Availability EVSE - With ongoing transaction")
def test_TC_G_11_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    change_availability(station, operator, "Inoperative", EVSE, "Scheduled")
    finish(tx)


@case("TC_G_14_CSMS", "Change Availability Charging Station - With ongoing transaction")
def test_TC_G_14_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens, operator: OperatorThread) -> None:
    station = make_station(connectors=2)
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    change_availability(station, operator, "Inoperative", None, "Scheduled")
    connector_status(station, "Unavailable", 2)  # the free EVSE at once
    finish(tx)


@case("TC_G_17_CSMS", "Change Availability Connector - With ongoing transaction")
def test_TC_G_17_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    change_availability(station, operator, "Inoperative", CONNECTOR, "Scheduled")
    finish(tx)


# ==== lock failure (G05) ====================================================================================
@case("TC_G_20_CSMS", "Connector status Notification - Lock Failure")
def test_TC_G_20_CSMS(station: StationUnderTest) -> None:
    station.ready()
    lock = {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1, "connectorId": 1}}
    notify_event(station, lock, "Problem", "true")  # G05.FR.03: the CSMS answers it (checked against its schema)
