"""Local authorization lists kept by the CSMS (issue 17): the list built from the CSMS's tokens, versions the
CSMS chooses, lists split to the station's reported limits or refused when too large, token changes followed
by differential updates, VersionMismatch answered with the Full list, GetLocalListVersion and ClearCache.

Stations are the ``ocpp`` package's own ChargePoints over real WebSockets, holding their list their own way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.typing import Subprotocol

from csms.api.app import create_app
from csms.api.local_lists import app_list_sync
from csms.cli import main
from csms.gateway.server import Gateway
from csms.ocpp.versions import OCPP16
from csms.services import authorization, stations
from csms.store.database import make_engine, make_session_factory
from tests.csms.test_cli import ROOT, _wait_for_api, free_port
from tests.csms.test_station_credentials import API_KEY, PASSWORD, connect, provision, running


class ListHolder:
    """What both stations share: the list they hold, the calls they got, and answers a test can force."""

    def setup(self, max_entries: int, per_message: int, bytes_per_message: int = 0) -> None:
        self.max_entries, self.per_message, self.bytes_per_message = max_entries, per_message, bytes_per_message
        self.version = 0
        self.entries: dict[str, str] = {}
        self.updates: list[tuple[str, int, list[dict[str, Any]]]] = []
        self.forced: list[str] = []  # answers to give to the next SendLocalLists, in order
        self.cleared = 0

    def take(
        self, version: int, update_type: str, entries: list[dict[str, Any]], token: Callable, info: Callable
    ) -> str:
        self.updates.append((update_type, version, entries))
        if self.forced:
            return self.forced.pop(0)
        if len(entries) > self.per_message or (update_type == "Differential" and version <= self.version):
            return "Failed" if len(entries) > self.per_message else "VersionMismatch"
        held = {} if update_type == "Full" else dict(self.entries)
        for item in entries:
            status = info(item)
            if status is None:
                held.pop(token(item), None)
            else:
                held[token(item)] = status
        self.entries, self.version = held, version
        return "Accepted"


class Station16(ChargePoint16, ListHolder):
    @on("GetConfiguration")
    def get_configuration(self, key: list[str] | None = None) -> Any:
        values = {"LocalAuthListMaxLength": self.max_entries, "SendLocalListMaxLength": self.per_message}
        keys = [{"key": k, "readonly": True, "value": str(v)} for k, v in values.items() if not key or k in key]
        return result16.GetConfiguration(configuration_key=keys)

    @on("SendLocalList")
    def send_local_list(self, list_version: int, update_type: str, local_authorization_list: Any = None) -> Any:
        entries = local_authorization_list or []
        status = self.take(
            list_version,
            update_type,
            entries,
            lambda e: e["id_tag"],
            lambda e: (e.get("id_tag_info") or {}).get("status"),
        )
        return result16.SendLocalList(status=status)

    @on("GetLocalListVersion")
    def get_local_list_version(self) -> Any:
        return result16.GetLocalListVersion(list_version=self.version)

    @on("ClearCache")
    def clear_cache(self) -> Any:
        self.cleared += 1
        return result16.ClearCache(status="Accepted")


class Station201(ChargePoint201, ListHolder):
    @on("GetVariables")
    def get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        values = {"ItemsPerMessage": self.per_message, "BytesPerMessage": self.bytes_per_message}
        return result201.GetVariables(
            get_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "attribute_value": str(values[item["variable"]["name"]]),
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in get_variable_data
            ]
        )

    @on("SendLocalList")
    def send_local_list(self, version_number: int, update_type: str, local_authorization_list: Any = None, **_: Any):
        entries = local_authorization_list or []
        status = self.take(
            version_number,
            update_type,
            entries,
            lambda e: e["id_token"]["id_token"],
            lambda e: (e.get("id_token_info") or {}).get("status"),
        )
        return result201.SendLocalList(status=status)

    @on("GetLocalListVersion")
    def get_local_list_version(self, **_: Any) -> Any:
        return result201.GetLocalListVersion(version_number=self.version)


@contextlib.asynccontextmanager
async def station(
    gateway: Gateway, station_id: str, version: str, before: ListHolder | None = None, **limits: int
) -> AsyncIterator[Any]:
    """A connected station; ``before``: the same station's earlier connection, whose list it still holds."""
    async with connect(gateway, station_id, PASSWORD, version) as ws:
        cp = (Station16 if version == "1.6" else Station201)(station_id, ws, response_timeout=10)
        cp.setup(**limits)
        if before is not None:
            cp.version, cp.entries = before.version, before.entries
        runner = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner


