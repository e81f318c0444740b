"""A station that replays meter values (its answer was lost in a crash, or it resends its offline backlog)
stores each reading once: one sample row per station, EVSE, time, measurand, phase, location and context.
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from csms.core.processor import BatchProcessor
from csms.ocpp.framing import CallResult
from csms.store import migrate, models
from csms.store.database import make_engine
from tests.csms.helpers import StationPair, call_frame, ts
from tests.csms.test_group_commit import register, run_batch, started


def meter_values(tx_id: int, *readings: dict[str, Any]) -> dict[str, Any]:
    return {"connectorId": 1, "transactionId": tx_id, "meterValue": list(readings)}


def test_replayed_meter_values_store_each_sample_once(session_factory):
    pair = StationPair(session_factory, "1.6")
    tx_id = started(pair)
    backlog = meter_values(tx_id, register(60, 2000), register(120, 3000))
    pair.ok("MeterValues", backlog)
    pair.ok("MeterValues", backlog)  # the answer was lost: the station sends it again
    pair.ok("MeterValues", meter_values(tx_id, register(120, 3000), register(180, 4000)))  # overlapping backlog
    samples = pair.rows(models.MeterSample, transaction_id=tx_id)
    assert len(samples) == 6  # three readings, an energy register and an L1 current each
    assert sorted({s.value for s in samples if s.measurand.startswith("Energy")}) == [2000, 3000, 4000]


def test_a_replay_within_one_batch_is_stored_once(session_factory):
    pair = StationPair(session_factory, "1.6")
    tx_id = started(pair)
    processor = BatchProcessor(session_factory, pair.config)
    frame = meter_values(tx_id, register(60, 2000))
    (answers,) = run_batch(
        processor,
        [pair],
        [(pair, call_frame("a", "MeterValues", frame)), (pair, call_frame("b", "MeterValues", frame))],
    )
    assert [type(a) for a in answers] == [CallResult, CallResult]
    assert len(pair.rows(models.MeterSample, transaction_id=tx_id)) == 2


def test_the_same_reading_from_two_stations_or_two_phases_is_kept(session_factory):
    a, b = (StationPair(session_factory, "1.6", station_id=name) for name in ("cs-a", "cs-b"))
    for pair in (a, b):
        pair.ok("MeterValues", {"connectorId": 1, "meterValue": [register(60, 2000)]})
    by_phase = {
        "timestamp": ts(60),
        "sampledValue": [
            {"value": "16", "measurand": "Current.Import", "unit": "A", "phase": phase} for phase in ("L2", "L3")
        ],
    }
    a.ok("MeterValues", {"connectorId": 1, "meterValue": [by_phase]})
    assert len(a.rows(models.MeterSample, station_id="cs-a")) == 4
    assert len(b.rows(models.MeterSample, station_id="cs-b")) == 2


def test_the_migration_keeps_the_first_row_of_each_reading(database_url):
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "1595859c4884")  # before samples were one row per reading
        insert = text(
            "INSERT INTO meter_samples (station_id, evse_id, timestamp, measurand, phase, unit, value)"
            " VALUES ('cs1', 1, :at, 'Energy.Active.Import.Register', :phase, 'Wh', :value)"
        )
        at = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
        with engine.begin() as db:
            # a reading, its replay, one with another value at the same time, and another phase's
            for phase, value in ((None, 1000), (None, 1000), (None, 1001), ("L1", 5)):
                db.execute(insert, {"at": at, "phase": phase, "value": value})
        migrate.upgrade(engine)
        with engine.connect() as db:
            kept = db.execute(text("SELECT phase, value FROM meter_samples ORDER BY id")).all()
        assert [tuple(r) for r in kept] == [(None, 1000.0), ("L1", 5.0)]
    finally:
        engine.dispose()
