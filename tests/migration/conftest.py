"""Bundles to import: one from a real virtual-time run of a small scenario (SQLite file), shared by the module."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.migration.bundle import export_database
from csms.store.database import make_engine
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SCENARIO = Path(__file__).parents[2] / "scenarios" / "offline-station.yaml"
EXPORTED_AT = datetime(2026, 2, 11, 4, 0, tzinfo=UTC)


def export_to(url: str, path: Path) -> Path:
    engine = make_engine(url)
    try:
        with path.open("wb") as out:
            export_database(engine, out, EXPORTED_AT)
    finally:
        engine.dispose()
    return path


@pytest.fixture(scope="session")
def scenario_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """offline-station (6 chargers, 1.6 and 2.0.1, a managed site, one outage) run into a SQLite file, exported."""
    folder = tmp_path_factory.mktemp("scenario-bundle")
    url = f"sqlite:///{folder / 'run.db'}"
    VirtualRun(load_scenario(SCENARIO), scenario_file=str(SCENARIO), database_url=url).run()
    return export_to(url, folder / "run.zip")


def fill_small(url: str) -> None:
    """A handful of rows across the kinds of value a bundle carries (datetimes, floats, JSON, a tree, bytes)."""
    from sqlalchemy.orm import Session

    from csms.store import models as m

    at = datetime(2026, 1, 15, 22, 0, 0, 123456, tzinfo=UTC)
    engine = make_engine(url)
    with Session(engine) as db, db.begin():
        db.add(m.Station(id="CP-1", ocpp_version="2.0.1", password_hash="$argon2id$v=19$hash", created_at=at))
        db.add(m.IdToken(id_token="TAG-1", group_id="staff", created_at=at, updated_at=at))
        db.add(m.Site(id="depot", name="Depot", priority_groups=["staff"], created_at=at, updated_at=at))
        db.flush()
        db.add(m.Connector(station_id="CP-1", evse_id=1, connector_id=1, status="Charging", status_at=at))
        db.add(m.SiteNode(id=1, site_id="depot", key="grid", limit_kw=45.5))
        db.add(m.SiteNode(id=2, site_id="depot", key="panel-a", parent_id=1, limit_l1_a=63.0))
        db.add(
            m.Transaction(id=7, station_id="CP-1", charger_tx_id="tx-7", id_token="TAG-1", started_at=at,
                          meter_start_wh=1000.1, last_meter_wh=12345.678, status="Active")
        )  # fmt: skip
        db.add(m.MeterSample(station_id="CP-1", transaction_id=7, evse_id=1, timestamp=at,
                             measurand="Energy.Active.Import.Register", value=0.1 + 0.2))  # fmt: skip
        db.add(m.StationEvent(station_id="CP-1", kind="notify_event", timestamp=at, data={"z": 1, "a": [1.5, None]}))
        db.add(m.FirmwareFile(name="fw.bin", size=3, sha256="00" * 32, content=b"\x00\xff\x10", created_at=at))
        db.add(m.ApiKey(name="ops", key_hash="ab" * 32, created_at=at))
        db.add(m.LocalListState(station_id="CP-1", version=3, token_group="staff"))
        db.flush()
        db.add(m.LocalListEntryRow(station_id="CP-1", id_token="TAG-1", token_type="ISO14443", status="Accepted"))
    engine.dispose()


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.databases import migrated_sqlite

    folder = tmp_path_factory.mktemp("small-bundle")
    url = migrated_sqlite(folder / "small.db")
    fill_small(url)
    return export_to(url, folder / "small.zip")
