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

Past that limit an operator runs more processes: ``--nodes N`` starts N ``csms serve`` nodes of one cluster
(``--broker redis://…``, each its own ``--node-id``) on one PostgreSQL database (``--database-url
postgresql://…``, fresh: the stations are provisioned into it), deals the fleet out over them round-robin
(the load balancer in front of the OCPP ports) and reports every node (connections, RSS per connection, CPU,
p50/p99 per action, errors) beside the totals. The nodes share the CSMS's half of the cores.

    uv run python loadtests/conns.py --stations 50000 --hold 600 --rate 100 --nodes 3 \\
        --database-url postgresql://postgres@127.0.0.1/conns --broker redis://127.0.0.1:6379/13
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import fleet
import harness
import provision

from csms.runtime.server import raise_fd_limit

FD_RESERVE = 200  # the CSMS's own files: database, listening sockets, the API's connections, the event loop


def _progress_line(t0: float, snap: dict[str, Any], nodes: list[harness.CsmsProcess], stations: int) -> str:
    errors = sum(n for (_p, kind), n in snap["counts"].items() if kind != "connected")
    rss = sum(node.rss_bytes() for node in nodes)
    cpu = sum(node.cpu_seconds() for node in nodes)
    fds = "/".join(f"{node.open_fds():,}" for node in nodes)
    return (
        f"[{time.monotonic() - t0:6.0f} s] started {snap['started']:,}/{stations:,}  connected {snap['connected']:,}"
        f"  booted {snap['online']:,}  answered {snap['answered']:,}  errors {errors:,}"
        f"  CSMS RSS {rss / 2**20:,.0f} MB  CPU {cpu:,.0f} s  fds {fds}"
    )


def _total(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """The fleets' progress summed (one fleet per node)."""
    counts: Counter[tuple[int, str]] = Counter()
    for snap in snaps:
        counts.update(snap["counts"])
    keys = ("started", "connected", "online", "answered", "workers_alive")
    return {**{key: sum(snap[key] for snap in snaps) for key in keys}, "counts": counts}


def _errors(counts: Counter[tuple[int, str]]) -> dict[str, int]:
    errors: Counter[str] = Counter()
    for (_p, kind), n in counts.items():
        if kind != "connected":
            errors[kind] += n
    return dict(errors)


def _start_nodes(args: argparse.Namespace, url: str, workdir: Path, cpus: set[int] | None) -> list[harness.CsmsProcess]:
    """One ``csms serve``, or ``--nodes`` of one cluster (a broker, a node id each)."""
    if args.nodes == 1:
        return [harness.start_csms(url, workdir, heartbeat_interval=args.heartbeat, cpus=cpus)]
    run_id = uuid.uuid4().hex[:6]
    nodes: list[harness.CsmsProcess] = []
    try:
        for i in range(args.nodes):
            extra = ["--broker", args.broker, "--node-id", f"conns-{run_id}-{i}"]
            nodes.append(
                harness.start_csms(
                    url, workdir, name=f"node{i}", heartbeat_interval=args.heartbeat, cpus=cpus, extra_args=extra
                )
            )
    except Exception:
        for node in nodes:
            node.kill()
        raise
    return nodes


def _cap(stations: int, nodes: int, fd_limit: int) -> tuple[int, int | None]:
    """The stations the CSMS process(es) can hold, and what was asked when that is fewer."""
    limit = (fd_limit - FD_RESERVE) * nodes
    if stations <= limit:
        return stations, None
    print(
        f"capped to {limit:,} stations: a process's file-descriptor hard limit here is {fd_limit:,} "
        f"(RLIMIT_NOFILE; raising it needs CAP_SYS_RESOURCE), {nodes} CSMS process(es) cannot hold "
        f"{stations:,} sockets",
        file=sys.stderr,
    )
    return limit, stations


def _fleets(
    args: argparse.Namespace, nodes: list[harness.CsmsProcess], node_rows: list[list[Any]], fd_limit: int,
    cpus: set[int] | None,
) -> list[fleet.Fleet]:  # fmt: skip
    """One fleet per node, each opening its share of ``--rate``."""
    stations = sum(len(rows) for rows in node_rows)
    asked_workers = math.ceil(args.workers / len(nodes)) if args.workers else None
    generators = []
    for node, rows in zip(nodes, node_rows, strict=True):
        options = fleet.FleetOptions(
            url=node.ocpp_url,
            password="fleet-password-0001",
            token="LOADTEST",
            rate=args.rate * len(rows) / stations,
            charging=args.charging,
            meter_s=args.meter,
            backoff=(10, 10, 3),
            addresses=fleet.source_addresses(args.addresses),
        )
        workers = fleet.workers_for(len(rows), asked_workers, fd_limit)
        generators.append(fleet.Fleet([(r[0], r[2]) for r in rows], options, workers=workers, cpus=cpus))
    return generators


def _ramp(
    args: argparse.Namespace, t0: float, nodes: list[harness.CsmsProcess], generators: list[fleet.Fleet], stations: int
) -> list[dict[str, Any]]:
    """Until every station booted (or the ramp's time ran out, or a process died); each fleet's last progress."""
    ramp_limit = args.ramp_limit if args.ramp_limit is not None else stations / args.rate * 3 + 120
    last_print = 0.0
    snaps = [g.snapshot() for g in generators]
    while _total(snaps)["online"] < stations and time.monotonic() - t0 < ramp_limit:
        time.sleep(1.0)
        snaps = [g.snapshot() for g in generators]
        if time.monotonic() - last_print >= args.progress:
            last_print = time.monotonic()
            print(_progress_line(t0, _total(snaps), nodes, stations), file=sys.stderr, flush=True)
        dead = any(node.process.poll() is not None for node in nodes)
        if dead or any(s["workers_alive"] < g.workers for g, s in zip(generators, snaps, strict=True)):
            break
    return snaps


def _hold(
    args: argparse.Namespace, t0: float, nodes: list[harness.CsmsProcess], generators: list[fleet.Fleet], stations: int
) -> list[int]:
    """Hold the fleet ``--hold`` seconds (or until a node dies); each node's peak RSS."""
    start = last_print = time.monotonic()
    peak_rss = [node.rss_bytes() for node in nodes]
    while time.monotonic() - start < args.hold and all(node.process.poll() is None for node in nodes):
        time.sleep(1.0)
        peak_rss = [max(peak, node.rss_bytes()) for peak, node in zip(peak_rss, nodes, strict=True)]
        if time.monotonic() - last_print >= args.progress:
            last_print = time.monotonic()
            snaps = [g.snapshot() for g in generators]
            print(_progress_line(t0, _total(snaps), nodes, stations), file=sys.stderr, flush=True)
    return peak_rss


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    _soft, fd_limit = raise_fd_limit()
    stations, capped_from = _cap(args.stations, args.nodes, fd_limit)
    url = args.database_url or f"sqlite:///{workdir}/csms.db"
    rows = provision.plan(stations, "conn-", args.share_201, "fleet-password-0001", unique=False)
    started = time.monotonic()
    provision.provision(url, rows, "LOADTEST")
    provision_s = time.monotonic() - started
    print(f"provisioned {stations:,} stations in {provision_s:.1f} s", file=sys.stderr)
    csms_cpus, gen_cpus = harness.split_cpus() if args.pin else (None, None)
    nodes = _start_nodes(args, url, workdir, csms_cpus)
    # Dealt round-robin, as a load balancer in front of the nodes' OCPP ports would spread them.
    node_rows = [rows[i :: len(nodes)] for i in range(len(nodes))]
    generators: list[fleet.Fleet] = []
    try:
        time.sleep(1.0)
        idle_rss = [node.rss_bytes() for node in nodes]
        generators = _fleets(args, nodes, node_rows, fd_limit, gen_cpus)
        for generator in generators:
            generator.start()
        t0 = time.monotonic()
        booted_after_ramp = [snap["online"] for snap in _ramp(args, t0, nodes, generators, stations)]
        ramp_s = time.monotonic() - t0
        for generator in generators:
            generator.set_phase(1)
        hold_start = time.monotonic()
        csms_cpu = [node.cpu_seconds() for node in nodes]
        gen_cpu = sum(g.cpu_seconds() for g in generators)
        peak_rss = _hold(args, t0, nodes, generators, stations)
        held = [g.snapshot()["connected"] for g in generators]
        hold_s = time.monotonic() - hold_start
        csms_cpu = [node.cpu_seconds() - cpu for node, cpu in zip(nodes, csms_cpu, strict=True)]
        gen_cpu = sum(g.cpu_seconds() for g in generators) - gen_cpu
        end_rss = [node.rss_bytes() for node in nodes]
        fds = [node.open_fds() for node in nodes]
        alive_at_end = [node.process.poll() is None for node in nodes]
        results = [g.stop() for g in generators]
    finally:
        for generator in generators:
            generator.kill()
        for node in nodes:
            node.stop()
    latencies: dict[tuple[int, str], list[float]] = {}
    counts: Counter[tuple[int, str]] = Counter()
    for r in results:
        for key, values in r["latencies"].items():
            latencies.setdefault(key, []).extend(values)
        counts.update(r["counts"])
    errors = _errors(counts)
    summary = {
        "requested_stations": capped_from or stations,
        "stations": stations,
        "fd_hard_limit": fd_limit,
        "capped": capped_from is not None,
        "workers": sum(g.workers for g in generators),
        "source_addresses": list(fleet.source_addresses(args.addresses)),
        "database": url.split("://", 1)[0],
        "provision_s": round(provision_s, 1),
        "ramp_s": round(ramp_s, 1),
        "booted_after_ramp": sum(booted_after_ramp),
        "held_at_end": sum(held),
        "csms_alive": all(alive_at_end),
        "csms_fds": sum(fds),
        "hold_s": round(hold_s, 1),
        **_memory(idle_rss, end_rss, peak_rss, held),
        **_load(latencies, sum(csms_cpu), hold_s),
        "hold_generator_cpu_share": round(gen_cpu / max(1e-9, hold_s), 3),
        "generator_kb_per_station": round(sum(r["generator_rss"] for r in results) / stations / 1024, 1),
        **_actions(latencies),
        "errors": errors,
        "refused_handshakes": sum(n for kind, n in errors.items() if kind.startswith("handshake refused")),
        "unanswered_calls": sum(r["unanswered"] for r in results),
        "harness_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "nodes": [],
    }
    if len(nodes) > 1:
        summary["nodes"] = [
            {
                "node": i,
                "stations": len(node_rows[i]),
                "booted_after_ramp": booted_after_ramp[i],
                "held_at_end": held[i],
                "csms_alive": alive_at_end[i],
                "csms_fds": fds[i],
                **_memory([idle_rss[i]], [end_rss[i]], [peak_rss[i]], [held[i]]),
                **_load(results[i]["latencies"], csms_cpu[i], hold_s),
                **_actions(results[i]["latencies"]),
                "errors": _errors(results[i]["counts"]),
                "unanswered_calls": results[i]["unanswered"],
            }
            for i in range(len(nodes))
        ]
    return summary


def _memory(idle: list[int], end: list[int], peak: list[int], held: list[int]) -> dict[str, float]:
    """RSS of the CSMS process(es) idle, held and at peak; what each held connection added."""
    return {
        "idle_rss_mb": round(sum(idle) / 2**20, 1),
        "end_rss_mb": round(sum(end) / 2**20, 1),
        "peak_rss_mb": round(sum(peak) / 2**20, 1),
        "kb_per_connection": round((sum(end) - sum(idle)) / max(1, sum(held)) / 1024, 2),
    }


def _load(latencies: dict[tuple[int, str], list[float]], cpu_s: float, hold_s: float) -> dict[str, float]:
    """Messages answered per second in the hold, and the CSMS CPU that took."""
    msgs = sum(len(v) for (phase, _a), v in latencies.items() if phase == 1)
    return {
        "hold_msgs_per_s": round(msgs / max(1e-9, hold_s), 1),
        "hold_csms_cpu_share": round(cpu_s / max(1e-9, hold_s), 3),
        "hold_csms_cpu_us_per_msg": round(cpu_s / max(1, msgs) * 1e6),
    }


def _actions(latencies: dict[tuple[int, str], list[float]]) -> dict[str, Any]:
    """p50/p99 over every answer, and per action in the ramp and in the hold."""
    every = [x for values in latencies.values() for x in values]
    return {
        "p50_ms": round(fleet.percentile(every, 50) * 1000, 1),
        "p99_ms": round(fleet.percentile(every, 99) * 1000, 1),
        "ramp": fleet.latency_table(latencies, {0}),
        "hold": fleet.latency_table(latencies, {1}),
    }


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
    if summary["nodes"]:
        lines += _node_report(summary["nodes"])
    return "\n".join(lines)


def _node_report(nodes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "| node | stations | held | RSS idle → held | per connection | CSMS CPU (hold) | msgs/s | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in nodes:
        lines.append(
            f"| {n['node']} | {n['stations']:,} | {n['held_at_end']:,} | {n['idle_rss_mb']:.0f} → "
            f"{n['end_rss_mb']:.0f} MB | {n['kb_per_connection']:.1f} kB | {n['hold_csms_cpu_share']:.0%} | "
            f"{n['hold_msgs_per_s']:.0f} | {n['p50_ms']:.0f} ms | {n['p99_ms']:.0f} ms "
            f"| {sum(n['errors'].values()):,} |"
        )
    lines += ["", "| node | phase | action | count | p50 | p99 | max |", "|---|---|---|---:|---:|---:|---:|"]
    for n in nodes:
        for phase in ("ramp", "hold"):
            for action, row in n[phase].items():
                lines.append(
                    f"| {n['node']} | {phase} | {action} | {row['count']:,} | {row['p50_ms']:.0f} ms "
                    f"| {row['p99_ms']:.0f} ms | {row['max_ms']:.0f} ms |"
                )
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=50_000, help="stations to connect (default 50,000)")
    p.add_argument("--hold", type=float, default=600, help="seconds to hold them once all booted (default 600)")
    p.add_argument("--rate", type=float, default=200, help="connections opened per second (default 200)")
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="csms serve processes of one cluster (default 1; more need --database-url and --broker)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="a fresh database to provision into (default a SQLite file; postgresql://… with --nodes)",
    )
    p.add_argument(
        "--ramp-limit",
        type=float,
        default=None,
        help="seconds after which the hold starts even if not every station booted (default stations / rate × 3 + 120)",
    )
    p.add_argument("--broker", default=None, help="the cluster's Redis (redis://127.0.0.1:6379/N) with --nodes")
    fleet.add_fleet_arguments(p, addresses=4, progress=10)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.stations < 1 or not 0 <= args.charging <= 1 or math.isnan(args.rate) or args.rate <= 0:
        parser().error("--stations must be positive, --charging within [0, 1], --rate positive")
    if args.nodes < 1 or (args.nodes > 1 and not (args.broker and (args.database_url or "").startswith("postgresql"))):
        parser().error("--nodes must be positive; more than one needs --broker and --database-url postgresql://…")
    with tempfile.TemporaryDirectory(prefix="conns-") as tmp:
        summary = run(args, Path(tmp))
    print(report(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
