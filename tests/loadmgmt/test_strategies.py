"""Strategies: safety properties for random sites (hypothesis), and each strategy's intent on small cases."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from csms.loadmgmt.state import ExpectedVehicle, SessionState, SiteState, Tariff
from csms.loadmgmt.strategies import STRATEGIES, get
from csms.loadmgmt.topology import Evse, Node, Site
from tests.loadmgmt._sites import simple_site, site_states, violations

NAMES = [name for name, fn in STRATEGIES.items() if fn is not None]
NOW = 1_800_000_000.0


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=site_states())
def test_no_allocation_breaks_a_limit_or_feeds_an_unplugged_evse(name, case):
    state, now = case
    alloc = STRATEGIES[name](state, now)
    assert violations(state, alloc) == []
    unplugged = {k for k, s in state.sessions.items() if not s.plugged}
    assert not (unplugged & {k for k, x in alloc.limits_a.items() if x > 0})


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(KeyError, match="equal_share"):
        get("fastest")
    assert get("none") is None


def sessions(site: Site, **per_key) -> dict:
    return {e.key: SessionState(e.key, **per_key.get(e.station_id, {})) for e in site.evses}


# ---- equal_share ---------------------------------------------------------------------------------------
def test_equal_share_splits_evenly_and_respects_the_building_load():
    site = simple_site(4, limit_a=63.0)
    state = SiteState(site, building_load_a=(15.0, 15.0, 15.0), sessions=sessions(site))
    alloc = STRATEGIES["equal_share"](state, NOW)
    assert list(alloc.limits_a.values()) == pytest.approx([12.0] * len(alloc.limits_a))


def test_equal_share_pauses_instead_of_going_below_the_minimum_and_pauses_the_best_served_first():
    site = simple_site(4, limit_a=20.0)
    state = SiteState(site, sessions=sessions(site, cp2={"energy_wh": 9000.0}, cp0={"energy_wh": 1000.0}))
    alloc = STRATEGIES["equal_share"](state, NOW)
    assert alloc.limits_a[("cp2", 1)] == 0.0
    running = [x for x in alloc.limits_a.values() if x > 0]
    assert running == pytest.approx([20.0 / 3] * 3)


def test_single_phase_chargers_are_limited_per_phase():
    l1 = tuple(Evse(f"a{i}", 1, phases=(0,)) for i in range(3))
    l2 = (Evse("b0", 1, phases=(1,)),)
    site = Site("s", Node("grid", phase_limits_a=(30.0, 30.0, 30.0), evses=l1 + l2))
    alloc = STRATEGIES["equal_share"](SiteState(site, sessions=sessions(site)), NOW)
    assert [alloc.limits_a[e.key] for e in l1] == pytest.approx([10.0] * 3)
    assert alloc.limits_a[("b0", 1)] == pytest.approx(30.0)  # L2 is free: not one number for the site


def test_rotated_three_phase_charger_with_a_one_phase_car_loads_its_first_wired_phase():
    rotated = Evse("r", 1, phases=(2, 0, 1))
    other = Evse("o", 1, phases=(2,))
    site = Site("s", Node("grid", phase_limits_a=(100.0, 100.0, 20.0), evses=(rotated, other)))
    state = SiteState(
        site, sessions={rotated.key: SessionState(rotated.key, phases_in_use=1), other.key: SessionState(other.key)}
    )
    alloc = STRATEGIES["equal_share"](state, NOW)
    assert alloc.limits_a[rotated.key] == pytest.approx(10.0)
    assert alloc.power_w[rotated.key] == pytest.approx(10.0 * 230.0)


def test_headroom_a_vehicle_does_not_use_goes_to_the_others():
    site = simple_site(3, limit_a=48.0)
    full = STRATEGIES["equal_share"](SiteState(site, sessions=sessions(site)), NOW)
    assert list(full.limits_a.values()) == pytest.approx([16.0] * len(full.limits_a))
    capped = SiteState(site, sessions=sessions(site, cp0={"accept_cap_a": 8.0}))
    alloc = STRATEGIES["equal_share"](capped, NOW)
    assert alloc.limits_a[("cp0", 1)] == pytest.approx(8.0)
    assert alloc.limits_a[("cp1", 1)] == pytest.approx(20.0)


def test_reserved_evses_count_against_the_tree_and_get_nothing():
    site = simple_site(3, limit_a=40.0)
    state = SiteState(site, sessions=sessions(site), reserved_a={("cp0", 1): 16.0})
    alloc = STRATEGIES["equal_share"](state, NOW)
    assert ("cp0", 1) not in alloc.limits_a
    assert alloc.limits_a[("cp1", 1)] == pytest.approx(12.0)


def test_overloaded_grid_connection_pauses_everything_and_says_so():
    site = simple_site(2, limit_a=32.0)
    state = SiteState(site, building_load_a=(40.0, 10.0, 10.0), sessions=sessions(site))
    for name in NAMES:
        alloc = STRATEGIES[name](state, NOW)
        assert alloc.overloaded == ("grid",)
        assert list(alloc.limits_a.values()) == [0.0, 0.0]


def test_kw_limit_on_a_panel_with_dc_chargers():
    dc = tuple(Evse(f"dc{i}", 1, dc=True, max_current_a=250.0, max_power_w=150_000.0) for i in range(2))
    site = Site("s", Node("grid", limit_kw=400.0, children=(Node("panel", limit_kw=200.0, evses=dc),)))
    alloc = STRATEGIES["equal_share"](SiteState(site, sessions=sessions(site)), NOW)
    assert [alloc.power_w[e.key] for e in dc] == pytest.approx([100_000.0] * 2)


# ---- priority ------------------------------------------------------------------------------------------
def test_priority_serves_the_fleet_before_guests():
    site = simple_site(4, limit_a=40.0)
    groups = {
        "cp0": {"group": "guest"},
        "cp1": {"group": "fleet"},
        "cp2": {"group": "staff"},
        "cp3": {"group": "fleet"},
    }
    alloc = STRATEGIES["priority"](SiteState(site, sessions=sessions(site, **groups)), NOW)
    assert alloc.limits_a[("cp1", 1)] == pytest.approx(20.0)
    assert alloc.limits_a[("cp3", 1)] == pytest.approx(20.0)
    assert alloc.limits_a[("cp2", 1)] == 0.0 and alloc.limits_a[("cp0", 1)] == 0.0
    roomy = STRATEGIES["priority"](SiteState(simple_site(4, limit_a=80.0), sessions=sessions(site, **groups)), NOW)
    assert roomy.limits_a[("cp2", 1)] == pytest.approx(16.0)  # fleet at 32 A rating, staff gets the rest
    assert roomy.limits_a[("cp0", 1)] == 0.0


# ---- deadline ------------------------------------------------------------------------------------------
def test_deadline_serves_the_tightest_laxity_first():
    site = simple_site(3, limit_a=40.0)
    per_kw = 690.0  # W per A on three phases
    needs = {
        "cp0": {"energy_needed_wh": 20 * per_kw * 8, "departure": NOW + 8 * 3600},  # needs 20 A for 8 h: loose
        "cp1": {"energy_needed_wh": 30 * per_kw * 1, "departure": NOW + 3600},  # needs 30 A for 1 h: tight
        "cp2": {},  # no deadline: last
    }
    alloc = STRATEGIES["deadline"](SiteState(site, sessions=sessions(site, **needs)), NOW)
    assert alloc.limits_a[("cp1", 1)] == pytest.approx(30.0)  # exactly what finishes it on time
    assert alloc.limits_a[("cp0", 1)] == pytest.approx(10.0)  # the rest, before the one without a deadline
    assert alloc.limits_a[("cp2", 1)] == 0.0
    tight = SiteState(simple_site(3, limit_a=34.0), sessions=sessions(site, **needs))
    alloc = STRATEGIES["deadline"](tight, NOW)
    assert alloc.limits_a[("cp1", 1)] == pytest.approx(32.0)  # its need, then the spare 2 A
    assert alloc.limits_a[("cp0", 1)] == 0.0  # 4 A left is below the minimum: paused
    roomy = STRATEGIES["deadline"](SiteState(simple_site(3, limit_a=90.0), sessions=sessions(site, **needs)), NOW)
    assert roomy.limits_a == pytest.approx({("cp0", 1): 32.0, ("cp1", 1): 32.0, ("cp2", 1): 26.0})


# ---- optimal -------------------------------------------------------------------------------------------
def delivered_by_departure(name: str, tariff: Tariff | None = None) -> tuple[float, float]:
    """Two cars share 16 A (three-phase, 11 kW); A leaves in 1 h needing 10 kWh, B in 8 h needing 10 kWh.
    Step the strategy every 15 min; return the kWh each got before leaving."""
    site = simple_site(2, limit_a=16.0)
    need = {"cp0": (10_000.0, NOW + 3600), "cp1": (10_000.0, NOW + 8 * 3600)}
    got = {"cp0": 0.0, "cp1": 0.0}
    t = NOW
    while t < NOW + 8 * 3600:
        live = {
            e.key: SessionState(
                e.key,
                energy_wh=got[e.station_id],
                energy_needed_wh=need[e.station_id][0],
                departure=need[e.station_id][1],
            )
            for e in site.evses
            if t < need[e.station_id][1]
        }
        alloc = STRATEGIES[name](SiteState(site, sessions=live, tariff=tariff), t)
        for key, w in alloc.power_w.items():
            got[key[0]] = min(need[key[0]][0], got[key[0]] + w * 900 / 3600)
        t += 900
    return got["cp0"] / 1000, got["cp1"] / 1000


def test_optimal_beats_equal_share_when_departures_differ():
    eq = delivered_by_departure("equal_share")
    opt = delivered_by_departure("optimal")
    assert eq[0] < 6.0  # 5.5 kW for one hour
    assert opt[0] == pytest.approx(10.0, abs=0.05)
    assert sum(opt) > sum(eq) + 3.0


def test_optimal_waits_for_the_cheap_hour_when_there_is_time():
    site = simple_site(1, limit_a=32.0)
    key = ("cp0", 1)
    # 11 kWh needed by 4 h; energy is expensive for the first two hours, cheap after.
    tariff = Tariff(periods=((0.0, 0.10),), utc_offset_s=0.0)
    cheap_later = Tariff(
        periods=tuple(sorted([((NOW % 86400), 0.50), (((NOW + 7200) % 86400), 0.05)])),
    )
    state = SiteState(site, sessions={key: SessionState(key, energy_needed_wh=11_000.0, departure=NOW + 4 * 3600)})
    flat = STRATEGIES["optimal"](SiteState(site, sessions=state.sessions, tariff=tariff), NOW)
    assert flat.limits_a[key] > 6.0  # flat price: earlier is better
    if (NOW % 86400) < ((NOW + 7200) % 86400):
        waiting = STRATEGIES["optimal"](SiteState(site, sessions=state.sessions, tariff=cheap_later), NOW)
        assert waiting.limits_a[key] == 0.0


def test_optimal_demand_charge_flattens_the_peak():
    site = simple_site(2, limit_a=32.0)
    live = {e.key: SessionState(e.key, energy_needed_wh=5 * 690.0 * 8, departure=NOW + 8 * 3600) for e in site.evses}
    tariff = Tariff(demand_charge_per_kw=20.0)
    alloc = STRATEGIES["optimal"](SiteState(site, sessions=live, tariff=tariff), NOW)
    assert alloc.total_w() <= 2 * 5 * 690.0 * 1.2 + 6 * 690  # about the average need, not 2 × 32 A


def _two_hour_tariff(expensive: float, cheap: float) -> Tariff:
    """``expensive`` for the two hours from NOW, ``cheap`` for the rest of the day (UTC)."""
    start, switch = NOW % 86400, (NOW + 7200) % 86400
    assert start < switch
    return Tariff(periods=((0.0, cheap), (start, expensive), (switch, cheap)))


@pytest.mark.parametrize("name", ["deadline", "equal_share", "priority"])
def test_with_a_tariff_every_strategy_waits_for_the_cheap_hours_when_they_suffice(name):
    site = simple_site(1, limit_a=32.0)
    key = ("cp0", 1)
    sessions = {key: SessionState(key, energy_needed_wh=11_000.0, departure=NOW + 4 * 3600)}
    plain = STRATEGIES[name](SiteState(site, sessions=sessions), NOW)
    assert plain.limits_a[key] > 6.0  # no tariff: as before
    waits = STRATEGIES[name](SiteState(site, sessions=sessions, tariff=_two_hour_tariff(0.50, 0.05)), NOW)
    assert waits.limits_a[key] == 0.0  # 11 kWh fit in the two cheap hours before departure
    later = STRATEGIES[name](SiteState(site, sessions=sessions, tariff=_two_hour_tariff(0.50, 0.05)), NOW + 7300)
    assert later.limits_a[key] > 0.0  # and it charges when they come


@pytest.mark.parametrize("name", ["deadline", "equal_share", "priority"])
def test_with_a_tariff_every_strategy_charges_now_what_the_cheap_hours_cannot_hold(name):
    site = simple_site(1, limit_a=32.0)
    key = ("cp0", 1)
    full_w = 32.0 * 690.0  # 32 A on three phases
    # The cheap hours before the departure hold 1.75 h x 22 kW (the plan means to finish 15 minutes early);
    # 60 kWh by departure in 4 h: the rest must come now, over the two expensive hours, at any price.
    sessions = {key: SessionState(key, energy_needed_wh=60_000.0, departure=NOW + 4 * 3600)}
    alloc = STRATEGIES[name](SiteState(site, sessions=sessions, tariff=_two_hour_tariff(0.50, 0.05)), NOW)
    must_w = (60_000.0 - 1.75 * full_w) / 2
    assert alloc.power_w[key] == pytest.approx(must_w, rel=0.05)


@pytest.mark.parametrize("name", ["deadline", "equal_share", "priority"])
def test_with_a_demand_charge_every_strategy_keeps_extra_charging_under_the_peak_so_far(name):
    site = simple_site(2, limit_a=32.0)
    live = {e.key: SessionState(e.key, energy_needed_wh=5_000.0, departure=NOW + 8 * 3600) for e in site.evses}
    tariff = Tariff(demand_charge_per_kw=20.0)
    capped = STRATEGIES[name](SiteState(site, sessions=live, tariff=tariff, peak_w=10_000.0), NOW)
    free = STRATEGIES[name](SiteState(site, sessions=live, tariff=Tariff()), NOW)
    assert free.total_w() > 20_000.0  # flat price, no demand charge: now is as good as later, the whole 32 A
    assert capped.total_w() <= 10_000.0 + 1.0  # the billing period's peak is not raised for energy that can wait


def test_under_a_tariff_fair_and_priority_shares_still_decide_who_waits_when_the_site_is_short():
    """Two cars that both must charge now (their need exceeds the cheap hours) on a site that holds 20 A:
    equal_share splits it, priority serves the fleet first; the tariff only trims what can wait."""
    site = simple_site(2, limit_a=20.0)  # its priority groups: fleet, then staff
    live = {
        ("cp0", 1): SessionState(("cp0", 1), energy_needed_wh=60_000.0, departure=NOW + 4 * 3600, group="guest"),
        ("cp1", 1): SessionState(("cp1", 1), energy_needed_wh=60_000.0, departure=NOW + 4 * 3600, group="fleet"),
    }
    tariff = _two_hour_tariff(0.50, 0.05)
    fair = STRATEGIES["equal_share"](SiteState(site, sessions=live, tariff=tariff), NOW).limits_a
    assert fair[("cp0", 1)] == pytest.approx(10.0) and fair[("cp1", 1)] == pytest.approx(10.0)
    ranked = STRATEGIES["priority"](SiteState(site, sessions=live, tariff=tariff), NOW).limits_a
    assert ranked[("cp1", 1)] == pytest.approx(20.0) and ranked[("cp0", 1)] == 0.0


@pytest.mark.parametrize("name", ["deadline", "equal_share", "priority"])
def test_with_a_demand_charge_the_vans_still_on_their_way_let_the_early_ones_charge_harder(name):
    """Two vans plugged, eight on their way (fleet records: need and departure): the night's flat import counts
    them, so the vans here charge now towards it instead of the peak being set when the others arrive."""
    site = simple_site(2, limit_a=63.0)
    departure = NOW + 10 * 3600
    live = {e.key: SessionState(e.key, energy_needed_wh=80_000.0, departure=departure) for e in site.evses}
    tariff = Tariff(demand_charge_per_kw=12.0)
    alone = STRATEGIES[name](SiteState(site, sessions=live, tariff=tariff), NOW)
    coming = tuple(ExpectedVehicle(f"van-{n}", 20_000.0, departure) for n in range(8))
    ahead = STRATEGIES[name](SiteState(site, sessions=live, tariff=tariff, expected=coming), NOW)
    # alone: 160 kWh over the 9.75 h to 15 minutes before the departure; with the eight: 320 kWh, twice as much
    assert alone.total_w() == pytest.approx(160_000.0 / 9.75, rel=0.01)
    assert ahead.total_w() == pytest.approx(2 * alone.total_w(), rel=0.01)
    gone = tuple(ExpectedVehicle(f"van-{n}", 20_000.0, NOW - 60) for n in range(8))
    assert STRATEGIES[name](SiteState(site, sessions=live, tariff=tariff, expected=gone), NOW).total_w() == (
        pytest.approx(alone.total_w())
    )  # a departure already past is nobody's need


@pytest.mark.parametrize("name", ["deadline", "equal_share", "priority"])
def test_with_a_demand_charge_every_strategy_uses_the_room_under_the_peak_even_below_every_evses_minimum(name):
    """Four cars that need little (under their 6 A minimum on average) and a billing-period peak of 12 kW: scaled
    evenly to it each would get 4.3 A and be paused; two run at the level instead, none above it (the top-up
    under the level; equal_share and priority gave each its 6 A minimum: 16.6 kW, a new peak)."""
    site = simple_site(4, limit_a=63.0)
    live = {e.key: SessionState(e.key, energy_needed_wh=2_000.0, departure=NOW + 8 * 3600) for e in site.evses}
    alloc = STRATEGIES[name](SiteState(site, sessions=live, tariff=Tariff(demand_charge_per_kw=12.0),
                                             peak_w=12_000.0), NOW)  # fmt: skip
    assert 11_000.0 <= alloc.total_w() <= 12_000.0 + 1.0
    assert all(x == 0.0 or x >= 6.0 for x in alloc.limits_a.values())


def test_under_a_tariff_the_rate_a_departure_needs_changes_smoothly_from_minute_to_minute():
    """The tariff is looked at in 15-minute slices; the one the deadline falls in counts in part, so what a car
    must draw does not jump at every quarter hour as its departure nears (those jumps set peaks)."""
    site = simple_site(1, limit_a=63.0)
    key = ("cp0", 1)
    tariff = Tariff(periods=((0.0, 0.10),), demand_charge_per_kw=12.0)  # one price: nothing cheaper later
    sessions = {key: SessionState(key, energy_needed_wh=20_000.0, departure=NOW + 2 * 3600)}
    now = STRATEGIES["deadline"](SiteState(site, sessions=sessions, tariff=tariff), NOW).power_w[key]
    later = STRATEGIES["deadline"](SiteState(site, sessions=sessions, tariff=tariff), NOW + 60).power_w[key]
    assert now == pytest.approx(20_000.0 * 3600 / 6300, rel=0.01)  # done 15 minutes before the departure
    assert later == pytest.approx(now * 6300 / 6240, rel=0.01)  # not the 7/6 of a window cut to whole slices
