"""OCPI 2.2.1 as a CPO over real HTTP on loopback: ``run_server`` with OCPI on its own port, an eMSP on its own
server (:mod:`simulator.roaming.emsp`), ``ocpp`` ChargePoints on real WebSockets. The credentials handshake both ways,
update and unregister; the envelope, ids, routing headers and paging; locations and tariffs; EVSE status pushed
and, while the eMSP is down, kept and retried."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16

from csms.alerts.webhooks import RetrySchedule
from csms.cli import main
from csms.ocpi import models
from csms.ocpi.deps import OcpiConfig
from csms.ocpi.serve import OcpiServe
from csms.runtime.server import Endpoints
from simulator.roaming.emsp import Emsp, running_emsp, token_header
from tests.support.live import eventually, live_csms

PASSWORD = "station-password-1"
FAST = RetrySchedule(base_s=0.3, factor=2.0, cap_s=1.0, jitter=0.0, max_attempts=20)


def ocpi_serve(**options: Any) -> OcpiServe:
    return OcpiServe(OcpiConfig("NL", "CTW", "Test CPO"), 0, retry=FAST, poll_s=0.2, **options)


@contextlib.asynccontextmanager
async def cpo(url: str, **options: Any) -> AsyncIterator[tuple[Endpoints, httpx.AsyncClient]]:
    """``options``: more of OcpiServe's."""
    async with live_csms(url, ocpi=ocpi_serve(**options)) as (endpoints, client):
        assert endpoints.ocpi_url is not None
        yield endpoints, client


def cli(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--database-url", url])
    out, err = capsys.readouterr()
    return code, out, err


async def registered(capsys: pytest.CaptureFixture[str], url: str, endpoints: Endpoints, emsp: Emsp) -> str:
    """The eMSP registered with us; returns the token A it used."""
    code, out, _ = await asyncio.to_thread(cli, capsys, url, "ocpi", "parties", "add", "DE", "EMS", "--name", "eMSP")
    assert code == 0
    token_a = out.splitlines()[0]
    assert endpoints.ocpi_url is not None
    await emsp.register(endpoints.ocpi_url, token_a)
    return token_a


async def test_emsp_registers_with_token_a_then_token_c_only(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, _), running_emsp() as emsp:
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions")
        async with httpx.AsyncClient(timeout=10) as anonymous:
            # No token, an unknown token: 401 with a 2xxx status, nothing else said.
            for headers in ({}, token_header("not-a-token")):
                answer = await anonymous.get(endpoints.ocpi_url, headers=headers)
                assert answer.status_code == 401
                assert answer.json()["status_code"] == 2000
                assert "data" not in answer.json()
            token_a = await registered(capsys, sqlite_url, endpoints, emsp)
            # Our credentials: token C, our versions URL, the CPO role with our codes.
            assert emsp.cpo_token not in (None, token_a)
            assert emsp.cpo_versions == endpoints.ocpi_url
            # We fetched the eMSP's endpoints with its token B during the handshake.
            code, out, _ = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "list")
            assert code == 0
            row = next(line for line in out.splitlines() if line.startswith("DE"))
            assert row.split()[:6] == ["DE", "EMS", "eMSP", "registered", "EMSP", "8"]
            # Token A is spent; token C opens the modules.
            assert (await anonymous.get(endpoints.ocpi_url, headers=token_header(token_a))).status_code == 401
            async with emsp.client() as c:
                details = (await c.get(f"{base}/2.2.1")).json()["data"]
                modules = {(e["identifier"], e["role"]) for e in details["endpoints"]}
                assert ("locations", "SENDER") in modules and ("tokens", "RECEIVER") in modules
                mine = (await c.get(f"{base}/2.2.1/credentials")).json()["data"]
                assert mine["token"] == emsp.cpo_token
                assert mine["roles"] == [{"role": "CPO", "business_details": {"name": "Test CPO"}, "party_id": "CTW",
                                          "country_code": "NL"}]  # fmt: skip
                # Registering again is refused: 405, update with PUT instead.
                again = await c.post(f"{base}/2.2.1/credentials", json=emsp.credentials(emsp.our_token_b))
                assert again.status_code == 405
                # A malformed credentials object: 2001 naming the field.
                bad = await c.put(
                    f"{base}/2.2.1/credentials", json={"token": "x", "url": "y", "roles": [{"role": "X"}]}
                )
                assert bad.status_code == 400 and bad.json()["status_code"] == 2001
                assert "roles.0.role" in bad.json()["status_message"]
                # PUT: a new token C, the old one stops working.
                old = emsp.cpo_token
                updated = (await c.put(f"{base}/2.2.1/credentials", json=emsp.credentials(emsp.our_token_b))).json()
                assert updated["status_code"] == 1000 and updated["data"]["token"] != old
            assert (await anonymous.get(f"{base}/2.2.1", headers=token_header(old))).status_code == 401
            emsp.cpo_token = updated["data"]["token"]
            async with emsp.client() as c:
                assert (await c.delete(f"{base}/2.2.1/credentials")).json()["status_code"] == 1000
                # Unregistered: the token is revoked.
                gone = await c.get(f"{base}/2.2.1/locations")
                assert gone.status_code == 401 and gone.json()["status_code"] == 2000
            # Unregistered, it can be added again with a fresh token A and register anew; twice is refused.
            code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "add", "DE", "EMS")
            assert code == 0, err
            code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "add", "DE", "EMS")
            assert code == 2 and "already exists (pending)" in err


