"""The security-rollout scenario: a mixed fleet moved from security profile 1 to 3 in virtual time, with
certificates the embedded CSMS's own station CA issues and real TLS handshakes (in memory, on the run's
clock) — and what the CSMS then refuses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import simpy

from csms.ocpp.convert import from_posix
from csms.pki import build
from csms.services import security_events, stations
from simulator.embedded_csms import EmbeddedCsms, EmbeddedPki
from simulator.links.inprocess import DEFAULT_URL, Refused
from simulator.links.offer import offer
from simulator.report import build as build_report
from simulator.runner import VirtualRun
from simulator.scenario.loader import ScenarioError, load_scenario, parse_scenario
from simulator.scheduler import SimPyScheduler
from simulator.station.security import StationSecurity

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "security-rollout.yaml"


class _NoTransport:
    def send(self, frames: list[str]) -> None:
        pass

    def close(self, reason: str) -> None:
        pass


@pytest.fixture(scope="module")
def rollout() -> tuple[VirtualRun, dict[str, Any]]:
    run = VirtualRun(load_scenario(SCENARIO), scenario_file=str(SCENARIO))
    return run, build_report(run.run())


def _events(run: VirtualRun, kind: str) -> list:
    with run.csms.session_factory() as db:
        return security_events.list_events(db, type=kind)


def test_every_station_ends_on_profile_3_with_a_certificate_the_csms_issued_and_no_session_lost(rollout):
    run, report = rollout
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    security = report["security"]
    assert security["lowest_profile"] == 3 and security["stations_by_profile"] == {"3": 14}
    assert security["certificates_issued"] == 14 and security["stations_connected"] == 14
    for station in security["stations"]:
        assert station["csms_profile"] == station["charger_profile"] == 3, station
        assert station["has_certificate"] and station["certificate_known_to_csms"], station
    assert report["transactions"]["started"] == 14
    assert report["transactions"]["lost"] == report["transactions"]["duplicated"] == 0
    # Each charger reconnected with its new parameters and said so (2.0.1 A05/1.6 security whitepaper).
    assert len(_events(run, "ReconfigurationOfSecurityParameters")) == 14
    # The 2.0.1 chargers were upgraded with cars charging: their Reset OnIdle waited for the car to leave.
    calls = {(c["action"], c["outcome"]): c["count"] for c in security["operator_calls"]}
    assert calls[("Reset", "Scheduled")] == 8 and calls[("Reset", "Accepted")] == 6


def test_after_the_rollout_a_password_alone_is_refused(rollout):
    run, _ = rollout
    charger = run.fleet.chargers["wp16-1"]
    password_only = _Station("wp16-1", dataclasses.replace(charger.security, profile=1, csms_url=None))
    plain = offer(password_only, DEFAULT_URL, None, virtual_time=True)  # type: ignore[arg-type]
    assert plain.tls is None and plain.authorization is not None
    with pytest.raises(Refused):
        run.csms.connect("wp16-1", charger.version, _NoTransport(), plain)
    (event,) = [e for e in _events(run, "handshake_refused") if e.station_id == "wp16-1"]
    assert "profile 3" in event.detail["reason"]


class _Station:
    """What :func:`offer` reads of a charger: its id and its security state."""

    def __init__(self, station_id: str, security: StationSecurity) -> None:
        self.station_id, self.security = station_id, security


EPOCH = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()


@pytest.fixture
def csms() -> EmbeddedCsms:
    """An embedded CSMS with a station CA whose certificates last one day, and one profile-3 station."""
    pki = EmbeddedPki.create(EPOCH, organisation="Office Park Charging", certificate_days=1)
    csms = EmbeddedCsms.create(SimPyScheduler(simpy.Environment(), EPOCH), pki=pki)
    with csms.session_factory() as db:
        stations.provision(db, "cp-1", ocpp_version="2.0.1", password=None, now=from_posix(EPOCH), security_profile=3)
        db.commit()
    return csms


def _certified(csms: EmbeddedCsms, station_id: str) -> _Station:
    """A station holding the CSMS root and a certificate the CSMS's CA signed for its CSR."""
    assert csms.pki is not None
    security = StationSecurity(station_id, organization="Office Park Charging")
    security.install_root("CSMSRootCertificate", csms.pki.csms_root_pem)
    leaf = csms.pki.station_ca.sign(security.csr(), station_id, from_posix(EPOCH))
    verdict, why = security.certificate_signed(csms.pki.station_ca.chain_pem(leaf), EPOCH)
    assert verdict.value == "Accepted", why
    security.profile = 3
    return _Station(station_id, security)


def _connect(csms: EmbeddedCsms, station: _Station) -> None:
    credentials = offer(station, "wss://csms.twin/ocpp", None, virtual_time=True)  # type: ignore[arg-type]
    csms.connect(station.station_id, "2.0.1", _NoTransport(), credentials)


def test_a_station_certificate_is_admitted_while_valid_and_refused_in_the_tls_handshake_once_ended(csms):
    station = _certified(csms, "cp-1")
    _connect(csms, station)
    assert csms.connected("cp-1")
    csms.scheduler.env.run(until=2 * 86400)  # the run's clock, two days on: the one-day certificate ended
    with pytest.raises(Refused, match="certificate has expired"):
        _connect(csms, station)
    with csms.session_factory() as db:
        (event,) = security_events.list_events(db, type="bad_certificate")
    assert event.detail["reason"] == "certificate has expired"


def test_a_certificate_of_another_ca_naming_the_station_is_refused_in_the_tls_handshake(csms):
    station = _certified(csms, "cp-1")
    rogue = build.make_ca(build.name("Rogue CA", "Rogue"), from_posix(EPOCH), 30)
    key = build.new_key()
    forged = build.issue(rogue, build.name("cp-1", "Office Park Charging"), key.public_key(), from_posix(EPOCH), 30)
    station.security.key, station.security.chain = key, [forged, rogue[0]]
    with pytest.raises(Refused, match="TLS"):
        _connect(csms, station)
    assert not csms.connected("cp-1")
    with csms.session_factory() as db:
        (event,) = security_events.list_events(db, type="bad_certificate")
    assert event.detail["reason"] == "self-signed certificate in certificate chain"


def test_a_password_does_not_stand_in_for_a_profile_3_certificate(csms):
    station = _Station("cp-1", StationSecurity("cp-1", profile=2, password="a-password-of-16-chars"))
    assert csms.pki is not None
    station.security.install_root("CSMSRootCertificate", csms.pki.csms_root_pem)
    with pytest.raises(Refused):
        _connect(csms, station)


def test_the_rollout_needs_the_csms_pki_and_passwords(tmp_path):
    text = SCENARIO.read_text()
    no_pki = text.replace("  pki: {organisation: Office Park Charging, certificate_days: 365}\n", "")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(no_pki, "x.yaml")
    issues = "\n".join(map(str, info.value.issues))
    assert "x.yaml:29:60: chargers[2].security_profile: expected csms.pki" in issues
    assert "actions[1].kind: expected csms.pki (the CSMS's station CA and wss://) for install_certificate" in issues
    no_password = text.replace(', password: "wp201-Secret-0001-abcd"', "").replace(
        "charger: wp201, profile: 3}", "charger: wp201, profile: 2}"
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(no_password, "x.yaml")
    assert "profile 2 is TLS + HTTP Basic" in "\n".join(map(str, info.value.issues))
