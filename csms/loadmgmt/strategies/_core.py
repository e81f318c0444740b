"""The shared machinery of every strategy: the site as linear constraints, progressive filling, and the
post-processing that makes any allocation safe.

Theory of operation
-------------------
Each steerable, plugged EVSE ``j`` gets one variable ``x[j]``, its per-phase current limit (A). Every
limit in the tree is linear in ``x``: for node ``n`` and phase ``p``, ``Σ x[j]`` over EVSEs below ``n``
drawing on ``p`` must stay under the phase limit minus the safety margin minus fixed loads (building load
at the grid connection, reserved EVSEs); for a kW limit the coefficients are ``V × phases in use``. So
``A x <= b`` and ``0 <= x <= cap``.

A strategy proposes ``x``; :func:`finalize` then enforces, in this order: zero for anything not a
candidate, the per-EVSE cap (rating, vehicle acceptance), the minimum current (below it → pause), every
row of ``A x <= b`` (scaling the EVSEs of the most violated row down, then pausing those pushed below
their minimum: only decreases, so it terminates feasible), and for work-conserving strategies a top-up
that hands unused headroom to running EVSEs, then to paused ones that can reach their minimum.

A minimum on and off time (``SiteState.dwell_s``) is kept on the way: an EVSE paused or resumed less than that
ago keeps that state unless a limit forces a pause or its departure a resume (:attr:`Problem.dwell`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from csms.loadmgmt.state import Allocation, SessionState, SiteState
from csms.loadmgmt.topology import EvseKey, phase_use

#: Currents closer than this are equal (A); loads within this of a limit are at the limit (A or W / 1000).
EPS = 1e-7


@dataclass
class Problem:
    state: SiteState
    now: float
    keys: list[EvseKey]
    sessions: list[SessionState]
    A: np.ndarray  # (rows, n)
    b: np.ndarray  # (rows,)
    rows: list[str]
    cap: np.ndarray  # (n,) per-phase current cap
    floor: np.ndarray  # (n,) minimum current when running
    watts_per_a: np.ndarray  # (n,) W per A of limit
    overloaded: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.keys)

    @cached_property
    def fixed_w(self) -> float:
        """What the site draws that no strategy steers [W]: the building, and the reserved EVSEs at their current.
        Kept (the state is frozen): a cost-aware plan asks for it four times."""
        state, site = self.state, self.state.site
        reserved = (site.evse(k).power_w(a) for k, a in state.reserved_a.items() if k in site.index)
        return state.building_now_w + sum(reserved)

    @cached_property
    def billed_fixed_w(self) -> float:
        """:attr:`fixed_w` with the building at ``state.building_billed_w``: what a demand charge's level is kept
        against (never the tree's limits)."""
        state = self.state
        if state.building_billed_w is None:
            return self.fixed_w
        return self.fixed_w - state.building_now_w + state.building_billed_w

    def all(self) -> np.ndarray:
        return np.ones(self.n, dtype=bool)

    @cached_property
    def dwell(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(keep_on, keep_off, urgent)`` for the minimum on and off time ``state.dwell_s``: the EVSEs our plans
        resumed, or paused, less than that ago, which keep that state (:func:`finalize`) unless a limit of the tree
        forces a pause; and the sessions whose departure could no longer be met at their full rate after a dwell
        (their laxity is shorter): those are never kept off, and keep what a strategy gives them before the others'
        dwell does."""
        dwell_s, now, n = self.state.dwell_s, self.now, self.n
        if dwell_s <= 0:
            return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        # In Python floats (the same products and differences as numpy's), handed to numpy once per column.
        cap, floor, watts_per_a = self.cap.tolist(), self.floor.tolist(), self.watts_per_a.tolist()
        keep_on, keep_off, urgent = [False] * n, [False] * n, [False] * n
        for i, s in enumerate(self.sessions):
            urgent[i] = _urgent(s, cap[i] * watts_per_a[i], now, dwell_s)
            if s.switched_at is None or now - s.switched_at >= dwell_s:
                continue
            if s.allocated_a > 0:
                keep_on[i] = cap[i] >= floor[i] - EPS
            else:
                keep_off[i] = not urgent[i]
        return np.array(keep_on, dtype=bool), np.array(keep_off, dtype=bool), np.array(urgent, dtype=bool)


def _urgent(s: SessionState, full_w: float, now: float, dwell_s: float) -> bool:
    """Its departure leaves it less than ``dwell_s`` of slack at its full rate ``full_w`` [W]: waiting out a dwell
    could make it miss it."""
    remaining = s.remaining_wh
    if s.departure is None or not remaining:
        return False
    need_s = remaining * 3600.0 / full_w if full_w > 0 else math.inf
    return s.departure - now - need_s < dwell_s


def build_problem(state: SiteState, now: float) -> Problem:
    """The problem of ``state`` at ``now``. Kept on the state (it is frozen, and no caller changes a problem): a planner
    asks again for the one its strategy planned (:meth:`csms.loadmgmt.planner.Planner._hold_small_decreases`)."""
    kept: Problem | None = state.__dict__.get(_KEPT)
    if kept is not None and kept.now == now:
        return kept
    problem = _build_problem(state, now)
    object.__setattr__(state, _KEPT, problem)  # (not a field: neither compared, shown nor copied by replace)
    return problem


#: The attribute of a :class:`SiteState` :func:`build_problem` keeps its problem in.
_KEPT = "_problem"


def _build_problem(state: SiteState, now: float) -> Problem:
    site = state.site
    tree = site.compiled
    index = site.index
    given, reserved = state.sessions, state.reserved_a
    sessions = [s for k in sorted(given) if (s := given[k]).plugged and k in index and k not in reserved]
    cols = [index[s.key] for s in sessions]
    n = len(sessions)
    # Gathered in Python and handed to numpy once per column (the same floats an item store per session wrote).
    terms = [site.evse_terms(j, s.phases_in_use) for j, s in zip(cols, sessions, strict=True)]
    floors = [site.evses[j].min_current_a for j in cols]
    use = np.array([t[0] for t in terms], dtype=float).reshape(n, 3)
    watts = np.array([t[1] for t in terms], dtype=float)
    floor = np.array(floors, dtype=float)
    cap = np.array(
        [
            t[2] if s.accept_cap_a is None else min(t[2], max(s.accept_cap_a, f))
            for t, s, f in zip(terms, sessions, floors, strict=True)
        ],
        dtype=float,
    )
    # Fixed loads per node: reserved EVSEs (all wired phases), the building at the grid connection.
    fixed_a = np.zeros((len(tree.node_ids), 3))
    fixed_w = np.zeros(len(tree.node_ids))
    for key, amps in state.reserved_a.items():
        j = index.get(key)
        if j is None:
            continue
        e = site.evses[j]
        below = tree.member[:, j]
        fixed_a[below] += amps * phase_use(e, None)
        fixed_w[below] += e.power_w(amps)
    building = np.asarray(state.building_load_a, dtype=float)
    fixed_a[0] += building
    fixed_w[0] += float(building.sum()) * site.root.voltage
    member = tree.member[:, cols].astype(float) if n else np.zeros((len(tree.node_ids), 0))
    rows_a: list[np.ndarray] = []
    b: list[float] = []
    names: list[str] = []
    overloaded: list[str] = []
    for k, node_id in enumerate(tree.node_ids):
        for p in range(3):
            limit = tree.phase_limit_a[k, p]
            if math.isfinite(limit):
                rows_a.append(member[k] * use[:, p])
                b.append(limit - tree.margin_a[k] - fixed_a[k, p])
                names.append(f"{node_id}:L{p + 1}")
        if math.isfinite(tree.limit_w[k]):
            rows_a.append(member[k] * watts / 1000.0)  # kW rows keep the numbers near the A rows
            b.append((tree.limit_w[k] - tree.margin_w[k] - fixed_w[k]) / 1000.0)
            names.append(f"{node_id}:kW")
    bb = np.array(b, dtype=float)
    for name, value in zip(names, bb, strict=True):
        node_id = name.rsplit(":", 1)[0]
        if value < -EPS and node_id not in overloaded:
            overloaded.append(node_id)
    A = np.array(rows_a, dtype=float).reshape(len(names), n)
    # Rows without any candidate cannot be helped; keep them out of the arithmetic.
    keep = np.asarray((A > 0).any(axis=1)) if n else np.zeros(len(names), dtype=bool)
    return Problem(
        state=state,
        now=now,
        keys=[s.key for s in sessions],
        sessions=sessions,
        A=A[keep],
        b=bb[keep],
        rows=[nm for nm, k in zip(names, keep, strict=True) if k],
        cap=cap,
        floor=floor,
        watts_per_a=watts,
        overloaded=tuple(overloaded),
    )


def fill(problem: Problem, x: np.ndarray, active: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Progressive filling (max-min fair for equal weights): raise the active EVSEs together, in proportion
    to ``weights``, freezing each once it reaches its cap or sits in a row that became tight. ``x`` of the
    inactive EVSEs stays as given (their load is fixed)."""
    A, b, cap = problem.A, problem.b, problem.cap
    x = x.copy()
    full = cap - EPS  # (the same difference at every step)
    active = active & (x < full)
    if weights is not None:
        active &= weights > 0
    slack = b - A @ x
    over = slack < -EPS
    # (np.count_nonzero for "any" of a 1-d mask: ndarray.any goes through a Python wrapper, several times a step)
    if np.count_nonzero(over):
        # Fixed load is already too much for some rows: nothing below them may grow.
        active &= ~(A[over] > 0).any(axis=0)
    while np.count_nonzero(active):
        # Unweighted, every weight is 1.0: the same rates and steps, without dividing by ones.
        wa = np.where(active, 1.0, 0.0) if weights is None else np.where(active, weights, 0.0)
        rate = A @ wa
        grow = rate > EPS
        # (np.minimum.reduce: np.min's reduction, without its Python wrapper, at every step of every fill)
        t_rows = np.minimum.reduce(np.maximum(slack[grow], 0.0) / rate[grow]) if np.count_nonzero(grow) else math.inf
        room = cap[active] - x[active]
        t_cap = np.minimum.reduce(room if weights is None else room / weights[active])
        t = max(0.0, min(t_rows, t_cap))
        x += t * wa
        slack = b - A @ x
        frozen = active & (x >= full)
        tight = grow & (slack <= EPS)
        if np.count_nonzero(tight):
            frozen |= active & (A[tight] > 0).any(axis=0)
        if not np.count_nonzero(frozen):  # numerically stuck: stop rather than loop
            break
        active &= ~frozen
    np.minimum(x, cap, out=x)
    return x


def serve(
    problem: Problem,
    base: np.ndarray,
    candidates: np.ndarray,
    pause_order: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Fill ``candidates`` on top of ``base``; while some end below their minimum current, pause the ones
    ranked highest in ``pause_order`` (about as many as the shortfall needs) and fill again."""
    candidates = candidates.copy()
    while True:
        x = fill(problem, base, candidates, weights)
        short = candidates & (x < problem.floor - EPS)
        if not np.count_nonzero(short):
            return x
        deficit = float((problem.floor - x)[short].sum())
        k = max(1, math.ceil(deficit / float(problem.floor[short].mean()) - 1e-9))
        idx = np.flatnonzero(short)
        victims = idx[np.argsort(-pause_order[idx], kind="stable")][:k]
        candidates[victims] = False


def rank(values: Sequence[tuple[Any, ...]]) -> np.ndarray:
    """Integer ranks of sort keys (0 = first)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = np.empty(len(values), dtype=float)
    out[np.asarray(order, dtype=np.intp)] = np.arange(len(order), dtype=float)
    return out


def fairness_pause_order(problem: Problem) -> np.ndarray:
    """Who is paused first when there is not enough for everyone's minimum: the most energy delivered so far,
    with 1 kWh of hysteresis for EVSEs running now (so two cars do not swap on every re-plan)."""
    return rank([(s.energy_wh - (1000.0 if s.allocated_a > 0 else 0.0), s.plugged_at, s.key) for s in problem.sessions])


def finalize(problem: Problem, x: np.ndarray, *, top_up: bool, pause_order: np.ndarray | None = None) -> np.ndarray:
    """Make ``x`` safe (caps, minimum current, every tree limit); with ``top_up`` re-allocate what is left.

    The dwell (:attr:`Problem.dwell`): an EVSE resumed lately that ``x`` pauses runs on at its minimum, and one paused
    lately that ``x`` resumes stays paused — choices only. A row overloaded with such minimums (or with an urgent
    session's allocation) is brought under its limit by :func:`_make_room`, which pauses a kept EVSE only when the
    kept minimums alone are too much; rows without them are scaled as before. The top-up resumes an EVSE kept off
    only with headroom no other EVSE can take."""
    if problem.n == 0:
        return x
    floor = problem.floor
    order = pause_order
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=float), nan=0.0), 0.0, problem.cap)
    x[x < floor - EPS] = 0.0
    keep_on, keep_off, urgent = problem.dwell
    x[keep_off] = 0.0
    protect = keep_on | (urgent & (x > 0))
    if keep_on.any():
        x[keep_on & (x == 0)] = floor[keep_on & (x == 0)]
    A, b = problem.A, problem.b
    for _ in range(4 * len(b) + 10 + problem.n):
        load = A @ x
        excess = load - b
        r = int(np.argmax(excess)) if len(b) else 0
        if not len(b) or excess[r] <= EPS:
            break
        members = (A[r] > 0) & (x > 0)
        kept = members & protect
        if kept.any():
            x = _make_room(problem, x, r, members, kept, urgent, protect, order)
            continue
        if b[r] <= EPS:
            x[members] = 0.0
        else:
            x[members] *= (b[r] / load[r]) * (1.0 - 1e-12)
        x[x < floor - EPS] = 0.0
    else:  # pragma: no cover - the loop only decreases x; this is a numeric backstop
        x[:] = 0.0
    if top_up:
        order = fairness_pause_order(problem) if order is None else order
        x = fill(problem, x, x > 0)
        x = serve(problem, x, (x == 0) & ~keep_off, order)
        if keep_off.any():
            x = serve(problem, x, (x == 0) & keep_off, order)
    return x


