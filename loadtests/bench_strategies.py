"""Each load-management strategy on the shipped scenarios (virtual time): violations, delivered / offline
optimum, wall time.  ``uv run --no-sync python loadtests/bench_strategies.py [--strategies a,b] [scenario …]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["depot-night", "multifamily-peak", "phase-imbalance"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenarios", nargs="*", default=DEFAULT)
    parser.add_argument("--strategies", default="none,equal_share,deadline,optimal")
    args = parser.parse_args()
    print(
        "| scenario | strategy | violation min | phase violation min | delivered / optimum "
        "| profiles failed / rejected | checks | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.scenarios:
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        for strategy in args.strategies.split(","):
            started = time.perf_counter()
            data = report.build(VirtualRun(scenario, strategy=strategy).run())
            wall = time.perf_counter() - started
            phases = data["site"].get("phases") or {}
            lm = data["load_management"]
            failed = [c["name"] for c in data["checks"] if not c["passed"]]
            checks = "all pass" if not failed else "failed: " + ", ".join(failed)
            print(
                f"| {name} | {strategy} | {data['site']['violation_minutes']} | "
                f"{phases.get('violation_minutes', '-')} | {data['energy']['optimum_fraction']} | "
                f"{lm['profiles_failed']} / {lm.get('profiles_rejected', '-')} | {checks} | {wall:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
