"""Running transactions served from memory: what is stored must not depend on whether the cache knew it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from csms.ocpp import framing
from csms.ocpp.framing import CallError, CallResult
from csms.store import models
from tests.csms.helpers import StationPair, call_frame, failing_commits, ts


def event(kind: str, seq: int, wh: float, at: float) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": ts(at),
        "triggerReason": "MeterValuePeriodic" if kind == "Updated" else "CablePluggedIn",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "T1"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": ts(at),
                "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    }


def transaction_row(pair: StationPair) -> models.Transaction:
    with pair.session_factory() as db:
        row = db.scalars(select(models.Transaction).where(models.Transaction.charger_tx_id == "T1")).one()
        db.expunge(row)
        return row


def seq_nos(pair: StationPair) -> list[int]:
    with pair.session_factory() as db:
        return sorted(db.scalars(select(models.TransactionEvent.seq_no)))


def test_updates_in_one_batch_and_across_batches_are_recorded_once_each(session_factory):
    pair = StationPair(session_factory, "2.0.1")
    pair.ok("TransactionEvent", event("Started", 0, 1000, 0))
    pair.ok("TransactionEvent", event("Updated", 1, 1500, 60))  # the cache learns the transaction here
    for unique_id, seq, wh, at in (("a", 2, 2000, 120), ("b", 2, 2000, 120), ("c", 3, 2600, 180)):
        pair.session.receive_frame(call_frame(unique_id, "TransactionEvent", event("Updated", seq, wh, at)), pair.now)
    pair.commit()
    assert [type(framing.decode(f)) for f in pair.drain()] == [CallResult, CallResult, CallResult]
    pair.ok("TransactionEvent", event("Updated", 1, 1500, 60))  # a replay of a recorded event
    assert seq_nos(pair) == [0, 1, 2, 3]
    row = transaction_row(pair)
    assert (row.meter_start_wh, row.last_meter_wh, row.last_seq_no) == (1000, 2600, 3)
    assert pair.count(models.MeterSample) == 4  # the replays' samples are not stored twice


def test_an_update_whose_commit_failed_is_recorded_when_the_station_sends_it_again(session_factory):
    pair = StationPair(session_factory, "2.0.1")
    pair.ok("TransactionEvent", event("Started", 0, 1000, 0))
    pair.ok("TransactionEvent", event("Updated", 1, 1500, 60))
    healthy = pair.processor.session_factory
    pair.processor.session_factory = failing_commits(healthy)
    answer = pair.call("TransactionEvent", event("Updated", 2, 2000, 120))
    assert isinstance(answer, CallError) and answer.code == "InternalError"
    pair.processor.session_factory = healthy
    pair.ok("TransactionEvent", event("Updated", 2, 2000, 120))  # not mistaken for a duplicate
    assert seq_nos(pair) == [0, 1, 2]
    assert transaction_row(pair).last_meter_wh == 2000


def test_meter_values_for_another_stations_transaction_do_not_move_it(session_factory):
    owner = StationPair(session_factory, "1.6", station_id="owner")
    start = {"connectorId": 1, "idTag": "ANY", "meterStart": 1000, "timestamp": ts(0)}
    tx_id = int(owner.ok("StartTransaction", start)["transactionId"])
    other = StationPair(session_factory, "1.6", station_id="other")
    other.processor = owner.processor  # one process serves both: the cache is shared
    for pair, wh, at in ((owner, "1500", 30), (other, "5555", 60), (owner, "9999", 45)):
        meter = {"timestamp": ts(at), "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}
        pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [meter]})
    with session_factory() as db:
        row = db.get(models.Transaction, tx_id)
        assert row is not None and row.last_meter_wh == 9999 and row.last_meter_at is not None
        samples = {(s.station_id, s.transaction_id) for s in db.scalars(select(models.MeterSample))}
    assert samples == {("other", None), ("owner", tx_id)}
