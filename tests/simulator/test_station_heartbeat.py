"""Heartbeats as the firmware times them: ``inactivity`` (the spec's HeartbeatInterval, 1.6 and 2.0.1: a
Heartbeat after that long without an exchange, either way) and ``periodic`` (one every interval whatever else
was sent); the vendor profile's choice and the scenario's ``heartbeat:`` field.

The charger is paired with the real CSMS core (zero latency, virtual time, offsets from T0 asserted exactly).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from csms.ocpp.versions import OCPP16
from csms.services import stations
from simulator.runner import VirtualRun
from simulator.scenario.loader import ScenarioError, load_scenario, parse_scenario
from simulator.station import Charger
from simulator.station.registration import INACTIVITY, PERIODIC
from simulator.station.vendors import PROFILES
from tests.simulator.helpers import STATION, T0, FakeMeter, StationPair
from tests.simulator.test_scenario_loader import GOOD, assert_issue, load_text
from tests.simulator.test_station_pairing import meter_times, set_sample_interval

VERSIONS = ["1.6", "2.0.1"]
MODES = [INACTIVITY, PERIODIC]


def make(tmp_path: Path, version: str, heartbeat: str) -> StationPair:
    pair = StationPair(tmp_path, version, heartbeat=heartbeat)
    pair.start()
    return pair


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_an_idle_charger_heartbeats_every_interval_in_both_modes(tmp_path: Path, version: str, mode: str) -> None:
    pair = make(tmp_path, version, mode)
    pair.run(1000)
    assert pair.times("Heartbeat") == [300, 600, 900]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("mode", "expected"), [(INACTIVITY, []), (PERIODIC, [300, 600, 900, 1200])])
def test_a_charger_sending_meter_values_every_60_s_heartbeats_only_when_periodic(
    tmp_path: Path, version: str, mode: str, expected: list[int]
) -> None:
    pair = make(tmp_path, version, mode)
    assert set_sample_interval(pair, 60) == {"status": "Accepted"} or version != "1.6"
    pair.run(10)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.meter.power[1] = 11000.0
    for step in range(1, 22):
        pair.meter.energy[1] = 250.0 * step
        pair.run(60)
    assert meter_times(pair)[:3] == [70, 130, 190] and len(meter_times(pair)) == 21
    assert pair.times("Heartbeat") == expected
    assert pair.errors_to_charger() == [] and pair.charger.counters.internal_errors == []


@pytest.mark.parametrize("version", VERSIONS)
def test_inactivity_counts_from_the_last_exchange_after_a_session(tmp_path: Path, version: str) -> None:
    """Once the session ends and the charger falls silent, the Heartbeat comes one interval after its last
    message (here the statuses at the unplug)."""
    pair = make(tmp_path, version, INACTIVITY)
    set_sample_interval(pair, 60)
    pair.run(10)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.run(590)  # samples at 70 ... 550
    pair.charger.unplug(1, pair.now)  # at 600: the stop and the statuses
    pair.settle()
    last = max(s.at for s in pair.sent if s.action not in (None, "Heartbeat")) - pair.sent[0].at
    assert last == 600
    pair.run(1000)
    assert pair.times("Heartbeat") == [900, 1200, 1500]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("mode", "expected"), [(INACTIVITY, [500, 800]), (PERIODIC, [300, 600, 900])])
def test_a_csms_initiated_exchange_restarts_the_inactivity_interval(
    tmp_path: Path, version: str, mode: str, expected: list[int]
) -> None:
    """The spec says "no OCPP exchanges": the CSMS's call and the charger's answer are one."""
    pair = make(tmp_path, version, mode)
    pair.run(200)
    if version == "1.6":
        pair.csms_call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    else:
        pair.csms_call("GetVariables", {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                                              "variable": {"name": "HeartbeatInterval"}}]})  # fmt: skip
    pair.run(800)
    assert pair.times("Heartbeat") == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_a_triggered_heartbeat_and_an_interval_change_restart_the_interval(tmp_path: Path, version: str) -> None:
    pair = make(tmp_path, version, INACTIVITY)
    pair.run(100)
    assert pair.csms_call("TriggerMessage", {"requestedMessage": "Heartbeat"}).payload["status"] == "Accepted"
    pair.run(500)
    assert pair.times("Heartbeat") == [100, 400]


def test_the_vendor_profile_chooses_unless_the_charger_is_told() -> None:
    def mode(**kw: object) -> bool:
        charger = Charger("CP1", OCPP16, meter=FakeMeter(), rng=random.Random(1), **kw)  # type: ignore[arg-type]
        return charger._registrar.inactivity

    assert mode() is True  # the spec's
    assert PROFILES["openevse"].quirks.heartbeat == PERIODIC  # MicroOcpp: a fixed period
    assert mode(vendor=PROFILES["openevse"]) is False
    assert mode(vendor=PROFILES["openevse"], heartbeat=INACTIVITY) is True
    assert mode(vendor=PROFILES["alfen-eve"], heartbeat=PERIODIC) is False
    with pytest.raises(ValueError, match="heartbeat: expected one of inactivity, periodic, got 'sometimes'"):
        mode(heartbeat="sometimes")


# ---- the scenario's field ------------------------------------------------------------------------------------
def test_the_scenario_chooses_per_charger_group(tmp_path: Path) -> None:
    scenario = parse_scenario(GOOD.replace("max_kw: 22}", "max_kw: 22, heartbeat: periodic}"))
    assert [g.heartbeat for g in scenario.chargers] == ["periodic", None]
    err = load_text(tmp_path, GOOD.replace("max_kw: 22}", "max_kw: 22, heartbeat: sometimes}"))
    assert_issue(err, tmp_path, 7, "chargers[0].heartbeat", "expected one of 'inactivity', 'periodic'", "sometimes")


def test_the_twin_builds_its_chargers_with_the_groups_heartbeat(tmp_path: Path) -> None:
    text = GOOD.replace("max_kw: 22}", "max_kw: 22, heartbeat: periodic}").replace("count: 30", "count: 1")
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("count: 10", "count: 1").replace("count: 40", "count: 2"))
    run = VirtualRun(load_scenario(path))
    assert {sid: c._registrar.inactivity for sid, c in run.fleet.chargers.items()} == {"ac-1": False, "dc-1": True}


def test_a_number_is_not_a_heartbeat_mode() -> None:
    with pytest.raises(ScenarioError, match=r"chargers\[0\]\.heartbeat"):
        parse_scenario(GOOD.replace("max_kw: 22}", "max_kw: 22, heartbeat: 300}"))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_csms_sees_a_charger_that_sends_no_heartbeat_by_its_other_messages(tmp_path: Path, version: str) -> None:
    """``stations.last_seen_at`` moves with every report, not only with Heartbeats: written at most once per
    heartbeat interval (300 s) by other reports, it is never older than periodic Heartbeats kept it."""
    pair = make(tmp_path, version, INACTIVITY)
    set_sample_interval(pair, 60)
    pair.run(10)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.run(1190)
    assert pair.calls("Heartbeat") == [] and meter_times(pair)[-1] == 1150
    with pair.db() as db:
        seen = stations.get(db, STATION).last_seen_at
    assert seen is not None and seen.timestamp() - T0 == 910  # the statuses at 0, then samples at 310, 610, 910
