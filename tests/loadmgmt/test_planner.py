"""The sans-IO planner: what it sends on each fact, at exact times, and how it treats failures."""

from __future__ import annotations

import pytest

from csms.loadmgmt.planner import Command, Planner, PlannerConfig
from csms.loadmgmt.topology import Evse, Node, Site

T0 = 1_800_000_000.0


def make_site(n: int = 3, limit_a: float = 48.0) -> Site:
    evses = tuple(Evse(f"cp{i}", 1, fallback_current_a=8.0) for i in range(n))
    return Site("s", Node("grid", phase_limits_a=(limit_a,) * 3, evses=evses))


def limits(commands: list[Command]) -> dict[tuple[str, str], float]:
    out = {}
    for c in commands:
        if "csChargingProfiles" in c.payload:
            p = c.payload["csChargingProfiles"]
            out[(c.station_id, p["chargingProfilePurpose"])] = p["chargingSchedule"]["chargingSchedulePeriod"][0][
                "limit"
            ]
        else:
            p = c.payload["chargingProfile"]
            out[(c.station_id, p["chargingProfilePurpose"])] = p["chargingSchedule"][0]["chargingSchedulePeriod"][0][
                "limit"
            ]
    return out


def online(planner: Planner, n: int, t: float = T0) -> None:
    for i in range(n):
        planner.station_online(f"cp{i}", t, "1.6" if i % 2 == 0 else "2.0.1")


def test_online_stations_get_their_fallback_as_tx_default():
    planner = Planner(make_site(), "equal_share")
    commands = planner.station_online("cp0", T0, "1.6")
    assert [c.action for c in commands] == ["SetChargingProfile"]
    assert limits(commands) == {("cp0", "TxDefaultProfile"): 8.0}


def test_plug_in_and_transaction_plan_and_only_changes_are_sent():
    planner = Planner(make_site(), "equal_share")
    online(planner, 3)
    first = planner.plug_in(("cp0", 1), T0 + 10)  # no transaction yet: TxDefault on its connector
    assert limits(first) == {("cp0", "TxDefaultProfile"): 32.0}
    second = planner.transaction_started(("cp0", 1), "17", T0 + 20)
    assert limits(second) == {("cp0", "TxDefaultProfile"): 8.0, ("cp0", "TxProfile"): 32.0}
    assert second[1].payload["csChargingProfiles"]["transactionId"] == 17
    third = planner.transaction_started(("cp1", 1), "tx-b", T0 + 30)
    assert limits(third) == {("cp0", "TxProfile"): 24.0, ("cp1", "TxProfile"): 24.0}
    assert third[1].payload["chargingProfile"]["transactionId"] == "tx-b"
    assert planner.handle_timer(T0 + 60) == []  # nothing changed and not due
    assert limits(planner.stop(("cp1", 1), T0 + 70)) == {("cp0", "TxProfile"): 32.0}


def test_periodic_replans_at_exact_times():
    planner = Planner(make_site(), "equal_share", config=PlannerConfig(interval_s=60.0))
    assert planner.next_deadline() is None
    online(planner, 3)
    assert planner.next_deadline() == T0 + 60.0
    planner.plug_in(("cp0", 1), T0 + 15.0)
    assert planner.next_deadline() == T0 + 75.0
    before = planner.plans
    assert planner.handle_timer(T0 + 74.999) == [] and planner.plans == before
    planner.handle_timer(T0 + 75.0)
    assert planner.plans == before + 1
    assert planner.next_deadline() == T0 + 135.0


def test_none_strategy_sends_nothing():
    planner = Planner(make_site(), "none")
    assert planner.station_online("cp0", T0, "1.6") == []
    assert planner.plug_in(("cp0", 1), T0) == []
    assert planner.next_deadline() is None


def test_offline_station_is_planned_at_its_fallback_or_the_higher_profile_it_keeps_applying():
    planner = Planner(make_site(limit_a=40.0), "equal_share")
    online(planner, 3)
    planner.transaction_started(("cp0", 1), "1", T0)
    planner.transaction_started(("cp1", 1), "2", T0)
    for c in planner.transaction_started(("cp2", 1), "3", T0):
        planner.call_result(c, "Accepted", T0 + 1)
    assert planner.last_allocation.limits_a[("cp0", 1)] == pytest.approx(40 / 3)
    # cp2 goes offline in the middle of its transaction: it goes on at its accepted 13.3 A, not its 8 A fallback
    assert planner.station_offline("cp2", T0 + 5) == []
    assert planner.reserved_a() == {("cp2", 1): pytest.approx(13.3)}
    assert planner.last_allocation.limits_a == pytest.approx({("cp0", 1): 13.35, ("cp1", 1): 13.35})
    # its transaction ends: the TxProfile is gone with it, only the fallback remains reserved
    commands = planner.stop(("cp2", 1), T0 + 10)
    assert planner.reserved_a() == {("cp2", 1): 8.0}
    assert planner.last_allocation.limits_a == pytest.approx({("cp0", 1): 16.0, ("cp1", 1): 16.0})
    assert {c.station_id for c in commands} == {"cp0", "cp1"}


