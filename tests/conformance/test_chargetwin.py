"""The whole catalogue against chargetwin's own ``csms serve``, as the published table was made: every case
passes, or fails as expected for the feature it waits for (a case that starts passing turns the run red, so
the list stays true), the JUnit is valid, and docs/conformance.md says what this run says."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulator.conformance.publish import ROOT, chargetwin, run_catalogue

ROW = re.compile(r"^\| (TC_\w+) \| .* \| (passed|failed|not run|expected failure) \|")


def table_results(markdown: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in markdown.splitlines() if (m := ROW.match(line))}


def published(version: str) -> dict[str, str]:
    text = (ROOT / "docs" / "conformance.md").read_text()
    section = text.split(f"## OCPP {version}\n", 1)[1].split("\n## OCPP ", 1)[0]
    return table_results(section)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_the_catalogue_against_chargetwin(version: str, tmp_path: Path) -> None:
    with chargetwin(tmp_path) as endpoint:
        done = run_catalogue(endpoint, version, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    suite = ET.parse(tmp_path / f"{version}.xml").getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) >= 40 and suite.get("failures") == "0" and suite.get("errors") == "0"
    ran = table_results((tmp_path / f"{version}.md").read_text())
    assert ran == published(version), "docs/conformance.md is stale: ./run python -m simulator.conformance.publish"
