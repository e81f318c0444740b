"""One ``csms serve`` under one of the Locust load shapes, summarised from Locust's per-second history.

    uv run python loadtests/shaperun.py ramp --users 3000 --step-users 250 --step-time 40 --workers 1 \\
        --heartbeat 10 --meter 2 --session 60 --idle 30                # the knee: msgs/s and p99 per step
    uv run python loadtests/shaperun.py bootstorm --users 2000 --workers 1      # all connect at once
    uv run python loadtests/shaperun.py wave --users 2000 --blackout-at 60 --workers 1   # reconnect wave

Like ``capacity.py``: stations provisioned in a fresh SQLite file, the CSMS pinned to one half of the cores and
the generator (one Locust process, or a master and ``--workers`` workers) to the other, CPU of both sides and
the CSMS's RSS sampled from /proc every second. Locust writes ``--csv-full-history``; its per-action
percentiles there cover the last 10 s, so a ramp step's p50/p99 are those of its last 10 s, and its msgs/s is
the count of answered OCPP calls over the step's second half.

* ``ramp``: one row per step (chargers, msgs/s, p50/p99, CPU of both sides, RSS); the knee is the highest
  msgs/s of a step whose p99 stayed under ``--p99-limit``.
* ``bootstorm``: every charger starts at once; time until every BootNotification was answered, connect and
  boot latency, failures.
* ``wave``: a steady fleet loses the network for ``--blackout-length`` s at ``--blackout-at``; time until every
  charger is connected again, and what failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness
import provision


class Sampler:
    """CPU seconds of both sides and the CSMS's RSS, once a second, until stopped."""

    def __init__(self, csms: harness.CsmsProcess, gen: harness.LocustRun) -> None:
        self.csms, self.gen = csms, gen
        # (wall time, CSMS cpu, generator cpu, CSMS rss, CSMS time waiting for a cpu)
        self.samples: list[tuple[float, float, float, int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.csms.process.poll() is None:
            try:
                csms, gen = self.csms, self.gen
                self.samples.append(
                    (time.time(), csms.cpu_seconds(), gen.cpu_seconds(), csms.rss_bytes(), csms.wait_seconds())
                )
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU shares of both sides, the CSMS's share of time runnable but waiting for a CPU (starved by other
        processes on its core), and the last RSS, over [start, end] (nearest samples)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {
                "csms_cpu": float("nan"),
                "gen_cpu": float("nan"),
                "rss_mb": float("nan"),
                "csms_wait": float("nan"),
            }
        first, last = inside[0], inside[-1]
        span = last[0] - first[0]
        return {
            "csms_cpu": (last[1] - first[1]) / span,
            "gen_cpu": (last[2] - first[2]) / span,
            "rss_mb": last[3] / 2**20,
            "csms_wait": (last[4] - first[4]) / span,
        }


def read_history(prefix: Path) -> dict[int, dict[str, dict[str, str]]]:
    """Locust's ``PREFIX_stats_history.csv`` as {timestamp: {name: row}} (the last row per second wins)."""
    out: dict[int, dict[str, dict[str, str]]] = {}
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(int(row["Timestamp"]), {})[row["Name"]] = row
    return out


def ocpp_rows(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {n: r for n, r in rows.items() if r["Type"] == "OCPP"}


def total(rows: dict[str, dict[str, str]], name: str | None = None) -> int:
    """Cumulative answered-or-failed count of one name, or of all OCPP actions."""
    if name is not None:
        return int(rows[name]["Total Request Count"]) if name in rows else 0
    return sum(int(r["Total Request Count"]) for r in ocpp_rows(rows).values())


def window_percentiles(rows: dict[str, dict[str, str]]) -> dict[int, float]:
    """p50/p99 over all OCPP actions of Locust's last-10-s windows, weighted by each action's current rate."""
    weighted = {
        n: {**r, "Request Count": str(max(1, round(float(r["Requests/s"]) * 10)))}
        for n, r in ocpp_rows(rows).items()
        if r["50%"] not in ("N/A", "") and float(r["Requests/s"]) > 0
    }
    if not weighted:
        return {50: float("nan"), 99: float("nan")}
    return harness.combined_percentiles(weighted)


def start(args: argparse.Namespace, workdir: Path, shape_options: list[str]) -> tuple:
    url = f"sqlite:///{workdir}/csms.db"
    stations_file = workdir / "stations.csv"
    rows = provision.plan(args.users, "shape-", args.share_201, "capacity", unique=False)
    provision.provision(url, rows, "LOADTEST")
    provision.write_file(stations_file, rows)
    csms_cpus, gen_cpus = harness.split_cpus() if args.pin else (None, None)
    csms = harness.start_csms(url, workdir, heartbeat_interval=args.heartbeat, cpus=csms_cpus)
    prefix = workdir / "shape"
    gen = harness.start_locust(
        csms.ocpp_url,
        stations_file,
        workdir,
        csv_prefix=prefix,
        workers=args.workers,
        cpus=gen_cpus,
        shape=args.shape,
        options=[
            "--csv-full-history", "--meter-interval", str(args.meter), "--session-length", str(args.session),
            "--idle-length", str(args.idle), "--shape-users", str(args.users), "--shape-duration", str(args.duration),
            *shape_options,
        ],
    )  # fmt: skip
    return csms, gen, prefix


def run(args: argparse.Namespace, shape_options: list[str], workdir: Path) -> tuple[dict, dict, Sampler, dict]:
    """Run the shape to its end; returns (history, final stats, sampler, process facts)."""
    csms, gen = None, None
    try:
        csms, gen, prefix = start(args, workdir, shape_options)
        sampler = Sampler(csms, gen)
        code = gen.wait(timeout=args.duration + 180)
        sampler.stop()
        facts = {
            "exit": code,
            "fds": csms.open_fds(),
            "csms_alive": csms.process.poll() is None,
            "cpu_warnings": gen.log().count("CPU usage"),
        }
    finally:
        if gen is not None:
            gen.stop()
        if csms is not None:
            csms.stop()
            if "Traceback" in csms.log() or "WARNING" in csms.log():
                print(csms.log()[-3000:], file=sys.stderr)
    for count, name, error in harness.read_failures(prefix)[:5]:
        print(f"failed {name} ×{count}: {error[:200]}", file=sys.stderr)
    return read_history(prefix), harness.read_stats(prefix), sampler, facts


def report_ramp(args: argparse.Namespace, history: dict, sampler: Sampler) -> dict:
    times = sorted(history)
    t0 = next(t for t in times if int(next(iter(history[t].values()))["User Count"]) > 0) - 1
    steps = []
    print("| chargers | msgs/s | p50 | p99 | CSMS CPU | CSMS waiting for CPU | generator CPU | CSMS RSS | failures/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    n = 0
    while True:
        step_start, step_end = t0 + n * args.step_time, t0 + (n + 1) * args.step_time
        inside = [t for t in times if step_start + args.step_time / 2 <= t <= step_end]
        if len(inside) < 2 or step_end > times[-1] + 1:
            break
        first, last = history[inside[0]], history[inside[-1]]
        msgs = (total(last) - total(first)) / (inside[-1] - inside[0])
        failures = sum(float(r["Failures/s"]) for r in ocpp_rows(last).values())
        p = window_percentiles(last)
        users = int(first["Aggregated"]["User Count"])  # the step's end row may already be in the next step
        cpu = sampler.between(inside[0], inside[-1])
        steps.append(
            {"users": users, "msgs_per_s": msgs, "p50_ms": p[50], "p99_ms": p[99], "failures_per_s": failures, **cpu}
        )
        print(
            f"| {users:,} | {msgs:.0f} | {p[50]:.0f} ms | {p[99]:.0f} ms | {cpu['csms_cpu']:.0%} "
            f"| {cpu['csms_wait']:.0%} | {cpu['gen_cpu']:.0%} | {cpu['rss_mb']:.0f} MB | {failures:.1f} |",
            flush=True,
        )
        n += 1
    under = [s for s in steps if s["p99_ms"] <= args.p99_limit * 1000]
    knee = max(under, key=lambda s: s["msgs_per_s"]) if under else None
    if knee:
        print(f"knee: {knee['msgs_per_s']:.0f} msgs/s at {knee['users']:,} chargers (p99 {knee['p99_ms']:.0f} ms)")
    return {"steps": steps, "knee": knee}


def report_bootstorm(args: argparse.Namespace, history: dict, stats: dict) -> dict:
    times = sorted(history)
    t0 = next(t for t in times if int(history[t]["Aggregated"]["User Count"]) > 0) - 1
    booted_at = next((t for t in times if total(history[t], "BootNotification") >= args.users), None)
    out = {
        "chargers": args.users,
        "all_booted_after_s": None if booted_at is None else booted_at - t0,
        "booted": total(history[times[-1]], "BootNotification"),
        **{
            f"{name}_{key}": round(float(stats[name][col])) if name in stats else None
            for name in ("connect", "BootNotification")
            for key, col in (
                ("p50_ms", "50%"),
                ("p99_ms", "99%"),
                ("max_ms", "Max Response Time"),
                ("failures", "Failure Count"),
            )
        },
        "failures": sum(int(r["Failure Count"]) for r in stats.values() if r["Name"] != "Aggregated"),
    }
    print(json.dumps(out, indent=2))
    return out


def report_wave(args: argparse.Namespace, history: dict, stats: dict, sampler: Sampler) -> dict:
    times = sorted(history)
    t0 = next(t for t in times if int(history[t]["Aggregated"]["User Count"]) > 0) - 1
    blackout = t0 + args.blackout_at
    before = max((t for t in times if t <= blackout), default=times[0])
    connects_before = total(history[before], "connect")
    back_at = next(
        (t for t in times if t > blackout and total(history[t], "connect") >= connects_before + args.users), None
    )
    out = {
        "chargers": args.users,
        "blackout_s": args.blackout_length,
        "all_reconnected_after_s": None if back_at is None else back_at - blackout,
        "reconnected": total(history[times[-1]], "connect") - connects_before,
        "connect_p50_ms": float(stats["connect"]["50%"]) if "connect" in stats else None,
        "connect_p99_ms": float(stats["connect"]["99%"]) if "connect" in stats else None,
        "connect_failures": int(stats["connect"]["Failure Count"]) if "connect" in stats else None,
        "ocpp_failures": {
            n: int(r["Failure Count"]) for n, r in stats.items() if r["Type"] == "OCPP" and int(r["Failure Count"])
        },
        "csms_cpu_during_wave": sampler.between(blackout, blackout + args.blackout_length + 30)["csms_cpu"],
    }
    print(json.dumps(out, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=["ramp", "bootstorm", "wave", "steady"])
    parser.add_argument("--users", type=int, required=True, help="chargers at full load")
    parser.add_argument("--spawn-rate", type=float, default=100, help="(ramp, wave, steady) chargers started per s")
    parser.add_argument("--duration", type=float, default=None, help="run time [s] (default from the shape)")
    parser.add_argument("--step-users", type=int, default=250, help="(ramp) chargers added per step")
    parser.add_argument("--step-time", type=float, default=40, help="(ramp) seconds per step")
    parser.add_argument("--p99-limit", type=float, default=1.0, help="(ramp) the knee's p99 bound [s]")
    parser.add_argument("--blackout-at", type=float, default=60, help="(wave) when the network goes down [s]")
    parser.add_argument("--blackout-length", type=float, default=5, help="(wave) how long it stays down [s]")
    parser.add_argument("--backoff", type=int, default=10, help="(wave) chargers' reconnect back-off base [s]")
    parser.add_argument("--heartbeat", type=int, default=300, help="heartbeat interval the CSMS grants [s]")
    parser.add_argument("--meter", type=int, default=60, help="MeterValues period [s]")
    parser.add_argument("--session", type=float, default=1800, help="mean session length [s]")
    parser.add_argument("--idle", type=float, default=1800, help="mean time between sessions [s]")
    parser.add_argument("--share-201", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=1, help="Locust workers (0: one local Locust process)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="don't pin CSMS and generator apart")
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    shape_options = ["--shape-spawn-rate", str(args.spawn_rate)]
    if args.shape == "ramp":
        steps = -(-args.users // args.step_users)
        args.duration = args.duration or steps * args.step_time
        shape_options += ["--shape-step-users", str(args.step_users), "--shape-step-time", str(args.step_time)]
    elif args.shape == "wave":
        args.duration = args.duration or args.blackout_at + args.blackout_length + 3 * args.backoff + 30
        shape_options += ["--shape-blackout-at", str(args.blackout_at), "--shape-blackout-length"]
        shape_options += [str(args.blackout_length), "--backoff-min", str(args.backoff)]
    else:
        args.duration = args.duration or 60
    with tempfile.TemporaryDirectory(prefix=f"shape-{args.shape}-") as tmp:
        history, stats, sampler, facts = run(args, shape_options, Path(tmp))
    print(f"locust exit {facts['exit']}, CSMS alive at the end: {facts['csms_alive']}, open fds {facts['fds']}, "
          f"Locust CPU warnings {facts['cpu_warnings']}", file=sys.stderr)  # fmt: skip
    if args.shape == "ramp":
        summary = report_ramp(args, history, sampler)
    elif args.shape == "bootstorm":
        summary = report_bootstorm(args, history, stats)
    elif args.shape == "wave":
        summary = report_wave(args, history, stats, sampler)
    else:
        summary = report_ramp(argparse.Namespace(**{**vars(args), "step_time": args.duration}), history, sampler)
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
