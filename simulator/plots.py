"""Pictures of a run: site import vs limit, power per EVSE, SoC per vehicle (PNG, matplotlib Agg)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from simulator.twin.site_meter import MeterStep

Series = dict[str, list[tuple[float, float]]]


def _natural(name: str) -> list[object]:
    """Sort "ac-2" before "ac-10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _times(start: datetime, seconds: list[float]) -> list[datetime]:
    return [start + timedelta(seconds=s) for s in seconds]


def _format_axis(ax: plt.Axes, start: datetime) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=start.tzinfo))
    ax.grid(alpha=0.3)


def site_import(log: tuple[MeterStep, ...], start: datetime, path: Path, title: str) -> None:
    t = _times(start, [s.t_s for s in log])
    building = [s.building_kw for s in log]
    ev = [s.ev_kw for s in log]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    # matplotlib plots datetimes through its unit converters; its stubs list only numeric arrays (here and below).
    ax.stackplot(
        t,  # type: ignore[arg-type]
        building,
        ev,
        labels=["building", "EV charging"],
        colors=["#9aa5b1", "#2b8a3e"],
        step="post",
    )
    limit = log[0].limit_kw if log else None
    if limit is not None:
        ax.axhline(limit, color="#c92a2a", lw=2, label=f"grid limit {limit:g} kW")
        over = np.array([s.import_kw > limit for s in log])
        if over.any():
            ax.fill_between(
                t,  # type: ignore[arg-type]
                limit,
                [s.import_kw for s in log],
                where=over,
                step="post",
                color="#ff8787",
                alpha=0.6,
                label="above limit",
            )
    ax.set_ylabel("grid import [kW]")
    ax.set_title(f"{title}: site import vs limit")
    ax.legend(loc="upper right")
    _format_axis(ax, start)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evse_power(series: Series, start: datetime, step_s: float, end_s: float, path: Path, title: str) -> None:
    """A heat map: one row per EVSE, colour = power; readable for hundreds of EVSEs. Each point of a series
    holds until the next one (the sampler keeps only changes)."""
    names = sorted(series, key=_natural)
    columns = max(1, int(end_s // step_s))
    grid = np.zeros((len(names), columns))
    for row, name in enumerate(names):
        points = series[name]
        for (t_s, kw), (t_next, _) in zip(points, [*points[1:], (end_s, 0.0)], strict=True):
            first, stop = max(0, int(t_s // step_s)), min(columns, int(t_next // step_s))
            grid[row, first:stop] = kw
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.16 * len(names) + 1.5)))
    t0, t1 = mdates.date2num(start), mdates.date2num(start + timedelta(seconds=end_s))
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", extent=(t0, t1, len(names), 0))
    ax.set_yticks(np.arange(len(names)) + 0.5, labels=names, fontsize=6)
    ax.xaxis_date(tz=start.tzinfo)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=start.tzinfo))
    fig.colorbar(image, ax=ax, label="power [kW]")
    ax.set_title(f"{title}: power per EVSE")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def vehicle_soc(series: Series, targets: dict[str, float], start: datetime, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name in sorted(series):
        points = series[name]
        if not points:
            continue
        reached = points[-1][1] >= targets.get(name, 1.0) - 1e-9
        ax.plot(
            _times(start, [p[0] for p in points]),  # type: ignore[arg-type]
            [100 * p[1] for p in points],
            lw=1,
            color="#2b8a3e" if reached else "#e8590c",
            alpha=0.8,
        )
    ax.set_ylabel("state of charge [%]")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title}: SoC per vehicle (green: reached target, orange: did not)")
    _format_axis(ax, start)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
