"""Charging curves: state of charge → fraction of a vehicle's peak battery power.

A curve is piecewise linear through ``(soc, fraction)`` points from SoC 0.0 to 1.0. Real batteries accept
their peak power over a middle band and taper towards full; the invariant checked here is that, from the
peak onwards, the fraction never increases. The AC onboard charger usually limits power below the battery's
own limit, so AC charging looks flat until the battery limit drops below it near full (see ``vehicle.py``).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["CURVES", "FLAT", "TaperCurve"]


@dataclass(frozen=True)
class TaperCurve:
    """Piecewise-linear SoC → power fraction.

    Args:
        points: ``(soc, fraction)`` pairs, SoC strictly increasing from 0.0 to 1.0, fractions in [0, 1],
            non-increasing from the (first) peak onwards.

    Raises:
        ValueError: if the points break one of those rules.
    """

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        pts = tuple((float(s), float(f)) for s, f in self.points)
        object.__setattr__(self, "points", pts)
        if len(pts) < 2:
            raise ValueError("a taper curve needs at least two points")
        socs = [s for s, _ in pts]
        if socs[0] != 0.0 or socs[-1] != 1.0:
            raise ValueError("a taper curve must start at SoC 0.0 and end at SoC 1.0")
        if any(b <= a for a, b in itertools.pairwise(socs)):
            raise ValueError("taper curve SoC values must be strictly increasing")
        fractions = [f for _, f in pts]
        if any(not 0.0 <= f <= 1.0 for f in fractions):
            raise ValueError("taper curve fractions must be within [0, 1]")
        peak = fractions.index(max(fractions))
        tail = fractions[peak:]
        if any(b > a for a, b in itertools.pairwise(tail)):
            raise ValueError("taper curve must be non-increasing from its peak to SoC 1.0")

    def fraction(self, soc: float) -> float:
        """Power fraction at ``soc`` (clipped to [0, 1])."""
        soc = min(max(soc, 0.0), 1.0)
        pts = self.points
        i = bisect_right([s for s, _ in pts], soc)
        if i >= len(pts):
            return pts[-1][1]
        (s0, f0), (s1, f1) = pts[i - 1], pts[i]
        return f0 + (f1 - f0) * (soc - s0) / (s1 - s0)


FLAT = TaperCurve(((0.0, 1.0), (1.0, 1.0)))

# One curve per catalogue model (see catalogue.py). Shapes follow published DC charging curves of typical
# vehicles of each class, simplified to a handful of points.
CURVES: dict[str, TaperCurve] = {
    "city-52": TaperCurve(((0.0, 1.0), (0.8, 1.0), (0.9, 0.6), (1.0, 0.15))),
    "hatch-40": TaperCurve(((0.0, 1.0), (0.55, 1.0), (0.8, 0.5), (0.9, 0.3), (1.0, 0.1))),
    "compact-58": TaperCurve(((0.0, 0.9), (0.1, 1.0), (0.35, 1.0), (0.55, 0.7), (0.8, 0.4), (0.9, 0.25), (1.0, 0.05))),
    "midsize-80": TaperCurve(((0.0, 0.95), (0.1, 1.0), (0.4, 1.0), (0.6, 0.7), (0.8, 0.4), (1.0, 0.05))),
    "sedan-75": TaperCurve(((0.0, 0.9), (0.1, 1.0), (0.3, 1.0), (0.5, 0.65), (0.8, 0.3), (0.9, 0.18), (1.0, 0.04))),
    "suv-95": TaperCurve(((0.0, 1.0), (0.5, 1.0), (0.7, 0.75), (0.85, 0.45), (1.0, 0.03))),
    "van-68": TaperCurve(((0.0, 1.0), (0.6, 1.0), (0.8, 0.55), (0.9, 0.3), (1.0, 0.05))),
}
