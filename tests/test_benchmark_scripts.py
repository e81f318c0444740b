"""The benchmark scripts stay runnable: each runs once at a tiny size (they measure, they do not gate)."""

from __future__ import annotations

import importlib
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).parents[1] / "loadtests"


@pytest.fixture
def load(monkeypatch):
    # On sys.path (not loaded from a file spec) so a spawned child process can import the module too.
    monkeypatch.syspath_prepend(str(LOADTESTS))
    return importlib.import_module


def test_gateway_benchmark_measures_real_traffic(load):
    result = load("bench_gateway").run(stations=5, messages=5, mix="meter", database_url=None)
    assert result["messages"] == 5 * (5 + 2)
    assert result["msgs_per_s"] > 0 and result["csms_cpu_us_per_msg"] > 0


@pytest.mark.timeout(60)
def test_peer_benchmark_drives_both_csms_with_the_same_load_and_prints_the_ratio(load, capsys, tmp_path):
    argv = ["--stations", "5", "--messages", "5", "--peer", "--workdir", str(tmp_path)]
    assert load("bench_gateway").main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^messages +35 +35$", out, re.MULTILINE), out
    assert re.search(r"^CSMS CPU per message, peer / chargetwin: \d+\.\d\d$", out, re.MULTILINE), out
    # Each stored what it acknowledged: one transaction per station, 5 MeterValues × 5 sampled values each.
    for database in ("bench.db", "peer.db"):
        with closing(sqlite3.connect(tmp_path / database)) as db:
            assert db.execute("SELECT count(*) FROM transactions").fetchone() == (5,), database
            assert db.execute("SELECT count(*) FROM meter_samples").fetchone() == (5 * 5 * 5,), database


def test_twin_benchmark_runs_a_scaled_depot(load, capsys):
    assert load("bench_twin").main(["--chargers", "4", "--hours", "1"]) == 0
    out = capsys.readouterr().out
    assert "charger-seconds per wall s" in out and "0 lost, 0 duplicated" in out


def test_firmware_sample_benchmark_wakes_a_charging_charger(load, capsys):
    assert load("bench_firmware_sample").main(["--wakes", "50", "--repeat", "1"]) == 0
    assert "firmware CPU per wake" in capsys.readouterr().out


def test_acnsim_benchmark_runs_the_twin_on_replayed_sessions(load, capsys, tmp_path):
    data = Path(__file__).parent / "simulator" / "data"
    (tmp_path / "sessions.csv").write_text("stationID,connectionTime,disconnectTime,kWhDelivered\nsp-2,600,4200,3\n")
    text = (data / "replay-small.yaml").read_text().replace("replay-small.csv", "sessions.csv")
    (tmp_path / "replay.yaml").write_text(text)
    assert load("bench_acnsim").main(["--scenario", str(tmp_path / "replay.yaml")]) == 0
    out = capsys.readouterr().out
    assert "chargetwin (sim run, virtual time)" in out and "twin checks passed" in out
    assert "0 lost, 0 duplicated" in out


def test_twin_memory_benchmark_measures_locust_chargers(load):
    # The Locust setting at a tiny size (the virtual-time one runs the embedded CSMS under tracemalloc: minutes).
    result = load("bench_twin_memory").measure("locust", 2)
    assert result["transactions"] == 2
    assert 0 < result["idle"]["twin"] < result["charging"]["twin"]


def test_tariff_benchmark_prices_sessions(load):
    result = load("bench_tariffs").run(sessions=20)
    assert result["sessions"] == 20 and result["revenue_incl_vat"] > 0


def test_audit_benchmark_measures_both_modes(load):
    result = load("bench_audit").run(requests=3, database_url=None)
    assert result["requests"] == 6
    assert result["plain"]["p50_ms"] > 0 and result["audited"]["p50_ms"] > 0


def test_time_parts_times_the_named_parts_of_a_module_run(load, capsys, monkeypatch, tmp_path):
    (tmp_path / "parts_target.py").write_text("def work():\n    return sum(range(1000))\n")
    (tmp_path / "parts_main.py").write_text("import parts_target\n\nfor _ in range(3):\n    parts_target.work()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    time_parts = load("time_parts")
    at_exit: list = []
    monkeypatch.setattr(time_parts.atexit, "register", at_exit.append)
    assert time_parts.main(["--part", "parts_target:work", "-m", "parts_main"]) == 0
    assert time_parts.calls["parts_target:work"] == 3
    at_exit[0]()
    assert re.search(r"calls .* parts_target:work$", capsys.readouterr().err, re.MULTILINE)
