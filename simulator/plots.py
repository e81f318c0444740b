"""Pictures of a run: site import vs limit, power per EVSE, SoC per vehicle (PNG, matplotlib Agg)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import TightLayoutEngine

from simulator.twin.site_meter import MeterStep

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Series = dict[str, list[tuple[float, float]]]


def _natural(name: str) -> list[object]:
    """Sort "ac-2" before "ac-10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _times(start: datetime, seconds: list[float]) -> list[datetime]:
    return [start + timedelta(seconds=s) for s in seconds]


def _figure(height: float) -> tuple[Figure, Axes]:
    """A figure on the Agg canvas, as ``pyplot.subplots(figsize=(11, height))`` makes it without pyplot (its
    figure managers and interactive machinery: an import of ~0.1 s, nothing a PNG needs)."""
    fig = Figure(figsize=(11, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> None:
    """``fig.tight_layout(); fig.savefig(path, dpi=110)`` in one draw: the layout computed as ``tight_layout``
    computes it, but without leaving a layout engine on the figure, whose presence made ``savefig`` draw the
    figure twice more before the real one (one aborted draw for a renderer, one with drawing disabled; the heat
    map's image resampled each time). The same pixels: the figure's artists are laid out before the draw either
    way."""
    TightLayoutEngine().execute(fig)
    fig.savefig(path, dpi=110)


def _format_axis(ax: Axes, start: datetime) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=start.tzinfo))
    ax.grid(alpha=0.3)


def site_import(log: tuple[MeterStep, ...], start: datetime, path: Path, title: str) -> None:
    t = _times(start, [s.t_s for s in log])
    building = [s.building_kw for s in log]
    ev = [s.ev_kw for s in log]
    fig, ax = _figure(4.5)
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
    _save(fig, path)


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
    fig, ax = _figure(max(3.0, 0.16 * len(names) + 1.5))
    t0, t1 = mdates.date2num(start), mdates.date2num(start + timedelta(seconds=end_s))
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", extent=(t0, t1, len(names), 0))
    ax.set_yticks(np.arange(len(names)) + 0.5, labels=names, fontsize=6)
    ax.xaxis_date(tz=start.tzinfo)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=start.tzinfo))
    fig.colorbar(image, ax=ax, label="power [kW]")
    ax.set_title(f"{title}: power per EVSE")
    _save(fig, path)


def vehicle_soc(series: Series, targets: dict[str, float], start: datetime, path: Path, title: str) -> None:
    fig, ax = _figure(4.5)
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
    _save(fig, path)