@pytest.fixture
async def api_gateway(session_factory: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    async with running(session_factory) as gateway:  # SQLite and PostgreSQL
        app = create_app(session_factory, gateway, API_KEY)
        app_list_sync(app)  # as csms serve does
        headers = {"Authorization": f"Bearer {API_KEY}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x", headers=headers, timeout=15) as api:
            yield api, gateway


async def until(check: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)


async def add_tokens(api: httpx.AsyncClient, *tokens: dict[str, Any]) -> None:
    for token in tokens:
        assert (await api.post("/api/v1/tokens", json=token)).status_code == 201


async def test_a_1_6_station_gets_its_list_split_versioned_and_kept_in_step(session_factory, api_gateway):
    api, gateway = api_gateway
    provision(session_factory, "ll16", "1.6")
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await add_tokens(
        api,
        {"id_token": "A1", "status": "Accepted"},
        {"id_token": "B2", "status": "Blocked", "group_id": "fleet"},
        {"id_token": "C3", "status": "Accepted", "expiry": past},
    )
    async with station(gateway, "ll16", "1.6", max_entries=4, per_message=2) as cp:
        synced = (await api.post("/api/v1/stations/ll16/local-list", json={"update_type": "Full"})).json()
        # three entries, two per message: a Full list with two, then a Differential with the third
        assert [(u[0], u[1], len(u[2])) for u in cp.updates] == [("Full", 1, 2), ("Differential", 2, 1)]
        assert cp.entries == {"A1": "Accepted", "B2": "Blocked", "C3": "Expired"}
        assert (synced["version"], synced["status"]) == (2, "Accepted")

        # a token blocked through the API reaches the station as a differential update of that token only
        assert (await api.patch("/api/v1/tokens/A1", json={"status": "Blocked"})).status_code == 200
        await until(lambda: len(cp.updates) == 3, "the differential update after the token change")
        update_type, version, entries = cp.updates[2]
        assert (update_type, version, [e["id_tag"] for e in entries]) == ("Differential", 3, ["A1"])
        assert cp.entries["A1"] == "Blocked"

        # the station lost track: VersionMismatch is answered with the whole list, numbered higher still
        cp.forced = ["VersionMismatch"]
        await add_tokens(api, {"id_token": "D4"})
        await until(lambda: len(cp.updates) == 6, "the Full list after VersionMismatch")
        assert [(u[0], u[1]) for u in cp.updates[3:]] == [("Differential", 4), ("Full", 4), ("Differential", 5)]
        assert set(cp.entries) == {"A1", "B2", "C3", "D4"}

        for _ in range(50):  # the last answer is recorded just after the station applied the update
            shown = (await api.get("/api/v1/stations/ll16/local-list")).json()
            if shown["version"] == cp.version:
                break
            await asyncio.sleep(0.1)
        assert shown["version"] == cp.version and shown["pending"] == [] and len(shown["entries"]) == 4
        assert shown["limits"]["max_entries"] == 4 and shown["limits"]["items_per_message"] == 2

        # a fifth token would not fit: the sync is refused with the reason, and nothing is sent
        await add_tokens(api, {"id_token": "E5"})
        await until(lambda: _status(session_factory, "ll16").startswith("refused"), "the refusal")
        refused = await api.post("/api/v1/stations/ll16/local-list", json={})
        assert refused.status_code == 422 and "at most 4" in refused.json()["detail"]
        assert len(cp.updates) == 6

        version = (await api.get("/api/v1/stations/ll16/local-list/version")).json()
        assert (version["reported_version"], version["in_step"]) == (cp.version, True)
        cleared = (await api.post("/api/v1/stations/ll16/clear-cache")).json()
        assert cleared["payload"] == {"status": "Accepted"} and cp.cleared == 1


def _status(factory: Any, station_id: str) -> str:
    from csms.store.models import LocalListState

    with factory() as db:
        row = db.get(LocalListState, station_id)
        return (row.last_status or "") if row is not None else ""


async def test_a_2_0_1_station_gets_lists_cut_to_its_bytes_and_a_group_selection(session_factory, api_gateway):
    api, gateway = api_gateway
    provision(session_factory, "ll201", "2.0.1")
    await add_tokens(api, *({"id_token": f"TOKEN-{i:02d}", "group_id": "depot" if i % 2 else None} for i in range(6)))
    async with station(gateway, "ll201", "2.0.1", max_entries=100, per_message=50, bytes_per_message=330) as cp:
        synced = (await api.post("/api/v1/stations/ll201/local-list", json={})).json()
        assert synced["status"] == "Accepted"
        assert cp.updates[0][0] == "Full" and len(cp.updates) > 1, "330 bytes cannot carry six entries"
        assert all(t == "Differential" for t, _, _ in cp.updates[1:])
        assert [v for _, v, _ in cp.updates] == list(range(1, len(cp.updates) + 1))
        assert sorted(cp.entries) == [f"TOKEN-{i:02d}" for i in range(6)]

        # only the depot group from now on: the others are removed (entries without idTokenInfo)
        before = len(cp.updates)
        chosen = (await api.post("/api/v1/stations/ll201/local-list", json={"token_group": "depot"})).json()
        assert chosen["status"] == "Accepted"
        removed = [e for _, _, entries in cp.updates[before:] for e in entries]
        assert all("id_token_info" not in e for e in removed) and len(removed) == 3
        assert sorted(cp.entries) == ["TOKEN-01", "TOKEN-03", "TOKEN-05"]

        # a Failed answer is reported and kept; the operator's own entries go out as written, numbered by the CSMS
        cp.forced = ["Failed"]
        body = {"update_type": "Differential", "entries": [{"id_token": "GUEST", "status": "Accepted"}]}
        failed = (await api.post("/api/v1/stations/ll201/local-list", json=body)).json()
        assert failed["status"] == "Failed" and failed["calls"][0]["version"] == cp.version + 1
        assert "GUEST" not in cp.entries
        assert (await api.get("/api/v1/stations/ll201/local-list")).json()["last_status"] == "Failed"

        # the operator's differential update meets a VersionMismatch: the whole resulting list goes instead
        cp.forced = ["VersionMismatch"]
        body = {"update_type": "Differential", "entries": [{"id_token": "GUEST", "status": "Accepted"}]}
        resent = (await api.post("/api/v1/stations/ll201/local-list", json=body)).json()
        assert resent["calls"][0]["status"] == "VersionMismatch" and resent["status"] == "Accepted"
        assert resent["calls"][1]["update_type"] == "Full"
        assert sorted(cp.entries) == ["GUEST", "TOKEN-01", "TOKEN-03", "TOKEN-05"]

        shown = (await api.get("/api/v1/stations/ll201/local-list")).json()
        assert shown["token_group"] == "depot" and shown["limits"]["bytes_per_message"] == 330


async def test_a_station_that_is_not_connected_is_refused_and_unknown_entries_are_422(session_factory, api_gateway):
    api, _ = api_gateway
    provision(session_factory, "offline", "1.6")
    empty = (await api.get("/api/v1/stations/offline/local-list")).json()
    assert (empty["version"], empty["entries"], empty["pending"]) == (0, [], [])
    assert (await api.post("/api/v1/stations/offline/local-list", json={})).status_code == 409
    assert (await api.post("/api/v1/stations/nobody/local-list", json={})).status_code == 404
    bad = await api.post(
        "/api/v1/stations/offline/local-list", json={"entries": [{"id_token": "X", "status": "Maybe"}]}
    )
    assert bad.status_code == 422


async def test_a_station_away_during_a_token_change_gets_the_change_when_it_boots_again(session_factory, api_gateway):
    api, gateway = api_gateway
    provision(session_factory, "away", "1.6")
    await add_tokens(api, {"id_token": "KEEP"})
    async with station(gateway, "away", "1.6", max_entries=10, per_message=10) as first:
        assert (await api.post("/api/v1/stations/away/local-list", json={})).json()["version"] == 1
    assert (await api.patch("/api/v1/tokens/KEEP", json={"status": "Blocked"})).status_code == 200
    await add_tokens(api, {"id_token": "NEW"})
    pending = (await api.get("/api/v1/stations/away/local-list")).json()
    assert pending["out_of_step_since"] and {p["id_token"] for p in pending["pending"]} == {"KEEP", "NEW"}
    async with station(gateway, "away", "1.6", before=first, max_entries=10, per_message=10) as back:
        boot = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
        assert (await back.call(boot)).status == "Accepted"
        await until(lambda: bool(back.updates), "the differential update after the boot")
        assert [(t, v, len(e)) for t, v, e in back.updates] == [("Differential", 2, 2)]
        assert back.entries == {"KEEP": "Blocked", "NEW": "Accepted"}
        # The station applies the update before its answer goes out: stay connected until the CSMS recorded it
        # (leaving at once can close the socket before the answer is sent, and the list then stays out of step).
        for _ in range(150):
            if (await api.get("/api/v1/stations/away/local-list")).json()["out_of_step_since"] is None:
                break
            await asyncio.sleep(0.1)
    assert (await api.get("/api/v1/stations/away/local-list")).json()["out_of_step_since"] is None


# ---- csms stations send-local-list / local-list-version / clear-cache against a running csms serve -----------
async def test_the_cli_syncs_asks_and_clears_through_a_running_server(sqlite_url, capsys, monkeypatch):
    ocpp_port, api_port = free_port(), free_port()
    command = [sys.executable, "-m", "csms.cli", "serve", "--database-url", sqlite_url, "--log-level", "warning"]
    command += ["--ocpp-port", str(ocpp_port), "--api-port", str(api_port)]
    env = {**os.environ, "CHARGETWIN_API_KEY": API_KEY}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monkeypatch.setenv("CHARGETWIN_API_KEY", API_KEY)
    api = f"http://127.0.0.1:{api_port}/api/v1"

    async def cli(*args: str) -> tuple[int, str, str]:
        """The command as a user runs it (in this process: the test pays no interpreter start per command)."""
        code = await asyncio.to_thread(main, ["stations", *args, "--api-url", api, "--timeout", "10"])
        out = capsys.readouterr()
        return code, out.out, out.err

    try:
        await _wait_for_api(f"http://127.0.0.1:{api_port}", process, time.monotonic() + 60)
        factory = make_session_factory(make_engine(sqlite_url))
        provision(factory, "cli16", "1.6")
        with factory() as db:
            for token in ("CARD-1", "CARD-2"):
                authorization.create(db, token, datetime.now(UTC))
            db.commit()
        headers = {"Authorization": "Basic " + base64.b64encode(f"cli16:{PASSWORD}".encode()).decode()}
        url = f"ws://127.0.0.1:{ocpp_port}/ocpp/cli16"
        async with websockets.connect(url, subprotocols=[Subprotocol("ocpp1.6")], additional_headers=headers) as ws:
            cp = Station16("cli16", ws, response_timeout=10)
            cp.setup(max_entries=10, per_message=10)
            runner = asyncio.create_task(cp.start())
            code, out, err = await cli("send-local-list", "cli16", "--full")
            assert code == 0 and "SendLocalList Full version 1 (2 entries): Accepted" in out, out + err
            assert cp.entries == {"CARD-1": "Accepted", "CARD-2": "Accepted"}
            code = await asyncio.to_thread(main, ["tokens", "add", "CARD-3", "--database-url", sqlite_url])
            assert code == 0 and "local lists to bring in step: cli16" in capsys.readouterr().out
            code, out, err = await cli("send-local-list", "cli16")
            assert code == 0 and "SendLocalList Differential version 2 (1 entries): Accepted" in out, out + err
            code, out, err = await cli("local-list-version", "cli16")
            assert code == 0 and "local list version 2 (in step)" in out, out + err
            code, out, err = await cli("clear-cache", "cli16")
            assert code == 0 and cp.cleared == 1, out + err
            code, out, err = await cli("send-local-list", "nobody")
            assert code == 2 and "404" in err
            runner.cancel()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


async def test_token_changes_leave_alone_a_station_that_has_no_local_list(session_factory, api_gateway):
    api, gateway = api_gateway
    provision(session_factory, "nolist", "1.6")
    async with station(gateway, "nolist", "1.6", max_entries=5, per_message=5) as cp:
        cp.forced = ["NotSupported"]  # a 1.6 station without LocalAuthListManagement
        assert (await api.post("/api/v1/stations/nolist/local-list", json={})).json()["status"] == "NotSupported"
        await add_tokens(api, {"id_token": "LATER"})
        await asyncio.sleep(0.3)  # a background sync would have reached the station by now
        assert len(cp.updates) == 1


# ---- a reconnect storm: the catch-up checks are gathered ----------------------------------------------------
class _QueuedDatabase:
    """The host's database thread, run by hand: jobs wait until the test runs them, as while a check is busy."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []

    def run_db(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        self.jobs.append((work, then))

    def now(self) -> float:
        return time.time()

    def run_all(self) -> int:
        ran = 0
        while self.jobs:
            work, then = self.jobs.pop(0)
            then(work())
            ran += 1
        return ran


def test_stations_back_while_a_catch_up_check_runs_are_checked_together(session_factory, monkeypatch):
    from csms.core.plugins.local_lists import LocalListSync
    from csms.services import local_lists

    now = datetime.now(UTC)
    names = [f"storm{i:04d}" for i in range(1200)]  # over two queries' worth of stations
    with session_factory() as db:
        for name in names:
            stations.provision(db, name, ocpp_version="1.6", now=now, password=PASSWORD)
            row = local_lists.state(db, name)
            if name.endswith(("1", "7")):
                row.out_of_step_since = now
            if name.endswith("7"):
                row.last_status = local_lists.NOT_SUPPORTED
            if name.endswith("3"):
                row.needs_full = True
        db.commit()

    database = _QueuedDatabase()
    host = type("Host", (), {"session_factory": session_factory, "scheduler": database})()
    plugin = LocalListSync()
    plugin.attach(host)
    synced: list[str] = []
    monkeypatch.setattr(plugin, "tokens_changed", synced.extend)
    checks: list[int] = []
    real = local_lists.behind_among

    def counted(db: Any, station_ids: list[str]) -> list[str]:
        checks.append(len(station_ids))
        return real(db, station_ids)

    monkeypatch.setattr(local_lists, "behind_among", counted)

    plugin.connected(names[0], OCPP16, registered=True, now=0.0)  # its check starts...
    for name in names[1:]:  # ...and every other station is back before it ran
        plugin.connected(name, OCPP16, registered=True, now=0.0)
    database.run_all()

    assert checks == [1, len(names) - 1]  # two checks, not one per station
    expected = [n for n in names if n.endswith(("1", "3"))]  # out of step or needing the Full list, not NotSupported
    assert synced == expected
    plugin.connected(names[1], OCPP16, registered=True, now=0.0)
    database.run_all()
    assert checks[-1] == 1 and synced[-1] == names[1]
