"""The scenario's ``reserve`` action in virtual time: the embedded CSMS makes the reservation (its id),
the twin's charger holds it and reports Reserved, and the CSMS's clock expires it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from csms.services import reservations
from csms.store.models import StatusChange
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SCENARIO = """
name: reserve
seed: 1
start: 2026-02-02T18:00:00+01:00
duration: 40m
site: {grid_limit_kw: 120}
chargers:
  - {prefix: ac, count: 1, ocpp: "1.6", max_kw: 11}
  - {prefix: dc, count: 1, ocpp: "2.0.1", max_kw: 50}
vehicles:
  name: car
  count: 1
  arrival: {between: ["18:30", "18:31"]}
  soc_on_arrival: {uniform: [0.2, 0.3]}
  departure: {at: "18:39", target_soc: 0.6}
  id_token: "CAR-{n}"
actions:
  - {at: "18:00", kind: provision_tokens, tokens: [HOLDER]}
  - {at: "18:02", kind: reserve, charger: ac-1, connector: 1, id_token: HOLDER, valid_for: 10m}
  - {at: "18:03", kind: reserve, charger: dc-1, id_token: HOLDER, valid_for: 5m}
"""


def test_reserve_action_is_held_by_the_twin_and_expired_by_the_csms(tmp_path: Path) -> None:
    path = tmp_path / "reserve.yaml"
    path.write_text(SCENARIO)
    run = VirtualRun(load_scenario(path), scenario_file=str(path))
    run.run()
    with run.csms.session_factory() as db:
        rows = sorted(reservations.listing(db), key=lambda r: r.id)
        assert [(r.station_id, r.evse_id, r.status) for r in rows] == [
            ("ac-1", 1, "expired"),
            ("dc-1", None, "expired"),
        ]
        assert (rows[0].ended_at - rows[0].created_at).total_seconds() == 600
        changes = db.execute(select(StatusChange.station_id, StatusChange.status).order_by(StatusChange.id)).all()
    for station_id in ("ac-1", "dc-1"):  # the chargers said so themselves: Reserved, then free again
        seen = [status for sid, status in changes if sid == station_id]
        assert seen[seen.index("Reserved") + 1] == "Available"
    dc = run.fleet.chargers["dc-1"]
    assert dc.reservations.by_id == {} and "Reserved" not in {c.status for c in dc.connectors.values()}
