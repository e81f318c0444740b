"""A fleet moves from one CSMS to another in a virtual run (issue 18, points 4 and 5): sessions running on
the chargers at the cut-over are continued on the new CSMS as the same transactions (1.6 and 2.0.1), the
messages the chargers queued while they reached nothing arrive once, uptime excludes the switch only for as
long as it took, and the data arrives whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csms.services import tariffs as tariff_service
from csms.services import transactions as tx_service
from csms.services import uptime as uptime_service
from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import ScenarioError, load_scenario, parse_scenario

SMALL = """
name: platform-migration-small
seed: 7
start: 2026-03-10T22:00:00+01:00
timezone: Europe/Berlin
duration: 6h
chargers:
  - {prefix: a16, count: 3, ocpp: "1.6", max_kw: 11, password: "secret-a16-passw0rd"}
  - {prefix: a20, count: 3, ocpp: "2.0.1", max_kw: 11, password: "secret-a20-passw0rd"}
  - {prefix: pin, count: 2, ocpp: "1.6", vendor_profile: everest-pinned-url, max_kw: 11}
vehicles:
  name: car
  count: 8
  model: compact-58
  arrival: {between: ["22:05", "22:40"]}
  soc_on_arrival: {uniform: [0.10, 0.30]}
  departure: {at: "03:30", target_soc: 0.9}
  id_token: "CAR-{n:02d}"
  group: cars
actions:
  - {at: "22:00", kind: provision_tokens, vehicles: cars}
  - {at: "22:00", kind: set_tariff, tariff: NIGHT, energy_price: 0.30, vat: 19, charger: a16, group: cars}
  - {at: "22:00", kind: set_tariff, tariff: STANDARD, energy_price: 0.45, flat_fee: 1.00, charger: a20}
  - {at: "23:30", kind: set_tariff, tariff: NIGHT, energy_price: 0.28, vat: 19}
  - {at: "01:00", kind: set_tariff, tariff: NIGHT, energy_price: 0.25, vat: 19}
  - {at: "00:00", kind: export_import}
  - {at: "00:05", kind: repoint, charger: a16, window: 15m}
  - {at: "00:10", kind: repoint, charger: a20, window: 20m}
  - {at: "00:15", kind: repoint, charger: pin, window: 25m}
  - {at: "00:07", kind: remote_stop, charger: a20-3}
  - {at: "01:00", kind: remote_stop, charger: a16-1}
  - {at: "01:00", kind: remote_stop, charger: a20-1}
faults:
  - {at: "23:50", kind: link_down, charger: a20-2, duration: 30m}
expect:
  transactions_lost: 0
  transactions_duplicated: 0
  energy_mismatch_kwh: 0
  stations_not_migrated: 0
  migration_downtime_beyond_window: 0
  migration_data_mismatches: 0
  migration_actions_to_old_csms: 0
