"""The charger's pieces on their own: connector tables, configuration, queue, and answers to any CALL."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.ocpp import framing
from csms.ocpp.framing import CallError, CallResult
from simulator.station import Charger, IllegalEvent, IllegalTransition, SetStatus
from simulator.station.config import V16_KEYS, V201_VARIABLES, Configuration
from simulator.station.connector import V16_TRANSITIONS, V201_TRANSITIONS, Connector
from simulator.station.offline_queue import OfflineQueue, QueuedMessage
from tests.simulator.helpers import T0, FakeMeter, StationPair
from tests.simulator.test_station_pairing import VERSIONS, make


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def test_transition_tables_cover_every_status():
    for table in (V16_TRANSITIONS, V201_TRANSITIONS):
        for targets in table.values():
            assert targets <= set(table)


def test_illegal_events_and_transitions_raise_typed_errors():
    c = Connector(1, "1.6")
    c.plug()
    with pytest.raises(IllegalEvent):
        c.plug()
    c.refresh()
    assert c.status == "Preparing"
    c.inoperative = True  # Preparing -> Unavailable is not in the 1.6 table
    with pytest.raises(IllegalTransition):
        c.refresh()
    empty = Connector(2, "2.0.1")
    with pytest.raises(IllegalEvent):
        empty.unplug()


def test_charger_rejects_a_second_plug_in(tmp_path):
    pair = make(tmp_path, "1.6")
    pair.charger.plug_in(1, None, pair.now)
    with pytest.raises(IllegalEvent):
        pair.charger.plug_in(1, None, pair.now)


def test_configuration_tables_are_well_formed():
    for table in (V16_KEYS, V201_VARIABLES):
        names = [e.name for e in table]
        settings = [e.setting for e in table]
        assert len(set(names)) == len(names) and len(set(settings)) == len(settings)
    # 1.6 only: its feature profiles, and its declaration of the California Pricing extension (2.0.1 has cost
    # messages of its own)
    assert {e.setting for e in V16_KEYS} - {e.setting for e in V201_VARIABLES} <= {"supported_profiles", "shows_cost"}
    for version in VERSIONS:
        config = Configuration(version)  # type: ignore[arg-type]
        for entry in config:
            config.get(entry.setting)  # every default parses


def test_configuration_set_statuses():
    config = Configuration("1.6")
    assert config.set("HeartbeatInterval", "60") is SetStatus.ACCEPTED
    assert config.integer("heartbeat_interval") == 60
    assert config.set("HeartbeatInterval", "-1") is SetStatus.REJECTED
    assert config.set("LocalAuthorizeOffline", "maybe") is SetStatus.REJECTED
    assert config.set("NumberOfConnectors", "3") is SetStatus.REJECTED
    assert config.set("Unknown", "3") is SetStatus.NOT_SUPPORTED
    assert config.set("MeterValuesSampledData", "Energy.Active.Import.Register,SoC") is SetStatus.ACCEPTED
    assert config.members("sampled_measurands") == ("Energy.Active.Import.Register", "SoC")


def test_queue_never_drops_starts_or_stops():
    queue = OfflineQueue(capacity=2)
    for action, droppable in [("Start", False), ("Meter", True), ("Meter", True), ("Stop", False)]:
        queue.push(QueuedMessage(action, {}, 1, droppable))
    assert [m.action for m in queue] == ["Start", "Stop"]
    queue.push(QueuedMessage("Start", {}, 2))
    assert [m.action for m in queue] == ["Start", "Stop", "Start"]  # over capacity rather than lose a start


def test_measurands_follow_the_configuration(tmp_path):
    pair = make(tmp_path, "1.6", config={"MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import"})
    pair.meter.power[1] = 6900.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(61)
    [sample] = pair.calls("MeterValues")
    values = sample.payload["meterValue"][0]["sampledValue"]
    assert [(v["measurand"], v.get("phase")) for v in values] == [
        ("Energy.Active.Import.Register", None),
        ("Current.Import", "L1"),
        ("Current.Import", "L2"),
        ("Current.Import", "L3"),
    ]
    assert values[1]["value"] == "10"


def test_dc_charger_reports_soc(tmp_path):
    from simulator.station import ConnectorSpec

    pair = make(tmp_path, "2.0.1", connectors=[ConnectorSpec(voltage_v=400, phases=1, dc=True, max_current_a=125)])
    pair.meter.socs[1] = 42.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(61)
    periodic = [e for e in pair.tx_events() if e["triggerReason"] == "MeterValuePeriodic"]
    values = periodic[0]["meterValue"][0]["sampledValue"]
    assert {"measurand": "SoC", "value": 42.0} in [{"measurand": v["measurand"], "value": v["value"]} for v in values]
    assert not any(v.get("phase") for v in values)


def test_fault_stops_the_transaction_and_reports_faulted(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.charger.fault(1, "GroundFailure", pair.now)
    pair.settle()
    assert pair.statuses()[-1] == "Faulted"
    assert pair.transactions()[0].status == "completed"
    assert not pair.charger.is_energizing(1)
    pair.charger.clear_fault(1, pair.now)
    pair.settle()
    assert pair.statuses()[-1] == ("Finishing" if version == "1.6" else "Occupied")


# ---- every CALL gets exactly one answer -------------------------------------------------------------------
def bare_charger(version: str) -> Charger:
    charger = Charger("CP9", version, meter=FakeMeter(), rng=random.Random(3))  # type: ignore[arg-type]
    charger.connected(T0)
    charger.frames_to_send()  # the BootNotification, left unanswered
    return charger


def answers(charger: Charger, frame: str) -> list[framing.Message]:
    charger.receive_frame(frame, T0 + 1)
    return [framing.decode(f) for f in charger.frames_to_send()]


def test_calls_before_registration_get_security_error(version):
    charger = bare_charger(version)
    [answer] = answers(charger, '[2,"a1","ClearCache",{}]')
    assert isinstance(answer, CallError) and answer.code == "SecurityError"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"x1","NoSuchAction",{}]', "NotImplemented"),
        ('[2,"x2","BootNotification",{}]', None),  # a CSMS->station call we do not handle (schema first)
        ('[2,"x3","ClearCache",[]]', None),
        ("not json", None),
    ],
)
def test_any_call_gets_one_answer(version, frame, code):
    charger = bare_charger(version)
    charger.registration = charger.registration.__class__.ACCEPTED
    result = answers(charger, frame)
    assert len(result) == 1
    assert isinstance(result[0], CallError)
    if code:
        assert result[0].code == code


def test_pending_station_answers_config_calls_but_refuses_remote_start(tmp_path, version):
    pair = make(tmp_path, version, policy="pending")
    if version == "1.6":
        got = pair.csms_call("GetConfiguration", {"key": ["HeartbeatInterval"]})
        start = pair.csms_call("RemoteStartTransaction", {"idTag": "TOKEN-OK"})
    else:
        got = pair.csms_call(
            "GetVariables",
            {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        )
        start = pair.csms_call(
            "RequestStartTransaction", {"idToken": {"idToken": "TOKEN-OK", "type": "ISO14443"}, "remoteStartId": 1}
        )
    assert got.outcome.value == "result"
    assert start.payload == {"status": "Rejected"}


def test_a_csms_call_answered_while_busy(tmp_path: object, version: str) -> None:
    """A CALL arriving while our own CALL is outstanding is still answered at once."""
    pair: StationPair = make(tmp_path, version)
    session = pair.session
    assert session is not None
    pair.charger.send_heartbeat(pair.now)  # outstanding until the CSMS answers
    pending = session.send_call("ClearCache", {}, pair.now)
    pair.settle()
    assert isinstance(framing.decode(framing.encode(CallResult("x", pending.payload or {}))), CallResult)
    assert pending.payload == {"status": "Accepted"}


def test_change_availability_while_preparing_is_scheduled_16(tmp_path):
    pair = make(tmp_path, "1.6")
    pair.charger.plug_in(1, None, pair.now)
    pair.settle()
    answer = pair.csms_call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}).payload
    assert answer == {"status": "Scheduled"}  # Preparing -> Unavailable is not a 1.6 transition
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert pair.statuses()[-2:] == ["Available", "Unavailable"]
    assert pair.charger.counters.internal_errors == []


def test_new_start_from_finishing_goes_through_preparing_16(tmp_path):
    pair = make(tmp_path, "1.6")
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    tx = pair.charger.transactions[1]
    pair.csms_call("RemoteStopTransaction", {"transactionId": tx.transaction_id})
    assert pair.charger.status(1) == "Finishing"
    pair.csms_call("RemoteStartTransaction", {"idTag": "TOKEN-OK", "connectorId": 1})
    assert pair.statuses()[-3:] == ["Finishing", "Preparing", "Charging"]
    assert pair.charger.counters.internal_errors == []


def test_statuses_changed_while_offline_are_sent_after_reconnect(tmp_path, version):
    pair = make(tmp_path, version)
    pair.network_up = False
    pair.drop_link()
    pair.charger.plug_in(1, None, pair.now)  # Preparing / Occupied, nobody told
    before = len(pair.statuses())
    pair.network_up = True
    pair.run(30)
    assert pair.statuses()[before:] == ["Preparing" if version == "1.6" else "Occupied"]


_ACTIONS = st.sampled_from(
    [
        "Reset",
        "ChangeAvailability",
        "TriggerMessage",
        "GetConfiguration",
        "SetVariables",
        "UnlockConnector",
        "RemoteStartTransaction",
        "RequestStartTransaction",
        "SetChargingProfile",
        "ClearCache",
        "Nope",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(version=st.sampled_from(VERSIONS), action=_ACTIONS, payload=st.dictionaries(st.text(max_size=12), _JSON))
def test_any_call_is_answered_exactly_once_never_a_crash(version, action, payload):
    charger = bare_charger(version)
    charger.registration = charger.registration.__class__.ACCEPTED
    frame = framing.encode(framing.Call("p1", action, payload))
    result = answers(charger, frame)
    assert len([m for m in result if isinstance(m, CallResult | CallError) and m.unique_id == "p1"]) == 1
    assert charger.counters.internal_errors == []


@settings(max_examples=150, deadline=None)
@given(version=st.sampled_from(VERSIONS), text=st.text(max_size=40) | _JSON.map(lambda v: orjson.dumps(v).decode()))
def test_any_frame_never_crashes(version, text):
    charger = bare_charger(version)
    charger.registration = charger.registration.__class__.ACCEPTED
    assert len(answers(charger, text)) <= 1


def test_power_loss_and_emergency_stop_reasons(tmp_path, version):
    pair = make(tmp_path, version, reboot_s=30.0)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.charger.emergency_stop(1, pair.now)
    pair.settle()
    pair.charger.unplug(1, pair.now)
    pair.run(10)
    pair.meter.energy[1] = 50.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.charger.power_loss(pair.now)
    pair.run(60)
    rows = pair.transactions()
    assert [r.stop_reason for r in rows] == ["EmergencyStop", "PowerLoss"]
    assert pair.times("BootNotification") == [0, 40]


def test_16_meter_values_keep_every_digit_of_a_large_register():
    from simulator.station.v16 import _number

    assert _number(123456.7) == "123456.7"  # ``:g`` alone wrote 123457: 0.3 Wh lost per reading
    assert _number(12_345_678.125) == "12345678.125"
    assert _number(0.1 + 0.2) == "0.3"
    assert _number(2500.0) == "2500"
    assert float(_number(987_654_321_098.0)) == 987_654_321_098.0
