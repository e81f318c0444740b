"""The benchmark scripts stay runnable: each runs once at a tiny size (they measure, they do not gate)."""

from __future__ import annotations

import importlib
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


def test_twin_benchmark_runs_a_scaled_depot(load, capsys):
    assert load("bench_twin").main(["--chargers", "4", "--hours", "1"]) == 0
    out = capsys.readouterr().out
    assert "charger-seconds per wall s" in out and "0 lost, 0 duplicated" in out


def test_acnsim_benchmark_runs_the_twin_on_replayed_sessions(load, capsys, tmp_path):
    data = Path(__file__).parent / "simulator" / "data"
    (tmp_path / "sessions.csv").write_text("stationID,connectionTime,disconnectTime,kWhDelivered\nsp-2,600,4200,3\n")
    text = (data / "replay-small.yaml").read_text().replace("replay-small.csv", "sessions.csv")
    (tmp_path / "replay.yaml").write_text(text)
    assert load("bench_acnsim").main(["--scenario", str(tmp_path / "replay.yaml")]) == 0
    out = capsys.readouterr().out
    assert "chargetwin (sim run, virtual time)" in out and "twin checks passed" in out
    assert "0 lost, 0 duplicated" in out
