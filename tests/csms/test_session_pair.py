"""The sans-IO station session paired with the batch processor through a fake link: no sockets, a fake clock.

Protocol-only behaviour runs on SQLite (``sqlite_factory``); everything that writes transactions, samples
and reports runs on SQLite and PostgreSQL (``session_factory``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from csms.core.processor import BatchProcessor
from csms.ocpp import framing
from csms.ocpp.framing import Call, CallError, CallResult
from csms.ocpp.rpc import Outcome
from csms.services import authorization, transactions
from csms.services.config import CsmsConfig
from csms.store import models
from tests.csms.helpers import T0, StationPair, boot_payload, call_frame, failing_commits, ts

VERSIONS = ["1.6", "2.0.1"]


def codes(version: str) -> dict[str, str]:
    """The wire names a test expects, per version (1.6 spells two of them its own way)."""
    if version == "1.6":
        return {
            "format": "FormationViolation",
            "rpc": "FormationViolation",
            "type_not_supported": "ProtocolError",
            "missing": "ProtocolError",
            "occurrence": "OccurenceConstraintViolation",
        }
    return {
        "format": "FormatViolation",
        "rpc": "RpcFrameworkError",
        "type_not_supported": "MessageTypeNotSupported",
        "missing": "OccurrenceConstraintViolation",
        "occurrence": "OccurrenceConstraintViolation",
    }


def status_payload(version: str, status: str = "Available", at: float = 0.0, connector: int = 1) -> dict[str, Any]:
    if version == "1.6":
        return {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": ts(at)}
    return {"timestamp": ts(at), "connectorStatus": status, "evseId": connector, "connectorId": 1}


def authorize_payload(version: str, token: str) -> dict[str, Any]:
    return {"idTag": token} if version == "1.6" else {"idToken": {"idToken": token, "type": "ISO14443"}}


def auth_status(version: str, answer: dict[str, Any]) -> str:
    return answer["idTagInfo"]["status"] if version == "1.6" else answer["idTokenInfo"]["status"]


def only_error(frames: list[str]) -> CallError:
    assert len(frames) == 1, frames
    message = framing.decode(frames[0])
    assert isinstance(message, CallError), message
    return message


# ---- CALLERROR names and message ids ---------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_unreadable_frames_are_answered_with_id_minus_one(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version)
    expect = codes(version)
    for frame, code in [
        ("not json at all", expect["format"]),
        ("{}", expect["rpc"]),
        ("[]", expect["rpc"]),
        ('[2, 17, "Heartbeat", {}]', expect["rpc"]),
        ('[2, "", "Heartbeat", {}]', expect["rpc"]),
        (f'[2, "{"x" * 37}", "Heartbeat", {{}}]', expect["rpc"]),
        (b"\xff\xfe not utf-8", expect["format"]),
    ]:
        error = only_error(pair.send(frame))
        assert (error.unique_id, error.code) == ("-1", code), frame


@pytest.mark.parametrize("version", VERSIONS)
def test_readable_id_is_echoed_in_the_callerror(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version)
    expect = codes(version)
    cases = [
        ('[7, "a1", "Heartbeat", {}]', expect["type_not_supported"]),
        ('[2, "a2", "Heartbeat"]', expect["rpc"]),
        ('[2, "a3", "Heartbeat", {}, 1]', expect["rpc"]),
        ('[2, "a4", 5, {}]', expect["rpc"]),
        ('[2, "a5", "Heartbeat", []]', expect["format"]),
    ]
    for frame, code in cases:
        error = only_error(pair.send(frame))
        assert error.code == code, frame
        assert error.unique_id == orjson.loads(frame)[1]


@pytest.mark.parametrize("version", VERSIONS)
def test_schema_violations_get_the_versions_codes(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version)
    expect = codes(version)
    status = status_payload(version)
    missing = {k: v for k, v in status.items() if k != "connectorId"}
    assert pair.error("StatusNotification", missing) == expect["missing"]
    assert pair.error("StatusNotification", {**status, "connectorId": "one"}) == "TypeConstraintViolation"
    bad_enum = {**status, "status" if version == "1.6" else "connectorStatus": "Exploded"}
    assert pair.error("StatusNotification", bad_enum) == "PropertyConstraintViolation"
    assert pair.error("StatusNotification", {**status, "timestamp": "yesterday"}) == "PropertyConstraintViolation"
    assert pair.error("StatusNotification", {**status, "surprise": 1}) == expect["format"]
    assert pair.error("Heartbeat", {"extra": True}) == expect["format"]
    if version == "1.6":
        overlong = {"idTag": "x" * 21}
        empty_list = {"connectorId": 1, "meterValue": []}
    else:
        overlong = {"idToken": {"idToken": "x" * 37, "type": "ISO14443"}}
        empty_list = {"evseId": 1, "meterValue": []}
    assert pair.error("Authorize", overlong) == "TypeConstraintViolation"
    assert pair.error("MeterValues", empty_list) == expect["occurrence"]
    # Defined by the version but not handled by a CSMS (the CSMS sends it), and not defined at all:
    reset = {"type": "Soft"} if version == "1.6" else {"type": "Immediate"}
    assert pair.error("Reset", reset) == "NotSupported"
    assert pair.error("MakeCoffee", {}) == "NotImplemented"
    assert pair.count(models.StatusChange) == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_date_time_that_matches_the_pattern_but_is_no_date(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version)
    for bad in ["2026-19-39T29:59:59Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"]:
        assert pair.error("StatusNotification", {**status_payload(version), "timestamp": bad}) == (
            "PropertyConstraintViolation"
        ), bad
    assert pair.count(models.StatusChange) == 0


def test_out_of_range_integers_are_type_violations(sqlite_factory):
    """OCPP integers are 32 bit; a larger one is refused before it reaches a column (or a batch insert)."""
    pair = StationPair(sqlite_factory, "1.6")
    payload = {"connectorId": 2**31, "meterValue": [{"timestamp": ts(), "sampledValue": [{"value": "1"}]}]}
    assert pair.error("MeterValues", payload) == "TypeConstraintViolation"
    assert pair.error("MeterValues", {**payload, "connectorId": 2**63}) == "TypeConstraintViolation"
    assert pair.ok("MeterValues", {**payload, "connectorId": 2**31 - 1}) == {}


def test_huge_unit_multiplier_is_refused_quickly(sqlite_factory):
    pair = StationPair(sqlite_factory, "2.0.1")
    sample = {"value": 1.0, "unitOfMeasure": {"unit": "Wh", "multiplier": 100_000_000}}
    payload = {"evseId": 1, "meterValue": [{"timestamp": ts(), "sampledValue": [sample]}]}
    assert pair.error("MeterValues", payload) == "PropertyConstraintViolation"
    assert pair.count(models.MeterSample) == 0


# ---- registration ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("policy", "status", "interval"),
    [("accept", "Accepted", 300), ("pending", "Pending", 60), ("reject", "Rejected", 600)],
)
def test_boot_answer_follows_the_policy(sqlite_factory, version, policy, status, interval):
    pair = StationPair(sqlite_factory, version, policy=policy, registration_status=None)
    assert pair.error("Heartbeat", {}) == "SecurityError"
    answer = pair.ok("BootNotification", boot_payload(version))
    assert (answer["status"], answer["interval"]) == (status, interval)
    assert answer["currentTime"] == ts()
    row = pair.station()
    assert (row.registration_status, row.vendor, row.model) == (status, "Vendor", "Model")
    if status == "Accepted":
        assert "currentTime" in pair.ok("Heartbeat", {})
    else:
        assert pair.error("Heartbeat", {}) == "SecurityError"
        assert pair.error("StatusNotification", status_payload(version)) == "SecurityError"
        assert pair.count(models.StatusChange) == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_pending_station_may_send_what_was_triggered_once(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version, policy="pending", registration_status=None)
    assert pair.ok("BootNotification", boot_payload(version))["status"] == "Pending"
    trigger = {"requestedMessage": "StatusNotification"}
    trigger |= {"connectorId": 1} if version == "1.6" else {"evse": {"id": 1, "connectorId": 1}}
    pending = pair.session.send_call("TriggerMessage", trigger, pair.now)
    (sent,) = pair.drain()
    assert framing.decode(sent) == Call("csms-1", "TriggerMessage", trigger)
    assert pair.send(orjson.dumps([3, "csms-1", {"status": "Accepted"}])) == []
    assert pending.outcome is Outcome.RESULT
    assert pair.ok("StatusNotification", status_payload(version)) == {}
    assert pair.error("StatusNotification", status_payload(version, at=1)) == "SecurityError"
    assert pair.count(models.StatusChange) == 1
    # A rejected trigger allows nothing.
    pair.session.send_call("TriggerMessage", {**trigger, "requestedMessage": "Heartbeat"}, pair.now)
    pair.drain()
    pair.send(orjson.dumps([3, "csms-2", {"status": "Rejected"}]))
    assert pair.error("Heartbeat", {}) == "SecurityError"


@pytest.mark.parametrize("version", VERSIONS)
def test_operator_accepts_a_pending_station_on_its_next_boot(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version, policy="pending", registration_status=None)
    assert pair.ok("BootNotification", boot_payload(version))["status"] == "Pending"
    with sqlite_factory() as db:
        db.get(models.Station, "cs1").registration_policy = "accept"
        db.commit()
    assert pair.error("Heartbeat", {}) == "SecurityError"
    assert pair.ok("BootNotification", boot_payload(version))["status"] == "Accepted"
    assert "currentTime" in pair.ok("Heartbeat", {})


# ---- our calls: one at a time, timeouts at exact times ---------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_one_outstanding_call_and_the_queue(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version, config=CsmsConfig(call_timeout_s=30.0))
    first = pair.session.send_call("ClearCache", {}, pair.now)
    second = pair.session.send_call("GetLocalListVersion", {}, pair.now + 1)
    wire = pair.drain()
    assert [framing.decode(f) for f in wire] == [Call("csms-1", "ClearCache", {})]
    assert pair.session.rpc.queued == 1
    # The station's own CALLs are still answered while ours is outstanding.
    assert "currentTime" in pair.ok("Heartbeat", {})
    assert pair.send(orjson.dumps([3, "csms-1", {"status": "Accepted"}])) == [
        framing.encode(Call("csms-2", "GetLocalListVersion", {}))
    ]
    assert (first.outcome, first.payload) == (Outcome.RESULT, {"status": "Accepted"})
    assert second.outcome is None and second.sent_at == pair.now
    pair.send(orjson.dumps([4, "csms-2", "NotSupported", "no local list", {}]))
    assert (second.outcome, second.error_code) == (Outcome.ERROR, "NotSupported")
    assert pair.session.next_deadline() is None
    assert [p.call.unique_id for p in pair.session.completed_calls()] == ["csms-1", "csms-2"]


@pytest.mark.parametrize("version", VERSIONS)
def test_call_times_out_exactly_at_sent_at_plus_timeout(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version, config=CsmsConfig(call_timeout_s=30.0))
    first = pair.session.send_call("ClearCache", {}, T0)
    second = pair.session.send_call("GetLocalListVersion", {}, T0 + 5)
    pair.drain()
    assert pair.session.next_deadline() == T0 + 30
    assert pair.advance_to(T0 + 29.999) == []
    assert first.outcome is None
    sent = pair.advance_to(T0 + 30)
    assert (first.outcome, first.completed_at) == (Outcome.TIMEOUT, T0 + 30)
    assert [framing.decode(f).unique_id for f in sent] == ["csms-2"]  # the queued call goes out at once
    assert second.sent_at == T0 + 30
    assert pair.session.next_deadline() == T0 + 60
    # The late answer to the first call is dropped: no reply, no change, the second still waits.
    assert pair.send(orjson.dumps([3, "csms-1", {"status": "Accepted"}])) == []
    assert first.outcome is Outcome.TIMEOUT and first.payload is None
    assert second.outcome is None and pair.session.rpc.outstanding is second
    # A per-call timeout overrides the configured one.
    pair.send(orjson.dumps([3, "csms-2", {"listVersion": 3}]))
    third = pair.session.send_call("ClearCache", {}, T0 + 40, timeout_s=2.5)
    assert third.deadline == T0 + 42.5
    pair.advance_to(T0 + 42.5)
    assert third.outcome is Outcome.TIMEOUT


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_result_completes_the_call_as_error(sqlite_factory, version):
    pair = StationPair(sqlite_factory, version)
    pending = pair.session.send_call("ClearCache", {}, pair.now)
    pair.drain()
    assert pair.send(orjson.dumps([3, "csms-1", {"status": "Maybe"}])) == []
    assert (pending.outcome, pending.error_code) == (Outcome.ERROR, "PropertyConstraintViolation")


def test_cancelled_on_close(sqlite_factory):
    pair = StationPair(sqlite_factory)
    first = pair.session.send_call("ClearCache", {}, pair.now)
    second = pair.session.send_call("ClearCache", {}, pair.now)
    pair.session.close(pair.now + 1)
    assert [p.outcome for p in (first, second)] == [Outcome.CANCELLED] * 2
    assert pair.session.next_deadline() is None


# ---- authorization ---------------------------------------------------------------------------------------
def _tokens(factory: sessionmaker[Session]) -> None:
    now = datetime.fromtimestamp(T0, UTC)
    with factory() as db:
        authorization.create(db, "GOOD", now, group_id="FLEET")
        authorization.create(db, "BLOCKED", now, status="Blocked")
        authorization.create(db, "OLD", now, expiry=now - timedelta(days=1))
        authorization.create(db, "FRESH", now, expiry=now + timedelta(days=1))
        db.commit()


@pytest.mark.parametrize("version", VERSIONS)
def test_authorize(session_factory, version):
    pair = StationPair(session_factory, version)
    _tokens(session_factory)
    results = {
        t: auth_status(version, pair.ok("Authorize", authorize_payload(version, t)))
        for t in ["GOOD", "BLOCKED", "OLD", "FRESH", "NOBODY"]
    }
    unknown = "Invalid" if version == "1.6" else "Unknown"
    assert results == {
        "GOOD": "Accepted",
        "BLOCKED": "Blocked",
        "OLD": "Expired",
        "FRESH": "Accepted",
        "NOBODY": unknown,
    }
    good = pair.ok("Authorize", authorize_payload(version, "GOOD"))
    if version == "1.6":
        assert good["idTagInfo"]["parentIdTag"] == "FLEET"
    else:
        assert good["idTokenInfo"]["groupIdToken"] == {"idToken": "FLEET", "type": "Central"}


# ---- transactions, 1.6 ----------------------------------------------------------------------------------
def sampled_16(at: float, energy_wh: float) -> dict[str, Any]:
    """Every measurand a charger typically sends, per phase where it has phases."""
    values: list[dict[str, Any]] = [
        {"value": str(energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    ]
    values.append({"value": "11000", "measurand": "Power.Active.Import", "unit": "W"})
    for phase in ("L1", "L2", "L3"):
        values.append({"value": "16.0", "measurand": "Current.Import", "unit": "A", "phase": phase})
        values.append({"value": "230.1", "measurand": "Voltage", "unit": "V", "phase": f"{phase}-N"})
    values.append({"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"})
    return {"timestamp": ts(at), "sampledValue": values}


def tx_summary(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with factory() as db:
        return [transactions.summary(tx) for tx in db.query(models.Transaction).order_by(models.Transaction.id)]


def test_16_transaction_with_meter_values(session_factory):
    pair = StationPair(session_factory, "1.6")
    _tokens(session_factory)
    start = {"connectorId": 1, "idTag": "GOOD", "meterStart": 1000, "timestamp": ts(10)}
    answer = pair.ok("StartTransaction", start)
    tx_id = answer["transactionId"]
    assert answer["idTagInfo"]["status"] == "Accepted"
    assert pair.ok("StartTransaction", start)["transactionId"] == tx_id  # the replay gets the same id
    pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [sampled_16(70, 4000)]})
    stop = {
        "transactionId": tx_id,
        "meterStop": 8500,
        "timestamp": ts(130),
        "reason": "EVDisconnected",
        "transactionData": [sampled_16(130, 8500)],
    }
    first = pair.ok("StopTransaction", stop)
    assert pair.ok("StopTransaction", stop) == first  # the replay is answered as the first one was
    (summary,) = tx_summary(session_factory)
    assert summary["energy_kwh"] == 7.5
    assert (summary["status"], summary["stop_reason"], summary["id"]) == ("completed", "EVDisconnected", tx_id)
    rows = pair.rows(models.MeterSample, transaction_id=tx_id)
    assert len(rows) == 2 * 9  # two readings, nothing dropped
    kinds = {(r.measurand, r.phase, r.unit) for r in rows}
    assert ("Current.Import", "L2", "A") in kinds and ("Voltage", "L3-N", "V") in kinds
    assert ("SoC", None, "Percent") in kinds and ("Power.Active.Import", None, "W") in kinds
    assert {r.location for r in rows if r.measurand == "SoC"} == {"EV"}
    assert all(r.evse_id == 1 for r in rows)


def test_16_meter_values_in_kwh(session_factory):
    pair = StationPair(session_factory, "1.6")
    start = {"connectorId": 2, "idTag": "ANY", "meterStart": 2000, "timestamp": ts()}
    tx_id = pair.ok("StartTransaction", start)["transactionId"]
    reading = {"timestamp": ts(60), "sampledValue": [{"value": "5.25", "unit": "kWh"}]}
    pair.ok("MeterValues", {"connectorId": 2, "transactionId": tx_id, "meterValue": [reading]})
    (summary,) = tx_summary(session_factory)
    assert (summary["status"], summary["energy_kwh"]) == ("active", 3.25)
    (sample,) = pair.rows(models.MeterSample)
    assert (sample.value, sample.unit) == (5250.0, "Wh")  # stored in the base unit


def test_16_stop_of_unknown_transaction_is_answered(session_factory):
    pair = StationPair(session_factory, "1.6")
    assert pair.ok("StopTransaction", {"transactionId": 999, "meterStop": 5, "timestamp": ts()}) == {}
    assert pair.count(models.Transaction) == 0


# ---- transactions, 2.0.1 --------------------------------------------------------------------------------
def tx_event(kind: str, seq: int, at: float, *, energy_kwh: float | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventType": kind,
        "timestamp": ts(at),
        "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "EVDeparted"}[kind],
        "seqNo": seq,
        "transactionInfo": {"transactionId": "TX-1"},
        "evse": {"id": 1, "connectorId": 1},
    }
    if energy_kwh is not None:
        samples = [
            {"value": energy_kwh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "kWh"}}
        ]
        for phase in ("L1", "L2", "L3"):
            samples.append(
                {"value": 16.0, "measurand": "Current.Import", "phase": phase, "unitOfMeasure": {"unit": "A"}}
            )
            samples.append(
                {"value": 230.0, "measurand": "Voltage", "phase": f"{phase}-N", "unitOfMeasure": {"unit": "V"}}
            )
        samples.append(
            {"value": 11.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW", "multiplier": 3}}
        )
        samples.append({"value": 40, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}})
        body["meterValue"] = [{"timestamp": ts(at), "sampledValue": samples}]
    if kind == "Ended":
        body["transactionInfo"]["stoppedReason"] = "EVDisconnected"
    return body | extra


def test_201_transaction_energy_and_duplicate_end(session_factory):
    pair = StationPair(session_factory, "2.0.1")
    _tokens(session_factory)
    started = pair.ok(
        "TransactionEvent", tx_event("Started", 0, 0, energy_kwh=1.5, idToken={"idToken": "GOOD", "type": "ISO14443"})
    )
    assert started["idTokenInfo"]["status"] == "Accepted"
    pair.ok("TransactionEvent", tx_event("Updated", 1, 60, energy_kwh=5.0))
    end = tx_event("Ended", 2, 120, energy_kwh=9.0)
    first = pair.ok("TransactionEvent", end)
    assert pair.ok("TransactionEvent", end) == first
    assert pair.ok("TransactionEvent", {**end, "seqNo": 3}) == first  # another Ended of a completed transaction
    (summary,) = tx_summary(session_factory)
    assert (summary["status"], summary["energy_kwh"], summary["stop_reason"]) == ("completed", 7.5, "EVDisconnected")
    assert summary["charger_transaction_id"] == "TX-1" and summary["id_token"] == "GOOD"
    rows = pair.rows(models.MeterSample)
    assert len(rows) == 3 * 9  # three readings of 9 values; the replays added none
    power = {(r.value, r.unit) for r in rows if r.measurand == "Power.Active.Import"}
    assert power == {(11_000_000.0, "W")}  # 11 kW x 10^3, multiplier applied and stored in the base unit
    assert {r.phase for r in rows if r.measurand == "Voltage"} == {"L1-N", "L2-N", "L3-N"}
    assert len([r for r in rows if r.measurand == "SoC"]) == 3
    assert [e.seq_no for e in pair.rows(models.TransactionEvent)] == [0, 1, 2]


def test_201_offline_events_out_of_order(session_factory):
    pair = StationPair(session_factory, "2.0.1")
    # Replayed after an outage, newest first.
    pair.ok("TransactionEvent", tx_event("Ended", 3, 180, energy_kwh=12.0, offline=True))
    pair.ok("TransactionEvent", tx_event("Updated", 2, 120, energy_kwh=8.0, offline=True))
    pair.ok("TransactionEvent", tx_event("Updated", 1, 60, energy_kwh=4.0, offline=True))
    pair.ok("TransactionEvent", tx_event("Started", 0, 0, energy_kwh=2.0, offline=True))
    pair.ok("TransactionEvent", tx_event("Updated", 1, 60, energy_kwh=4.0, offline=True))  # a duplicate
    (summary,) = tx_summary(session_factory)
    assert (summary["status"], summary["energy_kwh"], summary["offline_events"]) == ("completed", 10.0, 4)
    assert summary["started_at"] == datetime.fromtimestamp(T0, UTC)
    assert summary["stopped_at"] == datetime.fromtimestamp(T0 + 180, UTC)
    events = pair.rows(models.TransactionEvent)
    assert sorted(e.seq_no for e in events) == [0, 1, 2, 3] and all(e.offline for e in events)


@pytest.mark.parametrize("first", ["Updated", "Ended"])
def test_201_events_before_started(session_factory, first):
    pair = StationPair(session_factory, "2.0.1")
    pair.ok("TransactionEvent", tx_event(first, 1, 60, energy_kwh=6.0))
    pair.ok("TransactionEvent", tx_event("Started", 0, 0, energy_kwh=1.0))
    (summary,) = tx_summary(session_factory)
    assert summary["energy_kwh"] == 5.0
    assert summary["status"] == ("completed" if first == "Ended" else "active")
    assert summary["started_at"] == datetime.fromtimestamp(T0, UTC) and summary["evse_id"] == 1


def test_201_long_unit_is_stored(session_factory):
    """unitOfMeasure.unit is any string of up to 20 characters."""
    pair = StationPair(session_factory, "2.0.1")
    sample = {"value": 3.0, "measurand": "Frequency", "unitOfMeasure": {"unit": "DegreesCelsiusX12345"}}
    pair.ok("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": ts(), "sampledValue": [sample]}]})
    (row,) = pair.rows(models.MeterSample)
    assert row.unit == "DegreesCelsiusX12345"


# ---- what else stations report ---------------------------------------------------------------------------
def test_16_notifications_are_stored(session_factory):
    pair = StationPair(session_factory, "1.6")
    pair.ok("FirmwareStatusNotification", {"status": "Installed"})
    pair.ok("DiagnosticsStatusNotification", {"status": "Uploaded"})
    pair.ok("SecurityEventNotification", {"type": "SettingSystemTime", "timestamp": ts(5)})
    pair.ok("LogStatusNotification", {"status": "Uploading", "requestId": 4})
    assert pair.ok("DataTransfer", {"vendorId": "com.acme", "messageId": "x", "data": "1"}) == {
        "status": "UnknownVendorId"
    }
    assert pair.ok("DataTransfer", {"vendorId": "org.chargetwin", "messageId": "Echo", "data": "hi"}) == {
        "status": "Accepted",
        "data": "hi",
    }
    row = pair.station()
    assert (row.firmware_status, row.diagnostics_status) == ("Installed", "Uploading")
    events = pair.rows(models.StationEvent)
    assert [e.kind for e in events] == [
        "firmware_status",
        "diagnostics_status",
        "diagnostics_status",
        "data_transfer",
        "data_transfer",
    ]
    assert events[3].data["vendorId"] == "com.acme"
    # SecurityEventNotification (the 1.6 security extension) is a security event reported by the station.
    (security,) = pair.rows(models.SecurityEventRow)
    assert (security.type, security.origin, security.station_id) == ("SettingSystemTime", "station", pair.station_id)
    assert security.at == datetime.fromtimestamp(T0 + 5, UTC)


def test_201_notifications_and_report_are_stored(session_factory):
    pair = StationPair(session_factory, "2.0.1")
    pair.ok("FirmwareStatusNotification", {"status": "Installed", "requestId": 1})
    pair.ok("LogStatusNotification", {"status": "Uploaded", "requestId": 2})
    pair.ok("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": ts(1)})
    event = {
        "eventId": 1,
        "timestamp": ts(2),
        "trigger": "Delta",
        "actualValue": "true",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "Problem"},
    }
    pair.ok("NotifyEvent", {"generatedAt": ts(2), "seqNo": 0, "eventData": [event]})
    report = {
        "requestId": 7,
        "generatedAt": ts(3),
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "ChargingStation"},
                "variable": {"name": "Model"},
                "variableAttribute": [{"value": "M1", "mutability": "ReadOnly"}],
            },
            {
                "component": {"name": "EVSE", "evse": {"id": 2}},
                "variable": {"name": "Power"},
                "variableAttribute": [{"type": "Actual", "value": "22000"}, {"type": "MaxSet", "value": "11000"}],
            },
        ],
    }
    pair.ok("NotifyReport", report)
    pair.ok("NotifyReport", {**report, "reportData": report["reportData"][:1]})  # the same values again
    assert pair.ok("DataTransfer", {"vendorId": "com.acme"}) == {"status": "UnknownVendorId"}
    variables = {
        (v.component, v.evse_id, v.variable, v.attribute): (v.value, v.readonly)
        for v in pair.rows(models.StationVariable)
    }
    assert variables == {
        ("ChargingStation", 0, "Model", "Actual"): ("M1", True),
        ("EVSE", 2, "Power", "Actual"): ("22000", False),
        ("EVSE", 2, "Power", "MaxSet"): ("11000", False),
    }
    row = pair.station()
    assert (row.firmware_status, row.diagnostics_status) == ("Installed", "Uploaded")
    kinds = [e.kind for e in pair.rows(models.StationEvent)]
    (security,) = pair.rows(models.SecurityEventRow)
    assert (security.type, security.origin) == ("StartupOfTheDevice", "station")
    assert kinds == [
        "firmware_status",
        "diagnostics_status",
        "device_event",
        "report",
        "report",
        "data_transfer",
    ]


# ---- commit discipline -----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_failed_commit_answers_internal_error(session_factory, version):
    pair = StationPair(session_factory, version)
    pair.processor = BatchProcessor(failing_commits(session_factory), pair.config)
    pair.session.receive_frame(call_frame("h1", "Heartbeat", {}), pair.now)
    pair.session.receive_frame(call_frame("s1", "StatusNotification", status_payload(version)), pair.now)
    pair.commit()
    errors = [only_error([f]) for f in pair.drain()]
    assert [(e.unique_id, e.code) for e in errors] == [("h1", "InternalError"), ("s1", "InternalError")]
    assert pair.count(models.StatusChange) == 0 and pair.count(models.MessageLogEntry) == 0
    assert pair.station().last_seen_at is None


def test_service_failure_answers_only_that_call(sqlite_factory, monkeypatch):
    pair = StationPair(sqlite_factory, "1.6")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    # (the status service: every report marks the station seen, so breaking `seen` would fail both calls)
    monkeypatch.setattr("csms.services.stations.status", broken)
    pair.session.receive_frame(call_frame("s1", "StatusNotification", status_payload("1.6")), pair.now)
    pair.session.receive_frame(call_frame("h1", "Heartbeat", {}), pair.now)
    pair.commit()
    status, heartbeat = (framing.decode(f) for f in pair.drain())
    assert isinstance(status, CallError) and status.code == "InternalError"
    assert isinstance(heartbeat, CallResult) and heartbeat.unique_id == "h1"
    assert pair.count(models.StatusChange) == 0
    with pair.session_factory() as db:
        station = db.get(models.Station, pair.station_id)
        assert station is not None and station.last_seen_at is not None  # the Heartbeat's write was kept


def test_message_log_rows_for_both_directions(sqlite_factory):
    pair = StationPair(sqlite_factory, "1.6")
    pair.ok("Heartbeat", {})
    pair.send("garbage")
    pair.session.send_call("ClearCache", {}, pair.now)
    pair.advance_to(pair.now)
    rows = pair.rows(models.MessageLogEntry)
    assert [(r.direction, r.action) for r in rows] == [
        ("in", "Heartbeat"),
        ("out", "Heartbeat"),
        ("in", None),
        ("out", "ClearCache"),
    ]
    assert rows[2].frame == "garbage"
