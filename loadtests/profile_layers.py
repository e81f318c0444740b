"""Own time of a cProfile dump by layer, built-ins charged to the layers that called them.

    uv run python -m cProfile -o demo.prof -m simulator.cli run scenarios/depot-night.yaml \
        --out /tmp/d --reproducible --quiet
    uv run python loadtests/profile_layers.py demo.prof [other.prof ...]

A built-in (``{method 'get' of 'dict' objects}``, ``isinstance``…) or generated code (a dataclass's
``__init__``) has no file of its own; its time is split over its callers in proportion to the time each
spent calling it, so "Python runtime" does not swallow a quarter of the profile. One column per dump, so a
before and an after read side by side.
"""

from __future__ import annotations

import argparse
import pstats
import sys
from typing import Any

#: Layer by the first needle found in a function's file name (order matters: first match wins).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("twin: charger firmware (simulator/station)", ("simulator/station/",)),
    ("twin: physics (simulator/twin)", ("simulator/twin/",)),
    ("twin: links, fleet, scheduler, faults",
     ("simulator/links/", "simulator/fleet", "simulator/scheduler", "simulator/faults")),
    ("twin: report, verify, plots (+ matplotlib)",
     ("simulator/report", "simulator/verify/", "simulator/plots", "simulator/outputs", "matplotlib", "PIL/")),
    ("twin: SimPy", ("site-packages/simpy/",)),
    ("embedded CSMS (simulator/embedded_*, loadmgmt)", ("simulator/embedded_", "simulator/loadmgmt")),
    ("other simulator (cli, runner, scenario)", ("simulator/",)),
    ("protocol (csms/ocpp, schemas, JSON)", ("csms/ocpp/", "fastjsonschema", "jsonschema_rs", "orjson", "<schema>")),
    ("CSMS database (SQLAlchemy, SQLite, services, store)", ("sqlalchemy", "sqlite3", "csms/services/", "csms/store/")),
    ("CSMS other (core, load management, alerts, domain)", ("csms/",)),
    ("scientific libraries (numpy, scipy)", ("numpy", "scipy")),
]  # fmt: skip
OTHER = "other (stdlib, pydantic, imports)"


def layer_of(func: tuple[str, int, str]) -> str | None:
    """None for a built-in or generated code (charged to its callers), but for fastjsonschema's validators."""
    filename, _line, name = func
    if filename == "<string>" and name.startswith("validate"):
        filename = "<schema>"
    if filename in ("~", "", "<string>"):
        return None
    for name, needles in LAYERS:
        if any(n in filename for n in needles):
            return name
    return OTHER


def by_layer(path: str) -> dict[str, float]:
    # typeshed's pstats.Stats does not declare the documented `stats` table (hence the ignore).
    table: dict[Any, Any] = pstats.Stats(path).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}

    def charge(func: Any, seconds: float, depth: int = 0) -> None:
        layer = layer_of(func)
        callers = table[func][4] if func in table else {}
        if layer is not None or not callers or depth > 4:
            out[layer or OTHER] = out.get(layer or OTHER, 0.0) + seconds
            return
        weights = {caller: stats[2] + 1e-12 for caller, stats in callers.items()}
        total = sum(weights.values())
        for caller, weight in weights.items():
            charge(caller, seconds * weight / total, depth + 1)

    for func, (_cc, _nc, tottime, _ct, _callers) in table.items():
        charge(func, tottime)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", help="cProfile dumps (-o)")
    args = parser.parse_args(argv)
    columns = [by_layer(p) for p in args.profiles]
    names = [name for name, _ in LAYERS] + [OTHER]
    print("| layer | " + " | ".join(args.profiles) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in names:
        cells = [f"{c.get(name, 0.0):.1f} s ({100 * c.get(name, 0.0) / sum(c.values()):.0f} %)" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| total own time | " + " | ".join(f"{sum(c.values()):.1f} s" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
