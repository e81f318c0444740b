"""The LoadManager: station facts (committed reports, schedule needs) mapped onto the site's planner."""

from __future__ import annotations

from csms.domain import events as ev
from csms.loadmgmt.manager import PENDING_NEEDS_S, LoadManager, SiteSetup
from csms.loadmgmt.topology import Evse, Node, Site

T0 = 1_800_000_000.0
CAR = ("cp1", 1)


def managed(limit_a: float = 10.0) -> LoadManager:
    """Two 1.6 stations behind a per-phase limit that feeds only one car at its 6 A minimum."""
    evses = tuple(Evse(f"cp{i}", 1, fallback_current_a=0.0) for i in range(2))
    site = Site("s", Node("grid", phase_limits_a=(limit_a,) * 3, evses=evses))
    manager = LoadManager()
    manager.install(SiteSetup("s", site, strategy="deadline", versions={"cp0": "1.6", "cp1": "1.6"}), T0)
    for station_id in ("cp0", "cp1"):
        manager.connected(station_id, "1.6", T0)
    return manager


def status(manager: LoadManager, station_id: str, value: str, now: float) -> None:
    manager.committed(station_id, [(ev.StatusReported(1, 1, value, None), None)], now)


def test_schedule_needs_that_arrive_before_a_stale_available_status_keep_their_car_first():
    manager = managed()
    status(manager, "cp0", "Preparing", T0 + 10)  # a car without known needs takes the only 6 A
    # The operator makes cp1 operative; the waiting car plugs in at once. The fleet schedule tells the CSMS
    # its needs before the charger's Available (sent before the plug) and Occupied reach the CSMS.
    manager.ev_needs(CAR, T0 + 100.05, energy_needed_wh=10_000.0, departure=T0 + 3 * 3600)
    status(manager, "cp1", "Available", T0 + 100.1)
    status(manager, "cp1", "Occupied", T0 + 100.2)
    planner = manager.planners["s"]
    session = planner.state(T0 + 101).sessions[CAR]
    assert (session.energy_needed_wh, session.departure) == (10_000.0, T0 + 3 * 3600)
    assert planner.last_allocation is not None
    assert planner.last_allocation.limits_a[CAR] >= 6.0  # the car with a deadline charges
    assert planner.last_allocation.limits_a[("cp0", 1)] == 0.0


def test_needs_for_a_plug_in_never_reported_expire():
    manager = managed()
    manager.ev_needs(CAR, T0, energy_needed_wh=10_000.0, departure=T0 + 3 * 3600)
    status(manager, "cp1", "Preparing", T0 + PENDING_NEEDS_S + 1)  # another car, much later
    session = manager.planners["s"].state(T0 + PENDING_NEEDS_S + 2).sessions[CAR]
    assert session.energy_needed_wh is None and session.departure is None


def test_needs_for_a_running_session_replan_at_once():
    manager = managed()
    status(manager, "cp1", "Preparing", T0)
    manager.ev_needs(CAR, T0 + 5, energy_needed_wh=5_000.0, departure=T0 + 3600)
    assert manager.planners["s"].state(T0 + 6).sessions[CAR].departure == T0 + 3600