def test_rejected_profile_reserves_the_evse_and_replans():
    planner = Planner(make_site(n=2, limit_a=40.0), "equal_share")
    online(planner, 2)
    planner.transaction_started(("cp0", 1), "1", T0)
    (cmd,) = [
        c
        for c in planner.transaction_started(("cp1", 1), "2", T0)
        if c.station_id == "cp1"
        and "chargingProfile" in c.payload
        and c.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
    ]
    after = planner.call_result(cmd, "Rejected", T0 + 1)
    # cp1 never acknowledged a limit: it is planned at its fallback (8 A), the rest goes to cp0
    assert ("cp1", 1) not in planner.last_allocation.limits_a
    assert planner.last_allocation.limits_a[("cp0", 1)] == pytest.approx(32.0)
    assert limits(after) == {("cp0", "TxProfile"): 32.0}
    assert planner.next_deadline() == T0 + 1 + 60  # the failure re-planned; the retry comes at T0 + 301


def test_a_tx_profile_rejected_because_its_transaction_ended_meanwhile_is_not_a_failure():
    planner = Planner(make_site(n=2, limit_a=40.0), "equal_share")
    online(planner, 2)
    planner.transaction_started(("cp0", 1), "1", T0)
    planner.transaction_started(("cp1", 1), "2", T0)
    # cp0's car leaves: cp1's TxProfile goes up while cp1's own transaction is ending on the charger
    (cmd,) = [c for c in planner.stop(("cp0", 1), T0 + 10) if c.station_id == "cp1"]
    assert limits([cmd]) == {("cp1", "TxProfile"): 32.0}
    planner.stop(("cp1", 1), T0 + 10.1)  # its StopTransaction arrives before the charger's Rejected
    assert planner.call_result(cmd, "Rejected", T0 + 10.2) == []
    assert planner.failed_profiles == 0 and planner.reserved_a() == {}
    assert planner.next_deadline() == T0 + 10.1 + 60  # no retry scheduled
    # the next car on cp1 is planned normally, not at a reserved fallback
    assert limits(planner.transaction_started(("cp1", 1), "3", T0 + 20))[("cp1", "TxProfile")] == 32.0


def test_site_meter_reading_replans_and_a_stale_one_is_replaced_by_the_window_peak():
    config = PlannerConfig(stale_after_s=300.0, meter_window_s=3600.0)
    planner = Planner(make_site(n=2, limit_a=64.0), "equal_share", config=config)
    online(planner, 2)
    planner.transaction_started(("cp0", 1), "1", T0)
    planner.transaction_started(("cp1", 1), "2", T0)
    planner.site_meter(T0 + 10, phases_a=(20.0, 4.0, 4.0))
    assert planner.last_allocation.limits_a[("cp0", 1)] == pytest.approx(22.0)
    planner.site_meter(T0 + 20, power_w=3 * 230.0 * 4.0)  # 4 A per phase
    assert planner.last_allocation.limits_a[("cp0", 1)] == pytest.approx(30.0)
    assert planner.building_load_a(T0 + 320) == (4.0, 4.0, 4.0)
    assert planner.building_load_a(T0 + 321) == (20.0, 4.0, 4.0)  # stale: the worst of the last hour


def test_grid_meter_including_evs_is_corrected_by_their_measured_draw():
    planner = Planner(make_site(n=1, limit_a=64.0), "equal_share")
    online(planner, 1)
    planner.transaction_started(("cp0", 1), "1", T0)
    planner.evse_meter(("cp0", 1), T0 + 5, current_a=30.0, energy_wh=100.0)
    planner.site_meter(T0 + 10, phases_a=(40.0, 40.0, 40.0), includes_ev=True)
    assert planner.building_load_a(T0 + 10) == (10.0, 10.0, 10.0)


def test_a_vehicle_drawing_less_hands_its_headroom_to_others_after_settling():
    config = PlannerConfig(settle_s=120.0, accept_margin_a=1.0)
    planner = Planner(make_site(n=2, limit_a=40.0), "equal_share", config=config)
    online(planner, 2)
    planner.transaction_started(("cp0", 1), "1", T0)
    planner.transaction_started(("cp1", 1), "2", T0)
    planner.evse_meter(("cp0", 1), T0 + 60, current_a=7.0)  # not settled yet: ignored
    planner.handle_timer(T0 + 60)
    assert planner.last_allocation.limits_a[("cp1", 1)] == pytest.approx(20.0)
    planner.evse_meter(("cp0", 1), T0 + 130, current_a=7.0)
    planner.handle_timer(T0 + 130)
    assert planner.last_allocation.limits_a == pytest.approx({("cp0", 1): 8.0, ("cp1", 1): 32.0})
    planner.evse_meter(("cp0", 1), T0 + 200, current_a=7.9)  # pushing against its cap: wants more again
    planner.handle_timer(T0 + 200)
    assert planner.last_allocation.limits_a[("cp0", 1)] == pytest.approx(20.0)


