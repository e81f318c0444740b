"""Bulk writes store exactly what SQLAlchemy's own executemany stores: the same text for a timestamp on
SQLite (SQL compares them as text), the same values on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import bindparam, insert, select, text

from csms.services.uow import _INSERT_SAMPLES
from csms.store.bulk import Bulk
from csms.store.models import MeterSample
from tests.csms.test_uow import voltage_sample

SAMPLES = MeterSample.__table__


def rows(station_id: str) -> list[dict]:
    at = datetime(2026, 1, 15, 22, 0, 0, 123456, tzinfo=UTC)
    times = (at, at.astimezone(timezone(timedelta(hours=2))), at.replace(microsecond=0))
    # One line each: the first two are the same instant, and one reading per line and instant is stored.
    return [
        {**voltage_sample(station_id, when), "phase": line}
        for when, line in zip(times, ("L1", "L2", "L3"), strict=True)
    ]


def test_bulk_rows_are_stored_as_sqlalchemy_stores_them(session_factory):
    engine = session_factory.kw["bind"]
    with engine.begin() as connection:
        Bulk(insert(SAMPLES)).execute(connection, rows("bulk"))
        connection.execute(insert(SAMPLES), rows("core"))
    with engine.connect() as connection:
        stored = {
            station: [
                tuple(r)
                for r in connection.execute(
                    select(SAMPLES.c.timestamp, SAMPLES.c.value)
                    .where(SAMPLES.c.station_id == station)
                    .order_by(SAMPLES.c.id)
                )
            ]
            for station in ("bulk", "core")
        }
        assert stored["bulk"] == stored["core"]
        assert stored["bulk"][0][0] == stored["bulk"][1][0]  # an offset is converted to UTC
        if engine.dialect.name == "sqlite":
            raw = {
                station: list(
                    connection.execute(
                        text("SELECT timestamp FROM meter_samples WHERE station_id = :s ORDER BY id"), {"s": station}
                    ).scalars()
                )
                for station in ("bulk", "core")
            }
            at = 1_768_514_400_000_000  # 2026-01-15 22:00 UTC in microseconds (models.UtcMicroseconds)
            assert raw["bulk"] == raw["core"] == [at + 123_456] * 2 + [at]


def test_many_rows_with_replays_are_stored_as_sqlalchemy_stores_them(session_factory):
    """Enough rows for several statements (PostgreSQL sends multi-row INSERTs of 256, 64, 8… rows), with unset
    columns and replayed readings (ON CONFLICT DO NOTHING, within one statement and across two)."""
    engine = session_factory.kw["bind"]
    statement = _INSERT_SAMPLES[engine.dialect.name].statement
    start = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)

    def readings(station_id: str) -> list[dict]:
        out = []
        for n in range(110):
            at = start + timedelta(seconds=n)
            out += [
                {**voltage_sample(station_id, at), "phase": phase, "value": 230.0 + n} for phase in (None, "L1", "L2")
            ]
        return out + out[5:40] + [{**out[0], "value": -1.0}]  # replays: stored once, the first value kept

    rows_by_station = {"bulk": readings("bulk"), "core": readings("core")}
    assert len(rows_by_station["bulk"]) == 366
    with engine.begin() as connection:
        Bulk(statement).execute(connection, rows_by_station["bulk"])
        for row in rows_by_station["core"]:  # one at a time: what the multi-row statements must amount to
            connection.execute(statement, row)
    with engine.connect() as connection:
        stored = {
            station: [
                tuple(r)
                for r in connection.execute(
                    select(SAMPLES.c.timestamp, SAMPLES.c.phase, SAMPLES.c.value)
                    .where(SAMPLES.c.station_id == station)
                    .order_by(SAMPLES.c.id)
                )
            ]
            for station in ("bulk", "core")
        }
    assert len(stored["bulk"]) == 330
    assert stored["bulk"] == stored["core"]
    assert stored["bulk"][0][2] == 230.0


def test_rows_one_at_a_time_are_stored_as_sqlalchemy_stores_them(session_factory):
    """A commit of one frame (virtual time) sends a row or a few per statement: converted row by row, a UTC
    timestamp's text kept from one statement to the next — the same instant in another zone is the same text,
    another instant is not taken for it."""
    engine = session_factory.kw["bind"]
    bulk = Bulk(insert(SAMPLES))
    with engine.begin() as connection:
        for row in rows("bulk") + rows("bulk2"):
            bulk.execute(connection, [row])
            connection.execute(insert(SAMPLES), {**row, "station_id": "core" + row["station_id"][4:]})
    with engine.connect() as connection:
        stored = {
            station: [
                tuple(r)
                for r in connection.execute(
                    select(SAMPLES.c.timestamp, SAMPLES.c.phase)
                    .where(SAMPLES.c.station_id == station)
                    .order_by(SAMPLES.c.id)
                )
            ]
            for station in ("bulk", "core", "bulk2", "core2")
        }
    assert stored["bulk"] == stored["core"] and stored["bulk2"] == stored["core2"]
    assert len(stored["bulk"]) == 3
    assert stored["bulk"][0][0] == stored["bulk"][1][0] != stored["bulk"][2][0]


def test_a_select_reads_what_sqlalchemy_reads(session_factory):
    """``fetch_one``/``fetch_all`` of a SELECT: its own binds (``LIMIT``) filled in, a bind used twice, the values
    processed as SQLAlchemy's result processes them (a UTC timestamp read back aware)."""
    engine = session_factory.kw["bind"]
    with engine.begin() as connection:
        connection.execute(insert(SAMPLES), rows("read"))
    station = bindparam("station")
    query = (
        select(SAMPLES.c.timestamp, SAMPLES.c.phase, SAMPLES.c.value)
        .where(SAMPLES.c.station_id == station, SAMPLES.c.measurand != station)
        .order_by(SAMPLES.c.phase)
    )
    with engine.connect() as connection:
        expected = [tuple(r) for r in connection.execute(query, {"station": "read"})]
        assert Bulk(query).fetch_all(connection, {"station": "read"}) == expected
        assert Bulk(query.limit(1)).fetch_one(connection, {"station": "read"}) == expected[0]
        assert Bulk(query).fetch_one(connection, {"station": "nobody"}) is None
    assert expected[0][0].tzinfo is not None and len(expected) == 3
