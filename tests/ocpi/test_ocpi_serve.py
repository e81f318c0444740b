"""``csms serve --ocpi-port`` as an operator runs it (a real process), and the handshake of docs/ocpi.md done the
way its curl lines do it; the OCPI settings refused when they do not fit together."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from csms.runtime import settings as s
from simulator.roaming.emsp import running_emsp
from tests.csms.test_cli import ROOT, _wait_for_api, csms, free_port
from tests.csms.test_settings import load


def test_ocpi_needs_the_operators_codes():
    with pytest.raises(s.SettingsError, match="ocpi_country_code and ocpi_party_id"):
        load("--ocpi-port", "9100")
    with pytest.raises(s.SettingsError, match="--ocpi-country-code"):
        load("--ocpi-port", "9100", "--ocpi-country-code", "nl", "--ocpi-party-id", "CTW")
    loaded = load("--ocpi-port", "9100", environ={"CHARGETWIN_OCPI_COUNTRY_CODE": "NL",
                                                  "CHARGETWIN_OCPI_PARTY_ID": "CTW"})  # fmt: skip
    assert (loaded.settings.ocpi_port, loaded.settings.ocpi_country_code) == (9100, "NL")


async def test_serve_with_ocpi_and_the_documented_handshake(sqlite_url):
    added = csms("ocpi", "parties", "add", "DE", "EMS", "--name", "An eMSP", database_url=sqlite_url)
    assert added.returncode == 0, added.stderr
    token_a = base64.b64encode(added.stdout.splitlines()[0].encode()).decode()
    ocpp_port, api_port, ocpi_port = free_port(), free_port(), free_port()
    env = {**os.environ, "CHARGETWIN_API_KEY": "serve-test-key"}
    env.pop("CHARGETWIN_DATABASE_URL", None)
    command = [sys.executable, "-m", "csms.cli", "serve", "--host", "127.0.0.1", "--ocpp-port", str(ocpp_port),
               "--api-port", str(api_port), "--database-url", sqlite_url, "--log-level", "warning",
               "--ocpi-port", str(ocpi_port), "--ocpi-country-code", "NL", "--ocpi-party-id", "CTW"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{ocpi_port}/ocpi"
    try:
        await _wait_for_api(f"http://127.0.0.1:{api_port}", process, time.monotonic() + 60)
        async with running_emsp() as emsp, httpx.AsyncClient(timeout=10) as c:
            emsp.accepted = {"EMSP-TOKEN-B"}
            a = {"Authorization": f"Token {token_a}"}
            assert (await c.get(f"{base}/versions", headers=a)).json()["data"][0]["url"] == f"{base}/2.2.1"
            assert (await c.get(f"{base}/2.2.1", headers=a)).json()["status_code"] == 1000
            role = {"role": "EMSP", "business_details": {"name": "An eMSP"}, "party_id": "EMS", "country_code": "DE"}
            body = {"token": "EMSP-TOKEN-B", "url": f"{emsp.base}/versions", "roles": [role]}
            answer = (await c.post(f"{base}/2.2.1/credentials", headers=a, json=body)).json()
            assert answer["status_code"] == 1000 and answer["data"]["url"] == f"{base}/versions"
            token_c = base64.b64encode(answer["data"]["token"].encode()).decode()
            listed = await c.get(f"{base}/2.2.1/locations", headers={"Authorization": f"Token {token_c}"})
            assert listed.json()["data"] == [] and listed.headers["X-Total-Count"] == "0"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert f"OCPI 2.2.1    {base}/versions" in out and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