def test_fault_stops_allocating_to_the_evse_until_cleared():
    planner = Planner(make_site(n=2, limit_a=40.0), "equal_share")
    online(planner, 2)
    planner.transaction_started(("cp0", 1), "1", T0)
    planner.transaction_started(("cp1", 1), "2", T0)
    planner.fault(("cp0", 1), T0 + 1)
    assert ("cp0", 1) not in planner.last_allocation.limits_a
    assert planner.last_allocation.limits_a[("cp1", 1)] == pytest.approx(32.0)
    planner.fault(("cp0", 1), T0 + 2, active=False)
    assert planner.last_allocation.limits_a[("cp0", 1)] == pytest.approx(20.0)


def test_station_max_profile_when_the_panel_is_tighter_than_the_station():
    two = (Evse("big", 1), Evse("big", 2))
    site = Site(
        "s", Node("grid", phase_limits_a=(100.0,) * 3, children=(Node("panel", phase_limits_a=(40.0,) * 3, evses=two),))
    )
    planner = Planner(site, "equal_share")
    commands = planner.station_online("big", T0, "2.0.1")
    assert limits(commands)[("big", "ChargingStationMaxProfile")] == 40.0
    planner16 = Planner(site, "equal_share")
    assert limits(planner16.station_online("big", T0, "1.6"))[("big", "ChargePointMaxProfile")] == 40.0


def test_unknown_event_kind_is_refused():
    with pytest.raises(ValueError, match="unknown event"):
        Planner(make_site(), "equal_share").on_event("coffee", T0)


# ---- property: any sequence of facts and meter readings keeps every plan within the tree ----------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.loadmgmt._sites import sites, violations  # noqa: E402

FACTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["online", "offline", "plug", "start", "stop", "meter", "evse_meter", "fault", "timer", "reject"]
        ),
        st.integers(0, 20),
        st.floats(0, 300),
        st.floats(0, 120),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    site=sites(max_evses=8), facts=FACTS, strategy=st.sampled_from(["equal_share", "priority", "deadline", "optimal"])
)
def test_planner_never_plans_beyond_the_tree_for_any_fact_sequence(site, facts, strategy):
    planner = Planner(site, strategy)
    now = T0
    evses = site.evses
    outbox: list[Command] = []
    for kind, pick, amount, dt in facts:
        now += dt
        e = evses[pick % len(evses)]
        commands: list[Command] = []
        if kind == "online":
            commands = planner.station_online(e.station_id, now, "1.6" if pick % 2 else "2.0.1")
        elif kind == "offline":
            commands = planner.station_offline(e.station_id, now)
        elif kind == "plug":
            commands = planner.plug_in(
                e.key, now, energy_needed_wh=amount * 100, departure=now + amount * 60, group=["fleet", None][pick % 2]
            )
        elif kind == "start":
            commands = planner.transaction_started(e.key, str(pick + 1), now)
        elif kind == "stop":
            commands = planner.stop(e.key, now)
        elif kind == "meter":
            commands = planner.site_meter(now, phases_a=(amount, amount / 2, amount / 3), includes_ev=pick % 3 == 0)
        elif kind == "evse_meter":
            planner.evse_meter(e.key, now, current_a=amount / 10, energy_wh=amount * 10)
        elif kind == "fault":
            commands = planner.fault(e.key, now, active=pick % 2 == 0)
        elif kind == "timer":
            commands = planner.handle_timer(planner.next_deadline() or now)
        if kind == "reject":  # the charger answers one of the calls still open: Rejected, CALLERROR, timeout
            if outbox:
                planner.call_result(outbox.pop(pick % len(outbox)), ["Rejected", "error", "timeout"][pick % 3], now)
        else:
            outbox.extend(commands)
            for c in outbox[: pick % 3]:
                planner.call_result(c, "Accepted", now)
            del outbox[: pick % 3]
        if planner.last_allocation is not None and planner.last_allocation.at == now:
            assert violations(planner.state(now), planner.last_allocation) == []


def test_16_transaction_id_that_is_not_an_integer_falls_back_to_tx_default():
    planner = Planner(make_site(n=1), "equal_share")
    online(planner, 1)  # cp0 speaks 1.6
    commands = planner.transaction_started(("cp0", 1), "charger-made-id", T0 + 1)
    assert limits(commands) == {("cp0", "TxDefaultProfile"): 32.0}
