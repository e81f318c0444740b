"""Example sites for benchmarks and demos: a depot of ``n`` EVSEs behind panels and feeders."""

from __future__ import annotations

import math
import random

from csms.loadmgmt.state import SessionState, SiteState, Tariff
from csms.loadmgmt.topology import Evse, Node, Site


def depot(n_evses: int, rng: random.Random, *, now: float = 1_800_000_000.0) -> SiteState:
    """``n_evses`` EVSEs, 10 per feeder, 5 feeders per panel; a third are single-phase (rotated over
    L1/L2/L3), one in ten DC. The grid connection allows about 40 % of the total rating, so every strategy
    has to ration. All EVSEs are plugged in with random needs and departures; a few are reserved."""
    evses = []
    for i in range(n_evses):
        if i % 10 == 9:
            evses.append(Evse(f"dc-{i}", 1, dc=True, max_current_a=250.0, max_power_w=50_000.0, fallback_current_a=0.0))
        elif i % 3 == 0:
            evses.append(Evse(f"ac1-{i}", 1, phases=((i // 3) % 3,), max_current_a=32.0))
        else:
            evses.append(Evse(f"ac3-{i}", 1, phases=((0, 1, 2), (1, 2, 0), (2, 0, 1))[i % 3], max_current_a=32.0))
    feeders = [
        Node(f"feeder-{k}", phase_limits_a=(160.0, 160.0, 160.0), evses=tuple(evses[k * 10 : (k + 1) * 10]))
        for k in range(math.ceil(n_evses / 10))
    ]
    panels = [
        Node(
            f"panel-{k}",
            phase_limits_a=(500.0, 500.0, 500.0),
            limit_kw=300.0,
            children=tuple(feeders[k * 5 : (k + 1) * 5]),
        )
        for k in range(math.ceil(len(feeders) / 5))
    ]
    grid_a = max(100.0, 0.4 * 32.0 * n_evses / 1.8)
    root = Node("grid", phase_limits_a=(grid_a,) * 3, safety_margin_kw=5.0, children=tuple(panels))
    site = Site("depot", root, priority_groups=("fleet", "staff"))
    sessions = {}
    for e in evses:
        needed = rng.uniform(5_000.0, 60_000.0)
        sessions[e.key] = SessionState(
            e.key,
            plugged_at=now - rng.uniform(0, 7200),
            energy_wh=rng.uniform(0, needed),
            energy_needed_wh=needed,
            departure=now + rng.uniform(1800, 14 * 3600),
            group=rng.choice(["fleet", "staff", "guest"]),
            phases_in_use=rng.choice([None, 3, 1]) if not e.dc else None,
            accept_cap_a=rng.choice([None, None, None, 12.0]),
        )
    reserved = {evses[i].key: 6.0 for i in range(0, n_evses, 37)}
    for key in reserved:
        sessions.pop(key, None)
    tariff = Tariff(periods=((0.0, 0.12), (7 * 3600.0, 0.30), (22 * 3600.0, 0.12)), demand_charge_per_kw=15.0)
    return SiteState(site, building_load_a=(40.0, 35.0, 50.0), sessions=sessions, reserved_a=reserved, tariff=tariff)
