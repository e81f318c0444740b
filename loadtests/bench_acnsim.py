"""The same sessions through ACN-Sim and through our twin: ``scenarios/acn-depot-200`` (200 EVSEs, 18 h,
200 sessions in the shape of Caltech ACN-Data) with ACN-Sim's uncontrolled, EDF and LLF schedulers, and
through the twin in virtual time as ``sim run`` runs it (full OCPP path, embedded CSMS, the scenario's load
management). Prints wall and CPU time of each, measured in one run, one after the other.

    uv run --no-sync python loadtests/bench_acnsim.py [--acn-python /tmp/acn/bin/python] [--period 1]

acnportal is not a project dependency (0.3.3 is the last release, from 2020). Put it in a throwaway venv;
0.3.3 imports ``pkg_resources``, which setuptools 81 removed, so pin setuptools below that:

    uv venv /tmp/acn --python 3.11
    uv pip install --python /tmp/acn/bin/python acnportal==0.3.3 'setuptools<81'

then pass ``--acn-python /tmp/acn/bin/python``: this script resolves the scenario's sessions with the
project's loader (one place reads the CSV), writes them as a plain CSV (station, arrival and departure in
seconds after the start, kWh, kW) and runs its own ACN part under that interpreter (``--acn-only``), which
imports nothing of the project. Without acnportal it runs the twin only and says how to get ACN-Sim.

ACN-Sim's model of the site: one EVSE per station at the station's rated current (kW / voltage), an ideal
battery per session (capacity = the requested energy, ACN-Sim's default for ACN-Data) limited to the
session's kW, one aggregate current limit for the site's grid limit, period ``--period`` minutes (1 = the
twin's 60-s physics step).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "acn-depot-200.yaml"
ALGORITHMS = ("uncontrolled", "EDF", "LLF")
INSTALL = (
    "uv venv /tmp/acn --python 3.11 && uv pip install --python /tmp/acn/bin/python acnportal==0.3.3 'setuptools<81'"
)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the ACN-Sim part: stdlib and acnportal only, so it runs under another interpreter -----------------------
def run_acnsim(sessions_csv: Path, site_kw: float, voltage: float, evse_kw: float, period_min: float) -> list[dict]:
    """Each algorithm over the plain sessions file; wall and CPU seconds and energy delivered."""
    import warnings

    warnings.filterwarnings("ignore")  # acnportal 0.3.3 on today's numpy/pandas/setuptools warns a lot
    from acnportal import acnsim, algorithms  # type: ignore[import-not-found]  # not a project dependency

    with sessions_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    stations = sorted({r["station"] for r in rows}, key=lambda s: (len(s), s))
    algorithm_of = {
        "uncontrolled": algorithms.UncontrolledCharging,
        "EDF": lambda: algorithms.SortedSchedulingAlgo(algorithms.earliest_deadline_first),
        "LLF": lambda: algorithms.SortedSchedulingAlgo(algorithms.least_laxity_first),
    }
    results = []
    for name in ALGORITHMS:
        wall0, cpu0 = time.perf_counter(), _cpu_s()
        network = acnsim.ChargingNetwork()
        for station in stations:
            network.register_evse(acnsim.EVSE(station, max_rate=evse_kw * 1000.0 / voltage), voltage, 0)
        network.add_constraint(acnsim.Current(stations), site_kw * 1000.0 / voltage, name="site")
        events = []
        for n, r in enumerate(rows):
            arrival = int(float(r["arrival_s"]) // (period_min * 60))
            departure = int(float(r["departure_s"]) // (period_min * 60))
            kwh, kw = float(r["energy_kwh"]), float(r["max_kw"])
            battery = acnsim.Battery(kwh, 0, kw)
            ev = acnsim.EV(arrival, departure, kwh, r["station"], f"s{n}", battery)
            events.append(acnsim.PluginEvent(arrival, ev))
        start = acnsim_start()
        sim = acnsim.Simulator(
            network, algorithm_of[name](), acnsim.EventQueue(events), start, period=period_min, verbose=False
        )
        sim.run()
        wall_s, cpu_s = time.perf_counter() - wall0, _cpu_s() - cpu0
        results.append(
            {
                "algorithm": name,
                "wall_s": wall_s,
                "cpu_s": cpu_s,
                "energy_kwh": acnsim.total_energy_delivered(sim),
                "peak_kw": float(max(acnsim.aggregate_power(sim), default=0.0)),
                "requested_kwh": sum(float(r["energy_kwh"]) for r in rows),
            }
        )
    return results


def acnsim_start() -> Any:
    """ACN-Sim wants an aware start only to label its output; the schedule does not depend on it."""
    from datetime import UTC, datetime

    return datetime(2019, 5, 6, 13, 0, tzinfo=UTC)


# -- the project's part ------------------------------------------------------------------------------------
def plain_sessions(scenario_path: Path, out: Path) -> dict[str, float]:
    """Write the scenario's sessions, resolved by the project's loader, as a plain CSV; the site's figures."""
    from simulator.scenario.loader import load_scenario
    from simulator.scenario.to_twin import twin_spec
    from simulator.twin.catalogue import CATALOGUE
    from simulator.twin.specs import ReplayFleetSpec

    scenario = load_scenario(scenario_path)
    spec = twin_spec(scenario)
    ratings = {s.max_kw for s in spec.stations}
    if len(ratings) != 1 or spec.site.grid_limit_kw is None:
        raise SystemExit("expected a scenario with one station rating and a site grid_limit_kw")
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["station", "arrival_s", "departure_s", "energy_kwh", "max_kw"])
        for fleet in spec.fleets:
            if not isinstance(fleet, ReplayFleetSpec):
                raise SystemExit("expected vehicles replayed from sessions only")
            for s in fleet.sessions:
                if s.station is None:
                    raise SystemExit("expected a station for every session (ACN-Sim plugs each into its own)")
                max_kw = s.max_kw if s.max_kw is not None else CATALOGUE[fleet.model].max_ac_kw
                writer.writerow([s.station, s.arrival_s, s.departure_s, s.energy_kwh, max_kw])
    return {"site_kw": spec.site.grid_limit_kw, "voltage": spec.site.voltage, "evse_kw": ratings.pop()}


