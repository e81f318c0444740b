"""Station credentials and the handshake (issue 15): argon2 hashes (old scrypt hashes re-hashed on use), the
spec's password rules on every path, one answer for every refusal, throttled guessing, stations disconnected
when the operator withdraws what admitted them, and auto-registration only with an operator's approval.

Stations are the ``ocpp`` package's own ChargePoints over real WebSockets on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import websockets
from ocpp.exceptions import SecurityError
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from csms.api.app import create_app
from csms.gateway.server import Gateway
from csms.services import admission, stations
from csms.services.config import CsmsConfig
from csms.services.errors import Invalid
from csms.store import models
from tests.csms.test_cli import csms

PASSWORD = "station-password-1"  # 18 characters: the rule of both versions
API_KEY = "test-key"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def scrypt_hash(password: str) -> str:
    """A hash as the CSMS stored them before argon2."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${2**14}$8$1${salt.hex()}${digest.hex()}"


def provision(factory: sessionmaker[Session], station_id: str, version: str = "1.6", **kwargs: Any) -> None:
    kwargs.setdefault("password", PASSWORD)
    with factory() as db:
        stations.provision(db, station_id, ocpp_version=version, now=datetime.now(UTC), **kwargs)
        db.commit()


@contextlib.asynccontextmanager
async def running(factory: sessionmaker[Session], config: CsmsConfig | None = None) -> AsyncIterator[Gateway]:
    gateway = Gateway(factory, config or CsmsConfig(call_timeout_s=5.0))
    await gateway.start("127.0.0.1", 0)
    try:
        yield gateway
    finally:
        await gateway.stop()


def connect(gateway: Gateway, station_id: str, password: str | None, version: str = "1.6", source: str = "127.0.0.1"):
    headers = basic(station_id, password) if password is not None else {}
    return websockets.connect(
        f"ws://127.0.0.1:{gateway.port}/ocpp/{station_id}",
        subprotocols=["ocpp1.6" if version == "1.6" else "ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=headers,
        local_addr=(source, 0),
        open_timeout=30,
    )


@contextlib.asynccontextmanager
async def charger(gateway: Gateway, station_id: str, password: str | None, version: str = "1.6") -> AsyncIterator[Any]:
    async with connect(gateway, station_id, password, version) as ws:
        cp = (ChargePoint16 if version == "1.6" else ChargePoint201)(station_id, ws, response_timeout=10)
        runner = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await runner


async def refusal(gateway: Gateway, station_id: str, password: str | None, source: str = "127.0.0.1") -> tuple:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(gateway, station_id, password, source=source):
            pass
    response = refused.value.response
    return response.status_code, response.body, response.headers.get("WWW-Authenticate")


def events(factory: sessionmaker[Session]) -> list[tuple[str, str | None]]:
    with factory() as db:
        return [(e.type, e.station_id) for e in db.scalars(select(models.SecurityEventRow))]


async def boot16(cp: Any) -> str:
    return str((await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))).status)


# ---- 1. argon2, and the scrypt hashes stored before it --------------------------------------------------------
async def test_passwords_are_argon2_and_old_scrypt_hashes_are_rehashed_on_the_next_good_handshake(sqlite_factory):
    provision(sqlite_factory, "new")
    provision(sqlite_factory, "old", password=None, password_hash=scrypt_hash(PASSWORD))
    with sqlite_factory() as db:
        assert db.get(models.Station, "new").password_hash.startswith("$argon2id$")  # type: ignore[union-attr]
    async with running(sqlite_factory) as gateway:
        assert (await refusal(gateway, "old", "wrong-password-123"))[0] == 401
        with sqlite_factory() as db:
            assert db.get(models.Station, "old").password_hash.startswith("scrypt$")  # type: ignore[union-attr]
        async with charger(gateway, "old", PASSWORD) as cp:
            assert await boot16(cp) == "Accepted"
        with sqlite_factory() as db:
            stored = db.get(models.Station, "old").password_hash  # type: ignore[union-attr]
        assert stored.startswith("$argon2id$")
        async with running(sqlite_factory) as fresh:  # no verified-password cache: the argon2 hash itself checks
            async with charger(fresh, "old", PASSWORD) as cp:
                assert await boot16(cp) == "Accepted"
            assert (await refusal(fresh, "old", "wrong-password-123"))[0] == 401