"""


@pytest.fixture(scope="module")
def small() -> tuple[VirtualRun, dict[str, Any]]:
    """SMALL run once for the tests below (they only read it)."""
    run = VirtualRun(parse_scenario(SMALL))
    return run, report.build(run.run())


def test_sessions_started_on_the_old_csms_end_on_the_new_one_as_one_session(
    small: tuple[VirtualRun, dict[str, Any]],
) -> None:
    run, built = small
    assert built["passed"], [c for c in built["checks"] if not c["passed"]]
    migration = built["migration"]
    cutover = run.epoch + migration["cutover_s"]
    # Every car was plugged in at the cut-over: each wave carried its sessions over, both OCPP versions.
    assert [w["sessions_carried_over"] for w in migration["waves"]] == [3, 3, 2]
    assert built["transactions"]["started"] == 8
    assert run.migration is not None
    new = run.migration.new
    with new.session_factory() as db:
        rows = tx_service.listed(db)
        assert len(rows) == 8  # one row per session: none opened twice on the new CSMS
        for tx in rows:
            assert tx.stopped_at is not None and tx.started_at.timestamp() < cutover < tx.stopped_at.timestamp()
            # The readings the charger queued while it reached nothing were delivered to the new CSMS.
            arrival = run.epoch + migration["stations"][tx.station_id]["away_s"] + migration["cutover_s"]
            queued = [s for s in tx_service.samples_of(db, tx.id) if cutover < s.timestamp.timestamp() < arrival]
            assert queued, f"{tx.station_id}: no reading of the time it was away"
            stamps = [s.timestamp for s in tx_service.samples_of(db, tx.id)]
            assert stamps == sorted(stamps)
        # The planned outage is excluded from the cut-over to the station's arrival, not to the window's end.
        for window in uptime_service.list_exclusions(db):
            away = migration["stations"][window.station_id]["away_s"]
            assert window.end.timestamp() == pytest.approx(cutover + away, abs=0.1)
    assert migration["data"]["transactions"] == {"exported": 8, "imported": 8}
    assert migration["stations_on_new"] == 8


def test_operator_actions_after_a_wave_go_to_the_new_csms(small: tuple[VirtualRun, dict[str, Any]]) -> None:
    """A remote stop after the station's wave is sent by the new CSMS, which holds the station and its session;
    one between the cut-over and the wave reaches nobody, and the report says so."""
    run, built = small
    assert built["passed"], [c for c in built["checks"] if not c["passed"]]
    actions = {(a["target"], a["kind"]): a for a in built["migration"]["operator_actions"]}
    for station_id, action in (("a16-1", "RemoteStopTransaction"), ("a20-1", "RequestStopTransaction")):
        assert actions[(station_id, "remote_stop")]["csms"] == "new"
        assert actions[(station_id, "remote_stop")]["outcome"] == f"{action}: Accepted"
    waiting = actions[("a20-3", "remote_stop")]  # a20's wave is at 00:10
    assert waiting["csms"] is None and waiting["outcome"].startswith("not sent"), waiting
    assert built["migration"]["actions_to_old_csms"] == 0
    assert run.migration is not None
    with run.migration.new.session_factory() as db:
        stopped = {tx.station_id: tx for tx in tx_service.listed(db)}
    with run.migration.old.session_factory() as db:
        on_old = {tx.station_id: tx for tx in tx_service.listed(db)}
    for station_id in ("a16-1", "a20-1"):
        assert stopped[station_id].stop_reason == "Remote", stopped[station_id]
        assert on_old[station_id].stopped_at is None  # the old CSMS never heard of it
    assert stopped["a20-3"].stop_reason != "Remote"


def test_tariffs_with_their_history_and_assignments_move_and_later_changes_go_to_the_new_csms(
    small: tuple[VirtualRun, dict[str, Any]],
) -> None:
    run, built = small
    data = built["migration"]["data"]
    # Counted on the old CSMS's bundle and on the new CSMS right after the import: every table of the bundle.
    assert data["tariffs"] == {"exported": 2, "imported": 2}
    assert data["tariff_versions"] == {"exported": 3, "imported": 3}  # NIGHT twice, STANDARD once
    assert data["tariff_assignments"] == {"exported": 6, "imported": 6}  # a16 x3 for cars, a20 x3 for everyone
    assert set(data) >= {"stations", "id_tokens", "api_keys", "transactions", "meter_samples", "status_history"}
    assert built["migration"]["data_mismatches"] == []
    changed = [a for a in built["migration"]["operator_actions"] if a["kind"] == "set_tariff"]
    assert changed == [{"at_s": 3 * 3600.0, "kind": "set_tariff", "target": "NIGHT", "csms": "new",
                        "outcome": "set"}]  # fmt: skip
    assert run.migration is not None
    with run.migration.new.session_factory() as db:
        history = tariff_service.versions(db, "NIGHT")
        assert [v.body["elements"][0]["price_components"][0]["price"] for v in history] == ["0.3", "0.28", "0.25"]
        quote = tariff_service.resolve(db, "a16-1", 1, "cars")
        assert quote is not None and quote.id == "NIGHT" and quote.version == 3
    with run.migration.old.session_factory() as db:
        assert len(tariff_service.versions(db, "NIGHT")) == 2  # the change after the cut-over went to B only


@pytest.mark.slow
def test_the_shipped_platform_migration_scenario_passes() -> None:
    path = Path(__file__).parents[2] / "scenarios" / "platform-migration.yaml"
    built = report.build(VirtualRun(load_scenario(path), scenario_file=str(path)).run())
    assert built["passed"], [c for c in built["checks"] if not c["passed"]]
    assert built["migration"]["stations_on_new"] == 64
    actions = built["migration"]["operator_actions"]
    assert [(a["target"], a["csms"]) for a in actions] == [("alf-1", "new"), ("abb-1", "new"), ("PUBLIC", "new")]
    assert all(a["outcome"].endswith(": Accepted") for a in actions[:2]), actions
    assert actions[2] == {"at_s": 6 * 3600.0, "kind": "set_tariff", "target": "PUBLIC", "csms": "new", "outcome": "set"}
    data = built["migration"]["data"]
    assert (data["tariffs"], data["tariff_versions"], data["tariff_assignments"]) == (
        {"exported": 2, "imported": 2},
        {"exported": 3, "imported": 3},
        {"exported": 52, "imported": 52},
    )


def test_a_wave_before_the_cut_over_is_refused_with_its_place() -> None:
    text = SMALL.replace('{at: "00:05", kind: repoint, charger: a16', '{at: "23:55", kind: repoint, charger: a16')
    with pytest.raises(ScenarioError, match="repoint wave at or after the export_import"):
        parse_scenario(text)