def run_twin(scenario_path: Path) -> dict[str, Any]:
    """``sim run`` in process: load, run in virtual time, build the report."""
    from simulator.report import build
    from simulator.runner import VirtualRun
    from simulator.scenario.loader import load_scenario

    wall0, cpu0 = time.perf_counter(), _cpu_s()
    record = VirtualRun(load_scenario(scenario_path), scenario_file=str(scenario_path)).run()
    report = build(record)
    tx = report["transactions"]
    return {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": _cpu_s() - cpu0,
        "energy_kwh": sum(v.energy_received_kwh for v in record.vehicles),
        "peak_kw": report["site"]["peak_import_kw"],
        "passed": report["passed"],
        "transactions": f"{tx['started']} started, {tx['lost']} lost, {tx['duplicated']} duplicated",
    }


def _acn_results(args: argparse.Namespace, plain: Path, site: dict[str, float]) -> list[dict] | None:
    acn_args = ["--site-kw", site["site_kw"], "--voltage", site["voltage"], "--evse-kw", site["evse_kw"]]
    acn_args += ["--period", args.period]
    if args.acn_python is None and importlib.util.find_spec("acnportal") is not None:
        return run_acnsim(plain, site["site_kw"], site["voltage"], site["evse_kw"], args.period)
    if args.acn_python is None:
        print(
            f"acnportal is not importable here; for ACN-Sim run:\n  {INSTALL}\n"
            "and pass --acn-python /tmp/acn/bin/python"
        )
        return None
    command = [args.acn_python, __file__, "--acn-only", str(plain), *map(str, acn_args)]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    if done.returncode != 0:
        print(f"the ACN-Sim part failed under {args.acn_python}:\n{done.stderr[-2000:]}")
        return None
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--acn-python", help="interpreter with acnportal for the ACN-Sim part (a subprocess)")
    parser.add_argument("--period", type=float, default=1.0, help="ACN-Sim period in minutes")
    parser.add_argument("--no-twin", action="store_true", help="run ACN-Sim only")
    parser.add_argument("--acn-only", type=Path, metavar="PLAIN_CSV", help=argparse.SUPPRESS)
    parser.add_argument("--site-kw", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--voltage", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--evse-kw", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.acn_only is not None:  # the subprocess: print the results as one JSON line
        print(json.dumps(run_acnsim(args.acn_only, args.site_kw, args.voltage, args.evse_kw, args.period)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "sessions.csv"
        site = plain_sessions(args.scenario, plain)
        acn = _acn_results(args, plain, site)
    print(f"scenario {args.scenario.name}: site limit {site['site_kw']:g} kW, EVSEs of {site['evse_kw']:g} kW")
    print(f"{'simulator':<36} {'wall s':>8} {'CPU s':>8} {'energy kWh':>11} {'peak kW':>8}")
    for row in acn or []:
        label = f"ACN-Sim {row['algorithm']} (period {args.period:g} min)"
        figures = f"{row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} {row['energy_kwh']:>11.1f} {row['peak_kw']:>8.1f}"
        print(f"{label:<36} {figures}")
    if not args.no_twin:
        twin = run_twin(args.scenario)
        label = "chargetwin (sim run, virtual time)"
        figures = f"{twin['wall_s']:>8.2f} {twin['cpu_s']:>8.2f} {twin['energy_kwh']:>11.1f} {twin['peak_kw']:>8.1f}"
        print(f"{label:<36} {figures}")
        print(f"twin checks {'passed' if twin['passed'] else 'FAILED'}; transactions {twin['transactions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
