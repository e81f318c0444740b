"""Plug & Charge in virtual time: the twin's ISO 15118 vehicles carry contract certificates, the 2.0.1
chargers authorize them with iso15118CertificateHashData (no RFID token), and the embedded CSMS checks each
contract with its mobility operator's OCSP responder in-process — the same verifier as ``csms serve``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from csms.store.models import Transaction
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SCENARIO = Path(__file__).parent / "data" / "plug-and-charge.yaml"


def contracts_started(run: VirtualRun) -> dict[str, str]:
    with run.csms.session_factory() as db:
        return {tx.id_token: tx.station_id for tx in db.scalars(select(Transaction))}


def test_plug_and_charge_vehicles_start_sessions_with_their_contract_certificates():
    run = VirtualRun(load_scenario(SCENARIO), scenario_file=str(SCENARIO))
    report = build(run.run())
    assert report["transactions"]["started"] == 4 and report["transactions"]["lost"] == 0
    assert sorted(contracts_started(run)) == [f"NL-CTW-C{n:08d}" for n in range(1, 5)]
    # The CSMS asked the mobility operator's responder once per contract: the chargers sent the contracts'
    # OCSP data (a plain token would have been answered from the id-token table alone).
    assert run.csms.lookups is not None and run.csms.lookups.made == 4


def test_a_revoked_contract_starts_no_session():
    run = VirtualRun(load_scenario(SCENARIO), scenario_file=str(SCENARIO))
    assert run.mobility is not None
    revoked = "NL-CTW-C00000002"
    start = load_scenario(SCENARIO).start
    run.mobility.contract(revoked, start)
    (cert,) = [c for c in run.mobility.ca.issued.values() if revoked in c.subject.rfc4514_string()]
    run.mobility.ca.revoke(cert, start - timedelta(days=1))
    report = build(run.run())
    started = contracts_started(run)
    assert revoked not in started
    assert sorted(started) == ["NL-CTW-C00000001", "NL-CTW-C00000003", "NL-CTW-C00000004"]
    assert report["transactions"]["started"] == 3