def test_a_reconnect_storm_costs_one_hash_per_stored_hash(sqlite_factory, monkeypatch):
    provision(sqlite_factory, "cp")
    calls = []
    real = admission.verify_password
    monkeypatch.setattr(admission, "verify_password", lambda pw, stored: calls.append(1) or real(pw, stored))
    admissions = admission.Admissions(sqlite_factory, CsmsConfig())
    header = basic("cp", PASSWORD)["Authorization"]
    for i in range(50):
        assert admissions.admit("cp", header, "1.6", 1000.0 + i, admission.Channel(source="10.0.0.1")).admitted
    assert len(calls) == 1


def test_a_plain_handshake_is_decided_by_one_core_read_without_an_orm_session(session_factory, monkeypatch):
    """No certificate and nothing to settle: the station is read with one Core SELECT (issue 13: the ORM session
    cost ~200 µs a handshake); what it decides, and the refusal's security event, are as before."""
    provision(session_factory, "cp")
    provision(session_factory, "open", password=None)
    admissions = admission.Admissions(session_factory, CsmsConfig())
    monkeypatch.setattr(admissions, "read_factory", lambda: pytest.fail("an ORM session was opened to read"))
    channel = admission.Channel(source="10.0.0.9")
    good = admissions.admit("cp", basic("cp", PASSWORD)["Authorization"], "1.6", 1000.0, channel)
    assert (good.status, good.station_id, good.ocpp_version, good.security_profile) == (101, "cp", "1.6", 1)
    assert admissions.admit("open", None, "1.6", 1001.0, channel).admitted
    wrong = admissions.admit("cp", basic("cp", "wrong-password-123")["Authorization"], "1.6", 1002.0, channel)
    assert (wrong.status, wrong.refusal) == (401, "bad_password")
    assert not admissions.admit("cp", None, "1.6", 1003.0, channel).admitted
    with session_factory() as db:
        stored = [(e.type, e.station_id, e.detail.get("repeats")) for e in db.scalars(select(models.SecurityEventRow))]
    assert stored == [("bad_password", "cp", 1)]  # the second refusal counted as a repeat of the first


# ---- 2. the spec's password rules, on every path ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "password"),
    [("1.6", ""), ("1.6", " " * 18), ("1.6", "short"), ("1.6", "x" * 21), ("2.0.1", "x" * 15), ("2.0.1", "x" * 41),
     ("2.0.1", "sixteen chars ok")],
)  # fmt: skip
def test_passwords_breaking_the_spec_are_refused_by_the_services(sqlite_factory, version, password):
    now = datetime.now(UTC)
    with sqlite_factory() as db:
        with pytest.raises(Invalid, match="password must be"):
            stations.provision(db, "cp", ocpp_version=version, password=password, now=now)
        stations.provision(db, "ok", ocpp_version=version, password="a" * 16, now=now)
        with pytest.raises(Invalid, match="password must be"):
            stations.update(db, "ok", {"password": password})


