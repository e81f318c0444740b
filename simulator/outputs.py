"""What ``sim run`` writes, in either clock: ``report.json`` and the plots.

The plots need only the simulation's series (site import, power per EVSE, state of charge against each
vehicle's target), so a virtual run draws them as soon as its simulation ends, before its record is built; a
:class:`~simulator.plot_process.Plotter` draws them here or in a forked process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator import report
from simulator.fleet import Sampler
from simulator.plot_process import InlinePlotter, Plotter
from simulator.scenario.models import Scenario
from simulator.twin.site_meter import MeterStep


def write_outputs(
    rec: report.RunRecord,
    out_dir: Path,
    *,
    reproducible: bool,
    sampler: Sampler | None,
    step_s: float,
    scenario: Scenario,
) -> dict[str, Any]:
    """Write the report and the plots into ``out_dir``, here; returns the report."""
    targets = {v.vehicle_id: v.target_soc for v in rec.vehicles}
    draw_plots(InlinePlotter(), rec.meter_log, sampler, targets, step_s, scenario, out_dir)
    return write_report(rec, out_dir, reproducible=reproducible)


def draw_plots(
    plotter: Plotter,
    meter_log: tuple[MeterStep, ...],
    sampler: Sampler | None,
    targets: dict[str, float],
    step_s: float,
    scenario: Scenario,
    out_dir: Path,
) -> None:
    """Site import vs limit; with the fleet's samples, power per EVSE and SoC per vehicle (``targets``: each
    vehicle's target SoC, green when reached)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start, title = scenario.start, scenario.name
    plotter.draw("site_import", meter_log, start, out_dir / "site_import.png", title)
    if sampler is not None:
        duration = float(scenario.duration)
        plotter.draw("evse_power", sampler.evse_kw, start, step_s, duration, out_dir / "evse_power.png", title)
        plotter.draw("vehicle_soc", sampler.soc, targets, start, out_dir / "vehicle_soc.png", title)


def write_report(rec: report.RunRecord, out_dir: Path, *, reproducible: bool) -> dict[str, Any]:
    """``report.json``; returns the report."""
    rec.reproducible = reproducible
    data = report.build(rec)
    report.write(data, out_dir)
    return data
