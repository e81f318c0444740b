"""2.0.1 block I, Tariff and Cost: the running cost while charging and the total cost at the end (CSMS side).

The CSMS shows the driver the running cost after each periodic meter value, in the TransactionEventResponse
(totalCost) or a CostUpdated (I02.FR.01), and the final cost in the answer to the Ended event (I03.FR.02). The
operator first gives the station a tariff (0.30 per kWh): a CSMS whose operator adapter cannot set one does not
run these cases.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from csms.ocpp import framing
from csms.ocpp.framing import Call, CallResult
from simulator.conformance.cases.v201._csms_commands import in_transaction
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")
#: The tariff the operator sets on the station for these cases: a price per kWh.
KWH_PRICE = "0.30"


def transaction_answer(station: StationUnderTest, event_type: str, after: int) -> dict[str, Any]:
    """The CSMS's answer to the station's first TransactionEvent of ``event_type`` logged after frame ``after``."""

    def sent() -> str | None:
        for frame in station.log.frames[after:]:
            if frame.outgoing:
                message = framing.decode(frame.text)
                if (
                    isinstance(message, Call)
                    and message.action == "TransactionEvent"
                    and message.payload["eventType"] == event_type
                ):
                    return message.unique_id
        return None

    unique_id = station.run_until(sent, f"waiting for the station's TransactionEvent {event_type}")
    answer = station.wait_frame(unique_id)
    if not isinstance(answer, CallResult):
        station.fail(f"the CSMS answered TransactionEvent {event_type} with a CALLERROR")
    assert isinstance(answer, CallResult)
    return answer.payload


def running_cost(station: StationUnderTest, tx: str) -> Decimal:
    """After a periodic meter value: totalCost in the answer, or a CostUpdated for the transaction."""
    mark = len(station.log.frames)
    answer = transaction_answer(station, "Updated", mark)
    if "totalCost" in answer:
        return Decimal(str(answer["totalCost"]))
    station.answer("CostUpdated", {})
    update = station.wait_call("CostUpdated", station.target.reply_timeout_s).payload
    assert update["transactionId"] == tx, f"CostUpdated for transaction {update['transactionId']!r}, not {tx!r}"
    return Decimal(str(update["totalCost"]))


@case(
    "TC_I_01_CSMS", "Show EV Driver running total cost during charging - costUpdatedRequest", "advanced-user-interface"
)
def test_TC_I_01_CSMS(make_station: Callable[..., StationUnderTest], tokens: Tokens, operator: OperatorThread) -> None:
    station = make_station(config={"SampledDataCtrlr.TxUpdatedInterval": "1"})
    operator.configure(station, "tariff", kwh_price=KWH_PRICE, currency="EUR")
    tx = in_transaction(station, tokens.valid)
    first = running_cost(station, tx)
    second = running_cost(station, tx)
    assert first >= 0, f"running cost {first} is negative"
    assert second >= first, f"the running cost went down while charging: {first} then {second}"


@case("TC_I_02_CSMS", "Show EV Driver Final Total Cost After Charging", "advanced-user-interface")
def test_TC_I_02_CSMS(station: StationUnderTest, tokens: Tokens, operator: OperatorThread) -> None:
    operator.configure(station, "tariff", kwh_price=KWH_PRICE, currency="EUR")
    station.meter.energy[1] = 1000.0
    in_transaction(station, tokens.valid)
    # 200 Wh over two seconds at least (360 kW at most): a jump no charger can make in an instant may be refused
    # by the CSMS as a meter fault rather than priced.
    station.idle(2.0)
    station.meter.energy[1] = 1200.0
    mark = len(station.log.frames)
    station.present_token(tokens.valid)  # StopAuthorized
    answer = transaction_answer(station, "Ended", mark)
    assert "totalCost" in answer, (
        "the answer to TransactionEvent Ended carries no totalCost: with a tariff on energy the CSMS knows the "
        "cost of 0.2 kWh (I03.FR.02)"
    )
    assert Decimal(str(answer["totalCost"])) > 0, f"totalCost {answer['totalCost']} for 0.2 kWh charged"
