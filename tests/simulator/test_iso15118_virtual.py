"""ISO 15118 vehicles in virtual time: they tell the embedded CSMS their needs through their 2.0.1 chargers
(NotifyEVChargingNeeds), so the fleet schedule tells it nothing, and still reach their targets by their
departure behind a grid limit that cannot charge them all at full power."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from csms.store.models import EvChargingNegotiation
from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import parse_scenario

DEPOT = """
name: iso15118-depot
seed: 5
start: 2026-01-15T17:00:00+00:00
duration: 5h
site: {grid_limit_kw: 30, building_load: {kw: 4, noise_kw: 0.5}}
chargers:
  - {prefix: ac, count: 4, ocpp: "2.0.1", max_kw: 11}
vehicles:
  name: van
  count: 4
  model: compact-58
  arrival: {between: ["17:00", "17:20"]}
  soc_on_arrival: {uniform: [0.3, 0.4]}
  departure: {at: "21:30", target_soc: 0.8}
  id_token: "VAN-{n:02d}"
  group: vans
  iso15118: true
actions:
  - {at: "17:00", kind: provision_tokens, vehicles: vans}
csms:
  load_management: {strategy: deadline, interval: 60s, safety_margin_kw: 1}
"""


def test_iso15118_vehicles_speak_for_themselves_and_reach_their_targets():
    run = VirtualRun(parse_scenario(DEPOT))
    data = report.build(run.run())
    assert run.wiring._needs == {}  # the fleet schedule told the CSMS nothing
    with run.csms.session_factory() as db:
        rows = db.scalars(select(EvChargingNegotiation)).all()
    assert len(rows) == 4  # one negotiation per charger
    departure = datetime.fromisoformat("2026-01-15T21:30:00+00:00")
    for row in rows:
        assert datetime.fromisoformat(row.needs["departureTime"]) == departure
        assert row.needs["acChargingParameters"]["energyAmount"] > 0
        assert row.profile is not None and row.profile["chargingProfilePurpose"] == "TxProfile"
        assert row.ev_schedule_status == "Accepted", row.ev_schedule_reason
    assert data["site"]["violation_minutes"] == 0
    assert data["vehicles"]["at_target_fraction"] == 1.0
