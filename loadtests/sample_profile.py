"""Where a run's CPU goes, by sampling: the innermost Python frame every 2 ms of CPU time (``ITIMER_PROF``).

cProfile charges every Python call a fixed overhead, so code made of many small calls (the twin's firmware,
SimPy) looks several times heavier than it is. Sampling does not slow the calls it measures. Its bias runs
the other way: a signal is handled between bytecodes, and timer expiries during one long C call (an SQLite
statement) are delivered as one, so C-heavy layers are undercounted (the samples' CPU falls short of the
process's; compare it with ``/usr/bin/time``).

    uv run python loadtests/sample_profile.py /tmp/twin.samples loadtests/bench_twin.py --chargers 200
    uv run python loadtests/sample_profile.py /tmp/demo.samples -m simulator.cli run scenarios/depot-night.yaml \
        --out /tmp/d --reproducible --quiet
    uv run python loadtests/sample_profile.py --report /tmp/twin.samples [more.samples ...]

A built-in has no frame of its own, so its time goes to the Python function that called it, as
``profile_layers.py`` does for cProfile dumps (and with the same layers).
"""

from __future__ import annotations

import collections
import pickle
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType

from profile_layers import LAYERS, OTHER

INTERVAL_S = 0.002
Key = tuple[str, str]


def layer_of(filename: str) -> str:
    for name, needles in LAYERS:
        if any(n in filename for n in needles):
            return name
    return OTHER


def record(out: Path, argv: list[str]) -> None:
    own: collections.Counter[Key] = collections.Counter()
    inclusive: collections.Counter[Key] = collections.Counter()

    def sample(_signum: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        own[frame.f_code.co_filename, frame.f_code.co_name] += 1
        seen: set[Key] = set()
        while frame is not None:
            key = (frame.f_code.co_filename, frame.f_code.co_name)
            if key not in seen:  # a recursive function counts once per sample
                seen.add(key)
                inclusive[key] += 1
            frame = frame.f_back

    sys.argv = argv[1:] if argv[0] == "-m" else argv
    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, INTERVAL_S, INTERVAL_S)
    try:
        if argv[0] == "-m":
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit:
        pass
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        out.write_bytes(pickle.dumps((own, inclusive)))


def report(paths: list[Path], top: int = 25) -> None:
    for path in paths:
        own, inclusive = pickle.loads(path.read_bytes())
        total = sum(own.values())
        by_layer: collections.Counter[str] = collections.Counter()
        for (filename, _name), count in own.items():
            by_layer[layer_of(filename)] += count
        print(f"{path}: {total:,} samples ({total * INTERVAL_S:.0f} s of CPU)")
        for name, count in by_layer.most_common():
            print(f"  {100 * count / total:5.1f} %  {name}")
        print("  own time, the simulator's and SimPy's functions:")
        twin = [(k, c) for k, c in own.most_common() if "simulator/" in k[0] or "/simpy/" in k[0]]
        for (filename, name), count in twin[:top]:
            print(f"  {100 * count / total:5.2f} %  {'/'.join(filename.rsplit('/', 2)[-2:])}:{name}")
        print("  inclusive, the simulator's functions:")
        for (filename, name), count in [(k, c) for k, c in inclusive.most_common() if "simulator/" in k[0]][:top]:
            print(f"  {100 * count / total:5.2f} %  {'/'.join(filename.rsplit('/', 2)[-2:])}:{name}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] == "--report":
        report([Path(p) for p in argv[1:]])
        return 0
    record(Path(argv[0]), argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
