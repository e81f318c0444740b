"""Real-time reports are honest about who measured what: against a CSMS no operator can read (the ``ocpp``
package's afternoon CSMS), its figures are *not measured* — never a zero error — and what it acknowledged to
the chargers is a separate, labelled figure; through an operator (here the example hooks file on chargetwin's
API) the report carries the CSMS's own figures and names the adapter. The scenario's operator actions go
through the adapter in timeline order."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from simulator.operators import CallOutcome, ChargetwinOperator, FleetVehicle, Garage, OperatorError
from simulator.realtime import OperatorActions
from simulator.scenario.models import ChangeAvailability, Onboard, RemoteStart, RemoteStop
from tests.simulator.test_realtime import API_KEY, Csms, _serve, free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).parent / "data" / "realtime-peer.yaml"
EXAMPLE_HOOKS = ROOT / "docs" / "examples" / "operator-hooks.yaml"
PEER = ROOT / "loadtests" / "peer" / "afternoon_csms.py"
NOT_MEASURED = "no operator can read this CSMS's transactions"


def sim_run(
    out: Path, csms_url: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "simulator.cli", "run", str(SCENARIO), "--out", str(out), "--quiet"]
    command += ["--csms", csms_url, "--realtime", "--speed", "240", *extra]
    environment = {**os.environ, "COLUMNS": "220", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=60)


@pytest.fixture
def chargetwin(tmp_path: Path) -> Iterator[Csms]:
    """An empty ``csms serve``: the operator provisions it."""
    with _serve(f"sqlite:///{tmp_path / 'csms.db'}") as csms:
        yield csms


def table_value(stdout: str, measure: str) -> str:
    """The value the printed summary table gives for ``measure``."""
    row = next(line for line in stdout.splitlines() if line.startswith(f"│ {measure} "))
    return row.split("│")[2].strip()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The afternoon CSMS on a free loopback port, accepting the scenario's tokens; its URL and database."""
    port, db = free_port(), tmp_path / "peer.db"
    command = [
        sys.executable,
        str(PEER),
        "--port",
        str(port),
        "--db",
        str(db),
        "--id-tag",
        "PEER-1",
        "--id-tag",
        "PEER-2",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()
            with closing(socket.socket()) as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the peer CSMS did not start"
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/ocpp", db
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.mark.timeout(60)
def test_without_an_operator_the_csms_figures_are_not_measured(peer: tuple[str, Path], tmp_path: Path) -> None:
    url, db = peer
    done = sim_run(tmp_path / "out", url)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, done.stdout + done.stderr  # no check failed; some could not be measured
    for action in ("provisioning the stations", "provision_tokens", "remote_stop", "change_availability"):
        assert f"{action} skipped: no --operator" in done.stderr, done.stderr
    assert table_value(done.stdout, "energy truth vs CSMS") == f"not measured ({NOT_MEASURED})", done.stdout
    assert table_value(done.stdout, "transactions") == "2 started, 2 completed; lost, duplicated: not measured"
    acknowledged = table_value(done.stdout, "what the CSMS acknowledged to the chargers")
    assert acknowledged.startswith("2 transactions, 0 unacknowledged, max error "), acknowledged

    data = json.loads((tmp_path / "out" / "report.json").read_text())
    tx = data["transactions"]
    assert tx["started"] == 2 and tx["completed"] == 2, tx
    assert tx["energy_max_error_kwh"] is None and tx["lost"] is None and tx["csms_recorded"] is None, tx
    assert tx["csms_source"] is None and tx["not_measured"] == NOT_MEASURED
    assert all(row["csms_kwh"] is None and row["error_kwh"] is None for row in tx["per_transaction"]), tx
    ack = tx["acknowledged"]
    assert ack["recorded"] == 2 and ack["lost"] == 0 and ack["energy_max_error_kwh"] <= 0.001, ack
    assert data["not_measured"]["transactions"] == NOT_MEASURED
    assert "uptime" not in data and "uptime" in data["not_measured"] and "alerts" in data["not_measured"]
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["stations_booted"]["passed"] is True  # the chargers were answered Accepted: that is measured
    for name in ("transactions_lost", "energy_mismatch_kwh"):
        assert checks[name]["passed"] is None and checks[name]["not_measured"] == NOT_MEASURED, checks[name]
    assert data["passed"] is False
    # the CSMS did store the sessions: the report just could not read them, and says so
    with closing(sqlite3.connect(db)) as stored:
        assert stored.execute("SELECT count(*) FROM transactions WHERE meter_stop_wh IS NOT NULL").fetchone() == (2,)


@pytest.mark.timeout(90)
def test_through_a_hooks_file_the_report_reads_the_csms(chargetwin: Csms, tmp_path: Path) -> None:
    env = {"CSMS_API_URL": chargetwin.api_url, "CSMS_TOKEN": API_KEY}
    done = sim_run(tmp_path / "out", chargetwin.ws_url, "--operator", str(EXAMPLE_HOOKS), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    energy = table_value(done.stdout, "energy truth vs CSMS")
    assert energy.startswith("max error ") and energy.endswith(" Wh (hooks)"), done.stdout
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    tx = data["transactions"]
    assert tx["csms_source"] == "hooks" and "not_measured" not in tx, tx
    assert tx["csms_recorded"] == 2 and tx["lost"] == 0 and tx["duplicated"] == 0, tx
    assert tx["energy_max_error_kwh"] is not None and tx["energy_max_error_kwh"] <= 0.001, tx
    assert all(row["csms_kwh"] is not None and row["csms_kwh"] > 0.1 for row in tx["per_transaction"]), tx
    assert data["stations"] == {"count": 2, "booted": 2}  # read from the CSMS's stations
    assert {p["port"] for p in data["uptime"]["ports"]} == {"peer-1/1", "peer-2/1"}
    assert data["not_measured"] == {
        "alerts": "only chargetwin's API (--operator chargetwin) lists the alerts a CSMS raised"
    }
    assert data["passed"] is True
    # the scenario's operator actions reached the stations through the hooks file's calls
    headers = {"Authorization": f"Bearer {API_KEY}"}
    rows = httpx.get(f"{chargetwin.api_url}/api/v1/transactions", headers=headers, timeout=10).json()
    assert {(r["station_id"], r["stop_reason"]) for r in rows} >= {("peer-2", "Remote")}, rows
    station = httpx.get(f"{chargetwin.api_url}/api/v1/stations/peer-1", headers=headers, timeout=10).json()
    assert {c["status"] for c in station["connectors"]} == {"Unavailable"}, station


class RecordingOperator:
    """An adapter that records what it was asked; it cannot send ChangeAvailability."""

    name = "recording"

    def __init__(self) -> None:
        self.done: list[tuple[Any, ...]] = []
        self.fail_tokens = {"BAD"}

    def cannot(self, capability: str, action: str | None = None) -> str | None:
        return "this CSMS has no availability button" if action == "ChangeAvailability" else None

    async def provision_token(self, id_token: str, *, status: str = "Accepted", group: str | None = None) -> None:
        if id_token in self.fail_tokens:
            raise OperatorError(f"HTTP 422: {id_token} refused")
        self.done.append(("token", id_token, group))

    async def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 30.0
    ) -> CallOutcome:
        self.done.append(("call", station_id, action, payload))
        return CallOutcome(True, {"status": "Accepted"}, "result")


async def test_operator_actions_go_through_the_adapter_in_timeline_order(caplog: pytest.LogCaptureFixture) -> None:
    operator = RecordingOperator()
    running = {2: SimpleNamespace(transaction_id=7)}  # the charger's transaction on connector 2 (1.6: the CSMS's id)
    chargers = {"cp-1": SimpleNamespace(transactions=running), "cp-2": SimpleNamespace(transactions={})}
    actions = OperatorActions(operator, chargers)  # type: ignore[arg-type]
    actions.provision_tokens(["A", "BAD", "B"], "G", 0.0)
    start = RemoteStart.model_validate({"at": "+0m", "kind": "remote_start", "charger": "cp-1", "id_token": "A"})
    actions.call("cp-1", "2.0.1", start, 0.0)
    actions.call(
        "cp-1",
        "1.6",
        RemoteStop.model_validate({"at": "+0m", "kind": "remote_stop", "charger": "cp-1", "connector": 2}),
        0.0,
    )
    actions.call("cp-2", "1.6", RemoteStop.model_validate({"at": "+0m", "kind": "remote_stop", "charger": "cp-2"}), 0.0)
    off = {"at": "+0m", "kind": "change_availability", "charger": "cp-1", "availability": "inoperative"}
    actions.call("cp-1", "1.6", ChangeAvailability.model_validate(off), 0.0)
    actions.call("cp-1", "1.6", ChangeAvailability.model_validate(off), 0.0)
    await actions.finish()
    assert operator.done == [
        ("token", "A", "G"),
        ("token", "B", "G"),  # one refused token does not stop the others
        (
            "call",
            "cp-1",
            "RequestStartTransaction",
            {"idToken": {"idToken": "A", "type": "ISO14443"}, "evseId": 1, "remoteStartId": 1},
        ),
        ("call", "cp-1", "RemoteStopTransaction", {"transactionId": 7}),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert "provisioning token BAD failed: HTTP 422: BAD refused" in messages
    assert "remote_stop on cp-2/1 skipped: no transaction known there" in messages
    assert messages.count("ChangeAvailability skipped: this CSMS has no availability button") == 1


async def test_the_chargetwin_adapter_registers_a_depots_vans_and_posts_their_telematics(chargetwin: Csms) -> None:
    """A real-time run's ``register_vehicles`` and telematics reach chargetwin's fleet API (``csms serve``)."""
    operator = ChargetwinOperator(chargetwin.api_url, API_KEY)
    try:
        await operator.provision_token("DEPOT-001")
        plan = tuple((day, "05:30", 90.0) for day in range(7))
        van = FleetVehicle("van-1", 68.0, "DEPOT-001", "America/New_York", plan, max_ac_kw=11.0)
        await operator.register_vehicle(van)
        await operator.register_vehicle(van)  # registered already: kept, its plan set again
        await operator.record_soc("van-1", 31.5, datetime.now(UTC))
        with pytest.raises(OperatorError, match="between 0 and 100"):
            await operator.record_soc("van-1", 131.5, datetime.now(UTC))
    finally:
        await operator.close()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    base = chargetwin.api_url.rstrip("/") + "/api/v1/fleet"
    stored = httpx.get(f"{base}/vehicles/van-1/plan", headers=headers).json()
    assert [(d["weekday"], d["time"], d["target_soc_pct"]) for d in stored] == list(plan)
    board = {row["vehicle_id"]: row for row in httpx.get(f"{base}/board", headers=headers).json()}
    assert board["van-1"]["soc_pct"] == 31.5 and board["van-1"]["status"] == "not_plugged_in"


class FleetRecordingOperator(RecordingOperator):
    async def register_vehicle(self, vehicle: FleetVehicle) -> None:
        self.done.append(("vehicle", vehicle.vehicle_id, vehicle.departures[0]))

    async def record_soc(self, vehicle_id: str, soc_pct: float, at: datetime) -> None:
        self.done.append(("soc", vehicle_id, soc_pct))


async def test_real_time_fleet_records_go_through_the_adapter_or_are_skipped_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    van = FleetVehicle("van-1", 68.0, "DEPOT-001", "UTC", ((0, "05:30", 90.0),))
    operator = FleetRecordingOperator()
    actions = OperatorActions(operator, {})  # type: ignore[arg-type]
    actions.register_vehicles([van], 0.0)
    actions.telematics("van-1", 27.5, 0.0)
    await actions.finish()
    assert operator.done == [("vehicle", "van-1", (0, "05:30", 90.0)), ("soc", "van-1", 27.5)]
    nobody = OperatorActions(None, {})
    nobody.register_vehicles([van], 0.0)
    nobody.telematics("van-1", 27.5, 0.0)
    nobody.telematics("van-1", 28.0, 0.0)
    await nobody.finish()
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fleet skipped")]
    assert len(skipped) == 1 and "no --operator" in skipped[0]


async def test_the_chargetwin_adapter_onboards_a_garages_residents_and_visitors(chargetwin: Csms) -> None:
    """A real-time run's ``onboard`` reaches chargetwin's property API (``csms serve``): the property on the CSMS's
    own site holding the chargers, a unit per resident, and each driver's invitation redeemed with their card."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    operator = ChargetwinOperator(chargetwin.api_url, API_KEY)
    try:
        await operator.provision_station("g-1", "1.6", None)
        site = {"id": "lindenstrasse", "nodes": [{"id": "grid", "limit_kw": 150}],
                "evses": [{"station_id": "g-1", "evse_id": 1, "node": "grid"}]}  # fmt: skip
        assert httpx.post(chargetwin.api_url + "/api/v1/sites", json=site, headers=headers).status_code == 201
        garage = Garage("garage", "Garage Lindenstrasse", ("g-1",), "Europe/Berlin",
                        {"billing_mode": "cost_recovery", "currency": "EUR", "utility_rate": "0.2450",
                         "margin_pct": "10", "vat_pct": "19"})  # fmt: skip
        await operator.onboard(garage, "resident", ["RES-001", "RES-002"], None)
        await operator.onboard(garage, "visitor", ["GUEST-01"], 1)  # the property is there already: kept
    finally:
        await operator.close()
    base = chargetwin.api_url + "/api/v1/properties/garage"
    passes = httpx.get(f"{base}/passes", headers=headers).json()
    assert [(p["id_token"], p["kind"], p["unit_id"] is not None) for p in passes] == [
        ("RES-001", "resident", True), ("RES-002", "resident", True), ("GUEST-01", "visitor", False),
    ]  # fmt: skip
    statement = httpx.get(f"{base}/units/RES-001/statement", params={"month": "2026-12"}, headers=headers).json()
    assert statement["total"] == "0.00"  # the unit exists, its account is billed by statement
    stored = httpx.get(chargetwin.api_url + "/api/v1/accounts/unit:garage:RES-001", headers=headers)
    assert stored.status_code == 200, stored.text


class OnboardingOperator(RecordingOperator):
    async def onboard(self, garage: Garage, role: str, tokens: list[str], pass_days: int | None) -> None:
        self.done.append(("onboard", garage.property_id, role, tuple(tokens), pass_days))


async def test_real_time_onboarding_goes_through_the_adapter_or_is_skipped_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    garage = Garage("garage", "G", ("g-1",), "UTC", {"utility_rate": "0.25"})
    item = Onboard(kind="onboard", at="16:00", vehicles="residents", role="visitor", pass_days=1)
    operator = OnboardingOperator()
    actions = OperatorActions(operator, {})  # type: ignore[arg-type]
    actions.garage = garage
    actions.onboard(["G-1", "G-2"], item, 0.0)
    await actions.finish()
    assert operator.done == [("onboard", "garage", "visitor", ("G-1", "G-2"), 1)]
    nobody = OperatorActions(None, {})
    nobody.garage = garage
    nobody.onboard(["G-1"], item, 0.0)
    nobody.onboard(["G-2"], item, 0.0)
    await nobody.finish()
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("onboard skipped")]
    assert len(skipped) == 1 and "no --operator" in skipped[0]
