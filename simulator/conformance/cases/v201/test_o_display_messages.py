"""2.0.1 block O, Display Message: setting, getting, replacing and clearing messages on the station's display,
for the station or for one transaction (CSMS side).

A message the CSMS sets carries what the operator configured; one for no transaction names none (O01.FR.04),
one for a transaction names it (O02); the CSMS answers the station's NotifyDisplayMessages.
"""

from __future__ import annotations

from typing import Any

from simulator.conformance.cases.v201._csms_commands import in_transaction, iso, parse_time
from simulator.conformance.catalogue import case_marker
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("2.0.1")

MESSAGE_ID = 9
ACCEPTED = {"status": "Accepted"}


def message(
    *, mid: int = MESSAGE_ID, priority: str = "NormalCycle", text: str = "Welcome", fmt: str = "UTF8", **extra: Any
) -> dict[str, Any]:
    return {
        "id": mid,
        "priority": priority,
        "message": {"format": fmt, "language": "en", "content": text},
        **extra,
    }


def set_message(
    station: StationUnderTest, operator: OperatorThread, configured: dict[str, Any], reply: str = "Accepted"
) -> dict[str, Any]:
    """The CSMS sets ``configured``; the station answers ``reply``. Returns the message the CSMS sent, checked
    against the configuration field by field."""
    sent = operator.command(station, "SetDisplayMessage", {"message": configured}, {"status": reply}).payload
    got = sent["message"]
    for key, value in configured.items():
        if key in ("startDateTime", "endDateTime"):
            assert key in got and abs((parse_time(got[key]) - parse_time(value)).total_seconds()) < 1, (
                f"message.{key} {got.get(key)!r}, the case configured {value!r}"
            )
        else:
            assert got.get(key) == value, f"message.{key} {got.get(key)!r}, the case configured {value!r}"
    extra = set(got) - set(configured) - {"customData", "display"}
    assert not extra, f"message carries {sorted(extra)} the case did not configure"
    return got


# ==== O01 Set display message ===================================================================================
@case("TC_O_01_CSMS", "Set Display Message - Success", "advanced-user-interface")
def test_TC_O_01_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    got = set_message(station, operator, message(state="Idle"))
    assert "transactionId" not in got, "a message for no transaction names none (O01.FR.04)"


@case("TC_O_13_CSMS", "Set Display Message - Display message at StartTime", "advanced-user-interface")
def test_TC_O_13_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(startDateTime=iso(60)))


@case("TC_O_14_CSMS", "Set Display Message - Remove message after EndTime", "advanced-user-interface")
def test_TC_O_14_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(endDateTime=iso(60)))


@case("TC_O_17_CSMS", "Set Display Message - NotSupportedPriority", "advanced-user-interface")
def test_TC_O_17_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(priority="AlwaysFront"), "NotSupportedPriority")


@case("TC_O_18_CSMS", "Set Display Message - NotSupportedState", "advanced-user-interface")
def test_TC_O_18_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(state="Faulted"), "NotSupportedState")


@case("TC_O_19_CSMS", "Set Display Message - NotSupportedMessageFormat", "advanced-user-interface")
def test_TC_O_19_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(fmt="HTML", text="<b>Welcome</b>"), "NotSupportedMessageFormat")


@case("TC_O_25_CSMS", "Set Display Message - Send Specific state", "advanced-user-interface")
def test_TC_O_25_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(state="Charging"))


@case("TC_O_26_CSMS", "Set Display Message - Rejected", "advanced-user-interface")
def test_TC_O_26_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message(priority="NormalCycle"), "Rejected")


# ==== O02 Set display message for a transaction =================================================================
@case("TC_O_06_CSMS", "Set Display Message - Specific transaction - Success", "advanced-user-interface")
def test_TC_O_06_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    set_message(station, operator, message(transactionId=tx, text="Charging with chargetwin"))
    station.unplug(1)  # EVDisconnected: the transaction, and its message, end
    station.wait_result("TransactionEvent")


@case("TC_O_10_CSMS", "Set Display Message - Specific transaction - UnknownTransaction", "advanced-user-interface")
def test_TC_O_10_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    got = set_message(station, operator, message(transactionId="CT-NO-SUCH-TRANSACTION"), "UnknownTransaction")
    assert got["transactionId"] != tx, "the case configured a transaction the station does not know"


