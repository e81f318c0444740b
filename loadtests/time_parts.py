"""CPU time of named parts of a run, inclusive, without a profiler's per-call cost.

cProfile charges every Python call a fixed overhead (code of many small calls looks several times heavier than
it is) and a sampling profile misses C time; this wraps only the functions named and adds up
``time.process_time()`` around each call. A part called inside another is counted in both (inclusive), and each
wrapped call costs ~0.5 µs, so wrap a handful of parts, not small ones called millions of times.

    uv run python loadtests/time_parts.py -m simulator.cli run scenarios/depot-night.yaml --reproducible \
        --quiet --out /tmp/d
    uv run python loadtests/time_parts.py --part csms.loadmgmt.planner:Planner.replan -m simulator.cli run ...

Without ``--part`` it times the embedded CSMS's per-call and per-commit path (:data:`DEMO_PARTS`). Prints, at
exit, each part's seconds, calls and µs per call, and the process's CPU.
"""

from __future__ import annotations

import atexit
import collections
import importlib
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

#: module:qualified name of the parts timed by default.
DEMO_PARTS = [
    "csms.core.host:CsmsHost._commit",
    "csms.core.processor:BatchProcessor.process",
    "csms.core.processor:BatchProcessor._write_batches",
    "csms.core.session:StationSession.handle",
    "csms.core.host:CsmsHost._committed",
    "csms.core.host:CsmsHost.receive",
    "csms.core.host:CsmsHost.call",
    "csms.ocpp.rpc:RpcEndpoint.receive_frame",
    "csms.ocpp.rpc:RpcEndpoint.send_call",
    "csms.core.plugins.alerts:AlertMonitor.committed",
    "csms.core.plugins.load_management:LoadManagement.committed",
    "csms.core.plugins.load_management:LoadManagement.site_reading",
    "csms.loadmgmt.planner:Planner.replan",
    "simulator.loadmgmt:record_reading",
]

seconds: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def wrap(part: str) -> None:
    """Replace ``module:Qual.name`` by a timing wrapper (where it is looked up at call time: a module's function
    imported elsewhere with ``from … import`` keeps its old binding there)."""
    module_name, qualified = part.split(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualified.split(".")
    for attribute in path:
        owner = getattr(owner, attribute)
    function: Callable[..., Any] = getattr(owner, name)
    clock = time.process_time

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[part] += clock() - start
            calls[part] += 1

    setattr(owner, name, timed)


def report() -> None:
    print(f"process CPU {time.process_time():.2f} s", file=sys.stderr)
    for part, total in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"{total:8.3f} s {calls[part]:9,d} calls {1e6 * total / calls[part]:9.1f} µs  {part}", file=sys.stderr)


def main(argv: list[str]) -> int:
    parts: list[str] = []
    while argv and argv[0] == "--part":
        parts.append(argv[1])
        argv = argv[2:]
    if len(argv) < 2 or argv[0] != "-m":
        print(__doc__)
        return 2
    for part in parts or DEMO_PARTS:
        wrap(part)
    atexit.register(report)
    sys.argv = [argv[1], *argv[2:]]
    try:
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
