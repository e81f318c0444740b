"""The offline optimum: the most energy any scheduler could have delivered with perfect foresight.

Given the sessions the twin actually produced (plug-in, departure, energy needed to reach the target, the
most power the EVSE and the car allow together, the site phases it loads) and the site's limit per step
(the grid limit minus the ground-truth building load, in kW and/or per phase), a linear program
(scipy ``linprog``, HiGHS) chooses the energy ``e[s, t]`` of each session in each step:

    maximise   Σ e[s, t]
    subject to 0 <= e[s, t] <= max_kw[s] × (hours of step t the session is plugged in)
               Σ_t e[s, t] <= needed[s]
               Σ_s e[s, t] <= limit_kw[t] × hours(t)                       (kW limit, step average)
               Σ_{s on phase p} e[s, t] × 1000 / (phases[s] × V) <= limit_a[t, p] × hours(t)

Step averages match the twin's ground truth, which meters each step's average power. The twin's run is
then judged as ``delivered / optimum`` beside fairness (the lowest served fraction) — the same limits,
no foresight.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from simulator.twin.records import SessionRecord

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["LimitStep", "OptimumResult", "limits_from_meter_log", "offline_optimum", "run_metrics"]


@dataclass(frozen=True)
class LimitStep:
    """What the EVs may draw during ``[start_s, end_s)``: the grid limit minus the building load."""

    start_s: float
    end_s: float
    limit_kw: float | None = None
    phase_limits_a: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class OptimumResult:
    optimum_kwh: float
    #: Energy per session in the optimum (kWh) and its share of what the session needed.
    energy_kwh: Mapping[str, float] = field(default_factory=dict)
    served: Mapping[str, float] = field(default_factory=dict)

    def fraction(self, delivered_kwh: float) -> float:
        """The run's delivered energy as a fraction of the optimum (1.0 when nothing was possible)."""
        return 1.0 if self.optimum_kwh <= 1e-9 else delivered_kwh / self.optimum_kwh


