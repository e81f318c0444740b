"""The LoadManager: station facts (committed reports, schedule needs) mapped onto the site's planner."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from csms.domain import events as ev
from csms.loadmgmt.manager import PENDING_NEEDS_S, LoadManager, Memory, SiteSetup, StoredSession
from csms.loadmgmt.planner import PlannerConfig
from csms.loadmgmt.state import ExpectedVehicle
from csms.loadmgmt.topology import Evse, Node, Site

T0 = 1_800_000_000.0
CAR = ("cp1", 1)


def managed(limit_a: float = 10.0) -> LoadManager:
    """Two 1.6 stations behind a per-phase limit that feeds only one car at its 6 A minimum."""
    evses = tuple(Evse(f"cp{i}", 1, fallback_current_a=0.0) for i in range(2))
    site = Site("s", Node("grid", phase_limits_a=(limit_a,) * 3, evses=evses))
    manager = LoadManager()
    # No minimum on time: the car without known needs gives way to the one with a deadline at once.
    config = PlannerConfig(min_dwell_s=0.0)
    manager.install(SiteSetup("s", site, strategy="deadline", versions={"cp0": "1.6", "cp1": "1.6"}, config=config), T0)
    for station_id in ("cp0", "cp1"):
        manager.connected(station_id, "1.6", T0)
    return manager


def status(manager: LoadManager, station_id: str, value: str, now: float) -> None:
    report = ev.StatusReported(1, 1, value, ev.port_state(value), None)
    manager.committed(station_id, [(report, None)], now)


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
    assert planner.last_allocation.limits_a[("cp0", 1)] == 0.0
    # the car with a deadline charges once cp0, not yet seen following a reduction, may have come down
    planner.handle_timer(T0 + 180)
    assert planner.last_allocation.limits_a[CAR] >= 6.0
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


def test_a_starting_process_plans_the_running_sessions_it_finds_in_the_store(session_factory, now):
    from csms.services import sites, stations
    from csms.services.load_memory import read_memory
    from csms.store.models import Connector, IdToken, Transaction

    t = now.timestamp()
    with session_factory() as db:
        for station_id, version in (("cp0", "1.6"), ("cp1", "2.0.1"), ("cp2", "1.6")):
            stations.provision(db, station_id, ocpp_version=version, password=None, now=now)
        wiring = [{"station_id": f"cp{i}", "evse_id": 1, "node": "grid", "fallback_current_a": 0.0} for i in range(3)]
        sites.create(
            db,
            "s",
            now=now,
            strategy="equal_share",
            nodes=[{"id": "grid", "phase_limits_a": [32, 32, 32]}],
            evses=wiring,
        )
        db.add(IdToken(id_token="VAN-1", group_id="FLEET", created_at=now, updated_at=now))
        db.add_all(
            [
                Transaction(station_id="cp0", charger_tx_id="c0", evse_id=1, connector_id=1, id_token="VAN-1",
                            started_at=now, meter_start_wh=1000.0, last_meter_wh=4000.0, status="active"),
                Transaction(station_id="cp1", charger_tx_id="uuid-1", evse_id=1, connector_id=1, started_at=now,
                            status="active"),
                Transaction(station_id="cp2", charger_tx_id="c2", evse_id=1, connector_id=1, started_at=now,
                            status="completed"),
                Connector(station_id="cp2", evse_id=1, connector_id=1, status="Available", status_at=now),
            ]
        )  # fmt: skip
        db.commit()
        sites.record_reading(db, "s", timestamp=now, now=now, currents_a=[10.0, 10.0, 10.0])
        db.commit()
        tx0 = db.query(Transaction).filter_by(station_id="cp0").one().id
        memory = read_memory(db, t + 30)
    manager = LoadManager()
    assert manager.resume(memory, t + 30) == []  # every station is offline until it connects again
    planner = manager.planners["s"]
    state = planner.state(t + 30)
    assert {k: s.transaction_id for k, s in state.sessions.items()} == {("cp0", 1): str(tx0), ("cp1", 1): "uuid-1"}
    assert state.sessions[("cp0", 1)].group == "FLEET" and state.sessions[("cp0", 1)].energy_wh == 3000.0
    assert state.building_load_a == (10.0, 10.0, 10.0)  # the meter's last reading, not the 0 A assumption
    commands = manager.connected("cp0", "1.6", t + 40)  # cp0 reconnects: its TxProfile names our transaction
    tx_profiles = [c.payload["csChargingProfiles"] for c in commands if "csChargingProfiles" in c.payload]
    assert [p["transactionId"] for p in tx_profiles if p["chargingProfilePurpose"] == "TxProfile"] == [tx0]


def test_charging_needs_from_the_charger_reach_the_plan():
    manager = managed()
    status(manager, "cp1", "Occupied", T0)
    departure = datetime.fromtimestamp(T0 + 3 * 3600, UTC)
    needs = ev.ChargingNeedsReported(1, 12_000.0, departure)
    manager.committed("cp1", [(needs, ev.Acknowledged())], T0 + 5)
    session = manager.planners["s"].state(T0 + 6).sessions[CAR]
    assert (session.energy_needed_wh, session.departure) == (12_000.0, T0 + 3 * 3600)


def test_a_finishing_port_ends_the_session_and_a_fault_is_no_plug_in():
    manager = managed()
    status(manager, "cp1", "Charging", T0)
    assert CAR in manager.planners["s"].state(T0 + 1).sessions
    status(manager, "cp1", "Finishing", T0 + 10)
    assert CAR not in manager.planners["s"].state(T0 + 11).sessions
    status(manager, "cp1", "Faulted", T0 + 20)
    assert CAR not in manager.planners["s"].state(T0 + 21).sessions


def test_the_load_manager_reads_no_store():
    """Not even through a function-local import: its inputs are handed in (csms/services/load_memory.py)."""
    package = Path(__file__).parents[2] / "csms" / "loadmgmt"
    imported = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    banned = ("csms.services", "csms.store", "sqlalchemy")
    assert sorted(m for m in imported if m.startswith(banned)) == []


def test_charging_needs_are_kept_as_the_station_event_operators_see(session_factory, now):
    from csms.services import reports, stations
    from csms.services.config import CsmsConfig
    from csms.services.uow import transaction
    from csms.store.models import StationEvent

    payload = {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "DC"}}
    with transaction(session_factory) as uow:
        stations.provision(uow.session, "cp1", ocpp_version="2.0.1", password=None, now=now)
        report = ev.ChargingNeedsReported(1, None, None, payload)
        answer = reports.handle(uow, "cp1", report, now, CsmsConfig(), csms_assigns_tx_ids=False)
    assert answer == ev.EvChargingAnswer("Processing")  # no transaction yet: its TxProfile follows the start
    with session_factory() as db:
        [row] = db.query(StationEvent).filter_by(station_id="cp1").all()
    assert (row.kind, row.data) == ("ev_charging_needs", payload)


def test_an_iso15118_evs_limit_caps_its_tx_profile_and_each_needs_message_gets_one():
    evse = Evse("cp1", 1, fallback_current_a=6.0)
    manager = LoadManager()
    manager.install(
        SiteSetup(
            "s",
            Site("s", Node("grid", phase_limits_a=(63.0,) * 3, evses=(evse,))),
            strategy="equal_share",
            versions={"cp1": "2.0.1"},
        ),
        T0,
    )
    manager.connected("cp1", "2.0.1", T0)
    status(manager, "cp1", "Occupied", T0)
    started = ev.TransactionStarted(1, 1, datetime.fromtimestamp(T0, UTC), None, charger_tx_id="TX-1")
    manager.committed("cp1", [(started, ev.TransactionAck(0, None))], T0 + 1)
    needs = ev.ChargingNeedsReported(1, 12_000.0, None, {"chargingNeeds": {}}, ev_max_current_a=10.0)

    def tx_limits(commands: list) -> list[float]:
        profiles = [c.payload["chargingProfile"] for c in commands]
        periods = [p["chargingSchedule"][0]["chargingSchedulePeriod"] for p in profiles if p.get("transactionId")]
        return [p[0]["limit"] for p in periods]

    assert tx_limits(manager.committed("cp1", [(needs, ev.EvChargingAnswer("Accepted"))], T0 + 2)) == [10.0]
    # the same needs again (the EV renegotiates): the same profile again, the EV waits for it
    assert tx_limits(manager.committed("cp1", [(needs, ev.EvChargingAnswer("Accepted"))], T0 + 3)) == [10.0]
    rejected = ev.EvScheduleReported(1, datetime.fromtimestamp(T0, UTC), {})
    assert tx_limits(manager.committed("cp1", [(rejected, ev.EvChargingAnswer("Rejected", "too much"))], T0 + 4)) == [
        10.0
    ]
    accepted = ev.EvChargingAnswer("Accepted")
    assert tx_limits(manager.committed("cp1", [(rejected, accepted)], T0 + 5)) == []


def _taken_over_site() -> Memory:
    """Three chargers of one site charging under a 24 A grid; only cpA is connected to the node taking over."""
    evses = tuple(Evse(s, 1, max_current_a=16.0, fallback_current_a=6.0) for s in ("cpA", "cpB", "cpC"))
    site = Site("s", Node("grid", phase_limits_a=(24.0,) * 3, evses=evses))
    setup = SiteSetup("s", site, strategy="equal_share", versions=dict.fromkeys(("cpA", "cpB", "cpC"), "1.6"))
    sessions = [StoredSession((s, 1), T0 - 600, str(i + 1)) for i, s in enumerate(("cpA", "cpB", "cpC"))]
    return Memory([setup], sessions, [])


def _tx_limits(commands) -> dict[str, float]:
    profiles = {c.station_id: c.payload["csChargingProfiles"] for c in commands if "csChargingProfiles" in c.payload}
    return {
        s: p["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        for s, p in profiles.items()
        if p["chargingProfilePurpose"] == "TxProfile"
    }


def test_a_node_taking_a_site_over_plans_the_stations_on_other_nodes_as_online_from_its_first_plan():
    manager = LoadManager()
    manager.connected("cpA", "1.6", T0)
    first = manager.resume(_taken_over_site(), T0, elsewhere={"cpB": True, "cpC": True})
    assert _tx_limits(first) == {"cpA": 8.0, "cpB": 8.0, "cpC": 8.0}  # 24 A shared by all three at once

    restarted = LoadManager()  # a restarted single process cannot see cpB and cpC: reserved at their rating
    restarted.connected("cpA", "1.6", T0)
    assert _tx_limits(restarted.resume(_taken_over_site(), T0)) == {"cpA": 0.0}


def test_vehicles_on_their_way_reach_the_sites_plan_survive_a_new_set_up_and_leave_when_they_plug_in():
    manager = managed()
    van = ExpectedVehicle("VAN-7", 30_000.0, T0 + 8 * 3600)
    manager.expect("s", "VAN-7", van)
    manager.expect("elsewhere", "VAN-9", ExpectedVehicle("VAN-9", 5_000.0, T0 + 3600))  # a site not planned here
    assert manager.planners["s"].state(T0 + 60).expected == (van,)
    manager.install(manager.setups["s"], T0 + 120)  # the site's set-up changed: the outlook is kept
    assert manager.planners["s"].state(T0 + 180).expected == (van,)
    assert manager.planners["s"].state(T0 + 9 * 3600).expected == ()  # its departure is past
    manager.forget_expected("VAN-7")  # it plugged in: a session now
    assert manager.planners["s"].state(T0 + 240).expected == ()


def test_stored_demand_response_limits_are_taken_in_but_a_stale_read_never_revives_a_cancelled_one():
    from csms.loadmgmt.manager import StoredCurtailment

    manager = managed()
    planner = manager.planners["s"]
    step = StoredCurtailment("s", "ev-1#0", T0 + 60, T0 + 3600, 2.0)
    manager.stored_curtailments([step, StoredCurtailment("other", "ev-1#0", T0, T0 + 3600, 1.0)], T0)
    assert [(c.event_id, c.limit_kw) for c in planner.curtailments.values()] == [("ev-1#0", 2.0)]
    manager.curtail("s", "ev-1#0", step.start, step.end, None, T0 + 1)  # cancelled, delivered
    manager.stored_curtailments([step], T0 + 2)  # a read made before the cancellation was stored
    assert planner.curtailments == {}
    manager.curtail("s", "ev-1#0", step.start, step.end, 3.0, T0 + 3)  # the event modified again: obeyed
    assert [c.limit_kw for c in planner.curtailments.values()] == [3.0]
    # A new set-up of the site (a PATCH) keeps the limit.
    manager.install(manager.setups["s"], T0 + 4)
    assert [c.limit_kw for c in manager.planners["s"].curtailments.values()] == [3.0]


def test_a_resumed_site_plans_under_its_stored_demand_response_limit_from_its_first_plan():
    from csms.loadmgmt.manager import StoredCurtailment

    memory = _taken_over_site()  # 24 A per phase, three cars: 8 A each without a limit
    limited = Memory(memory.setups, memory.sessions, [], [StoredCurtailment("s", "ev-1#0", T0 - 60, T0 + 3600, 6.9)])
    manager = LoadManager()
    manager.connected("cpA", "1.6", T0)
    first = manager.resume(limited, T0, elsewhere={"cpB": True, "cpC": True})
    # 6.9 kW at the grid connection: 10 A on three phases, enough for one car at its 6 A minimum or more
    assert _tx_limits(first) == {"cpA": 10.0, "cpB": 0.0, "cpC": 0.0}
    assert [c.limit_kw for c in manager.planners["s"].curtailments.values()] == [6.9]