def test_the_cli_refuses_a_weak_password_with_its_reason(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    for weak in ("", "   ", "12345"):
        done = csms("stations", "add", "cp", "--ocpp", "1.6", "--password", weak, database_url=url)
        assert done.returncode == 2 and "password must be 16-20" in done.stderr, done.stderr
    assert csms("stations", "add", "cp", "--ocpp", "1.6", "--password", PASSWORD, database_url=url).returncode == 0


async def test_the_api_refuses_a_weak_password_with_its_reason(session_factory, gateway):
    app = create_app(session_factory, gateway, API_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x", headers=headers) as api:
        body = {"id": "cp", "password": "x" * 5, "ocpp_version": "2.0.1"}
        weak = await api.post("/api/v1/stations", json=body)
        assert weak.status_code == 422 and "16-40 characters" in weak.text
        assert (await api.post("/api/v1/stations", json={**body, "password": "y" * 16})).status_code == 201
        patched = await api.patch("/api/v1/stations/cp", json={"password": "     "})
        assert patched.status_code == 422 and "password must be" in patched.text


# ---- 4. one answer for every refusal; the reason is a security event ------------------------------------------
async def test_an_unknown_id_gets_the_answer_of_a_wrong_password(sqlite_factory):
    provision(sqlite_factory, "known")
    async with running(sqlite_factory) as gateway:
        unknown = await refusal(gateway, "ghost", PASSWORD)
        wrong = await refusal(gateway, "known", "wrong-password-123")
        missing = await refusal(gateway, "known", None)
    assert unknown == wrong == missing
    assert unknown[0] == 401
    # (repeats of one event within a minute are one stored event that counts them)
    assert events(sqlite_factory) == [("unknown_station", "ghost"), ("bad_password", "known")]


# ---- 3. guessing is throttled, and does not slow the honest stations ------------------------------------------
async def _handshake_time(gateway: Gateway, station_id: str) -> float:
    """Seconds to be admitted (the open timeout, 30 s, when it was not)."""
    started = time.perf_counter()
    try:
        async with connect(gateway, station_id, PASSWORD):
            pass
    except TimeoutError:
        pass
    return time.perf_counter() - started


#: The guesser, in a process of its own (its client side must not share the CSMS's loop): ``attempts``
#: handshakes at once with wrong passwords from ``source``; prints the HTTP statuses it got.
STORM = """
import asyncio, base64, json, sys
import websockets

port, station_id, attempts, source = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]

async def guess(i):
    auth = base64.b64encode(f"{station_id}:guess-{i:012d}-xx".encode()).decode()
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ocpp/{station_id}", subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": "Basic " + auth}, local_addr=(source, 0), open_timeout=120,
        ):
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    except Exception as exc:
        return type(exc).__name__

async def main():
    print("started", flush=True)
    print(json.dumps(await asyncio.gather(*(guess(i) for i in range(attempts)))), flush=True)

asyncio.run(main())
"""


async def _good_during_storm(gateway: Gateway, attempts: int) -> tuple[float, float, list[int]]:
    """The good station's median handshake alone, and its slowest while ``attempts`` wrong passwords for
    its own id arrive at once from another address."""
    alone = statistics.median([await _handshake_time(gateway, "good") for _ in range(9)])
    storm = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STORM, str(gateway.port), "good", str(attempts), "127.0.0.2",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert storm.stdout is not None
    assert (await storm.stdout.readline()).strip() == b"started"
    await asyncio.sleep(0.5)  # its connections are in
    during = []
    waiting = asyncio.create_task(storm.stdout.readline())
    while not waiting.done() and len(during) < 200:
        during.append(await _handshake_time(gateway, "good"))
        await asyncio.sleep(0.02)
    statuses = orjson.loads(await waiting)
    await storm.wait()
    return alone, max(during), statuses


async def _storm_against_good(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, limit: int
) -> tuple[float, float, int, collections.Counter]:
    """(good station's median handshake alone, its slowest during the storm, password hashes run, answers)."""
    hashes = []
    real = admission.verify_password
    monkeypatch.setattr(admission, "verify_password", lambda pw, stored: hashes.append(1) or real(pw, stored))
    config = CsmsConfig(handshake_failure_limit=limit, handshake_source_failure_limit=4 * limit)
    async with running(factory, config) as gateway:
        alone, during, statuses = await _good_during_storm(gateway, 500)
    await asyncio.to_thread(gateway.auth_threads.shutdown, True)  # the checks still running end here
    return alone, during, len(hashes), collections.Counter(statuses)


async def test_a_guessing_storm_is_refused_without_hashing_and_no_longer_slows_a_good_station(
    sqlite_factory, monkeypatch, capsys
):
    """500 wrong passwords at once for a station's own id, from another address, while the station itself
    reconnects. Unthrottled (as before) each guess is an argon2 run queued ahead of the station's handshake;
    throttled, a few are, and the station gets in. Timings compare the two runs on the same machine."""
    provision(sqlite_factory, "good")
    before = await _storm_against_good(sqlite_factory, monkeypatch, limit=10**9)
    after = await _storm_against_good(sqlite_factory, monkeypatch, limit=5)
    with capsys.disabled():
        for label, (alone, worst, hashes, answers) in (("unthrottled", before), ("throttled", after)):
            print(
                f"\n[{label}] good station's handshake: alone {alone * 1e3:.0f} ms (median), during 500 guesses "
                f"{worst * 1e3:.0f} ms (slowest); password hashes run {hashes}; answers {dict(answers)}"
            )
    assert 101 not in before[3] and before[2] > 100  # the weakness: a hash per guess, until the CSMS gives up
    # throttled: the good station's first check, the guesses before the limit, those already on the 4 threads
    assert after[3] == {401: 500} and after[2] <= 1 + 5 + 3
    # the good station's worst handshake during the storm (a wide margin: both runs share a noisy machine)
    assert after[1] * 2 < before[1]
    assert ("throttled", "good") in events(sqlite_factory)


async def test_a_throttled_source_is_refused_for_every_id_but_others_are_not(sqlite_factory):
    provision(sqlite_factory, "a")
    provision(sqlite_factory, "b")
    config = CsmsConfig(handshake_failure_limit=100, handshake_source_failure_limit=3)
    async with running(sqlite_factory, config) as gateway:
        for i in range(3):
            assert (await refusal(gateway, f"ghost-{i}", PASSWORD, source="127.0.0.3"))[0] == 401
        assert (await refusal(gateway, "b", PASSWORD, source="127.0.0.3"))[0] == 401  # right password, not checked
        async with charger(gateway, "b", PASSWORD) as cp:  # from another address
            assert await boot16(cp) == "Accepted"


# ---- 5. the operator withdraws what admitted a connection: it ends at once -------------------------------------
@pytest.fixture
async def api_and_gateway(sqlite_factory) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    async with running(sqlite_factory) as gateway:
        app = create_app(sqlite_factory, gateway, API_KEY)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://x", headers=headers, timeout=10) as api:
            yield api, gateway


@pytest.mark.parametrize(
    "change",
    [{"registration_policy": "reject"}, {"password": "another-password-1"}, {"security_profile": 2}],
    ids=["rejected", "password", "profile"],
)
async def test_an_operator_change_disconnects_the_station_at_once(sqlite_factory, api_and_gateway, change):
    api, gateway = api_and_gateway
    provision(sqlite_factory, "cp")
    async with charger(gateway, "cp", PASSWORD) as cp:
        assert await boot16(cp) == "Accepted"
        response = await api.patch("/api/v1/stations/cp", json=change)
        assert response.status_code == 200, response.text
        assert response.json()["connected"] is False
        await asyncio.wait_for(cp._connection.wait_closed(), 5)
        assert cp._connection.close_code == 1008
    assert not gateway.is_connected("cp")
    if "password" in change:
        assert (await refusal(gateway, "cp", PASSWORD))[0] == 401
        async with charger(gateway, "cp", change["password"]) as cp:
            assert await boot16(cp) == "Accepted"


async def test_a_station_set_to_rejected_cannot_start_a_transaction_on_its_next_connection(
    sqlite_factory, api_and_gateway
):
    """B02: a station whose last boot was Accepted may reconnect without booting; once the operator rejected
    it, its next connection must boot again, and until then nothing but a boot is served."""
    api, gateway = api_and_gateway
    provision(sqlite_factory, "cp")
    async with charger(gateway, "cp", PASSWORD) as cp:
        assert await boot16(cp) == "Accepted"
    async with charger(gateway, "cp", PASSWORD) as cp:  # a reconnect, no reboot: served at once
        assert (await cp.call(call16.Heartbeat(), suppress=False)).current_time
    assert (await api.patch("/api/v1/stations/cp", json={"registration_policy": "reject"})).status_code == 200
    async with charger(gateway, "cp", PASSWORD) as cp:
        start = call16.StartTransaction(
            connector_id=1, id_tag="T", meter_start=0, timestamp=datetime.now(UTC).isoformat()
        )
        with pytest.raises(SecurityError):
            await cp.call(start, suppress=False)
        assert await boot16(cp) == "Rejected"
        with pytest.raises(SecurityError):
            await cp.call(start, suppress=False)
    with sqlite_factory() as db:
        assert db.scalars(select(models.Transaction)).all() == []


# ---- 6. auto-registration only with an operator's approval --------------------------------------------------------
async def test_auto_registration_never_lets_the_first_comer_set_the_password(sqlite_factory, tmp_path):
    config = CsmsConfig(auto_register=True, max_pending_per_source=5, handshake_source_failure_limit=10**6)
    async with running(sqlite_factory, config) as gateway:
        assert (await refusal(gateway, "new-cp", "impostor-password-1"))[0] == 401
        assert (await refusal(gateway, "new-cp", "impostor-password-1"))[0] == 401  # still, however often
        with sqlite_factory() as db:
            (pending,) = stations.list_pending(db)
            assert (pending.station_id, pending.attempts, pending.source) == ("new-cp", 2, "127.0.0.1")
            assert db.get(models.Station, "new-cp") is None
            stations.approve(db, "new-cp", password=PASSWORD, security_profile=1, now=datetime.now(UTC))
            db.commit()
        assert (await refusal(gateway, "new-cp", "impostor-password-1"))[0] == 401
        async with charger(gateway, "new-cp", PASSWORD) as cp:
            assert await boot16(cp) == "Accepted"
    with sqlite_factory() as db:
        assert stations.list_pending(db) == []
        assert db.get(models.Station, "new-cp").auto_registered  # type: ignore[union-attr]


async def test_two_thousand_unknown_connections_create_a_bounded_number_of_pending_registrations(sqlite_factory):
    config = CsmsConfig(auto_register=True, max_pending_registrations=100, max_pending_per_source=5)
    async with running(sqlite_factory, config) as gateway:
        for source in ("127.0.0.4", "127.0.0.5"):
            refused = await asyncio.gather(
                *(refusal(gateway, f"{source}-{i}", "whatever-password", source=source) for i in range(1000))
            )
            assert {r[0] for r in refused} == {401}
    with sqlite_factory() as db:
        pending = stations.list_pending(db)
        assert db.scalars(select(models.Station)).all() == []
    assert len(pending) == 10 and {p.source for p in pending} == {"127.0.0.4", "127.0.0.5"}


def test_pending_and_approve_from_the_cli(tmp_path, sqlite_factory):
    url = f"sqlite:///{tmp_path}/cli.db"
    assert csms("db", "upgrade", database_url=url).returncode == 0
    factory = sessionmaker_for(url)
    admissions = admission.Admissions(factory, CsmsConfig(auto_register=True))
    assert admissions.admit("cp-9", None, "2.0.1", 1000.0, admission.Channel(source="10.1.2.3")).status == 401
    listed = csms("stations", "pending", database_url=url)
    assert "cp-9" in listed.stdout and "2.0.1" in listed.stdout and "10.1.2.3" in listed.stdout
    refused = csms("stations", "approve", "cp-9", database_url=url)
    assert refused.returncode == 2 and "--password is required" in refused.stderr
    short = csms("stations", "approve", "cp-9", "--password", "x" * 10, database_url=url)
    assert short.returncode == 2 and "16-40" in short.stderr
    done = csms("stations", "approve", "cp-9", "--password", "p" * 20, database_url=url)
    assert done.returncode == 0, done.stderr
    assert "cp-9" not in csms("stations", "pending", database_url=url).stdout
    header = basic("cp-9", "p" * 20)["Authorization"]
    assert admissions.admit("cp-9", header, "2.0.1", 1001.0, admission.Channel(source="10.1.2.3")).admitted


async def test_pending_and_approve_in_the_api(session_factory, gateway):
    admissions = admission.Admissions(session_factory, CsmsConfig(auto_register=True))
    assert admissions.admit("cp-7", None, "2.0.1", 1000.0, admission.Channel(source="10.1.2.3")).status == 401
    app = create_app(session_factory, gateway, API_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x", headers=headers) as api:
        listed = (await api.get("/api/v1/stations/pending")).json()
        assert [(p["station_id"], p["ocpp_version"], p["source"]) for p in listed] == [("cp-7", "2.0.1", "10.1.2.3")]
        assert (await api.post("/api/v1/stations/pending/cp-7/approve", json={})).status_code == 422
        assert (await api.post("/api/v1/stations/pending/nope/approve", json={"password": "p" * 20})).status_code == 404
        approved = await api.post("/api/v1/stations/pending/cp-7/approve", json={"password": "p" * 20})
        assert approved.status_code == 201 and approved.json()["auto_registered"] is True
        assert (await api.get("/api/v1/stations/pending")).json() == []


def sessionmaker_for(url: str) -> sessionmaker[Session]:
    from csms.store.database import make_engine, make_session_factory

    return make_session_factory(make_engine(url))


async def test_a_pending_policy_leaves_the_station_connected_until_its_next_boot(sqlite_factory, api_and_gateway):
    """B02.FR.06: a Pending station stays connected; Pending applies at its next boot."""
    api, gateway = api_and_gateway
    provision(sqlite_factory, "cp")
    async with charger(gateway, "cp", PASSWORD) as cp:
        assert await boot16(cp) == "Accepted"
        response = await api.patch("/api/v1/stations/cp", json={"registration_policy": "pending"})
        assert response.status_code == 200 and response.json()["connected"] is True
        assert (await cp.call(call16.Heartbeat(), suppress=False)).current_time
        assert await boot16(cp) == "Pending"


async def test_a_change_made_on_another_node_disconnects_the_station_there(sqlite_factory):
    """With ``--broker``, the node whose API took the change asks the node holding the socket to end it."""
    from csms.runtime.cluster import Cluster
    from tests.support.cluster import REDIS_URL, require_redis

    require_redis()
    station_id = f"cp-{secrets.token_hex(4)}"
    provision(sqlite_factory, station_id)
    async with running(sqlite_factory) as node_a, running(sqlite_factory) as node_b:
        cluster_a = Cluster(node_a, REDIS_URL, f"a-{station_id}")
        cluster_b = Cluster(node_b, REDIS_URL, f"b-{station_id}")
        await cluster_a.start()
        await cluster_b.start()
        try:
            app = create_app(sqlite_factory, node_a, API_KEY)
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with (
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x", headers=headers) as api,
                charger(node_b, station_id, PASSWORD) as cp,
            ):
                assert await boot16(cp) == "Accepted"
                for _ in range(100):
                    if await cluster_a.owner(station_id) == cluster_b.node_id:
                        break
                    await asyncio.sleep(0.05)
                response = await api.patch(f"/api/v1/stations/{station_id}", json={"password": "another-password-1"})
                assert response.status_code == 200, response.text
                await asyncio.wait_for(cp._connection.wait_closed(), 5)
                assert cp._connection.close_code == 1008
            assert station_id not in node_b.links
        finally:
            await cluster_a.stop()
            await cluster_b.stop()
