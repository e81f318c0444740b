"""Capacity of one ``csms serve`` process: N Locust chargers at a message mix, per point one fresh process.

    uv run python loadtests/capacity.py --users 500 1000 2000 4000                   # realistic mix
    uv run python loadtests/capacity.py --users 1000 2000 --heartbeat 30 --meter 10 \\
        --session 120 --idle 60                                                       # accelerated mix

For each point: provision stations (SQLite file unless ``--database-url``), start ``csms serve`` pinned to
one half of the cores, run ``locust --headless -u N -r RATE -t RAMP+HOLD --reset-stats-after RAMP`` on the
other half (one process, or ``--workers W``: a master and W workers; statistics cover the hold only:
RAMP = N/RATE + settle), sample the CPU time of the CSMS and of the whole generator, and the CSMS's RSS, from
/proc at the end of the ramp and at the end, and print one table row: connected chargers, msgs/s, p50/p99
over all OCPP actions and per action, CPU share and CPU per message of both sides (the side near 100 % is
the bound), RSS per connection, open file descriptors.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness
import provision


def _sample_later(csms: harness.CsmsProcess, gen: harness.LocustRun, delay: float, into: dict) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        if csms.process.poll() is None:
            into.update(cpu=csms.cpu_seconds(), rss=csms.rss_bytes(), fds=csms.open_fds(), t=time.monotonic())
            into.update(gen_cpu=gen.cpu_seconds(), wait=csms.wait_seconds())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def measure(users: int, args: argparse.Namespace, workdir: Path) -> dict:
    url = args.database_url or f"sqlite:///{workdir}/csms-{users}.db"
    stations_file = workdir / f"stations-{users}.csv"
    rows = provision.plan(users, f"cap{users}-", args.share_201, "capacity", unique=False)
    provision.provision(url, rows, "LOADTEST")
    provision.write_file(stations_file, rows)
    csms_cpus, gen_cpus = harness.split_cpus() if args.pin else (None, None)
    csms = harness.start_csms(url, workdir, name=f"csms-{users}", heartbeat_interval=args.heartbeat, cpus=csms_cpus)
    idle = {"cpu": csms.cpu_seconds(), "rss": csms.rss_bytes(), "fds": csms.open_fds()}
    ramp = users / args.spawn_rate + args.settle
    prefix = workdir / f"cap-{users}"
    start_mark: dict = {}
    end_mark: dict = {}
    try:
        gen = harness.start_locust(
            csms.ocpp_url,
            stations_file,
            workdir,
            csv_prefix=prefix,
            users=users,
            spawn_rate=args.spawn_rate,
            run_time=f"{int(ramp + args.hold)}s",
            workers=args.workers,
            cpus=gen_cpus,
            name=f"locust-{users}",
            options=[
                "--meter-interval", str(args.meter), "--session-length", str(args.session),
                "--idle-length", str(args.idle), "--reset-stats-after", str(ramp),
            ],
        )  # fmt: skip
        threads = [
            _sample_later(csms, gen, ramp, start_mark),
            _sample_later(csms, gen, ramp + args.hold - 1, end_mark),
        ]
        code = gen.wait(timeout=ramp + args.hold + 120)
        for thread in threads:
            thread.join(timeout=5)
    finally:
        csms.stop()
    stats = harness.read_stats(prefix)
    ocpp = {name: row for name, row in stats.items() if row["Type"] == "OCPP" and int(row["Request Count"]) > 0}
    messages = sum(int(r["Request Count"]) for r in ocpp.values())
    failures = sum(int(r["Failure Count"]) for r in stats.values() if r["Name"] != "Aggregated")
    window = end_mark["t"] - start_mark["t"] if start_mark and end_mark else args.hold
    msgs_in_window = messages * window / args.hold
    cpu = end_mark["cpu"] - start_mark["cpu"] if start_mark and end_mark else float("nan")
    gen_cpu = end_mark["gen_cpu"] - start_mark["gen_cpu"] if start_mark and end_mark else float("nan")
    wait = end_mark["wait"] - start_mark["wait"] if start_mark and end_mark else float("nan")
    p = harness.combined_percentiles(ocpp)
    return {
        "users": users,
        "workers": args.workers,
        "pinned": bool(csms_cpus),
        "exit": code,
        "failures": failures,
        "messages": messages,
        "msgs_per_s": messages / args.hold,
        "p50_ms": p[50],
        "p99_ms": p[99],
        "per_action": {n: (float(r["50%"]), float(r["99%"]), int(r["Request Count"])) for n, r in ocpp.items()},
        "cpu_share": cpu / window,
        "cpu_us_per_msg": cpu / msgs_in_window * 1e6 if msgs_in_window else float("nan"),
        "wait_share": wait / window,
        "gen_cpu_share": gen_cpu / window,
        "gen_cpus": len(gen_cpus) if gen_cpus else None,
        "gen_us_per_msg": gen_cpu / msgs_in_window * 1e6 if msgs_in_window else float("nan"),
        "rss_idle_mb": idle["rss"] / 2**20,
        "rss_mb": end_mark.get("rss", 0) / 2**20,
        "kb_per_conn": (end_mark.get("rss", 0) - idle["rss"]) / users / 1024,
        "fds": end_mark.get("fds"),
        "locust_tail": gen.log()[-1500:] if code not in (0, 1) else "",
        "failure_kinds": harness.read_failures(prefix)[:5],
        "csms_log_tail": csms.log()[-1500:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--spawn-rate", type=float, default=100)
    parser.add_argument("--settle", type=float, default=10, help="seconds after the ramp before measuring")
    parser.add_argument("--hold", type=float, default=60, help="measured seconds at full load")
    parser.add_argument("--heartbeat", type=int, default=300, help="heartbeat interval the CSMS grants [s]")
    parser.add_argument("--meter", type=int, default=60, help="MeterValues period [s]")
    parser.add_argument("--session", type=float, default=1800, help="mean session length [s]")
    parser.add_argument("--idle", type=float, default=1800, help="mean time between sessions [s]")
    parser.add_argument("--share-201", type=float, default=0.25)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=0, help="Locust workers (0: one local Locust process)")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="don't pin the CSMS to one half of the cores and the generator to the other",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    print(
        "| chargers | msgs/s | p50 | p99 | CSMS CPU (1 core) | CSMS waiting for CPU | CSMS CPU/msg "
        "| generator CPU | generator CPU/msg "
        "| RSS | RSS/conn | fds | failures |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        for users in args.users:
            r = measure(users, args, Path(tmp))
            results.append(r)
            print(
                f"| {users:,} | {r['msgs_per_s']:.0f} | {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms "
                f"| {r['cpu_share']:.0%} | {r['wait_share']:.0%} | {r['cpu_us_per_msg']:,.0f} µs "
                f"| {r['gen_cpu_share']:.0%} | {r['gen_us_per_msg']:,.0f} µs | {r['rss_mb']:.0f} MB "
                f"| {r['kb_per_conn']:.0f} kB | {r['fds']} | {r['failures']} |",
                flush=True,
            )
            for name, (p50, p99, n) in sorted(r["per_action"].items()):
                print(f"|   {name} | {n} reqs | {p50:.0f} ms | {p99:.0f} ms |", file=sys.stderr)
            for count, name, error in r["failure_kinds"]:
                print(f"|   failed {name} ×{count}: {error[:200]}", file=sys.stderr)
            if r["failure_kinds"]:
                print(r["csms_log_tail"], file=sys.stderr)
            if r["locust_tail"]:
                print(r["locust_tail"], file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
