"""The chargetwin pytest plugin (entry point ``pytest11``): conformance cases against any CSMS.

``pytest --csms-url ws://HOST:PORT/ocpp --ocpp 2.0.1 [--operator chargetwin --api-url … --api-key …]`` runs every
test marked ``@case(...)`` (:func:`~.catalogue.case_marker`) of that version; ``--profile`` and ``--case`` select.
Fixtures: ``csms_target``, ``operator`` (:class:`~.operator_thread.OperatorThread`), ``make_station`` (a new
:class:`~.station.StationUnderTest`, provisioned through the operator when it can be), ``station`` (one of them),
``tokens`` (the valid, blocked, expired and unknown id tokens). Markers: one per profile (``core``,
``smart_charging`` …) and per 2.0.1 block (``block_E``). JUnit comes from pytest's own ``--junitxml``; the
Markdown table from ``--conformance-report FILE``. Without ``--csms-url`` the plugin stays out of the way.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.conformance.catalogue import PROFILES, CaseInfo, info_of
from simulator.conformance.operator_thread import OperatorThread
from simulator.conformance.results import Results
from simulator.conformance.station import NotRun, StationUnderTest, Target

#: The station every case uses when the operator cannot provision one and no --station-id is given.
DEFAULT_STATION_ID = "CT-STATION-01"
STATIONS = pytest.StashKey[list[StationUnderTest]]()
RESULTS = pytest.StashKey[Results]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chargetwin", "OCPP conformance against a CSMS (chargetwin)")
    group.addoption(
        "--csms-url", default=None, help="the CSMS's OCPP endpoint, ws://HOST:PORT/PATH (station id appended)"
    )
    group.addoption("--csms-tls-url", default=None, help="the CSMS's wss:// endpoint for security profiles 2 and 3")
    group.addoption("--ca-file", default=None, help="CA certificate(s) that sign the CSMS's server certificate")
    group.addoption("--client-cert", default=None, help="the station's certificate (security profile 3)")
    group.addoption("--client-key", default=None, help="its private key")
    group.addoption(
        "--client-ca-cert", default=None, help="a station CA the CSMS trusts: per-station certificates (profile 3)"
    )
    group.addoption("--client-ca-key", default=None, help="that CA's private key")
    group.addoption("--ocpp", default="2.0.1", choices=["1.6", "2.0.1"], help="OCPP version (default 2.0.1)")
    group.addoption("--station-id", default=None, help="station id to use when the operator cannot provision one")
    group.addoption("--password", default=None, help="its HTTP Basic password (security profile 1)")
    group.addoption(
        "--operator",
        default=None,
        help="chargetwin (its REST API: --api-url/--api-key), a hooks YAML file, or manual (default: chargetwin "
        "with --api-url, else none: cases that need the CSMS to act are not run)",
    )
    group.addoption("--api-url", default=None, help="chargetwin's API, e.g. http://127.0.0.1:8000")
    group.addoption("--api-key", default=None, help="a chargetwin API key")
    group.addoption("--profile", default=None, help="comma-separated profiles (core,smart-charging,…)")
    group.addoption("--case", action="append", default=[], help="a case id (TC_E_01_CSMS); repeatable")
    group.addoption("--reply-timeout", type=float, default=10.0, help="seconds the station waits for an answer")
    group.addoption(
        "--open-timeout", type=float, default=10.0, help="seconds the station waits for the WebSocket handshake"
    )
    group.addoption(
        "--wait", type=float, default=None, help="seconds to wait for the CSMS to act (default 15; manual 300)"
    )
    group.addoption("--id-token", default="CT-VALID-01", help="an id token the CSMS accepts")
    group.addoption("--blocked-id-token", default="CT-BLOCKED-01", help="an id token the CSMS knows as Blocked")
    group.addoption("--expired-id-token", default="CT-EXPIRED-01", help="an id token the CSMS knows as Expired")
    group.addoption("--unknown-id-token", default="CT-UNKNOWN-01", help="an id token the CSMS does not know")
    group.addoption("--expected-failures", default=None, help="YAML: case id -> the missing feature it waits for")
    group.addoption("--conformance-report", default=None, help="write the results as a Markdown table")


def _active(config: pytest.Config) -> bool:
    return config.getoption("--csms-url") is not None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ocpp_case(info): an OCTT-style conformance case (chargetwin plugin)")
    for version, profiles in PROFILES.items():
        for key, name in profiles.items():
            config.addinivalue_line("markers", f"{key.replace('-', '_')}: OCPP {version} profile {name}")
    for letter in "ABCDEFGHIJKLMNOP":
        config.addinivalue_line("markers", f"block_{letter}: OCPP 2.0.1 functional block {letter}")
    config.stash[RESULTS] = Results()
    _CONFIG[:] = [config]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _active(config):
        return
    version = config.getoption("--ocpp")
    profiles = _profiles(config, version)
    wanted = set(config.getoption("--case"))
    expected = _expected_failures(config.getoption("--expected-failures"))
    keep, drop = [], []
    for item in items:
        info = info_of(item)
        if info is None:
            keep.append(item)
            continue
        chosen = info.version == version and (not profiles or info.profile in profiles)
        if not chosen or (wanted and info.case_id not in wanted):
            drop.append(item)
            continue
        keep.append(item)
        item.add_marker(info.profile.replace("-", "_"))
        if version == "2.0.1":
            item.add_marker(f"block_{info.block}")
        item.user_properties += [("case_id", info.case_id), ("title", info.title), ("profile", info.profile)]
        if info.case_id in expected:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"waits for: {expected[info.case_id]}"))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _profiles(config: pytest.Config, version: str) -> set[str]:
    text = config.getoption("--profile")
    if not text:
        return set()
    chosen = {p.strip() for p in text.split(",") if p.strip()}
    unknown = chosen - set(PROFILES[version])
    if unknown:
        known = ", ".join(PROFILES[version])
        raise pytest.UsageError(f"unknown OCPP {version} profile(s) {', '.join(sorted(unknown))} (known: {known})")
    return chosen


def _expected_failures(path: str | None) -> dict[str, str]:
    """Case id -> the feature it waits for, from a YAML file or every ``*.yaml`` of a directory."""
    if not path:
        return {}
    where = Path(path)
    files = sorted(where.glob("*.yaml")) if where.is_dir() else [where]
    expected: dict[str, str] = {}
    for file in files:
        data = yaml.safe_load(file.read_text()) or {}
        if not isinstance(data, dict):
            raise pytest.UsageError(f"{file}: expected a mapping of case id -> the feature it waits for")
        expected.update({str(k): str(v) for k, v in data.items()})
    return expected


# ==== fixtures ==================================================================================================
@pytest.fixture(scope="session")
def csms_target(pytestconfig: pytest.Config) -> Target:
    url = pytestconfig.getoption("--csms-url")
    if url is None:
        pytest.skip("no --csms-url: the conformance cases need a CSMS to test")
    manual = pytestconfig.getoption("--operator") == "manual"
    wait = pytestconfig.getoption("--wait") or (300.0 if manual else 15.0)
    try:
        return Target.parse(
            url,
            pytestconfig.getoption("--ocpp"),
            reply_timeout_s=pytestconfig.getoption("--reply-timeout"),
            open_timeout_s=pytestconfig.getoption("--open-timeout"),
            wait_s=wait,
            tls_url=pytestconfig.getoption("--csms-tls-url"),
            ca_file=pytestconfig.getoption("--ca-file"),
            client_cert=pytestconfig.getoption("--client-cert"),
            client_key=pytestconfig.getoption("--client-key"),
            client_ca_cert=pytestconfig.getoption("--client-ca-cert"),
            client_ca_key=pytestconfig.getoption("--client-ca-key"),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def operator(pytestconfig: pytest.Config) -> Iterator[OperatorThread]:
    spec = pytestconfig.getoption("--operator")
    api_url, api_key = pytestconfig.getoption("--api-url"), pytestconfig.getoption("--api-key")
    if spec is None and api_url is None:
        thread = OperatorThread(None, "no operator: give --operator (chargetwin with --api-url, hooks.yaml or manual)")
    else:
        from simulator.operators import make_operator

        try:
            thread = OperatorThread(make_operator(spec or "chargetwin", api_url=api_url, api_key=api_key))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    yield thread
    thread.close()


@dataclass(frozen=True, slots=True)
class Tokens:
    """The id tokens a case may present (OCTT's configured valid / blocked / expired / unknown idTokens)."""

    valid: str
    blocked: str
    expired: str
    unknown: str
    provisioned: bool


@pytest.fixture(scope="session")
def tokens(pytestconfig: pytest.Config, operator: OperatorThread) -> Tokens:
    option = pytestconfig.getoption
    chosen = Tokens(
        option("--id-token"),
        option("--blocked-id-token"),
        option("--expired-id-token"),
        option("--unknown-id-token"),
        False,
    )
    provisioned = operator.provision_token(chosen.valid, "Accepted")
    if provisioned:
        operator.provision_token(chosen.blocked, "Blocked")
        operator.provision_token(chosen.expired, "Expired")
    return Tokens(chosen.valid, chosen.blocked, chosen.expired, chosen.unknown, provisioned)


_numbers = itertools.count(1)
_RUN = secrets.token_hex(2).upper()


@pytest.fixture
def make_station(
    request: pytest.FixtureRequest, csms_target: Target, operator: OperatorThread
) -> Iterator[Callable[..., StationUnderTest]]:
    """``make_station(connectors=2, config={...}, provision=True)``: a new station under test, not yet connected.

    With an operator that can provision, every station has an id of its own (``CT<run>-<n>``) and a fresh
    password; otherwise (and with a person as the operator) ``--station-id``/``--password``, one station for
    the whole run."""
    made: list[StationUnderTest] = []
    request.node.stash[STATIONS] = made
    config = request.config

    def make(*, provision: bool = True, password: str | None = None, **kwargs: Any) -> StationUnderTest:
        if provision and operator.name != "manual" and operator.cannot("provision_station") is None:
            station_id = f"CT{_RUN}-{next(_numbers):03d}"
            # 20 characters: within the password rules of both versions (1.6 16-20, 2.0.1 16-40)
            secret = password if password is not None else secrets.token_urlsafe(15)
            operator.provision_station(station_id, csms_target.version, secret)
        else:
            station_id = config.getoption("--station-id") or DEFAULT_STATION_ID
            secret = password if password is not None else config.getoption("--password")
        station = StationUnderTest(csms_target, station_id, password=secret, **kwargs)
        made.append(station)
        return station

    yield make
    for station in made:
        station.close()


@pytest.fixture
def station(make_station: Callable[..., StationUnderTest]) -> StationUnderTest:
    """A station with one connector (2.0.1: one EVSE with one connector), provisioned, not yet connected."""
    return make_station()


# ==== verdicts ==================================================================================================
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """A case fails on any rule the CSMS broke, even one no step looked at; NotRun becomes a skip with its reason."""
    try:
        result = yield
    except NotRun as exc:
        pytest.skip(f"not run: {exc}")
    for station in item.stash.get(STATIONS, []):
        station.check()
    return result


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    if "case_id" in props and _CONFIG:
        info = CaseInfo(str(props["case_id"]), str(props["title"]), str(props["profile"]), "")
        _CONFIG[0].stash[RESULTS].record(info, report)


#: The session's config, for the report hook (pytest hands it no config).
_CONFIG: list[pytest.Config] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _active(config):
        return
    results = config.stash[RESULTS]
    if not results.cases:
        return
    terminalreporter.section("OCPP conformance")
    for line in results.summary_lines():
        terminalreporter.write_line(line)
    path = config.getoption("--conformance-report")
    if path:
        Path(path).write_text(
            results.markdown(version=config.getoption("--ocpp"), target=config.getoption("--csms-url"))
        )
        terminalreporter.write_line(f"report: {path}")
