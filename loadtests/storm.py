"""A reconnect storm: N connected stations, ``csms serve`` restarted under them, every station back on its
own back-off — and nothing the CSMS acknowledged lost.

    uv run python loadtests/storm.py --stations 10000                  # SIGTERM, then SIGKILL
    uv run python loadtests/storm.py --stations 2000 --signals kill

Stations (a quarter on 2.0.1) are provisioned in a fresh SQLite file and connected by the asyncio fleet
(:mod:`fleet`) at ``--rate`` per second; ``--charging`` of them start a transaction and send MeterValues
every ``--meter`` s. Once all are booted and ``--settle`` s have passed, the CSMS gets each of ``--signals``
in turn (``term``: SIGTERM, a graceful stop; ``kill``: SIGKILL) and is started again at once on the same
database and port. The chargers reconnect with the back-off OCPP recommends (2.0.1 B: RetryBackOffWaitMinimum,
doubled up to RetryBackOffRepeatTimes times, plus a uniform RetryBackOffRandomRange; 1.6's
ReconnectBackOff* keys the same way) and send a BootNotification on their new connection, as most firmwares
do after a CSMS outage; their transaction messages queued while offline follow.

Reported per storm: time from the signal (and from the new CSMS listening) until every station is booted
again, p50/p99/max of BootNotification and of every other action under the storm, refused handshakes (an
HTTP answer other than 101), connections refused while nothing listened, timeouts. At the end every
acknowledged StartTransaction, MeterValues, StopTransaction and TransactionEvent (a CALLRESULT came back) is
looked up in the database: the count of missing ones must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import fleet
import harness
import provision
from sqlalchemy import select

from csms.runtime.server import raise_fd_limit
from csms.store.database import make_engine, make_session_factory
from csms.store.models import MeterSample, TransactionEvent
from csms.store.models import Transaction as TxRow

SIGNALS = {"term": signal.SIGTERM, "kill": signal.SIGKILL}


def _wait(generator: fleet.Fleet, done: Any, timeout: float, progress_s: float, label: str) -> dict[str, Any]:
    t0 = time.monotonic()
    last = t0
    snap = generator.snapshot()
    while not done(snap) and time.monotonic() - t0 < timeout and snap["workers_alive"] == generator.workers:
        time.sleep(0.25)
        snap = generator.snapshot()
        if time.monotonic() - last >= progress_s:
            last = time.monotonic()
            print(
                f"[{label} +{time.monotonic() - t0:5.0f} s] connected {snap['connected']:,}  online {snap['online']:,}"
                f"  booted this phase {snap['booted_in_phase']:,}  answered {snap['answered']:,}",
                file=sys.stderr,
                flush=True,
            )
    return snap


def _aware(value: datetime) -> str:
    """One spelling per instant, whatever the database hands back (SQLite: naive UTC)."""
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds")


def _when(text: str) -> str:
    return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))


def missing_acknowledged(database_url: str, acks: list[tuple[str, str, dict, dict]]) -> dict[str, Any]:
    """Every acknowledged transaction message looked up in the database; what is missing, by action."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            tx_ids = set(db.scalars(select(TxRow.id)))
            completed = {r.id: r.meter_stop_wh for r in db.execute(select(TxRow.id, TxRow.meter_stop_wh))}
            stored = db.execute(select(MeterSample.transaction_id, MeterSample.timestamp))
            samples = {(r[0], _aware(r[1])) for r in stored}
            events = {
                (r[0], r[1], r[2])
                for r in db.execute(
                    select(TxRow.station_id, TxRow.charger_tx_id, TransactionEvent.seq_no).join(
                        TxRow, TxRow.id == TransactionEvent.transaction_id
                    )
                )
            }
    finally:
        engine.dispose()
    checked: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    examples: list[str] = []
    for station_id, action, request, result in acks:
        if action == "StartTransaction":
            found = [result["transactionId"] in tx_ids]
        elif action == "StopTransaction":
            found = [completed.get(request["transactionId"]) is not None]
        elif action == "MeterValues":
            found = [(request.get("transactionId"), _when(v["timestamp"])) in samples for v in request["meterValue"]]
        else:  # TransactionEvent
            key = (station_id, request["transactionInfo"]["transactionId"], request["seqNo"])
            found = [key in events]
        checked[action] += len(found)
        lost = found.count(False)
        missing[action] += lost
        if lost and len(examples) < 5:
            examples.append(f"{station_id} {action} {json.dumps(request)[:200]}")
    return {"checked": dict(checked), "missing": dict(missing), "examples": examples}


