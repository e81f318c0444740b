"""A fleet with OCPP 2.1 chargers in virtual time: the twin speaks ocpp2.1 to the embedded CSMS, nothing lost."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from csms.store.models import Station, Transaction
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SMALL = Path(__file__).parent / "data" / "small-mixed.yaml"


def test_a_mixed_fleet_with_21_chargers_charges_with_nothing_lost(tmp_path):
    scenario = tmp_path / "small-21.yaml"
    scenario.write_text(SMALL.read_text(encoding="utf-8").replace('ocpp: "2.0.1"', 'ocpp: "2.1"'), encoding="utf-8")
    run = VirtualRun(load_scenario(scenario), scenario_file=str(scenario))
    report = build(run.run())
    assert report["transactions"]["started"] == 5 and report["transactions"]["lost"] == 0
    assert report["passed"], report["checks"]
    with run.csms.session_factory() as db:
        versions = {row.id: row.ocpp_version for row in db.execute(select(Station.id, Station.ocpp_version))}
        dc_tx = db.scalars(select(Transaction).where(Transaction.station_id.like("dc-%"))).all()
    assert versions == {"ac-1": "1.6", "ac-2": "1.6", "ac-3": "1.6", "dc-1": "2.1", "dc-2": "2.1"}
    # the 2.1 stations' transactions came as TransactionEvents (their own string ids), dc-1's replayed offline
    assert len(dc_tx) == 2 and all(not tx.charger_tx_id.isdigit() for tx in dc_tx)
    assert any(tx.offline_events > 0 for tx in dc_tx)
