"""Builders and the independent limit checker shared by the load-management tests."""

from __future__ import annotations

from hypothesis import strategies as st

from csms.loadmgmt.state import Allocation, SessionState, SiteState
from csms.loadmgmt.topology import Evse, Node, Site, phase_loads_a

TOL_A = 1e-6
TOL_W = 1e-3


def evses_below(node: Node) -> list[Evse]:
    return [e for n in node.walk() for e in n.evses]


def violations(state: SiteState, alloc: Allocation) -> list[str]:
    """Every broken rule, checked from the definitions (not from the strategies' matrices)."""
    site = state.site
    problems: list[str] = []
    for key, x in alloc.limits_a.items():
        s = state.sessions.get(key)
        if s is None or not s.plugged:
            problems.append(f"{key}: allocated {x} A but not plugged")
            continue
        if key in state.reserved_a:
            problems.append(f"{key}: reserved EVSE got an allocation")
        e = site.evse(key)
        if x < -TOL_A or (0 < x < e.min_current_a - TOL_A):
            problems.append(f"{key}: {x} A is between 0 and the minimum {e.min_current_a}")
        if x > e.rating_a(s.phases_in_use) + TOL_A:
            problems.append(f"{key}: {x} A above the rating {e.rating_a(s.phases_in_use)}")
    phases = {k: state.sessions[k].phases_in_use for k in alloc.limits_a}
    ev = phase_loads_a(site, dict(alloc.limits_a), phases)
    fixed = phase_loads_a(site, dict(state.reserved_a), {})
    for node in site.nodes:
        building = state.building_load_a if node is site.root else (0.0, 0.0, 0.0)
        if node.phase_limits_a is not None:
            for p in range(3):
                room = node.phase_limits_a[p] - node.margin_a - building[p] - fixed[node.id][p]
                if ev[node.id][p] > max(room, 0.0) + TOL_A:
                    problems.append(f"{node.id} L{p + 1}: {ev[node.id][p]} A > room {room}")
        if node.limit_kw is not None:
            below = evses_below(node)
            ev_w = sum(alloc.power_w.get(e.key, 0.0) for e in below)
            fixed_w = sum(e.power_w(state.reserved_a[e.key]) for e in below if e.key in state.reserved_a)
            if node is site.root:
                fixed_w += sum(building) * node.voltage
            margin_w = node.safety_margin_kw * 1000 + 3 * node.voltage * node.safety_margin_a
            room_w = node.limit_kw * 1000 - margin_w - fixed_w
            if ev_w > max(room_w, 0.0) + TOL_W:
                problems.append(f"{node.id} kW: {ev_w} W > room {room_w}")
    for key, x in alloc.limits_a.items():
        s = state.sessions[key]
        e = site.evse(key)
        if abs(alloc.power_w[key] - e.power_w(x, s.phases_in_use)) > TOL_W:
            problems.append(f"{key}: power {alloc.power_w[key]} does not match {x} A")
    return problems


# ---- hypothesis: random sites, sessions, meter traces --------------------------------------------------------
PHASE_WIRINGS = [(0,), (1,), (2,), (0, 1, 2), (1, 2, 0), (2, 0, 1)]


@st.composite
def evse_specs(draw, station_id: str) -> Evse:
    dc = draw(st.booleans()) and draw(st.booleans())
    if dc:
        return Evse(
            station_id,
            1,
            phases=(0, 1, 2),
            dc=True,
            max_current_a=draw(st.floats(10, 250)),
            max_power_w=draw(st.floats(20_000, 150_000)),
            fallback_current_a=draw(st.floats(0, 20)),
        )
    max_a = draw(st.floats(6, 63))
    return Evse(
        station_id,
        1,
        phases=draw(st.sampled_from(PHASE_WIRINGS)),
        max_current_a=max_a,
        min_current_a=draw(st.sampled_from([6.0, 6.0, 8.0])) if max_a >= 8 else 6.0,
        fallback_current_a=draw(st.floats(0, 16)),
    )


def limits(draw) -> dict:
    kind = draw(st.sampled_from(["a", "kw", "both", "none"]))
    out: dict = {}
    if kind in ("a", "both"):
        out["phase_limits_a"] = tuple(draw(st.floats(0, 400)) for _ in range(3))
    if kind in ("kw", "both"):
        out["limit_kw"] = draw(st.floats(0, 300))
    out["safety_margin_kw"] = draw(st.sampled_from([0.0, 0.0, 2.0]))
    out["safety_margin_a"] = draw(st.sampled_from([0.0, 0.0, 1.5]))
    return out


@st.composite
def sites(draw, max_evses: int = 14) -> Site:
    n = draw(st.integers(1, max_evses))
    evses = [draw(evse_specs(f"cp{i}")) for i in range(n)]
    n_panels = draw(st.integers(0, 3))
    panels_evses: list[list[Evse]] = [[] for _ in range(n_panels + 1)]
    for e in evses:
        panels_evses[draw(st.integers(0, n_panels))].append(e)
    panels = []
    for p in range(n_panels):
        feeders_evses = panels_evses[p + 1]
        split = draw(st.integers(0, len(feeders_evses)))
        feeder = Node(f"feeder{p}", evses=tuple(feeders_evses[split:]), **limits(draw))
        panels.append(Node(f"panel{p}", children=(feeder,), evses=tuple(feeders_evses[:split]), **limits(draw)))
    root_limits = limits(draw)
    root_limits.setdefault("phase_limits_a", tuple(draw(st.floats(0, 500)) for _ in range(3)))
    root = Node("grid", children=tuple(panels), evses=tuple(panels_evses[0]), **root_limits)
    groups = ("fleet", "staff")
    return Site("site", root, priority_groups=groups)


@st.composite
def site_states(draw, max_evses: int = 14) -> tuple[SiteState, float]:
    site = draw(sites(max_evses))
    now = 1_800_000_000.0
    sessions = {}
    reserved = {}
    for e in site.evses:
        role = draw(st.sampled_from(["idle", "plugged", "plugged", "plugged", "unplugged", "reserved"]))
        if role == "reserved":
            reserved[e.key] = draw(st.floats(0, 16))
            continue
        if role == "idle":
            continue
        needed = draw(st.none() | st.floats(0, 80_000))
        sessions[e.key] = SessionState(
            key=e.key,
            plugged=role == "plugged",
            plugged_at=now - draw(st.floats(0, 36_000)),
            phases_in_use=draw(st.none() | st.sampled_from([1, 3])),
            accept_cap_a=draw(st.none() | st.floats(0, 40)),
            energy_wh=draw(st.floats(0, 60_000)),
            energy_needed_wh=needed,
            departure=draw(st.none() | st.floats(now - 600, now + 86_400)),
            group=draw(st.sampled_from([None, "fleet", "staff", "guest"])),
            allocated_a=draw(st.sampled_from([0.0, 10.0])),
        )
    building = tuple(draw(st.floats(0, 200)) for _ in range(3))
    return SiteState(site, building_load_a=building, sessions=sessions, reserved_a=reserved), now


def simple_site(n: int, *, limit_a: float = 63.0, limit_kw: float | None = None, phases=(0, 1, 2), **evse) -> Site:
    evses = tuple(Evse(f"cp{i}", 1, phases=phases, **evse) for i in range(n))
    return Site("s", Node("grid", phase_limits_a=(limit_a,) * 3, limit_kw=limit_kw, evses=evses), ("fleet", "staff"))
