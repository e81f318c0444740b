"""Facts reported together are planned together: a site re-plans once per group commit (and per call that tells it
several facts), not once per fact; a fact told on its own still re-plans at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from csms.core.host import CsmsHost
from csms.core.plugins.load_management import LoadManagement
from csms.domain import events as ev
from csms.loadmgmt.manager import LoadManager, SiteSetup
from csms.loadmgmt.planner import Command, PlannerConfig
from csms.loadmgmt.topology import Evse, Node, Site
from csms.ocpp import framing
from csms.services import stations
from csms.services.config import CsmsConfig
from csms.store.models import Station
from tests.manual_scheduler import ManualScheduler

T0 = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp()
N = 8


def site(n: int = N) -> SiteSetup:
    """``n`` 1.6 stations behind a limit that cannot feed them all at their rating."""
    evses = tuple(Evse(f"cp{i}", 1, fallback_current_a=6.0) for i in range(n))
    topology = Site("s", Node("grid", phase_limits_a=(10.0 * n,) * 3, evses=evses))
    versions = {f"cp{i}": "1.6" for i in range(n)}
    return SiteSetup("s", topology, strategy="equal_share", versions=versions, config=PlannerConfig(min_dwell_s=0.0))


def booted(manager: LoadManager) -> tuple[ev.BootReported, ev.BootDecision]:
    return ev.BootReported("V", "M"), ev.BootDecision("Accepted", 300, datetime.fromtimestamp(T0, UTC))


def final_profiles(commands: list[Command]) -> dict[tuple[str, int, str], float]:
    """The last limit sent for each station, connector and purpose."""
    out: dict[tuple[str, int, str], float] = {}
    for c in commands:
        profile = c.payload["csChargingProfiles"]
        limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        out[(c.station_id, c.payload["connectorId"], profile["chargingProfilePurpose"])] = limit
    return out


def unregistered(n: int = N) -> LoadManager:
    manager = LoadManager()
    manager.install(site(n), T0)
    for i in range(n):
        manager.connected(f"cp{i}", "1.6", T0, registered=False)  # online at its Accepted boot
    return manager


def test_stations_booting_in_one_commit_cost_their_site_one_plan_and_get_the_same_profiles():
    one_by_one, together = unregistered(), unregistered()
    before = together.planners["s"].plans
    sent_one_by_one: list[Command] = []
    for i in range(N):
        sent_one_by_one += one_by_one.committed(f"cp{i}", [booted(one_by_one)], T0 + 1)
    sent: list[Command] = []
    for i in range(N):  # the host tells each station's reports of the commit, then that the commit ended
        sent += together.committed(f"cp{i}", [booted(together)], T0 + 1, plan=False)
    assert sent == []  # nothing planned before every station of the commit was told
    sent += together.plan_due(T0 + 1)
    assert together.planners["s"].plans == before + 1
    assert one_by_one.planners["s"].plans == before + N
    assert final_profiles(sent) == final_profiles(sent_one_by_one)
    assert {c.station_id for c in sent} == {f"cp{i}" for i in range(N)}
    assert together.plan_due(T0 + 1) == []  # planned once, not again


def test_a_plug_in_and_its_needs_in_one_commit_are_planned_once():
    manager = unregistered(2)
    for i in range(2):
        manager.committed(f"cp{i}", [booted(manager)], T0)
    planner = manager.planners["s"]
    before = planner.plans
    departure = datetime.fromtimestamp(T0 + 3 * 3600, UTC)
    reports: list[tuple[Any, Any]] = [
        (ev.StatusReported(1, 1, "Preparing", ev.port_state("Preparing"), None), None),
        (ev.ChargingNeedsReported(1, 12_000.0, departure), ev.Acknowledged()),
    ]
    commands = manager.committed("cp0", reports, T0 + 10)
    assert planner.plans == before + 1
    assert planner.state(T0 + 10).sessions[("cp0", 1)].energy_needed_wh == 12_000.0
    assert planner.last_allocation is not None and planner.last_allocation.limits_a[("cp0", 1)] > 0
    assert commands and len(final_profiles(commands)) == len(commands)  # one profile per slot


def test_a_site_reading_outside_a_commit_replans_at_once_and_takes_the_due_plan_with_it():
    manager = unregistered(2)
    planner = manager.planners["s"]
    for i in range(2):
        manager.committed(f"cp{i}", [booted(manager)], T0, plan=False)
    before = planner.plans
    assert planner.next_deadline() == T0  # due (the fallback if the end of the commit were never told)
    # a reading from the API between the commit's reports and its end (or without a commit at all): planned now
    commands = manager.site_reading("s", T0, power_w=20_000.0)
    assert planner.plans == before + 1 and commands
    assert manager.plan_due(T0) == [] and planner.plans == before + 1
    assert planner.next_deadline() == T0 + planner.config.interval_s
    # and a reading on its own, later, still plans at once
    manager.site_reading("s", T0 + 30, power_w=25_000.0)
    assert planner.plans == before + 2


def test_a_site_removed_before_the_end_of_its_commit_sends_nothing():
    manager = unregistered(2)
    manager.committed("cp0", [booted(manager)], T0, plan=False)
    manager.remove("s")
    assert manager.plan_due(T0) == []


# ---- the host's group commit ------------------------------------------------------------------------------------


@pytest.fixture
def host(session_factory) -> tuple[CsmsHost, ManualScheduler, LoadManagement]:
    with session_factory() as db:
        for i in range(N):
            stations.provision(db, f"cp{i}", ocpp_version="1.6", password=None, now=datetime.fromtimestamp(T0, UTC))
            row = db.get(Station, f"cp{i}")
            assert row is not None
            row.registration_status = "Accepted"
        db.commit()
    scheduler = ManualScheduler(T0)
    csms = CsmsHost(session_factory, CsmsConfig(message_log_per_station=0), scheduler)
    plugin = LoadManagement()
    csms.add_plugin(plugin)
    plugin.manager.install(site(), T0)
    return csms, scheduler, plugin


class Wire:
    def __init__(self) -> None:
        self.frames: list[Any] = []

    def send(self, frames: list[str]) -> None:
        self.frames += [framing.decode(f) for f in frames]

    def close(self, reason: str) -> None:
        pass


def test_a_site_whose_stations_all_boot_in_one_group_commit_is_planned_once(host):
    csms, scheduler, plugin = host
    wires = []
    for i in range(N):
        wire = Wire()
        admission = csms.admit(f"cp{i}", None, "1.6")
        wires.append((csms.connect(admission, "1.6", wire), wire))
    scheduler.advance(T0)
    planner = plugin.manager.planners["s"]
    before, sent = planner.plans, plugin.sent
    for i, (connection, wire) in enumerate(wires):
        wire.frames.clear()
        boot = {"chargePointVendor": "V", "chargePointModel": "M"}
        csms.receive(connection, orjson.dumps([2, f"boot-{i}", "BootNotification", boot]).decode())
    scheduler.advance(T0 + 1)
    assert planner.plans == before + 1  # one plan for the commit, not one per booting station
    assert plugin.sent == sent + N  # each rebooted station is sent its profile again, once
