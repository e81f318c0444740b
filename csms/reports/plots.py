"""Report pictures (PNG bytes, matplotlib Agg): energy and revenue per day, and port occupancy by hour of the
week."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _pyplot() -> Any:
    import matplotlib  # ~0.5 s to import: only when a picture is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def per_day(rows: Sequence[Mapping[str, Any]], column: str, label: str, title: str, color: str = "#2b8a3e") -> bytes:
    """A bar per day of ``rows`` (the usage report by day): ``column`` against the day."""
    plt = _pyplot()
    days = [str(r["day"]) for r in rows]
    values = [float(r.get(column) or 0) for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(days) + 2), 4))
    ax.bar(range(len(days)), values, color=color)
    step = max(1, len(days) // 15)
    ax.set_xticks(range(0, len(days), step), [d[5:] for d in days[::step]], rotation=45, ha="right")
    ax.set_ylabel(label)
    ax.set_title(f"{title} — total {sum(values):,.1f} {label}")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def occupancy_heatmap(matrix: Sequence[Sequence[float]], title: str) -> bytes:
    """Weekday × hour shares of ports occupied (0–1), from :func:`csms.services.usage_reports.occupancy_by_hour`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.6))
    image = ax.imshow([[100 * v for v in row] for row in matrix], aspect="auto", cmap="YlGn", vmin=0, vmax=100)
    ax.set_yticks(range(7), list(WEEKDAYS))
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)])
    ax.set_xlabel("hour of day (local)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="ports occupied [%]")
    return _png(fig)