async def test_a_registration_that_cannot_reach_the_emsp_is_3001_and_token_a_still_works(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, _):
        _, out, _ = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "add", "DE", "EMS")
        token_a = out.splitlines()[0]
        assert endpoints.ocpi_url is not None
        url = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1/credentials"
        role = {"role": "EMSP", "business_details": {"name": "x"}, "party_id": "EMS", "country_code": "DE"}
        creds = {"token": "b", "url": "http://127.0.0.1:9/versions", "roles": [role]}
        async with httpx.AsyncClient(timeout=10) as c:
            answer = await c.post(url, headers=token_header(token_a), json=creds)
            assert answer.json()["status_code"] == 3001
            assert (await c.get(endpoints.ocpi_url, headers=token_header(token_a))).status_code == 200


async def test_we_register_with_the_emsp_by_the_cli(sqlite_url, capsys, monkeypatch):
    async with cpo(sqlite_url) as (endpoints, _), running_emsp() as emsp:
        assert endpoints.ocpi_url is not None
        monkeypatch.setenv("CHARGETWIN_OCPI_COUNTRY_CODE", "NL")
        monkeypatch.setenv("CHARGETWIN_OCPI_PARTY_ID", "CTW")
        monkeypatch.setenv("CHARGETWIN_OCPI_PUBLIC_URL", endpoints.ocpi_url.removesuffix("/versions"))
        code, out, err = await asyncio.to_thread(
            cli, capsys, sqlite_url, "ocpi", "parties", "add", "DE", "EMS", "--url", f"{emsp.base}/versions",
            "--token", "emsp-token-a",
        )  # fmt: skip
        assert code == 0, err
        code, out, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "register", "DE", "EMS")
        assert code == 0, err
        assert "registered with DE-EMS (EMSP DE-EMS)" in out
        # The eMSP checked our versions with the token B we sent, and calls us with it now.
        assert emsp.cpo_token is not None
        async with emsp.client() as c:
            assert (await c.get(endpoints.ocpi_url)).json()["data"][0]["version"] == "2.2.1"
        # Registered already: refused.
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "register", "DE", "EMS")
        assert code == 2 and "already registered" in err
        code, out, _ = await asyncio.to_thread(
            cli, capsys, sqlite_url, "ocpi", "parties", "set", "DE", "EMS", "--no-push"
        )
        assert code == 0 and "pull" in out
        # Removing a registered partner tells it first (DELETE its credentials), then forgets it.
        code, out, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "remove", "DE", "EMS")
        assert code == 0, err
        assert "unregistered at DE-EMS" in out and ("DELETE", "credentials", None) in emsp.received
        async with emsp.client() as c:
            assert (await c.get(endpoints.ocpi_url)).status_code == 401


