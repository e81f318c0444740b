"""``csms import-csv``: an operator's spreadsheets (stations, tokens, sessions) into chargetwin, as the command
runs for a user; bad values are named by file, line and column and nothing is written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from csms.cli import main
from csms.services.passwords import verify_password
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Connector, IdToken, Station, Transaction

STATIONS = """station_id,ocpp_version,policy,password,vendor,model,connectors
DEPOT-01,1.6,accept,depot-01-secret-pw,Alfen,Eve Double,2
DEPOT-02,2.0.1,pending,,ABB,Terra,1
"""
TOKENS = """id_token,status,expiry,group_id
04A1B2C3,Accepted,2027-03-01T00:00:00Z,FLEET-A
04FFFFFF,Blocked,,
"""
SESSIONS = """station_id,transaction_id,started_at,stopped_at,meter_start_wh,meter_stop_wh,id_token,connector_id
DEPOT-01,5001,2026-02-01T18:00:00+01:00,2026-02-01T19:30:00+01:00,12000,24500,04A1B2C3,1
NOWHERE,5002,2026-02-01T18:00:00Z,,0,,04A1B2C3,1
"""


def _write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def test_spreadsheets_import_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/csms.db"
    files = {kind: _write(tmp_path, f"{kind}.csv", body) for kind, body in
             (("stations", STATIONS), ("tokens", TOKENS), ("sessions", SESSIONS))}  # fmt: skip
    for kind in ("stations", "tokens", "sessions"):
        assert main(["import-csv", kind, str(files[kind]), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "stations: 2 created, 0 unchanged, 0 skipped" in out
    assert "skipped sessions NOWHERE/5002: station 'NOWHERE' is not in chargetwin" in out
    assert "connect without authentication (security profile 1) until given one: DEPOT-02" in out

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db:
            depot = db.get(Station, "DEPOT-01")
            assert depot is not None and depot.password_hash is not None
            assert verify_password("depot-01-secret-pw", depot.password_hash)  # hashed, never stored in clear
            assert db.get(Station, "DEPOT-02").ocpp_version == "2.0.1"  # type: ignore[union-attr]
            assert db.scalar(select(func.count()).select_from(Connector).filter_by(station_id="DEPOT-01")) == 2
            token = db.get(IdToken, "04A1B2C3")
            assert token is not None and (token.group_id, token.expiry) == ("FLEET-A", datetime(2027, 3, 1, tzinfo=UTC))
            assert db.get(IdToken, "04FFFFFF").status == "Blocked"  # type: ignore[union-attr]
            session = db.scalar(select(Transaction).filter_by(station_id="DEPOT-01", charger_tx_id="5001"))
            assert session is not None and session.energy_wh == 12500
            assert session.started_at == datetime(2026, 2, 1, 17, 0, tzinfo=UTC)  # stored in UTC
    finally:
        engine.dispose()

    for kind in ("stations", "tokens", "sessions"):  # a second import changes nothing
        assert main(["import-csv", kind, str(files[kind]), "--database-url", url, "--json"]) == 0
        counts = json.loads(capsys.readouterr().out)["counts"][kind]
        assert counts["created"] == 0 and counts["unchanged"] >= 1, counts


def test_bad_values_are_named_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/csms.db"
    bad = _write(
        tmp_path,
        "tokens.csv",
        "id_token,status,expiry\nGOOD-1,Accepted,\nBAD-1,Maybe,2027-01-01\nBAD-2,Accepted,next tuesday\n",
    )
    assert main(["import-csv", "tokens", str(bad), "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: column status: must be one of Accepted, Blocked, Expired, Invalid, got 'Maybe'" in err
    assert f"{bad}:4: column expiry: an ISO 8601 date-time, got 'next tuesday'" in err
    assert main(["tokens", "list", "--database-url", url]) == 0
    assert "GOOD-1" not in capsys.readouterr().out  # one bad line: nothing imported

    sessions = _write(tmp_path, "sessions.csv", "station_id,started_at\nX,2026-01-01\n")
    assert main(["import-csv", "sessions", str(sessions), "--database-url", url]) == 2
    assert "missing column(s) transaction_id" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("id_token\nM\xfcller\n".encode("latin-1"))
    assert main(["import-csv", "tokens", str(latin1), "--database-url", url]) == 2
    assert "not a UTF-8 CSV file" in capsys.readouterr().err
    assert main(["import-csv", "sessions", str(tmp_path / "absent.csv"), "--database-url", url]) == 2
    assert "absent.csv" in capsys.readouterr().err
