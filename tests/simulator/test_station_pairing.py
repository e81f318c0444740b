"""The charger firmware paired with the real CSMS core: boot, heartbeat, statuses, transactions, calls.

Every test runs for both OCPP versions; times are virtual and asserted exactly (offsets from T0).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from csms.services import stations
from csms.store.models import StationVariable
from simulator.station import Registration
from tests.simulator.helpers import STATION, T0, StationPair

VERSIONS = ["1.6", "2.0.1"]


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def make(tmp_path, version, **kw) -> StationPair:
    pair = StationPair(tmp_path, version, **kw)
    pair.start()
    return pair


def set_sample_interval(pair: StationPair, seconds: int) -> dict:
    if pair.version == "1.6":
        pending = pair.csms_call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": str(seconds)})
        return pending.payload
    pending = pair.csms_call(
        "SetVariables",
        {
            "setVariableData": [
                {
                    "attributeValue": str(seconds),
                    "component": {"name": "SampledDataCtrlr"},
                    "variable": {"name": "TxUpdatedInterval"},
                }
            ]
        },
    )
    return pending.payload


def meter_times(pair: StationPair) -> list[float]:
    if pair.version == "1.6":
        return pair.times("MeterValues")
    return [s.at - T0 for s in pair.calls("TransactionEvent") if s.payload["triggerReason"] == "MeterValuePeriodic"]


def started(pair: StationPair) -> list:
    action = "StartTransaction" if pair.version == "1.6" else "TransactionEvent"
    return [s for s in pair.calls(action) if pair.version == "1.6" or s.payload["eventType"] == "Started"]


def ended(pair: StationPair) -> list:
    action = "StopTransaction" if pair.version == "1.6" else "TransactionEvent"
    return [s for s in pair.calls(action) if pair.version == "1.6" or s.payload["eventType"] == "Ended"]


def stop_reason(pair: StationPair, sent) -> str:
    return sent.payload["reason"] if pair.version == "1.6" else sent.payload["transactionInfo"]["stoppedReason"]


# ---- registration and heartbeat ---------------------------------------------------------------------------
def test_boot_accepted_then_statuses_and_heartbeats_at_the_interval(tmp_path, version):
    pair = make(tmp_path, version)
    assert pair.sent[0].action == "BootNotification"
    assert pair.charger.registration is Registration.ACCEPTED
    expected_status_count = 2 if version == "1.6" else 1  # 1.6 reports connector 0 too
    assert len(pair.calls("StatusNotification")) == expected_status_count
    pair.run(1000)
    assert pair.times("Heartbeat") == [300, 600, 900]
    assert pair.errors_to_charger() == []
    assert pair.charger.counters.internal_errors == []


def test_boot_pending_retries_at_the_interval_given(tmp_path, version):
    pair = make(tmp_path, version, policy="pending")
    assert pair.charger.registration is Registration.PENDING
    pair.run(59)
    assert pair.times("BootNotification") == [0]
    pair.run(1)
    assert pair.times("BootNotification") == [0, 60]
    with pair.db() as db:
        stations.update(db, STATION, {"registration_policy": "accept"})
        db.commit()
    pair.run(60)
    assert pair.times("BootNotification") == [0, 60, 120]
    assert pair.charger.registration is Registration.ACCEPTED
    assert pair.calls("Heartbeat") == []
    pair.run(300)
    assert pair.times("Heartbeat") == [420]


def test_heartbeat_interval_change_takes_effect(tmp_path, version):
    pair = make(tmp_path, version)
    if version == "1.6":
        result = pair.csms_call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "50"}).payload
        assert result == {"status": "Accepted"}
    else:
        data = [
            {"attributeValue": "50", "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        ]
        result = pair.csms_call("SetVariables", {"setVariableData": data}).payload
        assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"
    pair.run(120)
    assert pair.times("Heartbeat") == [50, 100]


# ---- a whole transaction ----------------------------------------------------------------------------------
def test_transaction_with_token_statuses_meter_values_and_energy(tmp_path, version):
    pair = make(tmp_path, version)
    pair.meter.energy[1] = 1000.0
    pair.run(10)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    assert pair.calls("Authorize")
    assert len(started(pair)) == 1
    assert pair.charger.is_energizing(1)
    for step in range(1, 5):
        pair.meter.energy[1] = 1000.0 + 250.0 * step
        pair.meter.power[1] = 11000.0
        pair.run(60)
    assert meter_times(pair) == [70, 130, 190, 250]
    pair.charger.ev_suspended(1, True, pair.now)
    pair.settle()
    assert not pair.charger.is_energizing(1)
    pair.meter.energy[1] = 2100.0
    pair.run(5)
    pair.charger.unplug(1, pair.now)
    pair.settle()
    [stop] = ended(pair)
    assert stop_reason(pair, stop) == "EVDisconnected"
    [row] = pair.transactions()
    assert row.status == "completed"
    assert row.energy_wh == pytest.approx(1100.0)
    assert row.stop_reason == "EVDisconnected"
    if version == "1.6":
        assert pair.statuses() == ["Available", "Preparing", "Charging", "SuspendedEV", "Available"]
    else:
        assert pair.statuses() == ["Available", "Occupied", "Available"]
        states = [e["transactionInfo"].get("chargingState") for e in pair.tx_events()]
        assert states[0] == "Charging" and "SuspendedEV" in states
        assert [e["seqNo"] for e in pair.tx_events()] == list(range(len(pair.tx_events())))
    assert pair.errors_to_charger() == []
    assert pair.charger.counters.internal_errors == []


def test_changing_the_sample_interval_changes_the_meter_value_period(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(130)
    assert meter_times(pair) == [60, 120]
    result = set_sample_interval(pair, 15)
    if version == "1.6":
        assert result == {"status": "Accepted"}
    else:
        assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"
    pair.run(50)  # changed at 130: next samples at 145, 160, 175
    assert meter_times(pair) == [60, 120, 145, 160, 175]


def test_invalid_token_does_not_start(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-BAD", pair.now)
    pair.settle()
    assert started(pair) == []
    assert not pair.charger.is_energizing(1)


# ---- authorization cache and local list -------------------------------------------------------------------
def test_offline_start_from_the_authorization_cache_then_replay(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)  # fills the cache
    pair.run(5)
    pair.charger.unplug(1, pair.now)
    pair.run(5)
    pair.network_up = False
    pair.drop_link()
    pair.run(5)
    pair.meter.energy[1] = 500.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    assert pair.charger.is_energizing(1)
    pair.meter.energy[1] = 800.0
    pair.run(130)  # two samples while offline
    pair.meter.energy[1] = 900.0
    pair.charger.unplug(1, pair.now)
    assert len(pair.charger.queue) >= 4
    pair.network_up = True
    pair.run(400)
    assert len(pair.charger.queue) == 0
    rows = pair.transactions()
    assert len(rows) == 2
    assert rows[1].status == "completed"
    assert rows[1].energy_wh == pytest.approx(400.0)
    if version == "2.0.1":
        assert rows[1].offline_events >= 4
        offline = [e for e in pair.tx_events() if e["transactionInfo"]["transactionId"] == rows[1].charger_tx_id]
        assert all(e.get("offline") for e in offline)
        assert [e["seqNo"] for e in offline] == list(range(len(offline)))


def test_offline_unknown_token_is_refused_without_local_authorize(tmp_path, version):
    pair = make(tmp_path, version)
    pair.network_up = False
    pair.drop_link()
    pair.charger.plug_in(1, "TOKEN-NEW", pair.now)
    assert not pair.charger.is_energizing(1)


def test_local_list_with_pre_authorize_starts_without_authorize(tmp_path, version):
    key = "LocalPreAuthorize" if version == "1.6" else "AuthCtrlr.LocalPreAuthorize"
    pair = make(tmp_path, version, config={key: "true"})
    if version == "1.6":
        payload = {
            "listVersion": 3,
            "updateType": "Full",
            "localAuthorizationList": [{"idTag": "TOKEN-OK", "idTagInfo": {"status": "Accepted"}}],
        }
    else:
        payload = {
            "versionNumber": 3,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idToken": {"idToken": "TOKEN-OK", "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}
            ],
        }
    assert pair.csms_call("SendLocalList", payload).payload == {"status": "Accepted"}
    version_answer = pair.csms_call("GetLocalListVersion", {}).payload
    assert 3 in version_answer.values()
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    assert pair.calls("Authorize") == []
    assert len(started(pair)) == 1
    assert pair.csms_call("ClearCache", {}).payload == {"status": "Accepted"}


# ---- remote start / stop ----------------------------------------------------------------------------------
def remote_start(pair: StationPair, token: str = "TOKEN-OK") -> dict:
    if pair.version == "1.6":
        return pair.csms_call("RemoteStartTransaction", {"idTag": token, "connectorId": 1}).payload
    payload = {"idToken": {"idToken": token, "type": "ISO14443"}, "remoteStartId": 42, "evseId": 1}
    return pair.csms_call("RequestStartTransaction", payload).payload


def remote_stop(pair: StationPair) -> dict:
    tx = pair.charger.transactions[1]
    if pair.version == "1.6":
        return pair.csms_call("RemoteStopTransaction", {"transactionId": tx.transaction_id}).payload
    return pair.csms_call("RequestStopTransaction", {"transactionId": tx.transaction_id}).payload


def test_remote_start_waits_for_the_plug_then_remote_stop(tmp_path, version):
    pair = make(tmp_path, version)
    assert remote_start(pair)["status"] == "Accepted"
    assert started(pair) == []  # no cable yet
    if version == "1.6":
        assert pair.charger.status(1) == "Preparing"
    pair.run(10)
    pair.charger.plug_in(1, None, pair.now)
    pair.settle()
    assert len(started(pair)) == 1
    assert pair.calls("Authorize") == []  # AuthorizeRemoteTxRequests is false
    if version == "2.0.1":
        first = pair.tx_events()[0]
        assert first["triggerReason"] == "RemoteStart"
        assert first["transactionInfo"]["remoteStartId"] == 42
        assert pair.transactions()[0].remote_start_id == 42
    pair.run(30)
    assert remote_stop(pair)["status"] == "Accepted"
    [stop] = ended(pair)
    assert stop_reason(pair, stop) == "Remote"
    assert pair.transactions()[0].status == "completed"
    if version == "1.6":
        assert pair.charger.status(1) == "Finishing"
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert pair.charger.status(1) == "Available"


def test_remote_start_times_out_without_a_plug(tmp_path, version):
    pair = make(tmp_path, version)
    remote_start(pair)
    pair.run(61)
    assert pair.charger.status(1) == "Available"
    pair.charger.plug_in(1, None, pair.now)
    pair.settle()
    assert started(pair) == []


def test_remote_start_with_authorize_remote_requests(tmp_path, version):
    key = "AuthorizeRemoteTxRequests" if version == "1.6" else "AuthCtrlr.AuthorizeRemoteStart"
    pair = make(tmp_path, version, config={key: "true"})
    pair.charger.plug_in(1, None, pair.now)
    pair.settle()
    remote_start(pair, "TOKEN-BAD")
    assert len(pair.calls("Authorize")) == 1
    assert started(pair) == []
    remote_start(pair, "TOKEN-OK")
    assert len(started(pair)) == 1


# ---- reset, availability, unlock --------------------------------------------------------------------------
def test_reset_stops_the_transaction_reboots_and_boots_again(tmp_path, version):
    pair = make(tmp_path, version, reboot_s=20.0)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(30)
    kind = "Hard" if version == "1.6" else "Immediate"
    assert pair.csms_call("Reset", {"type": kind}).payload == {"status": "Accepted"}
    pair.run(60)
    [stop] = ended(pair)
    assert stop_reason(pair, stop) == ("HardReset" if version == "1.6" else "ImmediateReset")
    assert pair.times("BootNotification") == [0, 51]  # 1 s to go down, 20 s of reboot
    if version == "2.0.1":
        assert pair.calls("BootNotification")[1].payload["reason"] == "RemoteReset"
    assert pair.charger.registration is Registration.ACCEPTED
    assert pair.transactions()[0].status == "completed"


def test_change_availability_is_scheduled_during_a_transaction(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    if version == "1.6":
        payload = {"connectorId": 1, "type": "Inoperative"}
    else:
        payload = {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    assert pair.csms_call("ChangeAvailability", payload).payload["status"] == "Scheduled"
    assert pair.charger.status(1) != "Unavailable"
    pair.run(10)
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert pair.charger.status(1) == "Unavailable"
    assert pair.statuses()[-1] == "Unavailable"
    assert remote_start(pair)["status"] == "Rejected"
    payload = {"connectorId": 1, "type": "Operative"} if version == "1.6" else {"operationalStatus": "Operative"}
    assert pair.csms_call("ChangeAvailability", payload).payload["status"] == "Accepted"
    assert pair.charger.status(1) == "Available"


def test_unlock_connector(tmp_path, version):
    pair = make(tmp_path, version)
    payload = {"connectorId": 1} if version == "1.6" else {"evseId": 1, "connectorId": 1}
    assert pair.csms_call("UnlockConnector", payload).payload["status"] == "Unlocked"
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    status = pair.csms_call("UnlockConnector", payload).payload["status"]
    if version == "1.6":
        assert status == "Unlocked"
        assert stop_reason(pair, ended(pair)[0]) == "UnlockCommand"
    else:
        assert status == "OngoingAuthorizedTransaction"


# ---- configuration and reports ----------------------------------------------------------------------------
def test_configuration_reads_and_writes(tmp_path, version):
    pair = make(tmp_path, version)
    if version == "1.6":
        answer = pair.csms_call("GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]}).payload
        assert answer == {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": ["Nope"],
        }
        everything = pair.csms_call("GetConfiguration", {}).payload["configurationKey"]
        assert {"key": "NumberOfConnectors", "readonly": True, "value": "1"} in everything

        def change(key: str, value: str) -> str:
            return pair.csms_call("ChangeConfiguration", {"key": key, "value": value}).payload["status"]

        assert change("NumberOfConnectors", "2") == "Rejected"
        assert change("MeterValueSampleInterval", "soon") == "Rejected"
        assert change("MeterValuesSampledData", "Energy.Active.Import.Register,Bogus") == "Rejected"
        assert change("NoSuchKey", "1") == "NotSupported"
        assert change("WebSocketPingInterval", "30") == "RebootRequired"
    else:

        def item(component: str, variable: str, **extra) -> dict:
            return {"component": {"name": component}, "variable": {"name": variable}, **extra}

        got = pair.csms_call(
            "GetVariables",
            {
                "getVariableData": [
                    item("OCPPCommCtrlr", "HeartbeatInterval"),
                    item("OCPPCommCtrlr", "Nope"),
                    item("NoSuchCtrlr", "HeartbeatInterval"),
                    item("OCPPCommCtrlr", "HeartbeatInterval", attributeType="Target"),
                ]
            },
        ).payload["getVariableResult"]
        assert [r["attributeStatus"] for r in got] == [
            "Accepted",
            "UnknownVariable",
            "UnknownComponent",
            "NotSupportedAttributeType",
        ]
        assert got[0]["attributeValue"] == "300"
        set_ = pair.csms_call(
            "SetVariables",
            {
                "setVariableData": [
                    item("ChargingStation", "NumberOfEVSEs", attributeValue="2"),
                    item("SampledDataCtrlr", "TxUpdatedInterval", attributeValue="x"),
                    item("NoSuchCtrlr", "X", attributeValue="1"),
                    item("OCPPCommCtrlr", "WebSocketPingInterval", attributeValue="30"),
                ]
            },
        ).payload["setVariableResult"]
        assert [r["attributeStatus"] for r in set_] == ["Rejected", "Rejected", "UnknownComponent", "RebootRequired"]


def test_get_base_report_sends_notify_report_pages(tmp_path):
    pair = make(tmp_path, "2.0.1")
    assert pair.csms_call("GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"}).payload == {
        "status": "Accepted"
    }
    reports = pair.calls("NotifyReport")
    count = len(pair.charger.config.table)
    assert len(reports) == -(-count // 10)
    assert [r.payload["seqNo"] for r in reports] == list(range(len(reports)))
    assert [r.payload["tbc"] for r in reports] == [True] * (len(reports) - 1) + [False]
    assert sum(len(r.payload["reportData"]) for r in reports) == count
    with pair.db() as db:
        stored = db.scalars(
            select(StationVariable).where(
                StationVariable.component == "SampledDataCtrlr", StationVariable.variable == "TxUpdatedInterval"
            )
        ).one()
        assert stored.value == "60"
    # The CALLRESULT goes out before the first NotifyReport.
    answer_index = next(i for i, s in enumerate(pair.sent) if s.action is None and s.payload == {"status": "Accepted"})
    assert answer_index < pair.sent.index(reports[0])


def test_trigger_message(tmp_path, version):
    pair = make(tmp_path, version)
    heartbeats = len(pair.calls("Heartbeat"))
    assert pair.csms_call("TriggerMessage", {"requestedMessage": "Heartbeat"}).payload["status"] == "Accepted"
    assert len(pair.calls("Heartbeat")) == heartbeats + 1
    statuses = len(pair.calls("StatusNotification"))
    assert pair.csms_call("TriggerMessage", {"requestedMessage": "StatusNotification"}).payload["status"] == "Accepted"
    assert len(pair.calls("StatusNotification")) == statuses + 1
    assert pair.csms_call("TriggerMessage", {"requestedMessage": "MeterValues"}).payload["status"] == "Accepted"
    assert len(pair.calls("MeterValues")) == 1
    assert (
        pair.csms_call("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}).payload["status"]
        == "Accepted"
    )
    assert pair.calls("FirmwareStatusNotification")[0].payload == {"status": "Idle"}
    boot = pair.csms_call("TriggerMessage", {"requestedMessage": "BootNotification"}).payload["status"]
    assert boot == ("Accepted" if version == "1.6" else "Rejected")
    assert pair.csms_call("DataTransfer", {"vendorId": "acme"}).payload == {"status": "UnknownVendorId"}
    assert pair.errors_to_charger() == []
    assert pair.charger.counters.internal_errors == []
