"""How many connections one ``csms serve`` holds, and what each costs: N stations at the realistic mix.

    uv run python loadtests/conns.py --stations 50000 --hold 600          # the full run (heavy)
    uv run python loadtests/conns.py --stations 5000 --hold 60 --rate 300  # a quick look

Stations are provisioned in a fresh SQLite file (one shared password, hashed once), ``csms serve`` starts
with its file-descriptor limit raised to the hard limit, pinned to one half of the cores, and an asyncio fleet
(:mod:`fleet`, several processes on the other half, bound to several 127.0.0.x source addresses) opens the
connections at ``--rate`` per second. Every station boots; ``--charging`` of them plug in and send
MeterValues every ``--meter`` s; all send a Heartbeat at the interval the CSMS grants (``--heartbeat``).
Once every station is booted the fleet is held ``--hold`` seconds.

Reported: memory per connection (the CSMS's RSS once all are held, minus its RSS before the first
connection, divided by the connections; from /proc), p50/p99/max of every action during the ramp and during
the hold, errors by kind, refused handshakes, the CPU both sides spent in the hold; a progress line every
``--progress`` s while it runs. A process cannot hold more sockets than its file-descriptor hard limit: a
larger ``--stations`` is capped to what the CSMS can hold (said in the report).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import fleet
import harness
import provision

from csms.runtime.server import raise_fd_limit

FD_RESERVE = 200  # the CSMS's own files: database, listening sockets, the API's connections, the event loop


def _progress_line(t0: float, snap: dict[str, Any], csms: harness.CsmsProcess, stations: int) -> str:
    errors = sum(n for (_p, kind), n in snap["counts"].items() if kind != "connected")
    return (
        f"[{time.monotonic() - t0:6.0f} s] started {snap['started']:,}/{stations:,}  connected {snap['connected']:,}"
        f"  booted {snap['online']:,}  answered {snap['answered']:,}  errors {errors:,}"
        f"  CSMS RSS {csms.rss_bytes() / 2**20:,.0f} MB  CPU {csms.cpu_seconds():,.0f} s  fds {csms.open_fds():,}"
    )


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:  # noqa: PLR0915 - one run, step by step
    _soft, fd_limit = raise_fd_limit()
    stations = args.stations
    capped_from = None
    if stations > fd_limit - FD_RESERVE:
        capped_from, stations = stations, fd_limit - FD_RESERVE
        print(
            f"capped to {stations:,} stations: a process's file-descriptor hard limit here is {fd_limit:,} "
            f"(RLIMIT_NOFILE; raising it needs CAP_SYS_RESOURCE), the CSMS cannot hold {capped_from:,} sockets",
            file=sys.stderr,
        )
    workers = fleet.workers_for(stations, args.workers, fd_limit)
    url = f"sqlite:///{workdir}/csms.db"
    rows = provision.plan(stations, "conn-", args.share_201, "fleet-password-0001", unique=False)
    started = time.monotonic()
    provision.provision(url, rows, "LOADTEST")
    provision_s = time.monotonic() - started
    print(f"provisioned {stations:,} stations in {provision_s:.1f} s", file=sys.stderr)
    csms_cpus, gen_cpus = harness.split_cpus() if args.pin else (None, None)
    csms = harness.start_csms(url, workdir, heartbeat_interval=args.heartbeat, cpus=csms_cpus)
    options = fleet.FleetOptions(
        url=csms.ocpp_url,
        password="fleet-password-0001",
        token="LOADTEST",
        rate=args.rate,
        charging=args.charging,
        meter_s=args.meter,
        backoff=(10, 10, 3),
        addresses=fleet.source_addresses(args.addresses),
    )
    generator: fleet.Fleet | None = None
    try:
        time.sleep(1.0)
        idle_rss = csms.rss_bytes()
        generator = fleet.Fleet([(r[0], r[2]) for r in rows], options, workers=workers, cpus=gen_cpus).start()
        t0 = time.monotonic()
        ramp_limit = stations / args.rate * 3 + 120
        last_print = 0.0
        snap = generator.snapshot()
        while snap["online"] < stations and time.monotonic() - t0 < ramp_limit:
            time.sleep(1.0)
            snap = generator.snapshot()
            if time.monotonic() - last_print >= args.progress:
                last_print = time.monotonic()
                print(_progress_line(t0, snap, csms, stations), file=sys.stderr, flush=True)
            if csms.process.poll() is not None or snap["workers_alive"] < generator.workers:
                break
        ramp_s = time.monotonic() - t0
        booted_after_ramp = snap["online"]
        generator.set_phase(1)
        hold_start = {"cpu": csms.cpu_seconds(), "gen_cpu": generator.cpu_seconds(), "t": time.monotonic()}
        peak_rss = csms.rss_bytes()
        while time.monotonic() - hold_start["t"] < args.hold and csms.process.poll() is None:
            time.sleep(1.0)
            peak_rss = max(peak_rss, csms.rss_bytes())
            if time.monotonic() - last_print >= args.progress:
                last_print = time.monotonic()
                print(_progress_line(t0, generator.snapshot(), csms, stations), file=sys.stderr, flush=True)
        snap = generator.snapshot()
        held = snap["connected"]
        hold = {
            "seconds": time.monotonic() - hold_start["t"],
            "csms_cpu_s": csms.cpu_seconds() - hold_start["cpu"],
            "gen_cpu_s": generator.cpu_seconds() - hold_start["gen_cpu"],
        }
        end_rss, fds, alive = csms.rss_bytes(), csms.open_fds(), csms.process.poll() is None
        results = generator.stop()
    finally:
        if generator is not None:
            generator.kill()
        csms.stop()
    hold_msgs = sum(len(v) for (phase, _a), v in results["latencies"].items() if phase == 1)
    counts: Counter[tuple[int, str]] = results["counts"]
    errors = {kind: n for (_p, kind), n in counts.items() if kind != "connected"}
    all_latencies = [x for values in results["latencies"].values() for x in values]
    summary = {
        "requested_stations": capped_from or stations,
        "stations": stations,
        "fd_hard_limit": fd_limit,
        "capped": capped_from is not None,
        "workers": workers,
        "source_addresses": list(options.addresses),
        "provision_s": round(provision_s, 1),
        "ramp_s": round(ramp_s, 1),
        "booted_after_ramp": booted_after_ramp,
        "held_at_end": held,
        "csms_alive": alive,
        "csms_fds": fds,
        "hold_s": round(hold["seconds"], 1),
        "idle_rss_mb": round(idle_rss / 2**20, 1),
        "end_rss_mb": round(end_rss / 2**20, 1),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "kb_per_connection": round((end_rss - idle_rss) / max(1, held) / 1024, 2),
        "hold_msgs_per_s": round(hold_msgs / max(1e-9, hold["seconds"]), 1),
        "hold_csms_cpu_share": round(hold["csms_cpu_s"] / max(1e-9, hold["seconds"]), 3),
        "hold_csms_cpu_us_per_msg": round(hold["csms_cpu_s"] / max(1, hold_msgs) * 1e6),
        "hold_generator_cpu_share": round(hold["gen_cpu_s"] / max(1e-9, hold["seconds"]), 3),
        "generator_kb_per_station": round(results["generator_rss"] / stations / 1024, 1),
        "p50_ms": round(fleet.percentile(all_latencies, 50) * 1000, 1),
        "p99_ms": round(fleet.percentile(all_latencies, 99) * 1000, 1),
        "ramp": fleet.latency_table(results["latencies"], {0}),
        "hold": fleet.latency_table(results["latencies"], {1}),
        "errors": errors,
        "refused_handshakes": sum(n for kind, n in errors.items() if kind.startswith("handshake refused")),
        "unanswered_calls": results["unanswered"],
        "harness_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    return summary


def report(summary: dict[str, Any]) -> str:
    lines = [
        f"stations {summary['stations']:,} (requested {summary['requested_stations']:,}, fd hard limit "
        f"{summary['fd_hard_limit']:,}); {summary['workers']} generator processes on "
        f"{', '.join(summary['source_addresses'])}",
        f"ramp {summary['ramp_s']:.0f} s: {summary['booted_after_ramp']:,} booted; held {summary['held_at_end']:,} "
        f"for {summary['hold_s']:.0f} s (CSMS alive: {summary['csms_alive']}, {summary['csms_fds']:,} fds)",
        f"CSMS RSS {summary['idle_rss_mb']:.0f} MB idle → {summary['end_rss_mb']:.0f} MB held (peak "
        f"{summary['peak_rss_mb']:.0f} MB): {summary['kb_per_connection']:.1f} kB per connection",
        f"hold: {summary['hold_msgs_per_s']:.0f} msgs/s, CSMS CPU {summary['hold_csms_cpu_share']:.0%} of a core "
        f"({summary['hold_csms_cpu_us_per_msg']:,} µs/msg incl. pings), generator CPU "
        f"{summary['hold_generator_cpu_share']:.0%}; generator {summary['generator_kb_per_station']:.0f} kB/station",
        f"all actions: p50 {summary['p50_ms']:.0f} ms, p99 {summary['p99_ms']:.0f} ms; refused handshakes "
        f"{summary['refused_handshakes']}, unanswered calls {summary['unanswered_calls']}",
        "",
        "| phase | action | count | p50 | p99 | max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for phase in ("ramp", "hold"):
        for action, row in summary[phase].items():
            lines.append(
                f"| {phase} | {action} | {row['count']:,} | {row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms "
                f"| {row['max_ms']:.0f} ms |"
            )
    for kind, n in sorted(summary["errors"].items(), key=lambda kv: -kv[1]):
        lines.append(f"error ×{n:,}: {kind}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=50_000, help="stations to connect (default 50,000)")
    p.add_argument("--hold", type=float, default=600, help="seconds to hold them once all booted (default 600)")
    p.add_argument("--rate", type=float, default=200, help="connections opened per second (default 200)")
    fleet.add_fleet_arguments(p, addresses=4, progress=10)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.stations < 1 or not 0 <= args.charging <= 1 or math.isnan(args.rate) or args.rate <= 0:
        parser().error("--stations must be positive, --charging within [0, 1], --rate positive")
    with tempfile.TemporaryDirectory(prefix="conns-") as tmp:
        summary = run(args, Path(tmp))
    print(report(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
