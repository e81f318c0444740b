"""What ``sim run`` writes, in either clock: ``report.json`` and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator import plots, report
from simulator.fleet import Sampler
from simulator.scenario.models import Scenario


def write_outputs(
    rec: report.RunRecord,
    out_dir: Path,
    *,
    reproducible: bool,
    sampler: Sampler | None,
    step_s: float,
    scenario: Scenario,
) -> dict[str, Any]:
    """Write the report and the plots into ``out_dir``; returns the report."""
    rec.reproducible = reproducible
    data = report.build(rec)
    report.write(data, out_dir)
    title = scenario.name
    plots.site_import(rec.meter_log, scenario.start, out_dir / "site_import.png", title)
    if sampler is not None:
        plots.evse_power(
            sampler.evse_kw, scenario.start, step_s, float(scenario.duration), out_dir / "evse_power.png", title
        )
        targets = {v.vehicle_id: v.target_soc for v in rec.vehicles}
        plots.vehicle_soc(sampler.soc, targets, scenario.start, out_dir / "vehicle_soc.png", title)
    return data
