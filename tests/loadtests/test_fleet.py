"""The connection benchmarks at a size the default run affords: ``loadtests/conns.py`` holds 300 stations on
one ``csms serve`` and 400 on two nodes of a cluster (PostgreSQL and Redis), and ``loadtests/storm.py``
restarts the CSMS under 100 (SIGTERM, then SIGKILL). They assert what the full runs report (50,000
connections, a 10,000-station storm; see docs/performance.md): every station booted and held, no refused
handshake, every station booted again after each restart, and nothing the CSMS acknowledged missing from the
database."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_url
from tests.support.cluster import cluster_redis_url, require_redis

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import conns
import storm

pytestmark = pytest.mark.timeout(240)

REDIS_URL = cluster_redis_url(12)  # this module's own database


def test_300_connections_held_with_every_action_timed(tmp_path, capsys):
    args = conns.parser().parse_args(["--stations", "300", "--hold", "8", "--rate", "150", "--progress", "60"])
    summary = conns.run(args, tmp_path)
    print(conns.report(summary))

    assert summary["booted_after_ramp"] == 300 and summary["held_at_end"] == 300 and summary["csms_alive"]
    assert summary["errors"] == {} and summary["refused_handshakes"] == 0 and summary["unanswered_calls"] == 0
    assert summary["ramp"]["BootNotification"]["count"] == 300
    assert summary["p99_ms"] > 0 and summary["kb_per_connection"] > 0
    out = capsys.readouterr().out
    assert "kB per connection" in out and "| ramp | BootNotification | 300 |" in out


def test_storm_of_100_after_sigterm_and_sigkill_loses_nothing_acknowledged(tmp_path, capsys):
    args = storm.parser().parse_args(
        ["--stations", "100", "--rate", "100", "--settle", "4", "--meter", "2", "--charging", "0.5",
         "--backoff-min", "1", "--backoff-range", "2", "--backoff-repeat", "2", "--timeout", "60"]
    )  # fmt: skip
    summary = storm.run(args, tmp_path)
    print(storm.report(summary))

    assert [s["signal"] for s in summary["storms"]] == ["SIGTERM", "SIGKILL"]
    for s in summary["storms"]:
        assert s["booted_again"] == 100 and s["all_booted_after_signal_s"] is not None, s
        assert s["refused_handshakes"] == 0, s["errors"]
        assert s["latency"]["BootNotification"]["count"] >= 100
        # Reconnects spread over the back-off: refused while the CSMS was down, retried, all back.
        assert s["errors"].get("TCP connection refused (nothing listening)", 0) > 0
    checked = summary["acknowledged_checked"]
    assert checked.get("StartTransaction", 0) > 0 and checked.get("MeterValues", 0) > 0
    assert checked.get("TransactionEvent", 0) > 0
    assert not any(summary["acknowledged_missing"].values()), summary["missing_examples"]
    assert "missing 0" in capsys.readouterr().out


@pytest.mark.postgres
def test_two_cluster_nodes_share_the_fleet_and_report_each(tmp_path, capsys):
    """``--nodes``: the way past one process's descriptor limit, at a size the suite affords."""
    require_redis()
    database = fresh_postgres_url()
    url = next(database)
    try:
        args = conns.parser().parse_args(
            ["--stations", "400", "--hold", "8", "--rate", "200", "--progress", "60", "--nodes", "2",
             "--database-url", url, "--broker", REDIS_URL]
        )  # fmt: skip
        summary = conns.run(args, tmp_path)
    finally:
        with contextlib.suppress(StopIteration):
            next(database)
    print(conns.report(summary))

    assert summary["held_at_end"] == 400 and summary["csms_alive"] and summary["database"] == "postgresql"
    assert summary["errors"] == {} and summary["unanswered_calls"] == 0
    assert [(n["stations"], n["held_at_end"]) for n in summary["nodes"]] == [(200, 200), (200, 200)]
    for node in summary["nodes"]:
        assert node["ramp"]["BootNotification"]["count"] == 200 and node["errors"] == {}
        assert node["kb_per_connection"] > 0 and node["p99_ms"] > 0
    assert "| 1 | ramp | BootNotification | 200 |" in capsys.readouterr().out