async def test_envelope_ids_routing_headers_and_paging(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as emsp:
        for name in ("A", "B", "C"):
            body = {"currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30",
                                                                            "step_size": 1}]}]}  # fmt: skip
            assert (await client.put(f"/tariffs/T-{name}", json=body)).status_code in (200, 201)
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions")
        async with emsp.client() as c:
            headers = {
                "X-Request-ID": "req-1",
                "X-Correlation-ID": "corr-1",
                "OCPI-from-country-code": "DE",
                "OCPI-from-party-id": "EMS",
                "OCPI-to-country-code": "NL",
                "OCPI-to-party-id": "CTW",
            }
            first = await c.get(f"{base}/2.2.1/tariffs", params={"limit": 2}, headers=headers)
            body = first.json()
            assert body["status_code"] == 1000 and body["timestamp"].endswith("Z")
            assert [t["id"] for t in body["data"]] == ["T-A", "T-B"]
            assert body["data"][0]["country_code"] == "NL" and body["data"][0]["party_id"] == "CTW"
            assert first.headers["X-Total-Count"] == "3" and first.headers["X-Limit"] == "100"
            assert first.headers["X-Request-ID"] == "req-1" and first.headers["X-Correlation-ID"] == "corr-1"
            assert first.headers["OCPI-to-country-code"] == "DE" and first.headers["OCPI-to-party-id"] == "EMS"
            assert first.headers["OCPI-from-country-code"] == "NL" and first.headers["OCPI-from-party-id"] == "CTW"
            link = first.headers["Link"]
            assert link.endswith('>; rel="next"')
            second = await c.get(link[1 : link.index(">")])
            assert [t["id"] for t in second.json()["data"]] == ["T-C"] and "Link" not in second.headers
            # A new request id when none is given.
            assert len((await c.get(f"{base}/2.2.1/tariffs")).headers["X-Request-ID"]) >= 16
            # date_from after every change: none.
            later = await c.get(f"{base}/2.2.1/tariffs", params={"date_from": "2099-01-01T00:00:00Z"})
            assert later.json()["data"] == [] and later.headers["X-Total-Count"] == "0"
            # Malformed paging: 2001 naming the parameter.
            bad = await c.get(f"{base}/2.2.1/tariffs", params={"offset": "-1"})
            assert (
                bad.status_code == 400
                and bad.json()["status_code"] == 2001
                and "offset" in bad.json()["status_message"]
            )
            bad = await c.get(f"{base}/2.2.1/tariffs", params={"date_to": "yesterday"})
            assert bad.json()["status_code"] == 2001 and "date_to" in bad.json()["status_message"]
            # Routed to another party: not ours.
            other = await c.get(
                f"{base}/2.2.1/tariffs", headers={"OCPI-to-country-code": "FR", "OCPI-to-party-id": "XYZ"}
            )
            assert other.json()["status_code"] == 2000


class Station(ChargePoint16):
    pass


@contextlib.asynccontextmanager
async def station16(
    endpoints: Endpoints, client: httpx.AsyncClient, station_id: str, kind: type[ChargePoint16] = Station
) -> AsyncIterator[Any]:
    body = {"id": station_id, "password": PASSWORD, "ocpp_version": "1.6"}
    assert (await client.post("/stations", json=body)).status_code == 201
    auth = "Basic " + base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    url = endpoints.ocpp_url.format(station_id=station_id)
    async with websockets.connect(url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": auth}) as ws:
        cp = kind(station_id, ws)
        runner = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="AC22"))
            assert boot.status == "Accepted"
            yield cp
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def status(cp: Any, connector: int, value: str) -> None:
    await cp.call(call16.StatusNotification(connector, "NoError", value, timestamp=datetime.now(UTC).isoformat()))


LOCATION = ["--address", "Stationsplein 1", "--city", "Amsterdam", "--country", "NLD", "--latitude", "52.378900",
            "--longitude", "4.900000", "--time-zone", "Europe/Amsterdam", "--postal-code", "1012AB"]  # fmt: skip


