"""Usage reports on a small, hand-computed history: a depot site with two ports, a station on no site, three
drivers in two groups, a session across local midnight and one still running, in Europe/Amsterdam. The same
figures through the service, the API (JSON, CSV, JSON Lines, Parquet read back with pyarrow, PNG) and the CLI."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from csms.services import sites, stations, usage_reports
from csms.store.models import Connector, IdToken, Transaction
from tests.support.api import api_client

AMS = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 11, 2, tzinfo=AMS)  # a Monday
END = datetime(2026, 11, 4, tzinfo=AMS)


def local(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=AMS).astimezone(UTC)


@pytest.fixture
def history(session_factory, now):
    with session_factory() as db:
        for station_id in ("cpA", "cpB", "cpC"):
            stations.provision(db, station_id, ocpp_version="1.6", password=None, now=now)
            db.add(Connector(station_id=station_id, evse_id=1, connector_id=1, status="Available", status_at=now))
        wiring = [{"station_id": s, "evse_id": 1, "node": "grid"} for s in ("cpA", "cpB")]
        sites.create(db, "depot", now=now, nodes=[{"id": "grid", "limit_kw": 50}], evses=wiring)
        for token, group in (("T1", "residents"), ("T2", "guests"), ("T3", None)):
            db.add(IdToken(id_token=token, group_id=group, created_at=now, updated_at=now))
        db.add_all(
            [
                Transaction(station_id="cpA", charger_tx_id="1", evse_id=1, connector_id=1, id_token="T1",
                            started_at=local(2, 8), stopped_at=local(2, 10), meter_start_wh=0.0,
                            meter_stop_wh=10_000.0, status="completed"),
                # across local midnight; its stop value was lost, its newest reading says 20 kWh
                Transaction(station_id="cpB", charger_tx_id="2", evse_id=1, connector_id=1, id_token="T2",
                            started_at=local(2, 22), stopped_at=local(3, 2), meter_start_wh=5_000.0,
                            last_meter_wh=25_000.0, status="completed"),
                # still running when the period ends
                Transaction(station_id="cpC", charger_tx_id="3", evse_id=1, connector_id=1, id_token="T3",
                            started_at=local(3, 12), meter_start_wh=1_000.0, last_meter_wh=4_000.0, status="active"),
                Transaction(station_id="cpA", charger_tx_id="4", evse_id=1, connector_id=1, id_token="T1",
                            started_at=local(5, 8), stopped_at=local(5, 9), meter_start_wh=0.0,
                            meter_stop_wh=1_000.0, status="completed"),
            ]
        )  # fmt: skip
        db.commit()
    return session_factory


def figures(rows, by):
    return {r[by]: (r["sessions"], r["energy_kwh"], r["occupied_hours"], r["utilisation_pct"]) for r in rows}


def test_usage_per_station_site_group_and_local_day(history):
    with history() as db:
        assert figures(usage_reports.usage(db, START, END, "station"), "station") == {
            "cpA": (1, 10.0, 2.0, round(100 * 2 / 48, 2)),
            "cpB": (1, 20.0, 4.0, round(100 * 4 / 48, 2)),
            "cpC": (1, 3.0, 12.0, 25.0),  # running: occupied until the period's end
        }
        assert figures(usage_reports.usage(db, START, END, "site"), "site") == {
            "depot": (2, 30.0, 6.0, 6.25),
            "(none)": (1, 3.0, 12.0, 25.0),
        }
        by_group = figures(usage_reports.usage(db, START, END, "group"), "group")
        assert by_group == {
            "residents": (1, 10.0, 2.0, None),
            "guests": (1, 20.0, 4.0, None),
            "(none)": (1, 3.0, 12.0, None),
        }
        # A session counts on the day it started; its occupancy is split at local midnight (2 h on each day).
        by_day = figures(usage_reports.usage(db, START, END, "day", tz=AMS), "day")
        assert by_day == {
            "2026-11-02": (2, 30.0, 4.0, round(100 * 4 / 72, 2)),
            "2026-11-03": (1, 3.0, 14.0, round(100 * 14 / 72, 2)),
        }
        by_month = figures(usage_reports.usage(db, START, END, "month", tz=AMS), "month")
        assert by_month == {"2026-11": (3, 33.0, 18.0, 12.5)}


def test_occupancy_by_weekday_and_local_hour(history):
    with history() as db:
        matrix = usage_reports.occupancy_by_hour(db, START, END, tz=AMS)
    assert matrix[0][8] == matrix[0][9] == round(1 / 3, 4)  # Monday 08-10: one port of three
    assert matrix[0][7] == 0.0 and matrix[0][22] == matrix[0][23] == round(1 / 3, 4)
    assert matrix[1][0] == matrix[1][1] == round(1 / 3, 4) and matrix[1][2] == 0.0  # Tuesday until 02:00
    assert matrix[1][12] == round(1 / 3, 4) and matrix[1][23] == round(1 / 3, 4)
    assert sum(map(sum, matrix[2:])) == 0.0  # the period holds no other weekday


def test_a_session_across_a_dst_change_is_split_at_local_midnight(history):
    with history() as db:
        evening, morning = datetime(2026, 10, 24, 22, tzinfo=AMS), datetime(2026, 10, 25, 4, tzinfo=AMS)
        db.add(Transaction(station_id="cpB", charger_tx_id="dst", evse_id=1, connector_id=1, id_token="T2",
                           started_at=evening, stopped_at=morning, meter_start_wh=0.0, meter_stop_wh=7_000.0,
                           status="completed"))  # fmt: skip
        db.commit()
        days = figures(
            usage_reports.usage(
                db, datetime(2026, 10, 24, tzinfo=AMS), datetime(2026, 10, 26, tzinfo=AMS), "day", tz=AMS
            ),
            "day",
        )
    # 22:00 to 04:00 local on the night the clocks go back: 2 h on the 24th, 5 h on the 25-hour 25th.
    assert days["2026-10-24"][2] == 2.0 and days["2026-10-25"][2] == 5.0
    assert days["2026-10-25"][3] == round(100 * 5 / (3 * 25), 2)


@pytest.fixture
async def client(history, gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(history, gateway) as c:
        yield c


PERIOD = {"start": START.isoformat(), "end": END.isoformat()}


async def test_the_api_gives_usage_as_json_csv_and_parquet(client, tmp_path):
    response = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "site"})
    assert response.status_code == 200, response.text
    assert {r["key"]: r["energy_kwh"] for r in response.json()} == {"depot": 30.0, "(none)": 3.0}
    response = await client.get(
        "/api/v1/reports/usage", params={**PERIOD, "by": "day", "tz": "Europe/Amsterdam", "format": "csv"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["day"], r["sessions"], r["occupied_hours"]) for r in rows] == [
        ("2026-11-02", "2", "4.0"),
        ("2026-11-03", "1", "14.0"),
    ]
    response = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "station", "format": "parquet"})
    (tmp_path / "u.parquet").write_bytes(response.content)
    table = pq.read_table(tmp_path / "u.parquet").to_pylist()
    assert {r["station"]: r["energy_kwh"] for r in table} == {"cpA": 10.0, "cpB": 20.0, "cpC": 3.0}


async def test_the_session_export_streams_in_every_format(client, tmp_path):
    response = await client.get("/api/v1/reports/sessions", params=PERIOD)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["station_id"], r["site_id"], r["group_id"], r["energy_wh"]) for r in rows] == [
        ("cpA", "depot", "residents", "10000.0"),
        ("cpB", "depot", "guests", "20000.0"),
        ("cpC", "", "", "3000.0"),
    ]
    response = await client.get("/api/v1/reports/sessions", params={**PERIOD, "format": "jsonl", "site_id": "depot"})
    assert [line.count('"depot"') for line in response.text.splitlines()] == [1, 1]
    response = await client.get("/api/v1/reports/sessions", params={**PERIOD, "format": "parquet"})
    (tmp_path / "s.parquet").write_bytes(response.content)
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.num_rows == 3 and str(table.schema.field("started_at").type).startswith("timestamp")
    assert table.column("stopped_at").to_pylist()[2] is None


async def test_report_pictures_are_pngs(client):
    for name in ("energy-per-day", "utilisation-heatmap"):
        response = await client.get(f"/api/v1/reports/plots/{name}.png", params={**PERIOD, "tz": "Europe/Amsterdam"})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n" and len(response.content) > 5_000


async def test_bad_report_requests_are_4xx_with_a_reason(client):
    response = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "site", "tz": "Mars/Olympus"})
    assert response.status_code == 422 and "Mars/Olympus" in response.text
    response = await client.get(
        "/api/v1/reports/usage", params={"start": END.isoformat(), "end": START.isoformat(), "by": "site"}
    )
    assert response.status_code == 422 and "end" in response.text
    response = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "planet"})
    assert response.status_code == 422


def test_the_cli_writes_the_same_reports(history, database_url, tmp_path, capsys):
    from csms.cli import main

    period = ["--from", START.isoformat(), "--to", END.isoformat(), "--database-url", database_url]
    assert main(["reports", "usage", "--by", "station", "--format", "csv", *period]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["station"], r["energy_kwh"]) for r in rows] == [("cpA", "10.0"), ("cpB", "20.0"), ("cpC", "3.0")]
    assert main(["reports", "sessions", "--format", "parquet", "--out", str(tmp_path / "s.parquet"), *period]) == 0
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 3
    assert (
        main(["reports", "plot", "utilisation", "--tz", "Europe/Amsterdam", "--out", str(tmp_path / "h.png"), *period])
        == 0
    )
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["reports", "sessions", "--format", "parquet", *period]) == 2  # binary needs --out


def test_the_session_export_holds_one_batch_not_the_whole_history(sqlite_url):
    """40,000 sessions exported as CSV: Python's peak allocation while streaming, 2,000 rows at a time, is a
    small fraction of what reading the whole history at once takes (the history is never held)."""
    import tracemalloc

    from csms.reports import formats
    from csms.store.database import make_engine, make_session_factory
    from csms.store.migrate import upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with factory() as db:
        stations.provision(db, "cpX", ocpp_version="1.6", password=None, now=t0)
        db.commit()
        db.execute(
            Transaction.__table__.insert(),
            [
                {"station_id": "cpX", "charger_tx_id": str(i), "evse_id": 1, "connector_id": 1, "id_token": "T1",
                 "started_at": datetime.fromtimestamp(t0.timestamp() + 600 * i, UTC), "meter_start_wh": 0.0,
                 "meter_stop_wh": 7_500.0, "status": "completed", "offline_events": 0, "meter_start_explicit": True}
                for i in range(40_000)
            ],
        )  # fmt: skip
        db.commit()

    def export_peak(batch: int) -> tuple[int, int]:
        with factory() as db:
            sessions = usage_reports.sessions(db, t0, t0.replace(year=2027), batch=batch)
            rows = ({c: getattr(r, c) for c in usage_reports.SESSION_COLUMNS} for r in sessions)
            tracemalloc.start()
            lines = sum(1 for _ in formats.csv_lines(rows, usage_reports.SESSION_COLUMNS))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return lines, peak

    streamed, whole = export_peak(2_000), export_peak(40_000)
    engine.dispose()
    assert streamed[0] == whole[0] == 40_001
    assert streamed[1] < whole[1] / 4, (streamed, whole)


def priced(session_factory, charger_tx_id: str, excl: str, incl: str, currency: str = "EUR") -> None:
    """The CDR the CSMS would have stored for that session (only its totals matter to the reports)."""
    from csms.store.models import Cdr

    with session_factory() as db:
        tx = db.scalar(select(Transaction).where(Transaction.charger_tx_id == charger_tx_id))
        assert tx is not None
        at = tx.stopped_at or tx.started_at
        db.add(Cdr(id=f"CDR-{tx.id}", transaction_id=tx.id, tariff_id="STANDARD", tariff_version=1, currency=currency,
                   total_energy="0", total_time="0", total_parking_time="0", total_cost_excl_vat=excl,
                   total_cost_incl_vat=incl, review_reasons=[], body={}, created_at=at, updated_at=at))  # fmt: skip
        db.commit()


async def test_revenue_comes_from_the_cdrs_per_key_and_day(history, gateway, tmp_path):
    priced(history, "1", "3.00", "3.63")
    priced(history, "2", "6.10", "7.38")
    with history() as db:
        by_group = {r["group"]: r for r in usage_reports.usage(db, START, END, "group")}
        assert by_group["residents"]["revenue_incl_vat"] == Decimal("3.63")
        assert by_group["guests"]["revenue_excl_vat"] == Decimal("6.10") and by_group["guests"]["currency"] == "EUR"
        assert by_group["(none)"]["revenue_incl_vat"] == 0  # the running session has no CDR yet
    async with api_client(history, gateway) as client:
        days = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "day", "tz": "Europe/Amsterdam"})
        assert [(r["key"], r["currency"], r["revenue_incl_vat"]) for r in days.json()] == [
            ("2026-11-02", "EUR", "11.01"),  # both sessions started on the 2nd
            ("2026-11-03", "EUR", "0"),
        ]
        csv_text = (await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "site", "format": "csv"})).text
        assert {r["site"]: r["revenue_excl_vat"] for r in csv.DictReader(io.StringIO(csv_text))}["depot"] == "9.10"
        picture = await client.get("/api/v1/reports/plots/revenue-per-day.png", params=PERIOD)
        assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"

        priced(history, "3", "1.00", "1.00", currency="USD")
        mixed = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "site"})
        assert mixed.status_code == 422 and "EUR, USD" in mixed.text
        dollars = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "site", "currency": "USD"})
        assert {r["key"]: r["revenue_incl_vat"] for r in dollars.json()} == {"(none)": "1.00", "depot": "0"}
        unknown = await client.get("/api/v1/reports/usage", params={**PERIOD, "by": "site", "currency": "XYZ"})
        assert unknown.status_code == 422 and "XYZ" in unknown.text


def test_the_cli_reports_revenue(history, database_url, tmp_path, capsys):
    from csms.cli import main

    priced(history, "1", "3.00", "3.63")
    period = ["--from", START.isoformat(), "--to", END.isoformat(), "--database-url", database_url]
    assert main(["reports", "usage", "--by", "station", *period]) == 0
    table = capsys.readouterr().out
    assert "REVENUE_INCL_VAT" in table and "3.63" in table
    assert main(["reports", "plot", "revenue", "--out", str(tmp_path / "r.png"), *period]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