@case("TC_O_27_CSMS", "Set Display Message - Specific transaction - StartTime", "advanced-user-interface")
def test_TC_O_27_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    got = set_message(station, operator, message(transactionId=tx, startDateTime=iso(30)))
    assert "state" not in got and "endDateTime" not in got, f"state/endDateTime the case did not configure: {got}"


@case("TC_O_28_CSMS", "Set Display Message - Specific transaction - EndTime", "advanced-user-interface")
def test_TC_O_28_CSMS(station: StationUnderTest, operator: OperatorThread, tokens: Tokens) -> None:
    tx = in_transaction(station, tokens.valid)
    got = set_message(station, operator, message(transactionId=tx, endDateTime=iso(30)))
    assert "state" not in got and "startDateTime" not in got, f"state/startDateTime the case did not configure: {got}"


# ==== O03/O04 Get display messages ==============================================================================
def get_messages(
    station: StationUnderTest,
    operator: OperatorThread,
    criteria: dict[str, Any],
    stored: list[dict[str, Any]] | None,
) -> None:
    """The CSMS asks for messages by ``criteria``; the station answers Unknown (``stored`` None) or Accepted and
    notifies ``stored``, which the CSMS must answer."""
    payload = {"requestId": 3, **criteria}
    reply = ACCEPTED if stored is not None else {"status": "Unknown"}
    request = operator.command(station, "GetDisplayMessages", payload, reply).payload
    for key in ("id", "priority", "state"):
        assert request.get(key) == criteria.get(key), (
            f"GetDisplayMessages {key} {request.get(key)!r}, the case configured {criteria.get(key)!r}"
        )
    if stored is not None:
        station.call("NotifyDisplayMessages", {"requestId": request["requestId"], "messageInfo": stored})


@case("TC_O_02_CSMS", "Get all display messages - Success", "advanced-user-interface")
def test_TC_O_02_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    stored = set_message(station, operator, message())
    get_messages(station, operator, {}, [stored])


@case("TC_O_03_CSMS", "Get all display messages - No DisplayMessages configured", "advanced-user-interface")
def test_TC_O_03_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    get_messages(station, operator, {}, None)


@case("TC_O_07_CSMS", "Get Specific display messages - Id", "advanced-user-interface")
def test_TC_O_07_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    stored = set_message(station, operator, message())
    get_messages(station, operator, {"id": [MESSAGE_ID]}, [stored])


@case("TC_O_08_CSMS", "Get Specific display messages - Priority", "advanced-user-interface")
def test_TC_O_08_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    stored = set_message(station, operator, message(priority="InFront"))
    get_messages(station, operator, {"priority": "InFront"}, [stored])


@case("TC_O_09_CSMS", "Get Specific display messages - State", "advanced-user-interface")
def test_TC_O_09_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    stored = set_message(station, operator, message(state="Idle"))
    get_messages(station, operator, {"state": "Idle"}, [stored])


@case("TC_O_11_CSMS", "Get Specific display messages - Unknown parameters", "advanced-user-interface")
def test_TC_O_11_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    set_message(station, operator, message())
    get_messages(station, operator, {"id": [MESSAGE_ID + 1]}, None)


# ==== O05 Clear, O06 Replace ====================================================================================
def clear_message(station: StationUnderTest, operator: OperatorThread, mid: int, reply: str) -> None:
    request = operator.command(station, "ClearDisplayMessage", {"id": mid}, {"status": reply}).payload
    assert request["id"] == mid, f"ClearDisplayMessage id {request['id']}, the case configured {mid}"


@case("TC_O_04_CSMS", "Clear Display Message - Success", "advanced-user-interface")
def test_TC_O_04_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    stored = set_message(station, operator, message())
    clear_message(station, operator, stored["id"], "Accepted")


@case("TC_O_05_CSMS", "Clear Display Message - Unknown Key", "advanced-user-interface")
def test_TC_O_05_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    clear_message(station, operator, MESSAGE_ID + 50, "Unknown")


@case("TC_O_12_CSMS", "Replace DisplayMessage", "advanced-user-interface")
def test_TC_O_12_CSMS(station: StationUnderTest, operator: OperatorThread) -> None:
    station.ready()
    first = set_message(station, operator, message(text="Welcome"))
    second = set_message(station, operator, message(text="Welcome back"))
    assert second["id"] == first["id"], f"a replacement keeps the message id: {first['id']} then {second['id']}"
    assert second["message"]["content"] != first["message"]["content"], "the replacement changes nothing"
