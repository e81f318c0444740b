"""``sim conformance`` as CI calls it, and the pytest plugin as a user writes cases on it: exit statuses, JUnit,
the Markdown table, selection by profile and case id, and cases not run for want of an operator."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from tests.conformance.servers import minimal_csms, scripted_csms

ROOT = Path(__file__).parents[2]


def sim_conformance(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "simulator.cli", "conformance", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def test_an_unreachable_csms_is_a_usage_error_with_one_line() -> None:
    done = sim_conformance("--csms", "ws://127.0.0.1:9/ocpp", "--ocpp", "2.0.1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sim conformance: cannot reach the CSMS at 127.0.0.1:9: Connection refused"
    ]


def test_bad_arguments_are_usage_errors() -> None:
    with minimal_csms() as url:
        profile = sim_conformance("--csms", url, "--ocpp", "1.6", "--profile", "core,iso15118")
        nothing = sim_conformance("--csms", url, "--ocpp", "2.0.1", "--case", "TC_Z_99_CSMS")
    scheme = sim_conformance("--csms", "http://127.0.0.1:9000/ocpp", "--ocpp", "2.0.1")
    assert profile.returncode == 2 and "unknown OCPP 1.6 profile(s) iso15118" in profile.stderr
    assert nothing.returncode == 2 and "no case matches the selection" in nothing.stderr
    assert scheme.returncode == 2 and "must be a ws:// or wss:// URL" in scheme.stderr


def test_a_run_writes_valid_junit_and_a_table_and_exits_by_its_verdicts(tmp_path: Path) -> None:
    junit, report = tmp_path / "out.xml", tmp_path / "out.md"
    with minimal_csms() as url:
        done = sim_conformance(
            "--csms", url, "--ocpp", "2.0.1", "--case", "TC_B_01_CSMS", "--case", "TC_B_20_CSMS",
            "--junit", str(junit), "--report", str(report),
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "ocpp-2.0.1-conformance"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    skipped = cases["test_TC_B_20_CSMS"].find("skipped")
    assert skipped is not None and "no operator" in (skipped.get("message") or "")
    table = report.read_text()
    assert "| TC_B_01_CSMS | Cold Boot Charging Station - Accepted | core | passed |" in table
    assert "| TC_B_20_CSMS |" in table and "| not run | no operator" in table


USER_CASE = """
from simulator.conformance.catalogue import case_marker
from simulator.conformance.plugin import Tokens
from simulator.conformance.station import StationUnderTest

case = case_marker("1.6")


@case("TC_900_CSMS", "Our rule: an unknown tag is refused at Authorize")
def test_unknown_tag_is_refused(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    answer = station.call("Authorize", {"idTag": tokens.unknown})
    assert answer["idTagInfo"]["status"] == "Invalid", answer


@case("TC_901_CSMS", "Our rule: a known tag is accepted")
def test_known_tag_is_accepted(station: StationUnderTest, tokens: Tokens) -> None:
    station.ready()
    assert station.call("Authorize", {"idTag": tokens.valid})["idTagInfo"]["status"] == "Accepted"


def test_without_a_case_marker_is_an_ordinary_test() -> None:
    assert True
"""


def test_users_write_their_own_cases_on_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_ours.py").write_text(textwrap.dedent(USER_CASE))
    junit = tmp_path / "junit.xml"
    with minimal_csms(id_tokens=("CT-VALID-01",)) as url:
        args = ["--csms-url", url, "--ocpp", "1.6", f"--junitxml={junit}", "-p", "no:cacheprovider", "-q"]
        done = subprocess.run(
            [sys.executable, "-m", "pytest", str(tmp_path / "test_ours.py"), "-c", "/dev/null", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout and "OCPP conformance" in done.stdout
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert names == [
        "test_unknown_tag_is_refused",
        "test_known_tag_is_accepted",
        "test_without_a_case_marker_is_an_ordinary_test",
    ]


def test_without_an_operator_a_refused_station_is_one_usage_error_not_a_failure_per_case() -> None:
    async def refuse(connection: ServerConnection, request: object) -> Response:
        return connection.respond(401, "unknown station\n")

    async def never(connection: ServerConnection) -> None:
        raise AssertionError("refused at the handshake")

    with scripted_csms(never, process_request=refuse) as url:
        done = sim_conformance("--csms", url, "--ocpp", "1.6", "--station-id", "CP-9", "--password", "x" * 16)
    assert done.returncode == 2
    assert "the CSMS refused station 'CP-9' (HTTP 401" in done.stderr and len(done.stderr.splitlines()) == 1
