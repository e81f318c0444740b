"""What ``sim run`` writes, in either clock: ``report.json`` and the plots.

The plots of the simulation's series (site import, power per EVSE) can be drawn as soon as the simulation ends,
before its record is built; the state-of-charge plot needs the record's vehicle targets. A
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
    plotter = InlinePlotter()
    draw_simulation(plotter, rec.meter_log, sampler, step_s, scenario, out_dir)
    return write_report(rec, out_dir, reproducible=reproducible, sampler=sampler, scenario=scenario, plotter=plotter)


def draw_simulation(
    plotter: Plotter,
    meter_log: tuple[MeterStep, ...],
    sampler: Sampler | None,
    step_s: float,
    scenario: Scenario,
    out_dir: Path,
) -> None:
    """The plots of the simulation's own series: site import vs limit, power per EVSE."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = scenario.name
    plotter.draw("site_import", meter_log, scenario.start, out_dir / "site_import.png", title)
    if sampler is not None:
        duration = float(scenario.duration)
        plotter.draw("evse_power", sampler.evse_kw, scenario.start, step_s, duration, out_dir / "evse_power.png", title)


def write_report(
    rec: report.RunRecord,
    out_dir: Path,
    *,
    reproducible: bool,
    sampler: Sampler | None,
    scenario: Scenario,
    plotter: Plotter,
) -> dict[str, Any]:
    """``report.json`` and the state-of-charge plot (green where a vehicle reached its target); returns the
    report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if sampler is not None:
        targets = {v.vehicle_id: v.target_soc for v in rec.vehicles}
        plotter.draw("vehicle_soc", sampler.soc, targets, scenario.start, out_dir / "vehicle_soc.png", scenario.name)
    rec.reproducible = reproducible
    data = report.build(rec)
    report.write(data, out_dir)
    return data
