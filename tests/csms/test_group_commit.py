"""The batch processor's write path: several stations in one transaction, no SAVEPOINT unless a call fails,
liveness and energy registers written without loading rows. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from csms.core.processor import BatchProcessor, release
from csms.ocpp import framing
from csms.ocpp.framing import CallError, CallResult
from csms.services.config import CsmsConfig
from csms.store import models
from tests.csms.helpers import T0, StationPair, call_frame, failing_commits, ts


def register(at: float, wh: float, *, extra: bool = True) -> dict[str, Any]:
    values: list[dict[str, Any]] = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    if extra:
        values.append({"value": "16.0", "measurand": "Current.Import", "unit": "A", "phase": "L1"})
    return {"timestamp": ts(at), "sampledValue": values}


def started(pair: StationPair, meter_start: float = 1000) -> int:
    start = {"connectorId": 1, "idTag": "ANY", "meterStart": meter_start, "timestamp": ts(10)}
    return int(pair.ok("StartTransaction", start)["transactionId"])


def run_batch(processor: BatchProcessor, pairs: list[StationPair], frames: list[tuple[StationPair, str]]) -> list[Any]:
    """Feed the frames, commit everything in one batch, and return each station's decoded answers."""
    for pair, frame in frames:
        pair.session.receive_frame(frame, T0)
    batch = [(pair.session, pair.session.take_work()) for pair in pairs]
    release(processor.process(batch, T0), batch)
    return [[framing.decode(f) for f in pair.drain()] for pair in pairs]


def tx_row(factory: sessionmaker[Session], tx_id: int) -> models.Transaction:
    with factory() as db:
        row = db.get(models.Transaction, tx_id)
        assert row is not None
        return row


def test_batch_of_mixed_stations_is_one_transaction_without_retry(session_factory):
    a, b, c = (StationPair(session_factory, "1.6", station_id=name) for name in ("cs-a", "cs-b", "cs-c"))
    tx_b = started(b)
    processor = BatchProcessor(session_factory, a.config)
    answers = run_batch(
        processor,
        [a, b, c],
        [
            (a, call_frame("h1", "Heartbeat", {})),
            # Readings out of order within one message: the latest is the register's end.
            (
                b,
                call_frame(
                    "m1",
                    "MeterValues",
                    {"connectorId": 1, "transactionId": tx_b, "meterValue": [register(300, 5000), register(100, 2000)]},
                ),
            ),
            # C names B's transaction: its samples are kept but not counted against B.
            (
                c,
                call_frame(
                    "m2", "MeterValues", {"connectorId": 1, "transactionId": tx_b, "meterValue": [register(400, 99000)]}
                ),
            ),
            (c, call_frame("h2", "Heartbeat", {})),
        ],
    )
    assert [[type(m).__name__ for m in station] for station in answers] == [
        ["CallResult"],
        ["CallResult"],
        ["CallResult", "CallResult"],
    ]
    assert (processor.batches, processor.calls, processor.retries) == (1, 4, 0)
    assert a.station().last_seen_at is not None and a.station().last_seen_at.timestamp() == T0
    assert c.station().last_seen_at is not None and c.station().last_seen_at.timestamp() == T0
    tx = tx_row(session_factory, tx_b)
    assert (tx.meter_start_wh, tx.last_meter_wh, tx.energy_wh) == (1000, 5000, 4000)
    assert len(b.rows(models.MeterSample, station_id="cs-b", transaction_id=tx_b)) == 4
    assert [s.transaction_id for s in c.rows(models.MeterSample, station_id="cs-c")] == [None, None]


def test_older_reading_replayed_later_does_not_move_the_register_back(session_factory):
    pair = StationPair(session_factory, "1.6")
    tx_id = started(pair)
    for at, wh in ((200, 6000), (100, 3000), (200, 6000)):  # a replay of an older and of the same reading
        pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(at, wh)]})
    tx = tx_row(session_factory, tx_id)
    assert (tx.last_meter_wh, tx.last_meter_at.timestamp()) == (6000, T0 + 200)
    assert (tx.meter_start_wh, tx.meter_start_explicit) == (1000, True)
    # Samples without an energy register are still linked to the transaction.
    power = {"timestamp": ts(300), "sampledValue": [{"value": "11000", "measurand": "Power.Active.Import"}]}
    pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [power]})
    assert len(pair.rows(models.MeterSample, transaction_id=tx_id)) == 5  # the replayed reading is stored once
    later = {**power, "timestamp": ts(310)}  # the same reading again would be a replay, stored once
    unknown = pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id + 50, "meterValue": [later]})
    assert unknown == {} and len(pair.rows(models.MeterSample, transaction_id=None)) == 1


