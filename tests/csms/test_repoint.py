"""Re-pointing a fleet from CSMS A to CSMS B (``csms migrate repoint``): two real ``csms serve`` processes,
twin chargers on A over real WebSockets, the command against A's API; B's API shows who arrived."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from csms.cli import main as csms_main
from csms.migration import repoint
from csms.runtime import settings
from simulator.links.websocket import WebSocketLink
from simulator.station.charger import Charger, Registration
from simulator.station.registration import StationIdentity
from simulator.station.security import NetworkProfile, StationSecurity
from simulator.station.vendors import PROFILES
from tests.simulator.helpers import FakeMeter
from tests.simulator.test_realtime import API_KEY, Csms, FastClock, _serve, free_port, wait_for

PASSWORD = "repoint-secret-01"
#: station id -> (OCPP version, vendor profile)
FLEET = {
    "ev16": ("1.6", "everest"),
    "pin16": ("1.6", "everest-pinned-url"),
    "plain16": ("1.6", "spec"),
    "dc201": ("2.0.1", "spec"),
    "lost201": ("2.0.1", "spec"),
    "alias16": ("1.6", "spec"),
}
STEVE_PATH = "/steve/websocket/CentralSystemService"


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = csms_main(list(argv))
    return status, out.getvalue(), err.getvalue()


def _provision(database: str) -> None:
    for station_id, (version, _) in FLEET.items():
        status, _, err = _cli("stations", "add", station_id, "--password", PASSWORD, "--ocpp", version,
                              "--database-url", database)  # fmt: skip
        assert status == 0, err


@pytest.fixture
def two_csms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Csms, Csms]]:
    """A (the old) and B (the new, also accepting SteVe's path); the same stations and passwords in both, as
    an imported bundle leaves them (the bundle carries the password hashes)."""
    monkeypatch.setenv("CHARGETWIN_API_KEY", API_KEY)
    old, new = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    _provision(old)
    _provision(new)
    with _serve(old) as a, _serve(new, "--accept-path", STEVE_PATH) as b:
        yield a, b


def _station(csms: Csms, station_id: str) -> dict[str, Any]:
    response = httpx.get(f"{csms.api_url}/api/v1/stations/{station_id}", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.timeout(60)
async def test_repoint_moves_who_can_and_reports_who_cannot(two_csms: tuple[Csms, Csms]) -> None:
    a, b = two_csms
    clock = FastClock(100.0)
    links = []
    for station_id, (version, vendor) in FLEET.items():
        profile = PROFILES[vendor]
        identity = StationIdentity(vendor=profile.vendor, model=profile.model, serial_number=station_id)
        rng = random.Random(7)
        charger = Charger(station_id, version, meter=FakeMeter(), rng=rng, vendor=profile, identity=identity)
        url = a.ws_url if station_id != "alias16" else b.ws_url.removesuffix("/ocpp") + STEVE_PATH
        links.append(WebSocketLink(charger, clock, url, password=PASSWORD))
    chargers = {link.charger.station_id: link.charger for link in links}
    for link in links:
        link.start()
    try:
        await wait_for(lambda: all(c.registration is Registration.ACCEPTED for c in chargers.values()), timeout=15)
        # Forwarding: a charger still dialling its old platform's path is served by B (DNS/host cut-over).
        assert _station(b, "alias16")["connected"]

        api = ["--api-url", f"{a.api_url}/api/v1", "--timeout", "10"]
        unreachable = f"ws://127.0.0.1:{free_port()}/ocpp"
        # One command at a time: each captures this process's stdout.
        lost_status, lost_out, lost_err = await asyncio.to_thread(
            _cli, "migrate", "repoint", "--to", unreachable, "--stations", "lost201", "--within", "20s", *api
        )
        status, out, err = await asyncio.to_thread(
            _cli, "migrate", "repoint", "--to", b.ws_url, "--stations", "ev16", "pin16", "plain16", "dc201",
            "--within", "3s", *api,
        )  # fmt: skip

        rows = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert status == 1, (out, err)  # not every station moved
        assert "moved" in rows["ev16"].split() and "moved" in rows["dc201"].split(), out
        assert "not_moved" in rows["pin16"], out  # took the key, came back on A: caught, key restored
        assert "cannot_repoint" in rows["plain16"] and "forwarding" in rows["plain16"], out
        for station_id in ("ev16", "dc201"):
            arrived = _station(b, station_id)
            assert arrived["connected"] and arrived["last_boot_at"] is not None, arrived
            assert not _station(a, station_id)["connected"]
        assert _station(a, "pin16")["connected"] and not _station(b, "pin16")["connected"]
        assert chargers["pin16"].config.value("CentralSystemURI") == ""  # the old (empty) value restored

        # 2.0.1 that cannot reach the new URL falls back to A's slot by itself; reported, priority restored.
        assert lost_status == 1 and "not_moved" in lost_out and "came back" in lost_out, (lost_out, lost_err)
        assert _station(a, "lost201")["connected"]
        lost_charger = chargers["lost201"]
        assert lost_charger.security.csms_url != unreachable
        assert len(lost_charger.security.priority) == 1  # the restored priority: A's slot only
        assert lost_charger.security.network_profiles[lost_charger.security.priority[0]].url.startswith("ws://")
    finally:
        for link in links:
            await link.stop()


def test_repoint_refuses_bad_input_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGETWIN_API_KEY", API_KEY)
    with pytest.raises(SystemExit) as exited, redirect_stderr(io.StringIO()):
        csms_main(["migrate", "repoint", "--to", "wss://b/ocpp"])  # neither --stations nor --all
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited, redirect_stderr(io.StringIO()):
        csms_main(["migrate", "repoint", "--to", "wss://b/ocpp", "--all", "--within", "soon"])
    assert exited.value.code == 2
    status, _, err = _cli("migrate", "repoint", "--to", "wss://b/ocpp", "--all", "--api-url",
                          f"http://127.0.0.1:{free_port()}/api/v1")  # fmt: skip
    assert status == 2 and "cannot reach the API" in err


def test_a_201_station_keeps_its_old_slots_after_the_new_one() -> None:
    plan = repoint.plan_201([1, 3], "wss://b/ocpp", 2, "ws://a/ocpp", 1)
    assert plan.slot == 2
    assert [action for action, _ in plan.calls] == ["SetNetworkProfile", "SetVariables", "Reset"]
    assert plan.calls[1][1]["setVariableData"][0]["attributeValue"] == "2,1,3"
    assert plan.rollback[1]["setVariableData"][0]["attributeValue"] == "1,3"
    # A station that reports no priority gets the URL it uses now in a slot of its own, to fall back to.
    bare = repoint.plan_201([], "wss://b/ocpp", 2, "ws://a/ocpp", 1)
    assert bare.calls[0][1]["connectionData"]["ocppCsmsUrl"] == "ws://a/ocpp"
    assert bare.calls[2][1]["setVariableData"][0]["attributeValue"] == f"{bare.slot},1"


def test_the_forwarding_paths_are_a_setting_of_serve() -> None:
    loaded = settings.ServeSettings.model_validate({"accept_path": "/steve/websocket/CentralSystemService, /old"})
    assert loaded.accept_path == ["/steve/websocket/CentralSystemService", "/old"]
    with pytest.raises(ValueError, match="not a URL path"):
        settings.ServeSettings.model_validate({"accept_path": ["ws://x"]})


def test_a_201_twin_tries_the_next_slot_after_a_failed_connect_and_the_first_again_at_reboot() -> None:
    security = StationSecurity("cp")
    security.set_network_profile(1, NetworkProfile("ws://a/ocpp", 1))
    security.set_network_profile(2, NetworkProfile("ws://b/ocpp", 1))
    security.set_priority([2, 1])
    assert security.apply_priority() and security.csms_url == "ws://b/ocpp"
    assert security.next_priority() and security.csms_url == "ws://a/ocpp"
    assert security.next_priority() and security.csms_url == "ws://b/ocpp"  # round again
    security.next_priority()
    assert security.apply_priority() and security.csms_url == "ws://b/ocpp"
    security.set_priority([1])
    assert not security.next_priority()  # one slot: nowhere else to go
