"""The twin's display against the CSMS's session (real frames, schema-checked both ways): 2.0.1 block O messages
with priorities, states, time windows and transactions; GetDisplayMessages answered with NotifyDisplayMessages,
which the CSMS stores; 1.6 through DataTransfer org.chargetwin; the CSMS's builders as the sender."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.ocpp import commands
from csms.services import display_messages
from tests.simulator.helpers import STATION, T0, StationPair


def info(message_id: int, text: str, priority: str = "NormalCycle", **extra: object) -> dict:
    return {"id": message_id, "priority": priority, "message": {"format": "UTF8", "content": text}, **extra}


def iso(offset_s: float) -> str:
    return (datetime.fromtimestamp(T0, UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def shown(pair: StationPair) -> str | None:
    content = pair.charger.display.shown(pair.now)
    return None if content is None else content["content"]


def setting(pair: StationPair, message: dict) -> str:
    action, payload = commands.set_display_message(pair.version, message)
    return commands.display_status(pair.version, action, pair.csms_call(action, payload).payload or {})


def test_priorities_states_and_windows_decide_what_the_201_display_shows(tmp_path):
    pair = StationPair(tmp_path, "2.0.1")
    pair.start()
    assert shown(pair) is None
    assert setting(pair, info(1, "Welcome")) == "Accepted"
    assert setting(pair, info(2, "Tariff 0.35/kWh")) == "Accepted"
    first = shown(pair)
    pair.run(10)  # NormalCycle messages take turns
    assert {first, shown(pair)} == {"Welcome", "Tariff 0.35/kWh"}
    assert setting(pair, info(3, "Charging now", "InFront", state="Charging")) == "Accepted"
    assert shown(pair) in ("Welcome", "Tariff 0.35/kWh")  # not charging: the state-bound message waits
    assert setting(pair, info(4, "Closed 14-16", "AlwaysFront", startDateTime=iso(600), endDateTime=iso(1200))) == (
        "Accepted"
    )
    assert shown(pair) != "Closed 14-16"
    pair.run(600)
    assert shown(pair) == "Closed 14-16"
    pair.run(700)  # past its end: removed
    assert shown(pair) != "Closed 14-16" and 4 not in pair.charger.display.messages
    html = {"id": 5, "priority": "InFront", "message": {"format": "HTML", "content": "<b>x</b>"}}
    assert setting(pair, html) == "NotSupportedMessageFormat"
    assert setting(pair, info(6, "For tx", transactionId="no-such-tx")) == "UnknownTransaction"
    action, payload = commands.clear_display_message("2.0.1", 1)
    assert pair.csms_call(action, payload).payload == {"status": "Accepted"}
    assert pair.csms_call(action, payload).payload == {"status": "Unknown"}


def test_a_transaction_message_shows_while_charging_and_goes_with_the_transaction(tmp_path):
    pair = StationPair(tmp_path, "2.0.1")
    pair.start()
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    (tx_id,) = pair.charger.running_transaction_ids()
    assert setting(pair, info(7, "Session cost so far 1.20", "InFront", transactionId=tx_id)) == "Accepted"
    assert pair.charger.display_state() == "Charging" and shown(pair) == "Session cost so far 1.20"
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert shown(pair) is None and 7 not in pair.charger.display.messages


def test_get_display_messages_is_reported_and_stored_by_the_csms(tmp_path):
    pair = StationPair(tmp_path, "2.0.1")
    pair.start()
    setting(pair, info(1, "Welcome"))
    setting(pair, info(2, "Maintenance", "AlwaysFront"))
    action, payload = commands.get_display_messages("2.0.1", 77, priority="AlwaysFront")
    assert pair.csms_call(action, payload).payload == {"status": "Accepted"}
    pair.settle()
    (notify,) = pair.calls("NotifyDisplayMessages")
    assert notify.payload["requestId"] == 77 and [m["id"] for m in notify.payload["messageInfo"]] == [2]
    with pair.db() as db:
        rows = display_messages.listed(db, STATION)
        assert [(r.message_id, r.text, r.priority, r.status) for r in rows] == [
            (2, "Maintenance", "AlwaysFront", "reported")
        ]
    action, payload = commands.get_display_messages("2.0.1", 78, ids=[9])
    assert pair.csms_call(action, payload).payload == {"status": "Unknown"}


def test_a_16_charger_takes_display_messages_through_data_transfer(tmp_path):
    pair = StationPair(tmp_path, "1.6")
    pair.start()
    assert setting(pair, info(1, "Welcome", "InFront")) == "Accepted"
    assert shown(pair) == "Welcome"
    action, payload = commands.clear_display_message("1.6", 1)
    assert commands.display_status("1.6", action, pair.csms_call(action, payload).payload or {}) == "Accepted"
    assert shown(pair) is None
    # Another vendor's DataTransfer is still the firmware's to answer.
    other = pair.csms_call("DataTransfer", {"vendorId": "com.example", "messageId": "X"}).payload
    assert other == {"status": "UnknownVendorId"}
    assert commands.display_status("1.6", "DataTransfer", other) == "NotSupported"
