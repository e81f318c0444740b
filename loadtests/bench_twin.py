"""Speed of the twin in virtual time: depot-night scaled to N chargers (a quarter DC on 2.0.1, the rest AC on
1.6, one vehicle per charger) over 13 h with meter values every 60 s, through the full protocol path and the
embedded CSMS on in-memory SQLite.

    uv run python loadtests/bench_twin.py --chargers 200 [--hours 13] [--profile]

Prints simulated charger-seconds per wall second and, with --profile, where the time goes by layer.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

from csms.ocpp.versions import OCPP16, OCPP201
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario
from simulator.scenario.models import ChargerGroup

DEPOT = Path(__file__).parents[1] / "scenarios" / "depot-night.yaml"

#: Where a function's own time is charged, by the path of its module.
LAYERS = [
    ("CSMS store (SQLAlchemy + SQLite)", ("sqlalchemy", "sqlite3", "csms/store", "csms/services")),
    ("protocol (JSON, schema validation, RPC)", ("orjson", "fastjsonschema", "<string>", "csms/ocpp", "json")),
    ("CSMS session and batch processor", ("csms/core",)),
    ("charger firmware model", ("simulator/station",)),
    ("twin physics", ("simulator/twin",)),
    ("links and runner", ("simulator/links", "simulator/runner", "simulator/embedded_csms")),
    ("SimPy event loop", ("simpy",)),
]


def scaled_scenario(chargers: int, hours: float):
    base = load_scenario(DEPOT)
    dc = max(1, chargers // 4)
    groups = [
        ChargerGroup(prefix="ac", count=chargers - dc, ocpp=OCPP16, vendor="Alfen", model="Eve", max_kw=22),
        ChargerGroup(prefix="dc", count=dc, ocpp=OCPP201, vendor="Kempower", model="S", max_kw=150),
    ]
    vehicles = [base.vehicles[0].model_copy(update={"count": chargers})]
    limit = (base.site.grid_limit_kw or 400) * chargers / 40
    site = base.site.model_copy(update={"grid_limit_kw": limit})
    return base.model_copy(
        update={"chargers": groups, "vehicles": vehicles, "site": site, "duration": hours * 3600, "faults": []}
    )


def layer_of(filename: str) -> str:
    for name, needles in LAYERS:
        if any(n in filename for n in needles):
            return name
    return "other (Python runtime)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--hours", type=float, default=13.0)
    parser.add_argument("--profile", action="store_true", help="profile and break the time down by layer")
    args = parser.parse_args(argv)

    scenario = scaled_scenario(args.chargers, args.hours)
    run = VirtualRun(scenario, scenario_file=f"{DEPOT} scaled to {args.chargers}")
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    record = run.run()
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - started
    report = build(record)
    charger_seconds = args.chargers * scenario.duration
    frames = report["frames"]["charger_to_csms"] + report["frames"]["csms_to_charger"]
    print(f"chargers                       {args.chargers}")
    print(f"simulated                      {args.hours:g} h")
    print(f"wall                           {wall:.1f} s{' (profiled)' if profiler else ''}")
    print(f"charger-seconds per wall s     {charger_seconds / wall:,.0f}")
    print(f"speed-up over real time        {scenario.duration / wall:,.0f}x")
    print(f"frames (both directions)       {frames:,} ({frames / wall:,.0f}/s)")
    print(
        f"transactions                   {report['transactions']['started']} started, "
        f"{report['transactions']['lost']} lost, {report['transactions']['duplicated']} duplicated"
    )
    if profiler:
        stats = pstats.Stats(profiler)
        by_layer: dict[str, float] = {}
        total = 0.0
        # typeshed's pstats.Stats does not declare the documented `stats` table (hence the ignore).
        for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            by_layer[layer_of(filename)] = by_layer.get(layer_of(filename), 0.0) + tottime
            total += tottime
        print("\nwhere the time goes (own time by layer):")
        for name, seconds in sorted(by_layer.items(), key=lambda kv: -kv[1]):
            print(f"  {100 * seconds / total:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