def test_meter_values_after_the_stop_in_one_batch(session_factory):
    """The stop loads the row; a late reading in the same batch goes through that row, not around it."""
    pair = StationPair(session_factory, "1.6")
    tx_id = started(pair)
    processor = BatchProcessor(session_factory, pair.config)
    stop = {"transactionId": tx_id, "meterStop": 8000, "timestamp": ts(500), "reason": "Local"}
    late = {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(450, 7500)]}
    (answers,) = run_batch(
        processor,
        [pair],
        [(pair, call_frame("s", "StopTransaction", stop)), (pair, call_frame("m", "MeterValues", late))],
    )
    assert [type(m) for m in answers] == [CallResult, CallResult]
    tx = tx_row(session_factory, tx_id)
    assert (tx.status, tx.meter_stop_wh, tx.last_meter_wh, tx.energy_wh) == ("completed", 8000, 7500, 7000)


def test_duplicate_frames_in_one_batch_stay_idempotent(session_factory):
    pair = StationPair(session_factory, "1.6")
    processor = BatchProcessor(session_factory, pair.config)
    start = {"connectorId": 1, "idTag": "ANY", "meterStart": 1000, "timestamp": ts(10)}
    (answers,) = run_batch(
        processor,
        [pair],
        [(pair, call_frame("s1", "StartTransaction", start)), (pair, call_frame("s2", "StartTransaction", start))],
    )
    assert isinstance(answers[0], CallResult) and isinstance(answers[1], CallResult)
    assert answers[0].payload["transactionId"] == answers[1].payload["transactionId"]
    assert pair.count(models.Transaction) == 1 and processor.retries == 0


def test_a_failing_call_is_retried_isolated_and_rolls_back_only_itself(session_factory, monkeypatch):
    a, b = (
        StationPair(session_factory, "1.6", station_id="cs-a"),
        StationPair(session_factory, "1.6", station_id="cs-b"),
    )
    tx_b = started(b)
    processor = BatchProcessor(session_factory, a.config)
    real_status = __import__("csms.services.stations", fromlist=["status"]).status

    def status_then_fail(db: Session, station_id: str, *args: Any) -> None:
        real_status(db, station_id, *args)  # writes its rows, then fails: they must not stay
        raise RuntimeError("boom")

    monkeypatch.setattr("csms.services.stations.status", status_then_fail)
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": ts()}
    answers = run_batch(
        processor,
        [a, b],
        [
            (a, call_frame("h", "Heartbeat", {})),
            (a, call_frame("st", "StatusNotification", status)),
            (
                b,
                call_frame(
                    "m", "MeterValues", {"connectorId": 1, "transactionId": tx_b, "meterValue": [register(60, 3000)]}
                ),
            ),
        ],
    )
    (heartbeat, failed), (meter,) = answers
    assert isinstance(heartbeat, CallResult) and isinstance(meter, CallResult)
    assert isinstance(failed, CallError) and failed.code == "InternalError"
    assert processor.retries == 1
    assert a.count(models.StatusChange) == 0 and a.count(models.Connector) == 0
    assert a.station().last_seen_at is not None
    assert tx_row(session_factory, tx_b).last_meter_wh == 3000
    assert len(b.rows(models.MeterSample, transaction_id=tx_b)) == 2  # stored once, not once per attempt


@pytest.mark.parametrize("commit_fails", [True, False])
def test_a_trigger_is_used_up_only_when_its_batch_commits(session_factory, commit_fails):
    pair = StationPair(session_factory, "1.6", policy="pending", registration_status=None)
    trigger = {"requestedMessage": "Heartbeat"}
    pair.session.send_call("TriggerMessage", trigger, pair.now)
    pair.drain()
    pair.send(orjson.dumps([3, "csms-1", {"status": "Accepted"}]))
    if commit_fails:
        pair.processor = BatchProcessor(failing_commits(session_factory), pair.config)
        assert pair.error("Heartbeat", {}) == "InternalError"
        pair.processor = BatchProcessor(session_factory, pair.config)
    assert "currentTime" in pair.ok("Heartbeat", {})  # the charger's retry is still the triggered message
    assert pair.error("Heartbeat", {}) == "SecurityError"


def test_without_a_message_log_the_batched_writes_still_land(session_factory):
    pair = StationPair(session_factory, "1.6", config=CsmsConfig(message_log_per_station=0))
    tx_id = started(pair)
    pair.ok("Heartbeat", {})
    pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(60, 2500)]})
    assert pair.station().last_seen_at is not None
    assert len(pair.rows(models.MeterSample, transaction_id=tx_id)) == 2
    assert pair.count(models.MessageLogEntry) == 0
