"""The building's load ahead (csms/loadmgmt/forecast.py): a profile by time of day learnt from the site meter's
readings, which the planner plans the next interval with and the strategies their horizon."""

from __future__ import annotations

import dataclasses

import pytest

from csms.loadmgmt.forecast import BuildingForecast
from csms.loadmgmt.planner import Planner, PlannerConfig
from csms.loadmgmt.state import SessionState, SiteState, Tariff
from csms.loadmgmt.strategies import STRATEGIES
from csms.loadmgmt.topology import Evse, Node, Site

DAY0 = 1_799_971_200.0  # 2027-01-14 00:00 UTC
LIMIT_A = 100.0


def building_a(t: float) -> float:
    """Flats: 20 A a phase, 60 A from 07:00:30 to 09:00 and from 18:00:30 to 20:00 (UTC) — each step comes half
    a minute after a meter reading."""
    of_day = (t - DAY0) % 86_400
    return 60.0 if 7 * 3600 + 30 <= of_day < 9 * 3600 or 18 * 3600 + 30 <= of_day < 20 * 3600 else 20.0


def run(config: PlannerConfig, days: int = 3) -> tuple[list[int], float]:
    """Three cars that always want more than the site has; a reading every minute and a re-plan on it. Per day
    the minutes a phase was above its limit while the cars drew what the plan said, and the last day's EV kWh."""
    evses = tuple(Evse(f"cp{i}", 1) for i in range(3))
    planner = Planner(Site("s", Node("grid", phase_limits_a=(LIMIT_A,) * 3, evses=evses)), "equal_share",
                      config=config)  # fmt: skip
    for i in range(3):
        planner.station_online(f"cp{i}", DAY0, "2.0.1")
        planner.transaction_started((f"cp{i}", 1), f"tx{i}", DAY0)
    over = [0] * days
    energy_ah = 0.0
    for minute in range(days * 1440):
        t = DAY0 + 60.0 * minute
        load = building_a(t)
        planner.site_meter(t, phases_a=(load, load, load))
        allocation = planner.last_allocation
        assert allocation is not None
        ev_a = sum(allocation.limits_a.values())
        if max(building_a(t), building_a(t + 59)) + ev_a > LIMIT_A + 1e-6:
            over[minute // 1440] += 1
        if minute >= (days - 1) * 1440:
            energy_ah += ev_a / 60
    return over, energy_ah * 230 * 3 / 1000  # kWh at 230 V on three phases (the site's voltage)


def test_a_learnt_step_is_met_before_it_comes_where_the_load_of_now_is_caught_by_it():
    persisted, energy_persisted = run(PlannerConfig(building_lookahead_s=None))
    learnt, energy_learnt = run(PlannerConfig())
    assert persisted == [2, 2, 2]  # the minute after each step, every day
    assert learnt == [2, 0, 0]  # the first day it has nothing to go by
    assert energy_learnt >= 0.99 * energy_persisted  # lowered only for the minute or two before each step


def test_the_profiles_are_the_slots_mean_and_highest_weighted_towards_the_newest_day():
    forecast = BuildingForecast(slot_s=900.0, weight=0.5)
    assert forecast.highest_a(DAY0, DAY0 + 60) is None  # nothing learnt
    for day, amps in enumerate((10.0, 30.0)):
        for minute in range(16):  # 00:00 to 00:15, the first reading of the next slot closes the slot
            t = DAY0 + day * 86_400 + 60.0 * minute
            forecast.observe(t, (amps, amps, amps + (3.0 if minute else 9.0)))
    # highest: day 1 (10, 10, 19), day 2 (30, 30, 39), weighted half and half
    assert forecast.highest_a(DAY0 + 2 * 86_400, DAY0 + 2 * 86_400 + 60) == pytest.approx((20.0, 20.0, 29.0))
    # mean: day 1 10+10+13.4, day 2 30+30+33.4 -> 63.4 summed over the phases
    assert forecast.mean_a(DAY0, DAY0 + 900) == pytest.approx(63.4)
    assert forecast.highest_a(DAY0, DAY0 + 3600) is None  # 00:30 to 01:00 not learnt yet


def test_the_strategies_charge_ahead_of_the_buildings_evening_peak_they_have_learnt():
    """A demand charge and 100 kWh to give by 22:00, at 16:00: the flat import the strategies aim at counts the
    building's learnt evening (60 A from 18:00 to 20:00), so the cars charge harder now, before it; with the load
    of now held (20 A) they would draw only the even rate and meet the evening on top of it."""
    evses = tuple(Evse(f"cp{i}", 1) for i in range(2))
    site = Site("s", Node("grid", phase_limits_a=(LIMIT_A,) * 3, evses=evses))
    forecast = BuildingForecast()
    for minute in range(2 * 1440 + 1):
        t = DAY0 + 60.0 * minute
        load = building_a(t)
        forecast.observe(t, (load, load, load))
    now = DAY0 + 2 * 86_400 + 16 * 3600
    live = {e.key: SessionState(e.key, energy_needed_wh=50_000.0, departure=now + 6 * 3600) for e in evses}
    held = SiteState(site, building_load_a=(20.0, 20.0, 20.0), sessions=live, tariff=Tariff(demand_charge_per_kw=12.0))
    learnt = dataclasses.replace(held, building_forecast=forecast)
    for name in ("deadline", "equal_share", "priority"):
        even_w = STRATEGIES[name](held, now).total_w()
        ahead_w = STRATEGIES[name](learnt, now).total_w()
        assert even_w == pytest.approx(100_000 / 5.75, rel=0.01)  # by 15 minutes before the departure
        # + the building's mean until then (20 A for 3.75 h, 60 A for 2 h: 33.9 A) less its 20 A of now
        assert ahead_w == pytest.approx(even_w + (33.9 - 20.0) * 3 * 230, rel=0.02), name


def evening_forecast(days: int = 2) -> BuildingForecast:
    """``days`` of the flats' readings, a minute apart (20 A a phase, 60 A from 18:00 to 20:00 and 07:00 to 09:00)."""
    forecast = BuildingForecast()
    for minute in range(days * 1440 + 1):
        t = DAY0 + 60.0 * minute
        load = building_a(t)
        forecast.observe(t, (load, load, load))
    return forecast


def test_optimal_charges_before_the_buildings_learnt_evening_peak_not_during_it():
    """16:00, two cars needing 60 kWh each by 21:00 behind 80 A a phase; energy costs 0.40 until 17:00 and 0.10
    after. With the load of now held (20 A) the LP leaves the expensive hour alone and fills 17:00-21:00; with the
    evening learnt (60 A from 18:00 to 20:00: 20 A left for the cars) it must charge now, before the peak, and
    plans the peak's hours no higher than the room the building leaves."""
    from csms.loadmgmt.strategies import optimal
    from csms.loadmgmt.strategies._core import build_problem

    evses = tuple(Evse(f"cp{i}", 1) for i in range(2))
    site = Site("s", Node("grid", phase_limits_a=(80.0,) * 3, evses=evses))
    now = DAY0 + 2 * 86_400 + 16 * 3600
    day = now - now % 86_400
    tariff = Tariff(periods=((0.0, 0.10), (16 * 3600.0, 0.40), (17 * 3600.0, 0.10)))
    live = {e.key: SessionState(e.key, energy_needed_wh=60_000.0, departure=now + 5 * 3600) for e in evses}
    held = SiteState(site, building_load_a=(20.0, 20.0, 20.0), sessions=live, tariff=tariff)
    learnt = dataclasses.replace(held, building_forecast=evening_forecast())

    def planned(state: SiteState) -> tuple[float, float, float]:
        """Amps a phase planned for the two cars together: in 16:00-17:00, the most in 18:00-20:00, in kWh all."""
        edges, x = optimal.plan(build_problem(state, now))
        starts, ends = edges[:-1], edges[1:]
        total = x.sum(axis=0)
        first = float(sum(total[t] * (ends[t] - starts[t]) for t in range(len(starts)) if starts[t] < day + 17 * 3600))
        peak = max(float(total[t]) for t in range(len(starts)) if day + 18 * 3600 <= starts[t] < day + 20 * 3600)
        kwh = float(sum(total * (ends - starts))) * 3 * 230 / 3.6e6
        return first / 3600, peak, kwh

    held_first, held_peak, held_kwh = planned(held)
    learnt_first, learnt_peak, learnt_kwh = planned(learnt)
    assert held_kwh == pytest.approx(120.0, rel=1e-3) and learnt_kwh == pytest.approx(120.0, rel=1e-3)
    assert held_first == pytest.approx(0.0, abs=0.1)  # the cheap hours hold it all: 60 A for 3.9 h is 162 kWh
    assert held_peak > 40.0  # planned at more than twice the 20 A the building will leave
    assert learnt_peak <= 20.0 + 1e-6  # what the learnt evening leaves
    # 17:00-18:00 and 20:00-20:55 at 60 A and 2 h at 20 A hold 107 kWh: the other 13 before 17:00 (~19 A)
    assert learnt_first == pytest.approx(13.0 / 0.69, rel=0.05)
    first_step = STRATEGIES["optimal"](learnt, now).limits_a
    assert sum(first_step.values()) > 5.0  # and the plan applied now is that charging
    assert sum(STRATEGIES["optimal"](held, now).limits_a.values()) == pytest.approx(0.0, abs=1e-6)


def test_a_learnt_forecast_survives_a_restart(session_factory, now):
    """A day of the flats' meter learnt by one process, stored as it learns; a process that starts next reads it
    back and plans with the same profiles — and the meter's last readings, which it replays, count only once."""
    from datetime import UTC, datetime

    from csms.loadmgmt.manager import LoadManager
    from csms.services import sites, stations
    from csms.services.load_memory import read_memory, save_forecasts

    with session_factory() as db:
        stations.provision(db, "cp0", ocpp_version="2.0.1", password=None, now=now)
        sites.create(db, "flats", now=now, strategy="optimal", nodes=[{"id": "grid", "phase_limits_a": [100] * 3}],
                     evses=[{"station_id": "cp0", "evse_id": 1, "node": "grid"}])  # fmt: skip
        db.commit()
    start = now.timestamp() - now.timestamp() % 86_400 - 86_400  # yesterday 00:00 UTC
    first = LoadManager()
    with session_factory() as db:
        first.resume(read_memory(db, start), start)
    stored = 0
    for minute in range(1440 + 20):  # a day and twenty minutes, a reading a minute
        t = start + 60.0 * minute
        load = building_a(DAY0 + 60.0 * minute)
        first.site_reading("flats", t, currents_a=(load, load, load))
        records = first.forecasts_to_store()
        if records:
            stored += 1
            with session_factory() as db:
                if minute >= 1440:  # the meter's last minutes are in the store too: a restart replays them
                    sites.record_reading(db, "flats", timestamp=datetime.fromtimestamp(t, UTC), now=now,
                                         currents_a=[load] * 3)  # fmt: skip
                save_forecasts(db, records, datetime.fromtimestamp(t, UTC))
                db.commit()
        elif minute >= 1440:
            with session_factory() as db:
                sites.record_reading(db, "flats", timestamp=datetime.fromtimestamp(t, UTC), now=now,
                                     currents_a=[load] * 3)  # fmt: skip
                db.commit()
    assert stored == 97  # once a slot closed: 96 slots of the day and the first of the next
    learnt = first.planners["flats"].forecast
    restart = start + 60.0 * (1440 + 20)
    second = LoadManager()
    with session_factory() as db:
        second.resume(read_memory(db, restart), restart)
    again = second.planners["flats"].forecast
    assert again is not learnt
    assert again.record() == learnt.record()
    assert again.highest_a(start + 86_400 + 18 * 3600, start + 86_400 + 19 * 3600) == pytest.approx((60.0,) * 3)
    assert second.forecasts_to_store() == {}  # nothing new learnt: nothing written
    state = second.planners["flats"].state(restart)
    assert state.building_forecast is again  # what the strategies plan with
    fresh = LoadManager()  # without the store's word: nothing learnt
    fresh.install(second.setups["flats"], restart)
    assert fresh.planners["flats"].forecast.highest_a(start, start + 900) is None
