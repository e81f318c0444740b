"""Allocation time per re-plan, per strategy and site size: ``uv run python loadtests/bench_allocation.py``.

Prints milliseconds per re-plan (median of ``--repeat`` runs) for 10, 100 and 1,000 EVSEs on the example
depot (``csms.loadmgmt.examples.depot``), and each size's ratio to the 10-EVSE time. Compare ratios; do
not gate on absolute numbers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from csms.loadmgmt.examples import depot
from csms.loadmgmt.strategies import STRATEGIES

NOW = 1_800_000_000.0


def measure(name: str, size: int, repeat: int) -> float:
    state = depot(size, random.Random(size))
    strategy = STRATEGIES[name]
    assert strategy is not None
    strategy(state, NOW)  # warm caches (compiled tree, imports)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        strategy(state, NOW)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    names = [n for n, fn in STRATEGIES.items() if fn is not None]
    header = f"{'strategy':<12}" + "".join(f"{str(s) + ' EVSEs':>14}" for s in args.sizes) + "   ratio (vs smallest)"
    print("ms per re-plan (median)")
    print(header)
    for name in names:
        row = [measure(name, size, args.repeat) for size in args.sizes]
        ratios = " / ".join(f"{v / row[0]:.0f}x" for v in row)
        print(f"{name:<12}" + "".join(f"{v:>14.2f}" for v in row) + f"   {ratios}")


if __name__ == "__main__":
    main()
