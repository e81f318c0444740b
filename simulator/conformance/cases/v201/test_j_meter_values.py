"""2.0.1 block J, Meter Values: clock-aligned and sampled values, in MeterValues and in TransactionEvents,
signed or not (CSMS side).

J01.FR.18 / J02.FR.19: the CSMS answers every MeterValuesRequest and every TransactionEventRequest carrying
meter values — at the start (Transaction.Begin, with or without the EVSE known), periodically
(Sample.Periodic, Sample.Clock), at the end (Transaction.End) — and takes signed values (J01.FR.21,
J02.FR.21) like any other.
"""

from __future__ import annotations

from simulator.conformance.cases.v201.octt_states import (
    ScriptedTransaction,
    connector_status,
    meter_value,
    notify_event,
    sampled,
)
from simulator.conformance.catalogue import case_marker
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

#: Clock-aligned and periodic rounds per case (the OCTT's interval is a second: the values, not the wait, count).
ROUNDS = 3


def clock_aligned(station: StationUnderTest, evse_id: int, wh: float, *, signed: bool = False) -> None:
    """A clock-aligned MeterValuesRequest for ``evse_id`` (0: the main meter) and its fiscal-metering event."""
    values = [sampled(wh, "Sample.Clock", signed=signed), sampled(230.0, "Sample.Clock", measurand="Voltage", unit="V")]
    station.call("MeterValues", {"evseId": evse_id, "meterValue": [meter_value(values)]})
    notify_event(station, {"name": "FiscalMetering"}, "EnergyImportRegister", str(wh), trigger="Periodic")


def ended_with_values(station: StationUnderTest, tokens: Tokens, context: str, *, signed: bool = False) -> None:
    """A charging transaction whose Ended event carries the values sampled in ``context`` and the closing
    Transaction.End value."""
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    station.idle(0.5)
    meter = [
        meter_value([sampled(tx.energy_wh + 200.0, context, signed=signed)], shift_s=-0.2),
        meter_value([sampled(tx.energy_wh + 250.0, "Transaction.End", signed=signed)]),
    ]
    tx.stop_authorized()
    tx.ev_connected_post_session()
    tx.ev_disconnected(meter=meter)


# ==== clock-aligned (J01) ===================================================================================
@case("TC_J_01_CSMS", "Clock-aligned Meter Values - No transaction ongoing")
def test_TC_J_01_CSMS(station: StationUnderTest) -> None:
    station.ready()
    for n in range(ROUNDS):
        for evse_id in (0, *station.charger.connectors):
            clock_aligned(station, evse_id, 1000.0 + n)


@case("TC_J_02_CSMS", "Clock-aligned Meter Values - Transaction ongoing")
def test_TC_J_02_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    for _ in range(ROUNDS):
        clock_aligned(station, 0, 5000.0 + tx.energy_wh)
        tx.event("Updated", "MeterValueClock", state="Charging", meter=tx.register("Sample.Clock", add_wh=100.0))


@case("TC_J_03_CSMS", "Clock-aligned Meter Values - EventType Ended")
def test_TC_J_03_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    ended_with_values(station, tokens, "Sample.Clock")


@case("TC_J_04_CSMS", "Clock-aligned Meter Values - Signed")
def test_TC_J_04_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    ended_with_values(station, tokens, "Sample.Clock", signed=True)


# ==== sampled (J02) =========================================================================================
@case("TC_J_07_CSMS", "Sampled Meter Values - EventType Started - EVSE known")
def test_TC_J_07_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    connector_status(station, "Occupied")
    tx.event("Started", "CablePluggedIn", state="EVConnected", meter=tx.register("Transaction.Begin"))


@case("TC_J_08_CSMS", "Sampled Meter Values - Context Transaction.Begin - EVSE not known")
def test_TC_J_08_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.authorized(evse=False)  # authorized before the driver chose an EVSE
    connector_status(station, "Occupied")
    tx.ev_connected = True
    tx.event("Updated", "CablePluggedIn", state="EVConnected", meter=tx.register("Transaction.Begin"))
    tx.event("Updated", "ChargingStateChanged", state="Charging")


@case("TC_J_09_CSMS", "Sampled Meter Values - EventType Updated")
def test_TC_J_09_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    tx = ScriptedTransaction(station, tokens.valid)
    tx.charging()
    for _ in range(ROUNDS):
        tx.event("Updated", "MeterValuePeriodic", meter=tx.register("Sample.Periodic", add_wh=100.0))


@case("TC_J_10_CSMS", "Sampled Meter Values - EventType Ended")
def test_TC_J_10_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    ended_with_values(station, tokens, "Sample.Periodic")


@case("TC_J_11_CSMS", "Sampled Meter Values - Signed")
def test_TC_J_11_CSMS(station: StationUnderTest, tokens: Tokens) -> None:
    ended_with_values(station, tokens, "Sample.Periodic", signed=True)