def _reap(csms: harness.CsmsProcess) -> tuple[int, float]:
    """Wait for the CSMS to exit: its exit status (negative: the signal that ended it) and its CPU seconds."""
    _, status, usage = os.wait4(csms.pid, 0)
    csms.process.returncode = os.waitstatus_to_exitcode(status)
    return csms.process.returncode, usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    _soft, fd_limit = raise_fd_limit()
    url = f"sqlite:///{workdir}/csms.db"
    rows = provision.plan(args.stations, "storm-", args.share_201, "fleet-password-0001", unique=False)
    provision.provision(url, rows, "LOADTEST")
    csms_cpus, gen_cpus = harness.split_cpus() if args.pin else (None, None)
    ports = (harness.free_port(), harness.free_port())
    start = {"heartbeat_interval": args.heartbeat, "cpus": csms_cpus, "ports": ports,
             "extra_args": ["--log-level", args.csms_log_level]}  # fmt: skip
    csms = harness.start_csms(url, workdir, **start)
    options = fleet.FleetOptions(
        url=csms.ocpp_url,
        password="fleet-password-0001",
        token="LOADTEST",
        rate=args.rate,
        charging=args.charging,
        meter_s=args.meter,
        backoff=(args.backoff_min, args.backoff_range, args.backoff_repeat),
        record_acks=True,
        addresses=fleet.source_addresses(args.addresses),
    )
    workers = fleet.workers_for(args.stations, args.workers, fd_limit)
    generator = fleet.Fleet([(r[0], r[2]) for r in rows], options, workers=workers, cpus=gen_cpus).start()
    storms = []
    try:
        t0 = time.monotonic()
        snap = _wait(generator, lambda s: s["online"] >= args.stations, args.stations / args.rate * 3 + 60,
                     args.progress, "ramp")  # fmt: skip
        if snap["online"] < args.stations:
            raise RuntimeError(f"only {snap['online']} of {args.stations} stations booted: {snap['counts']}")
        ramp_s = time.monotonic() - t0
        time.sleep(args.settle)
        for phase, name in enumerate(args.signals, start=1):
            generator.set_phase(phase)
            signalled = time.monotonic()
            cpu_before = csms.cpu_seconds()
            csms.process.send_signal(SIGNALS[name])
            status, stop_cpu_s = _reap(csms)
            stopped = time.monotonic()
            csms = harness.start_csms(url, workdir, name=f"csms-{phase}", **start)
            listening = time.monotonic()
            snap = _wait(generator, lambda s: s["booted_in_phase"] >= args.stations, args.timeout, args.progress,
                         f"after SIG{name.upper()}")  # fmt: skip
            booted = time.monotonic()
            restart_cpu_s = csms.cpu_seconds()
            storms.append(
                {
                    "signal": f"SIG{name.upper()}",
                    "stop_s": round(stopped - signalled, 2),
                    "restart_s": round(listening - signalled, 2),
                    "exit_status": status,
                    # CPU of the old process from the signal to its exit, of the new one until all were back
                    "stop_cpu_s": round(stop_cpu_s - cpu_before, 2),
                    "restart_cpu_s": round(restart_cpu_s, 2),
                    "booted_again": snap["booted_in_phase"],
                    "all_booted_after_signal_s": round(booted - signalled, 1)
                    if snap["booted_in_phase"] >= args.stations
                    else None,
                    "all_booted_after_listening_s": round(booted - listening, 1)
                    if snap["booted_in_phase"] >= args.stations
                    else None,
                }
            )
            time.sleep(args.settle)
        results = generator.stop()
    finally:
        generator.kill()
        csms.stop()
    counts: Counter[tuple[int, str]] = results["counts"]
    for phase, storm in enumerate(storms, start=1):
        table = fleet.latency_table(results["latencies"], {phase})
        errors = {kind: n for (p, kind), n in counts.items() if p == phase and kind != "connected"}
        storm.update(
            {
                "latency": table,
                "boot_p99_ms": table.get("BootNotification", {}).get("p99_ms"),
                "errors": errors,
                "refused_handshakes": sum(n for k, n in errors.items() if k.startswith("handshake refused")),
                "reconnects": counts.get((phase, "connected"), 0),
            }
        )
    durability = missing_acknowledged(url, results["acks"])
    return {
        "stations": args.stations,
        "workers": workers,
        "backoff": {"minimum_s": args.backoff_min, "random_range_s": args.backoff_range, "repeat": args.backoff_repeat},
        "ramp_s": round(ramp_s, 1),
        "ramp_errors": {kind: n for (p, kind), n in counts.items() if p == 0 and kind != "connected"},
        "storms": storms,
        "acknowledged_checked": durability["checked"],
        "acknowledged_missing": durability["missing"],
        "missing_examples": durability["examples"],
        "unanswered_calls": results["unanswered"],
    }


