"""``optimal``: a linear program over a receding horizon (scipy ``linprog``, HiGHS).

Variables: ``x[i, t]``, the per-phase current of session ``i`` during step ``t`` (steps of 15 min for
the first hour, then hourly up to the last departure, at most :data:`MAX_HORIZON_S`), and the peak grid
import ``P`` (kW). Constraints: every tree limit in every step (the building's load per step: :func:`building_steps`),
no current after the session's deadline (:func:`deadline`: a few minutes before its departure), no more
energy than the session still needs, ``P`` above every step's import and above the billing period's peak
so far. Objective, lexicographic by weights: deliver the most energy (by departure, since nothing counts
after it), then the least cost (time-of-use energy price, demand charge on ``P``), then earlier rather
than later. Only the first step is applied; the next re-plan solves again.

An LP cannot express the minimum current (it is not convex): a first-step current below it is lifted to
the minimum where the tree has room (:func:`lift_to_minimum`), and the shared post-processing pauses the
rest; there is no top-up, because spare headroom now may be a deliberate wait for a cheaper hour.
"""

from __future__ import annotations

import math

import numpy as np

from csms.loadmgmt.state import Allocation, SiteState
from csms.loadmgmt.strategies._core import Problem, build_problem, finalize, to_allocation

NAME = "optimal"
FIRST_STEP_S = 900.0
FINE_UNTIL_S = 3600.0
COARSE_STEP_S = 3600.0
MAX_HORIZON_S = 24 * 3600.0
#: Without a departure, a session is planned as if it stayed this long.
DEFAULT_STAY_S = 8 * 3600.0
#: Energy is planned to be in by this long before each departure. Only the next re-plan can correct a plan,
#: limits are rounded down and small increases wait for the deadband: a plan that ends exactly at the
#: departure leaves the vehicle a few Wh short. In the last minutes the departure itself is the deadline.
DEPARTURE_MARGIN_S = 300.0
#: Value of a delivered kWh in the objective: far above any price, so energy always comes first.
ENERGY_VALUE = 1000.0
EARLINESS = 1e-3
#: LP currents below this are solver noise, not a plan to charge.
LIFT_FROM_A = 1e-3


def step_edges(now: float, last_departure: float) -> np.ndarray:
    horizon = min(max(last_departure - now, FIRST_STEP_S), MAX_HORIZON_S)
    edges = list(np.arange(0.0, min(horizon, FINE_UNTIL_S), FIRST_STEP_S))
    t = FINE_UNTIL_S
    while t < horizon:
        edges.append(t)
        t += COARSE_STEP_S
    edges.append(horizon if horizon > edges[-1] else edges[-1] + FIRST_STEP_S)
    return now + np.asarray(edges)


def deadline(departure: float | None, now: float) -> float:
    """When a session's energy must be in: :data:`DEPARTURE_MARGIN_S` before its departure."""
    if departure is None or departure <= now:
        return now + DEFAULT_STAY_S
    early = departure - DEPARTURE_MARGIN_S
    return early if early > now else departure


def building_steps(problem: Problem, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The building's load in each step of the horizon: per phase (A) under the tree's limits, and in kW on the
    peak. The first step is the planner's estimate of now (the latest reading, raised to the learnt profile's
    highest just ahead); a later step the learnt profile (:meth:`BuildingForecast.step_a`: the slot's highest per
    phase, its mean on the peak), so a peak the building has every evening is planned around before it comes —
    where a slot is not learnt yet, the estimate of now held."""
    state = problem.state
    volts = state.site.root.voltage
    now_a = np.asarray(state.building_load_a, dtype=float)
    phases = np.tile(now_a, (len(starts), 1))
    kw = np.full(len(starts), float(now_a.sum()) * volts / 1000.0)
    forecast = state.building_forecast
    if forecast is not None:
        for t in range(1, len(starts)):
            learnt = forecast.step_a(float(starts[t]), float(ends[t]))
            if learnt is not None:
                phases[t], kw[t] = learnt[0], learnt[1] * volts / 1000.0
    return phases, kw


def step_limits(problem: Problem, phases: np.ndarray) -> np.ndarray:
    """``problem.b`` for each step (T, rows): the grid connection's rows moved by the building's load in that
    step against the load ``problem.b`` was built with."""
    state = problem.state
    root = state.site.compiled.node_ids[0]
    delta = phases - np.asarray(state.building_load_a, dtype=float)[None, :]  # (T, 3)
    shift = np.zeros((len(phases), len(problem.rows)))
    for r, name in enumerate(problem.rows):
        node_id, _, what = name.rpartition(":")
        if node_id != root:
            continue
        if what == "kW":
            shift[:, r] = delta.sum(axis=1) * state.site.root.voltage / 1000.0
        else:
            shift[:, r] = delta[:, int(what[1:]) - 1]
    return problem.b[None, :] - shift


def solve(problem: Problem) -> np.ndarray:
    """The LP's first-step currents (A) per session."""
    return plan(problem)[1][:, 0]


