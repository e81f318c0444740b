"""The read-only service functions a harness reads the CSMS's results through (the twin's ``CsmsRecords``,
the embedded operator's remote stop)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from csms.services import stations, transactions
from csms.store.models import Transaction


def _fill(db: Session, now: datetime) -> None:
    for station_id in ("cp-1", "cp-2", "cp-3"):
        stations.provision(db, station_id, ocpp_version="1.6", password=None, now=now)
    stations.get(db, "cp-1").registration_status = "Accepted"
    stations.get(db, "cp-2").registration_status = "Rejected"
    stations.get(db, "cp-3").registration_status = "Accepted"
    for charger_tx_id, evse_id, status in (("a", 1, "completed"), ("b", 1, "active"), ("c", 2, "active")):
        db.add(Transaction(station_id="cp-1", charger_tx_id=charger_tx_id, evse_id=evse_id, status=status))
        db.flush()  # ids in this order
    db.add(Transaction(station_id="cp-2", charger_tx_id="d", evse_id=1, status="active"))
    db.commit()


def test_active_on_is_the_ports_running_transaction(session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory() as db:
        _fill(db, now)
        running = transactions.active_on(db, "cp-1", 1)
        assert running is not None and running.charger_tx_id == "b"
        assert transactions.active_on(db, "cp-1", 3) is None
        assert transactions.active_on(db, "cp-3", 1) is None


def test_listed_and_count_accepted(session_factory: sessionmaker[Session], now: datetime) -> None:
    with session_factory() as db:
        _fill(db, now)
        assert [(t.station_id, t.charger_tx_id) for t in transactions.listed(db)] == [
            ("cp-1", "a"),
            ("cp-1", "b"),
            ("cp-1", "c"),
            ("cp-2", "d"),
        ]
        assert stations.count_accepted(db) == 2
