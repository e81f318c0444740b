"""docs/protocol.md's action tables are generated from the code (simulator/coverage.py) and must be current."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.ocpp import schemas
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201
from simulator import coverage

PAGE = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_docs_protocol_md_is_current():
    """Fails when a handler, builder or schema changed without `python -m simulator.coverage --write`."""
    assert coverage.rewritten(PAGE.read_text(encoding="utf-8")) == PAGE.read_text(encoding="utf-8"), (
        "docs/protocol.md is stale: run ./run python -m simulator.coverage --write docs/protocol.md"
    )


def test_only_the_marked_block_is_rewritten(tmp_path):
    page = f"# Title\n\nhand-written\n\n{coverage.BEGIN}\nold table\n{coverage.END}\n\n## Later section\n"
    fresh = coverage.rewritten(page)
    assert fresh.startswith("# Title\n\nhand-written\n\n") and fresh.endswith("\n\n## Later section\n")
    assert "old table" not in fresh and "| BootNotification | station → CSMS | ✔ handled | ✔ sends |" in fresh
    assert coverage.rewritten(fresh) == fresh
    stale = tmp_path / "protocol.md"
    stale.write_text(page, encoding="utf-8")
    assert coverage.main(["--check", str(stale)]) == 1
    assert coverage.main(["--write", str(stale)]) == 0
    assert coverage.main(["--check", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == fresh
    with pytest.raises(ValueError, match="must hold"):
        coverage.rewritten(f"{coverage.END}\n{coverage.BEGIN}\n")
    stale.write_text(coverage.BEGIN, encoding="utf-8")
    assert coverage.main(["--check", str(stale)]) == 2


def test_the_tables_follow_the_code():
    rows = {(r.action, r.direction): r for r in coverage.rows(OCPP21)}
    assert rows["BootNotification", "station → CSMS"].csms == "✔ handled"
    assert rows["NotifyDERAlarm", "station → CSMS"].csms == "NotSupported"
    assert rows["RequestStartTransaction", "CSMS → station"].csms == "✔ typed command"
    assert rows["RequestStartTransaction", "CSMS → station"].twin == "✔ answers"
    assert rows["NotifyPeriodicEventStream", "station → CSMS (SEND)"].csms == "dropped unanswered (SEND)"
    every = schemas.known_actions(OCPP21) | schemas.send_actions(OCPP21)
    assert {action for action, _ in rows} == every
    # DataTransfer is listed both ways; everything else once
    assert len(rows) == len(every) + 1


@pytest.mark.parametrize("version", [OCPP16, OCPP201, OCPP21])
def test_the_hand_written_directions_name_real_actions(version):
    defined = schemas.known_actions(version) | schemas.send_actions(version)
    assert coverage.STATION_SENDS[version] <= defined