def plan(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The LP's plan over its horizon: the step edges (POSIX s, T + 1) and each session's current per step
    (A, (n, T); zeros when the LP has no solution)."""
    # Imported here, not at the top: scipy.optimize is ~0.2-0.4 s of every `csms` command's start (this module
    # is reached from the CLI through the services), and only a site planned with `optimal` needs it.
    from scipy import sparse
    from scipy.optimize import linprog

    n, now = problem.n, problem.now
    state = problem.state
    departures = np.array([deadline(s.departure, now) for s in problem.sessions])
    edges = step_edges(now, float(departures.max()))
    starts, ends = edges[:-1], edges[1:]
    T = len(starts)
    overlap = np.clip(np.minimum(ends[None, :], departures[:, None]) - starts[None, :], 0.0, None)  # (n, T) s
    kwh_per_a = problem.watts_per_a[:, None] * overlap / 3.6e6  # (n, T) kWh per A held through the step
    tariff = state.tariff
    price = (
        np.array([tariff.price_at(0.5 * (a + b)) for a, b in zip(starts, ends, strict=True)]) if tariff else np.zeros(T)
    )
    demand = tariff.demand_charge_per_kw if tariff else 0.0
    horizon = float(ends[-1] - now)
    early = EARLINESS * (1.0 - (starts - now) / horizon)
    # Variable order: x[i, t] at i * T + t, then P.
    c = np.concatenate([(kwh_per_a * (price[None, :] - ENERGY_VALUE - early[None, :])).ravel(), [demand]])
    ub = np.concatenate([(problem.cap[:, None] * (overlap > 0)).ravel(), [math.inf]])
    building_a, building_kw = building_steps(problem, starts, ends)
    limits = step_limits(problem, building_a)
    limits[1:] = np.maximum(limits[1:], 0.0)  # a step the building fills alone holds no charging, not no plan
    reserved_kw = (
        sum(state.site.evse(k).power_w(a) for k, a in state.reserved_a.items() if k in state.site.index) / 1000.0
    )
    lb = np.zeros(n * T + 1)
    lb[-1] = max(state.peak_w / 1000.0, 0.0)
    blocks = []
    rhs = []
    # Tree limits per step: rows of A applied to x[:, t] (variable i*T+t).
    A = sparse.csr_matrix(problem.A)
    if A.shape[0]:
        for t in range(T):
            sel = sparse.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) * T + t)), shape=(n, n * T + 1))
            blocks.append(A @ sel)
            rhs.append(limits[t])
    # Energy still needed per session.
    need = np.array([s.remaining_wh / 1000.0 if s.remaining_wh is not None else math.inf for s in problem.sessions])
    finite = np.flatnonzero(np.isfinite(need))
    if len(finite):
        rows = np.repeat(np.arange(len(finite)), T)
        cols = (finite[:, None] * T + np.arange(T)[None, :]).ravel()
        blocks.append(sparse.csr_matrix((kwh_per_a[finite].ravel(), (rows, cols)), shape=(len(finite), n * T + 1)))
        rhs.append(need[finite])
    # Peak: EV + building + reserved - P <= 0 per step.
    if demand > 0:
        rows = np.tile(np.arange(T), n)
        cols = np.arange(n * T)
        vals = np.repeat(problem.watts_per_a / 1000.0, T)
        peak = sparse.csr_matrix((vals, (rows, cols)), shape=(T, n * T + 1)).tolil()
        peak[:, n * T] = -1.0
        blocks.append(peak.tocsr())
        rhs.append(-(building_kw + reserved_kw))
    A_ub = sparse.vstack(blocks).tocsr() if blocks else None
    b_ub = np.concatenate(rhs) if rhs else None
    # scipy-stubs' overloads accept neither a sparse A_ub nor an (n, 2) bounds array; scipy's HiGHS takes both.
    result = linprog(  # type: ignore[call-overload]
        c, A_ub=A_ub, b_ub=b_ub, bounds=np.column_stack([lb, ub]), method="highs"
    )
    if result.status != 0 or result.x is None:
        return edges, np.zeros((n, T))
    return edges, np.asarray(result.x[: n * T]).reshape(n, T)


def lift_to_minimum(problem: Problem, x: np.ndarray) -> np.ndarray:
    """A first-step current under the EVSE's minimum would pause the session for good: it is typically the
    last few hundred Wh, which the LP spreads over a whole step. It is lifted to the minimum where every tree
    limit still holds (the vehicle finishes within the step; its energy cap stops it at the next re-plan)."""
    x = np.clip(x, 0.0, problem.cap)
    for i in np.flatnonzero((x > LIFT_FROM_A) & (x < problem.floor)):
        trial = x.copy()
        trial[i] = problem.floor[i]
        if not len(problem.b) or bool(np.all(problem.A @ trial <= problem.b + 1e-9)):
            x = trial
    return x


def allocate(state: SiteState, now: float) -> Allocation:
    problem = build_problem(state, now)
    x = lift_to_minimum(problem, solve(problem)) if problem.n else np.zeros(0)
    return to_allocation(problem, finalize(problem, x, top_up=False), NAME)