def _make_room(
    problem: Problem,
    x: np.ndarray,
    r: int,
    members: np.ndarray,
    kept: np.ndarray,
    urgent: np.ndarray,
    protect: np.ndarray,
    order: np.ndarray | None,
) -> np.ndarray:
    """Bring row ``r``, which EVSEs kept on by the dwell share, under its limit: the others come down towards their
    minimum one at a time in ``order`` (the first to pause first), then pause in that order; only if the kept ones'
    minimums alone are too much does one of them pause (not an urgent one first). Few EVSEs change (scaling every
    EVSE of the row sent each a new limit at every re-plan)."""
    A, b, floor = problem.A, problem.b, problem.floor
    order = fairness_pause_order(problem) if order is None else order
    a = A[r]
    excess = float(a @ x) - b[r]
    free = np.flatnonzero(members & ~kept)
    by_order = free[np.argsort(-order[free], kind="stable")]
    for v in [*by_order, *np.flatnonzero(kept)]:  # what is above the minimums, the first to pause first
        if excess <= 0:
            return x
        cut = min(x[v] - floor[v], excess / a[v] + 1e-9)
        if cut > 0:
            x[v] -= cut
            excess -= cut * a[v]
    for v in by_order:  # the minimums of the others
        if excess <= 0:
            return x
        excess -= x[v] * a[v]
        x[v] = 0.0
    if excess > 0:  # the kept minimums alone are too much for this limit: it forces a pause
        pool = np.flatnonzero(kept & ~urgent) if (kept & ~urgent).any() else np.flatnonzero(kept)
        victim = pool[int(np.argmax(order[pool]))]
        protect[victim] = False
        x[victim] = 0.0
    return x


def to_allocation(problem: Problem, x: np.ndarray, strategy: str) -> Allocation:
    limits = {key: float(v) for key, v in zip(problem.keys, x, strict=True)}
    power = {key: float(v * w) for key, v, w in zip(problem.keys, x, problem.watts_per_a, strict=True)}
    return Allocation(strategy=strategy, at=problem.now, limits_a=limits, power_w=power, overloaded=problem.overloaded)


Strategy = Callable[[SiteState, float], Allocation]
