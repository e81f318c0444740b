"""The connection benchmarks at a size the default run affords: ``loadtests/conns.py`` holds 300 stations on
one ``csms serve`` and ``loadtests/storm.py`` restarts the CSMS under 100 (SIGTERM, then SIGKILL). They
assert what the full runs report (50,000 connections, a 10,000-station storm; see docs/performance.md):
every station booted and held, no refused handshake, every station booted again after each restart, and
nothing the CSMS acknowledged missing from the database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import conns
import storm

pytestmark = pytest.mark.timeout(240)


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