def report(summary: dict[str, Any]) -> str:
    b = summary["backoff"]
    lines = [
        f"{summary['stations']:,} stations ({summary['workers']} generator processes), back-off minimum "
        f"{b['minimum_s']} s, random range {b['random_range_s']} s, doubled up to {b['repeat']} times; "
        f"ramp {summary['ramp_s']:.0f} s",
        "",
        "| signal | CSMS stopped after | listening again after | all booted again after signal | "
        "after listening | reconnects | BootNotification p50 / p99 / max | refused handshakes | exit status "
        "| CPU of the stop / of the restart | other errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summary["storms"]:
        boot = s["latency"].get("BootNotification", {})
        others = {k: n for k, n in s["errors"].items() if not k.startswith("handshake refused")}
        lines.append(
            f"| {s['signal']} | {s['stop_s']:.1f} s | {s['restart_s']:.1f} s | {s['all_booted_after_signal_s']} s "
            f"| {s['all_booted_after_listening_s']} s | {s['reconnects']:,} "
            f"| {boot.get('p50_ms', float('nan')):.0f} / {boot.get('p99_ms', float('nan')):.0f} / "
            f"{boot.get('max_ms', float('nan')):.0f} ms | {s['refused_handshakes']} | {s['exit_status']} "
            f"| {s['stop_cpu_s']:.1f} / {s['restart_cpu_s']:.1f} s "
            f"| {'; '.join(f'{k} ×{n:,}' for k, n in sorted(others.items(), key=lambda kv: -kv[1])) or '—'} |"
        )
    lines.append("")
    for s in summary["storms"]:
        for action, row in s["latency"].items():
            lines.append(
                f"{s['signal']}: {action} ×{row['count']:,}: p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                f"max {row['max_ms']:.0f} ms"
            )
    checked, missing = summary["acknowledged_checked"], summary["acknowledged_missing"]
    lines.append(
        "acknowledged and looked up: "
        + ", ".join(f"{a} {n:,} (missing {missing.get(a, 0)})" for a, n in sorted(checked.items()))
    )
    lines.extend(f"missing: {e}" for e in summary["missing_examples"])
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=10_000, help="stations (default 10,000)")
    p.add_argument("--signals", nargs="+", choices=list(SIGNALS), default=["term", "kill"], help="restarts, in order")
    p.add_argument("--rate", type=float, default=200, help="first connections opened per second (default 200)")
    p.add_argument("--settle", type=float, default=70, help="seconds of traffic before and after each storm")
    p.add_argument("--timeout", type=float, default=600, help="give up waiting for a storm to end after [s]")
    p.add_argument("--backoff-min", type=int, default=5, help="RetryBackOffWaitMinimum [s] (default 5)")
    p.add_argument("--backoff-range", type=int, default=10, help="RetryBackOffRandomRange [s] (default 10)")
    p.add_argument("--backoff-repeat", type=int, default=3, help="RetryBackOffRepeatTimes (default 3)")
    p.add_argument("--csms-log-level", default="warning", help="the CSMS's log level (info: its stop's steps)")
    p.add_argument("--keep", default=None, help="keep the database and the CSMS logs in this directory")
    fleet.add_fleet_arguments(p, addresses=2, progress=5)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        summary = run(args, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
            summary = run(args, Path(tmp))
    print(report(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if not any(summary["acknowledged_missing"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
