"""The site's grid connection: building load, EV load, the import limit and the ground-truth import log.

Each logged step holds the *average* power over that step (energy / duration), so energy-based figures
(violation kWh, imported kWh) are exact; the time resolution of the ground truth is the physics step.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["BuildingLoad", "MeterStep", "SiteMeter", "ViolationSummary"]

# Tolerance for "above the limit", so float noise in a sum of exactly-limited chargers is not a violation.
LIMIT_TOLERANCE_KW = 1e-6
LIMIT_TOLERANCE_A = 1e-6


@dataclass(frozen=True)
class BuildingLoad:
    """Non-EV load: a daily profile (or a constant) plus gaussian noise.

    Args:
        profile: ``(hour_of_day, kw)`` points, hour in [0, 24), interpolated linearly and cyclically over
            the day. One point means a constant.
        noise_kw: standard deviation of the per-step gaussian noise; samples are clipped at 0.
    """

    profile: tuple[tuple[float, float], ...]
    noise_kw: float = 0.0

    def __post_init__(self) -> None:
        if not self.profile:
            raise ValueError("a building load profile needs at least one point")
        hours = [h for h, _ in self.profile]
        if any(b <= a for a, b in itertools.pairwise(hours)) or not 0 <= hours[0] <= hours[-1] < 24:
            raise ValueError("profile hours must be strictly increasing within [0, 24)")
        if self.noise_kw < 0:
            raise ValueError("noise_kw must not be negative")

    @classmethod
    def constant(cls, kw: float, noise_kw: float = 0.0) -> BuildingLoad:
        return cls(((0.0, kw),), noise_kw)

    def base_kw(self, hour_of_day: float) -> float:
        """Profile value at ``hour_of_day`` (wrapping at 24 h)."""
        pts = self.profile
        if len(pts) == 1:
            return pts[0][1]
        h = hour_of_day % 24.0
        i = bisect_right([p[0] for p in pts], h)
        h0, kw0 = pts[i - 1] if i > 0 else (pts[-1][0] - 24.0, pts[-1][1])
        h1, kw1 = pts[i] if i < len(pts) else (pts[0][0] + 24.0, pts[0][1])
        return kw0 + (kw1 - kw0) * (h - h0) / (h1 - h0)

    def sample_kw(self, hour_of_day: float, rng: random.Random) -> float:
        """One noisy sample; draws from ``rng`` only when there is noise."""
        base = self.base_kw(hour_of_day)
        if self.noise_kw == 0:
            return max(base, 0.0)
        return max(base + rng.gauss(0.0, self.noise_kw), 0.0)


@dataclass(frozen=True)
class MeterStep:
    """Ground truth for one step ``[t_s, t_s + duration_s)``; powers are step averages."""

    t_s: float
    duration_s: float
    building_kw: float
    ev_kw: float
    import_kw: float
    limit_kw: float | None
    #: Per-phase import (A, step average; building balanced over three phases) and the per-phase limit.
    phase_import_a: tuple[float, float, float] | None = None
    phase_limits_a: tuple[float, float, float] | None = None

    @property
    def above_phase_limit_a(self) -> float:
        """The most any phase is above its limit (A; 0 when none is or there is no per-phase limit)."""
        if self.phase_import_a is None or self.phase_limits_a is None:
            return 0.0
        worst = max(a - lim for a, lim in zip(self.phase_import_a, self.phase_limits_a, strict=True))
        return worst if worst > LIMIT_TOLERANCE_A else 0.0

    @property
    def above_limit_kw(self) -> float:
        if self.limit_kw is None:
            return 0.0
        excess = self.import_kw - self.limit_kw
        return excess if excess > LIMIT_TOLERANCE_KW else 0.0


@dataclass(frozen=True)
class ViolationSummary:
    steps_above_limit: int
    minutes_above_limit: float
    violation_kwh: float
    peak_import_kw: float
    import_kwh: float
    ev_kwh: float


class SiteMeter:
    """Accumulates the ground-truth log of grid import and accounts for limit violations."""

    def __init__(self, grid_limit_kw: float | None, phase_limits_a: tuple[float, float, float] | None = None) -> None:
        self.grid_limit_kw = grid_limit_kw
        self.phase_limits_a = phase_limits_a
        self._log: list[MeterStep] = []

    @property
    def log(self) -> tuple[MeterStep, ...]:
        return tuple(self._log)

    def record(
        self,
        t_s: float,
        duration_s: float,
        building_kw: float,
        ev_kw: float,
        phase_import_a: tuple[float, float, float] | None = None,
    ) -> MeterStep:
        """Log one step and return its record."""
        step = MeterStep(
            t_s,
            duration_s,
            building_kw,
            ev_kw,
            building_kw + ev_kw,
            self.grid_limit_kw,
            phase_import_a,
            self.phase_limits_a,
        )
        self._log.append(step)
        return step

    def summary(self) -> ViolationSummary:
        above = [s for s in self._log if s.above_limit_kw > 0]
        return ViolationSummary(
            steps_above_limit=len(above),
            minutes_above_limit=sum(s.duration_s for s in above) / 60.0,
            violation_kwh=sum(s.above_limit_kw * s.duration_s for s in above) / 3600.0,
            peak_import_kw=max((s.import_kw for s in self._log), default=0.0),
            import_kwh=sum(s.import_kw * s.duration_s for s in self._log) / 3600.0,
            ev_kwh=sum(s.ev_kw * s.duration_s for s in self._log) / 3600.0,
        )
