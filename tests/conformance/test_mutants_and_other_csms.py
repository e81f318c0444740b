"""The suite is itself tested: every mutant of the minimal CSMS is caught (score 100 %), the minimal CSMS
itself passes what it implements, and against a CSMS that is not chargetwin (the afternoon ``ocpp``-package
peer of the performance issue) the failures are real ones."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulator.conformance.reference import mutants
from tests.conformance.servers import minimal_csms
from tests.conformance.test_cli_and_plugin import sim_conformance


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_every_mutant_is_caught(version: str) -> None:
    baseline, scores = asyncio.run(mutants.hunt(version, "core"))
    table = mutants.table(version, baseline, scores)
    print(table)
    assert all(score.caught_by for score in scores), table
    assert len(scores) >= 10 and len(baseline.passed) >= 30, table


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_the_unmutated_minimal_csms_fails_no_core_case(version: str, tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    with minimal_csms() as url:
        done = sim_conformance(
            "--csms", url, "--ocpp", version, "--profile", "core", "--junit", str(junit), timeout=600
        )
    failed = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert done.returncode == 0, (failed, done.stdout[-4000:])
