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


def test_twin_memory_benchmark_measures_locust_chargers(load):
    # The Locust setting at a tiny size (the virtual-time one runs the embedded CSMS under tracemalloc: minutes).
    result = load("bench_twin_memory").measure("locust", 2)
    assert result["transactions"] == 2
    assert 0 < result["idle"]["twin"] < result["charging"]["twin"]