class Constraints:
    """The rows of ``A_ub @ e <= b_ub``, added one at a time as sparse (column, coefficient) terms."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.rhs: list[float] = []

    def add(self, terms: Iterable[tuple[int, float]], bound: float) -> None:
        row = len(self.rhs)
        for col, val in terms:
            self.rows.append(row)
            self.cols.append(col)
            self.vals.append(val)
        self.rhs.append(bound)

    def matrix(self, width: int) -> sparse.csr_matrix:
        from scipy import sparse

        return sparse.csr_matrix((self.vals, (self.rows, self.cols)), shape=(len(self.rhs), width))


def _checked_steps(sessions: Sequence[SessionRecord], steps: Sequence[LimitStep]) -> list[LimitStep]:
    """The steps in time order, after checking that they do not overlap and that every session is sane."""
    ordered = sorted(steps, key=lambda s: s.start_s)
    for earlier, later in itertools.pairwise(ordered):
        if later.start_s < earlier.end_s - 1e-9:
            raise ValueError(f"limit steps overlap at {later.start_s} s")
    for s in sessions:
        if s.energy_needed_kwh < 0 or s.max_kw < 0 or s.departure_s < s.plug_in_s:
            raise ValueError(f"session {s.id}: need, power and stay must be >= 0")
    return ordered


def step_limits(
    limits: Constraints, step: LimitStep, cells: list[int], sessions: Sequence[SessionRecord], width: int
) -> None:
    """The rows of one limit step over its time cells: the kW limit, then one row per loaded phase."""
    step_h = (step.end_s - step.start_s) / 3600.0
    if step.limit_kw is not None:
        terms = ((i * width + k, 1.0) for i in range(len(sessions)) for k in cells)
        limits.add(terms, max(step.limit_kw, 0.0) * step_h)
    if step.phase_limits_a is not None:
        for p in range(3):
            members = [i for i, s in enumerate(sessions) if p in s.phases]
            if not members:
                continue
            amps_per_kwh = {i: 1000.0 / (len(sessions[i].phases) * sessions[i].voltage) for i in members}
            terms = ((i * width + k, amps_per_kwh[i]) for i in members for k in cells)
            limits.add(terms, max(step.phase_limits_a[p], 0.0) * step_h)


def offline_optimum(sessions: Sequence[SessionRecord], steps: Sequence[LimitStep]) -> OptimumResult:
    """Solve the LP above. Steps must not overlap; time outside every step is unconstrained by the site.

    Raises:
        ValueError: overlapping steps or a session with negative need/power.
        RuntimeError: HiGHS failed (it does not for this always-feasible LP: e = 0 is feasible).
    """
    # SciPy's optimize (~0.25 s to import, most of it parsing docstrings) only here, after the run: a run's
    # critical path then is the plot process's drawing, which this overlaps (simulator.plot_process).
    from scipy.optimize import linprog

    steps = _checked_steps(sessions, steps)
    # Time cells: the limit steps, plus the gaps between them and around them (unconstrained).
    edges = sorted(
        {t for st in steps for t in (st.start_s, st.end_s)}
        | {t for s in sessions for t in (s.plug_in_s, s.departure_s)}
    )
    cells = list(itertools.pairwise(edges))
    step_of = [
        next((i for i, st in enumerate(steps) if st.start_s <= a and b <= st.end_s + 1e-9), None) for a, b in cells
    ]
    n, c = len(sessions), len(cells)
    if n == 0 or c == 0:
        return OptimumResult(0.0, {s.id: 0.0 for s in sessions}, {s.id: 1.0 for s in sessions})
    plugged = np.array(
        [[max(0.0, min(b, s.departure_s) - max(a, s.plug_in_s)) / 3600.0 for a, b in cells] for s in sessions]
    )
    ub = (np.array([s.max_kw for s in sessions])[:, None] * plugged).ravel()
    limits = Constraints()
    for i, s in enumerate(sessions):  # energy needed
        limits.add(((i * c + k, 1.0) for k in range(c)), s.energy_needed_kwh)
    for j, st in enumerate(steps):  # per-step limits over the step's cells
        cells_j = [k for k in range(c) if step_of[k] == j]
        if cells_j:
            step_limits(limits, st, cells_j, sessions, c)
    # scipy-stubs' overloads accept neither a sparse A_ub nor an (n, 2) bounds array; scipy's HiGHS takes both.
    result = linprog(  # type: ignore[call-overload]
        -np.ones(n * c),
        A_ub=limits.matrix(n * c),
        b_ub=np.array(limits.rhs),
        bounds=np.column_stack([np.zeros(n * c), ub]),
        method="highs",
    )
    if result.status != 0 or result.x is None:
        raise RuntimeError(f"offline optimum LP failed: {result.message}")
    energy = np.asarray(result.x).reshape(n, c).sum(axis=1)
    per = {s.id: float(e) for s, e in zip(sessions, energy, strict=True)}
    served = {
        s.id: (1.0 if s.energy_needed_kwh <= 1e-9 else min(1.0, per[s.id] / s.energy_needed_kwh)) for s in sessions
    }
    return OptimumResult(float(energy.sum()), per, served)


class MeterStepLike(Protocol):
    """What :func:`limits_from_meter_log` reads of the twin's ``MeterStep`` (the twin imports this module)."""

    @property
    def t_s(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def building_kw(self) -> float: ...
    @property
    def limit_kw(self) -> float | None: ...


def limits_from_meter_log(
    log: Iterable[MeterStepLike], *, phase_limits_a: tuple[float, float, float] | None = None, voltage: float = 230.0
) -> list[LimitStep]:
    """Limit steps from the twin's ground-truth meter log (``MeterStep``: ``t_s``, ``duration_s``,
    ``building_kw``, ``limit_kw``): the grid limit minus the building load; per phase, the building load
    is taken as balanced over three phases."""
    out = []
    for step in log:
        building_kw = float(step.building_kw)
        limit_kw = step.limit_kw
        per_phase = None
        if phase_limits_a is not None:
            building_a = building_kw * 1000.0 / (3 * voltage)
            l1, l2, l3 = phase_limits_a
            per_phase = (l1 - building_a, l2 - building_a, l3 - building_a)
        start = float(step.t_s)
        out.append(
            LimitStep(
                start,
                start + float(step.duration_s),
                None if limit_kw is None else limit_kw - building_kw,
                per_phase,
            )
        )
    return out


def run_metrics(
    result: OptimumResult, sessions: Sequence[SessionRecord], delivered_kwh: Mapping[str, float]
) -> dict[str, float]:
    """The report's figures: optimum, delivered, their ratio, and fairness (lowest served fraction) of the
    run and of the optimum."""
    delivered = float(sum(delivered_kwh.get(s.id, 0.0) for s in sessions))
    served = [
        1.0 if s.energy_needed_kwh <= 1e-9 else min(1.0, delivered_kwh.get(s.id, 0.0) / s.energy_needed_kwh)
        for s in sessions
    ]
    return {
        "optimum_kwh": round(result.optimum_kwh, 6),
        "delivered_kwh": round(delivered, 6),
        "fraction_of_optimum": round(result.fraction(delivered), 6),
        "lowest_served_fraction": round(min(served), 6) if served else 1.0,
        "optimum_lowest_served_fraction": round(min(result.served.values()), 6) if result.served else 1.0,
        "needed_kwh": round(sum(s.energy_needed_kwh for s in sessions), 6),
        "optimum_is_bounded_by_need": float(
            math.isclose(result.optimum_kwh, sum(s.energy_needed_kwh for s in sessions), rel_tol=1e-6)
        ),
    }


def twin_energy_metrics(
    world: Any, site: Any, curtailed: Sequence[tuple[float, float, float]] = ()
) -> dict[str, float]:
    """``run_metrics`` for a finished twin run: the sessions it produced, under its site's limits (both clocks),
    lowered during demand-response events (``curtailed``: start, end, site limit in kW)."""
    sessions = world.session_records()
    limits = limits_from_meter_log(world.ground_truth, phase_limits_a=site.phase_limits_a, voltage=site.voltage)
    limits = [curtail(step, log_step, curtailed) for step, log_step in zip(limits, world.ground_truth, strict=True)]
    records = [r for r, _ in sessions]
    return run_metrics(offline_optimum(records, limits), records, {r.id: kwh for r, kwh in sessions})


def curtail(step: LimitStep, log_step: Any, curtailed: Sequence[tuple[float, float, float]]) -> LimitStep:
    """A step under a demand-response event: what the EVs may draw is the event's limit less the building."""
    lows = [limit for start, end, limit in curtailed if start < step.end_s and end > step.start_s]
    if not lows:
        return step
    room = min(lows) - float(log_step.building_kw)
    return LimitStep(
        step.start_s, step.end_s, room if step.limit_kw is None else min(step.limit_kw, room), step.phase_limits_a
    )