async def test_locations_from_sites_and_evse_status_pushed_and_retried(database_url, capsys):
    async with cpo(database_url) as (endpoints, client), running_emsp() as emsp:
        assert (await client.put("/tariffs/STANDARD", json={"currency": "EUR", "elements": [{"price_components": [
            {"type": "ENERGY", "price": "0.30", "step_size": 1}]}]})).status_code in (200, 201)  # fmt: skip
        await registered(capsys, database_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions")
        async with station16(endpoints, client, "CP-1") as cp:
            await status(cp, 1, "Available")
            await status(cp, 2, "Available")
            site = {"id": "central", "nodes": [{"id": "grid", "limit_kw": 100}],
                    "evses": [{"station_id": "CP-1", "evse_id": 1, "node": "grid", "max_current_a": 16},
                              {"station_id": "CP-1", "evse_id": 2, "node": "grid", "max_current_a": 32}]}  # fmt: skip
            assert (await client.post("/sites", json=site)).status_code == 201, (await client.get("/sites")).text
            assign = {"tariff_id": "STANDARD", "site_id": "central"}
            assert (await client.post("/tariff-assignments", json=assign)).status_code in (200, 201)
            async with emsp.client() as c:
                # Not published until its address is given; an address OCPI would refuse is refused (422).
                assert (await c.get(f"{base}/2.2.1/locations")).json()["data"] == []
                bad = {"address": "Stationsplein 1", "city": "Amsterdam", "country": "NL", "latitude": "52.378900",
                       "longitude": "4.900000", "time_zone": "Europe/Amsterdam"}  # fmt: skip
                refused = await client.put("/ocpi/locations/central", json=bad)
                assert refused.status_code == 422 and refused.json()["detail"].startswith("country:")
                code, _, err = await asyncio.to_thread(cli, capsys, database_url, "ocpi", "locations", "set", "central",
                                                       *[v if v != "NLD" else "Holland" for v in LOCATION])  # fmt: skip
                assert code == 2 and "country" in err
                assert (await client.get("/ocpi/locations")).json() == []
                code, _, err = await asyncio.to_thread(
                    cli, capsys, database_url, "ocpi", "locations", "set", "central", *LOCATION, "--name", "Central"
                )
                assert code == 0, err
                listed = (await c.get(f"{base}/2.2.1/locations")).json()["data"]
                assert [loc["id"] for loc in listed] == ["central"]
                location = listed[0]
                models.Location.model_validate(location)  # what we send is an OCPI 2.2.1 Location
                assert location["country_code"] == "NL" and location["party_id"] == "CTW"
                assert location["coordinates"] == {"latitude": "52.378900", "longitude": "4.900000"}
                assert location["time_zone"] == "Europe/Amsterdam" and location["name"] == "Central"
                assert [e["uid"] for e in location["evses"]] == ["CP-1*1", "CP-1*2"]
                evse = location["evses"][0]
                assert evse["status"] == "AVAILABLE" and evse["evse_id"] == "NL*CTW*ECP1*1"
                assert evse["connectors"][0]["max_amperage"] == 16
                assert evse["connectors"][0]["power_type"] == "AC_3_PHASE"
                assert evse["connectors"][0]["tariff_ids"] == ["STANDARD"]
                one = (await c.get(f"{base}/2.2.1/locations/central/CP-1*2")).json()["data"]
                assert one["uid"] == "CP-1*2"
                connector = (await c.get(f"{base}/2.2.1/locations/central/CP-1*2/1")).json()["data"]
                assert connector["id"] == "1" and connector["max_amperage"] == 32
                unknown = await c.get(f"{base}/2.2.1/locations/nowhere")
                assert unknown.status_code == 404 and unknown.json()["status_code"] == 2003
                assert (await c.get(f"{base}/2.2.1/locations/central/CP-1*9")).json()["status_code"] == 2003

            # A status change is pushed to the eMSP's locations receiver as a PATCH of the EVSE.
            await status(cp, 1, "Charging")

            async def pushed() -> list[Any]:
                return [r for r in emsp.pushes("locations") if r[2]["status"] == "CHARGING"]

            [(method, path, body)] = await eventually(pushed)
            assert method == "PATCH" and path == "locations/NL/CTW/central/CP-1*1"
            assert set(body) == {"status", "last_updated"}
            # Sent with the routing headers (from us to the eMSP) and request and correlation ids.
            sent = emsp.headers[-1]
            assert (sent["ocpi-from-country-code"], sent["ocpi-from-party-id"]) == ("NL", "CTW")
            assert (sent["ocpi-to-country-code"], sent["ocpi-to-party-id"]) == ("DE", "EMS")
            assert sent["x-request-id"] and sent["x-correlation-id"]

            # The eMSP is down: the push is kept and retried with back-off until it is taken.
            emsp.down = True
            await status(cp, 2, "Faulted")

            async def tried() -> bool:
                _, out, _ = await asyncio.to_thread(cli, capsys, database_url, "ocpi", "pushes", "--status", "pending")
                return "PATCH" in out and "503" in out

            await eventually(tried)
            await asyncio.sleep(0.8)  # a few attempts fail
            # The operator sees it in the API: the push, its attempts and the eMSP's answer.
            pending = (await client.get("/ocpi/pushes", params={"status": "pending"})).json()
            assert len(pending) == 1 and pending[0]["attempts"] >= 2 and pending[0]["last_status"] == 503
            assert pending[0]["url"].endswith("/locations/NL/CTW/central/CP-1*2")
            emsp.down = False

            async def outofo() -> list[Any]:
                return [r for r in emsp.pushes("locations") if r[2]["status"] == "OUTOFORDER"]

            delivered = await eventually(outofo)
            assert len(delivered) == 1 and delivered[0][1] == "locations/NL/CTW/central/CP-1*2"
            code, out, _ = await asyncio.to_thread(cli, capsys, database_url, "ocpi", "pushes", "--status", "pending")
            assert "PATCH" not in out
            assert (await client.get("/ocpi/pushes", params={"status": "pending"})).json() == []

            # A party that pulls gets no pushes.
            assert (await client.patch("/ocpi/parties/DE/EMS", json={"push": False})).json()["push"] is False
            before = len(emsp.pushes("locations"))
            await status(cp, 2, "Available")
            await asyncio.sleep(0.5)
            assert len(emsp.pushes("locations")) == before
            parties = (await client.get("/ocpi/parties")).json()
            assert [(p["country_code"], p["party_id"], p["status"]) for p in parties] == [("DE", "EMS", "registered")]
            assert emsp.our_token_b not in str(parties) and str(emsp.cpo_token) not in str(parties)
