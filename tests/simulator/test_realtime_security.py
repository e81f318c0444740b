"""The security-rollout steps in real time against a real ``csms serve --pki`` over real sockets and TLS:
the operator's calls go through chargetwin's API (raw calls, vetted and adopted by the CSMS), the CSMS's CA
signs the chargers' CSRs, and the chargers come back on wss:// with their new certificates."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.simulator.test_realtime import API_KEY, ROOT, _env, _serve, free_port, run_cli

SCENARIO = Path(__file__).parent / "data" / "realtime-security.yaml"


@pytest.fixture
def pki_csms(tmp_path: Path) -> Iterator[tuple[str, str, str, Path]]:
    """``csms serve --pki`` on free loopback ports: (ws URL, wss URL, API URL, the CSMS root file)."""
    pki = tmp_path / "pki"
    done = run_cli("csms.cli", "pki", "init", str(pki), "--organisation", "Realtime Test")
    assert done.returncode == 0, done.stderr
    tls_port = free_port()
    with _serve(f"sqlite:///{tmp_path / 'csms.db'}", "--tls-port", str(tls_port), "--pki", str(pki)) as csms:
        yield csms.ws_url, f"wss://127.0.0.1:{tls_port}/ocpp", csms.api_url, pki / "csms-root.pem"


@pytest.mark.timeout(150)
def test_the_rollout_steps_move_chargers_to_profile_3_against_csms_serve(pki_csms, tmp_path: Path) -> None:
    ws_url, wss_url, api, root = pki_csms
    # The chargers' clock is the scenario's: it starts now, as a real charger's (NTP) clock would be when the
    # CSMS signs its certificate (a charger whose clock is months behind rightly refuses it as not yet valid).
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    scenario = tmp_path / "realtime-security.yaml"
    scenario.write_text(SCENARIO.read_text().replace("start: 2026-02-02T08:00:00+01:00", f"start: {now}"))
    command = [sys.executable, "-m", "simulator.cli", "run", str(scenario), "--out", str(tmp_path / "out"), "--quiet"]
    command += ["--csms", ws_url, "--realtime", "--speed", "60", "--api-url", api, "--api-key", API_KEY]
    command += ["--csms-root", str(root), "--csms-tls-url", wss_url]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    headers = {"Authorization": f"Bearer {API_KEY}"}
    stations = {s["id"]: s for s in httpx.get(f"{api}/api/v1/stations", headers=headers).json()}
    assert {sid: s["security_profile"] for sid, s in stations.items()} == {"rts16-1": 3, "rts201-1": 3}, stations
    issued = httpx.get(f"{api}/api/v1/certificates", headers=headers).json()
    assert sorted((c["station_id"], c["delivery"]) for c in issued) == [
        ("rts16-1", "Accepted"),
        ("rts201-1", "Accepted"),
    ]
    # Both chargers came back on wss:// with their certificates, and said so.
    events = httpx.get(
        f"{api}/api/v1/security-events", headers=headers, params={"type": "ReconfigurationOfSecurityParameters"}
    )
    assert sorted(e["station_id"] for e in events.json()) == ["rts16-1", "rts201-1"]


def test_the_rollout_in_real_time_needs_the_csms_root_and_its_wss_url(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "simulator.cli", "run", str(SCENARIO), "--out", str(tmp_path / "out"), "--quiet"]
    command += ["--csms", "ws://127.0.0.1:9/ocpp", "--realtime"]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "actions[1].kind: install_certificate in real time needs --csms-root FILE and --csms-tls-url wss://…"
        in done.stderr
    ), done.stderr
