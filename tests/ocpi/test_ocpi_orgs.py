"""Parties of organisations and what is gone, over real HTTP (csms serve, the twin's eMSPs on their own servers):
an eMSP party of one organisation sees and is sent only that organisation's locations and tariffs, and its
commands on another's EVSE get the unknown-location answer; a decommissioned station's EVSEs are PATCHed REMOVED
and pulled REMOVED (and live again once it is accepted again), and a deleted tariff is DELETEd at the eMSP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.ocpi import envelope as env
from csms.ocpi import models
from simulator.roaming.emsp import Emsp, serving
from tests.ocpi.test_ocpi_cpo import LOCATION, cli, cpo, registered, station16, status
from tests.support.live import eventually

TARIFF = {"currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]}]}


async def _true(value: Any) -> Any:
    return value


async def _cli(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> str:
    code, out, err = await asyncio.to_thread(cli, capsys, url, *argv)
    assert code == 0, err
    return out


async def test_each_organisations_party_sees_and_is_sent_only_its_own(sqlite_url, capsys):
    async with cpo(sqlite_url, sync_s=0.2) as (endpoints, _client):
        assert endpoints.ocpi_url is not None
        keys = {}
        for org in ("north", "south"):
            await _cli(capsys, sqlite_url, "orgs", "add", org)
            keys[org] = (await _cli(capsys, sqlite_url, "apikeys", "create", "--org", org, "--role", "admin")).strip()
        headers = {org: {"Authorization": f"Bearer {key}"} for org, key in keys.items()}
        async with (
            httpx.AsyncClient(base_url=endpoints.api_url, headers=headers["north"]) as north,
            httpx.AsyncClient(base_url=endpoints.api_url, headers=headers["south"]) as south,
            station16(endpoints, north, "CP-N") as cp_n,
            station16(endpoints, south, "CP-S") as cp_s,
            serving(Emsp("DE", "NOR")) as emsp_n,
            serving(Emsp("DE", "SOU")) as emsp_s,
        ):
            await status(cp_n, 1, "Available")
            await status(cp_s, 1, "Available")
            for station in ("CP-N", "CP-S"):
                await _cli(capsys, sqlite_url, "ocpi", "locations", "set", station, *LOCATION)
            assert (await north.put("/tariffs/TN", json=TARIFF)).status_code == 201
            assert (await south.put("/tariffs/TS", json=TARIFF)).status_code == 201
            for emsp, org in ((emsp_n, "north"), (emsp_s, "south")):
                out = await _cli(capsys, sqlite_url, "ocpi", "parties", "add", "DE", emsp.party_id, "--org", org)
                await emsp.register(endpoints.ocpi_url, out.splitlines()[0])
            listed = await _cli(capsys, sqlite_url, "ocpi", "parties", "list")
            assert "north" in listed and "south" in listed
            # Each pulls only its organisation's locations and tariffs.
            for emsp, own, tariff in ((emsp_n, "CP-N", "TN"), (emsp_s, "CP-S", "TS")):
                found = await emsp.pull("locations")
                assert [loc["id"] for loc in found] == [own]
                models.Location.model_validate(found[0])
                assert [t["id"] for t in await emsp.pull("tariffs")] == [tariff]
            # The other's location is unknown to it, as one that does not exist.
            base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
            async with emsp_n.client() as c:
                other = await c.get(f"{base}/locations/CP-S")
                nowhere = await c.get(f"{base}/locations/NOWHERE")
                assert other.status_code == nowhere.status_code == 404
                assert other.json()["status_code"] == nowhere.json()["status_code"] == 2003
                assert (await c.get(f"{base}/locations/CP-N")).json()["status_code"] == 1000

                async def start(location: str, uid: str, ref: str) -> dict[str, Any]:
                    body = {"response_url": f"{emsp_n.base}/2.2.1/commands/START_SESSION/{ref}",
                            "token": Emsp.token("RF1", "ALWAYS", party="NOR"), "location_id": location,
                            "evse_uid": uid}  # fmt: skip
                    answer = await c.post(f"{base}/commands/START_SESSION", json=body)
                    assert answer.json()["status_code"] == 1000, answer.text
                    data: dict[str, Any] = answer.json()["data"]
                    return data

                refused = await start("CP-S", "CP-S*1", "x1")
                unknown = await start("NOWHERE", "NOWHERE*1", "x2")
                assert refused["result"] == unknown["result"] == "REJECTED"
                assert refused["message"][0]["text"].startswith("unknown location")
                assert unknown["message"][0]["text"].startswith("unknown location")
                assert (await start("CP-N", "CP-N*1", "x3"))["result"] == "ACCEPTED"
            # North's driver is authorised at north's station, unknown at south's; only north sees the session.
            await emsp_n.push_token(emsp_n.our_token("RN1"))
            assert (await cp_s.call(call16.Authorize(id_tag="RN1"))).id_tag_info["status"] == "Invalid"
            assert (await cp_n.call(call16.Authorize(id_tag="RN1"))).id_tag_info["status"] == "Accepted"
            started = await cp_n.call(call16.StartTransaction(connector_id=1, id_tag="RN1", meter_start=0,
                                                              timestamp=datetime.now(UTC).isoformat()))  # fmt: skip
            assert started.id_tag_info["status"] == "Accepted"
            assert [x["id"] for x in await emsp_n.pull("sessions")] == [str(started.transaction_id)]
            assert await emsp_s.pull("sessions") == []
            # A change of south's tariff is pushed to south's eMSP only; north's EVSE status to north's only.
            changed = {**TARIFF, "elements": [{"price_components": [{"type": "ENERGY", "price": "0.40",
                                                                     "step_size": 1}]}]}  # fmt: skip
            assert (await south.put("/tariffs/TS", json=changed)).is_success
            [(method, path, _)] = await eventually(lambda: _true(emsp_s.pushes("tariffs")))
            assert (method, path) == ("PUT", "tariffs/NL/CTW/TS")
            await status(cp_n, 1, "Unavailable")
            await eventually(lambda: _true([p for p in emsp_n.pushes("locations") if p[0] == "PATCH"]))
            await asyncio.sleep(0.6)
            assert emsp_n.pushes("tariffs") == []
            assert [p for p in emsp_s.pushes("locations") if "CP-N" in p[1]] == []
            # North's eMSP becomes south's partner: it is sent south's location and tariff, north's EVSE is REMOVED
            # and north's tariff DELETEd.
            out = await _cli(capsys, sqlite_url, "ocpi", "parties", "set", "DE", "NOR", "--org", "south")
            assert out.strip() == "party DE-NOR: push, organisation south"

            async def moved() -> list[tuple[str, str]]:
                sent = [(m, p) for m, p, _ in emsp_n.received if p.startswith(("locations/", "tariffs/"))]
                return sent if len(sent) >= 5 else []

            sent = await eventually(moved)
            assert sorted(sent[-4:]) == [("DELETE", "tariffs/NL/CTW/TN"), ("PATCH", "locations/NL/CTW/CP-N/CP-N*1"),
                                         ("PUT", "locations/NL/CTW/CP-S"), ("PUT", "tariffs/NL/CTW/TS")]  # fmt: skip
            assert [loc["id"] for loc in await emsp_n.pull("locations")] == ["CP-S"]


async def test_a_decommissioned_station_is_removed_and_a_deleted_tariff_deleted_at_the_emsp(sqlite_url, capsys):
    async with cpo(sqlite_url, sync_s=0.2) as (endpoints, client), serving(Emsp()) as emsp:
        async with station16(endpoints, client, "CP-1") as cp:
            await status(cp, 1, "Available")
        await _cli(capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert (await client.put("/tariffs/STD", json=TARIFF)).status_code == 201
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert [e["uid"] for e in (await emsp.pull("locations"))[0]["evses"]] == ["CP-1*1"]
        await asyncio.sleep(0.6)  # its first round records what it pulled
        assert emsp.pushes("locations") == [] and emsp.pushes("tariffs") == []
        # The tariff is deleted: DELETE at the eMSP's tariffs receiver.
        assert (await client.delete("/tariffs/STD")).is_success
        [(method, path, _)] = await eventually(lambda: _true(emsp.pushes("tariffs")))
        assert (method, path) == ("DELETE", "tariffs/NL/CTW/STD")
        # The station is decommissioned (its registration refused): its EVSE is PATCHed REMOVED. The location is kept
        # and keeps listing it, REMOVED (OCPI 2.2.1 never deletes an EVSE), last_updated when it was found gone.
        before = datetime.now(UTC).replace(microsecond=0)
        assert (await client.patch("/stations/CP-1", json={"registration_policy": "reject"})).is_success
        [(method, path, body)] = await eventually(lambda: _true(emsp.pushes("locations")))
        assert (method, path, body["status"]) == ("PATCH", "locations/NL/CTW/CP-1/CP-1*1", "REMOVED")
        removed_at = datetime.fromisoformat(body["last_updated"])
        assert before <= removed_at <= datetime.now(UTC)
        [location] = await emsp.pull("locations")
        models.Location.model_validate(location)
        assert [(e["uid"], e["status"], e["last_updated"]) for e in location["evses"]] == [
            ("CP-1*1", "REMOVED", body["last_updated"])]  # fmt: skip
        assert location["evses"][0]["evse_id"] == "NL*CTW*ECP1*1" and location["evses"][0]["connectors"]
        assert datetime.fromisoformat(location["last_updated"]) == removed_at
        # A pull of what changed since just before the removal has it; one since after it, nothing.
        assert [loc["id"] for loc in await emsp.pull("locations", date_from=env.iso(before))] == ["CP-1"]
        assert await emsp.pull("locations", date_from=env.iso(removed_at + timedelta(seconds=1))) == []
        async with emsp.client() as c:
            base = emsp.cpo_endpoints["locations"]
            evse = (await c.get(f"{base}/CP-1/CP-1*1")).json()["data"]
            models.Evse.model_validate(evse)
            assert (evse["status"], evse["last_updated"]) == ("REMOVED", body["last_updated"])
            assert (await c.get(f"{base}/CP-1/CP-1*1/1")).json()["data"]["id"] == "1"
        await asyncio.sleep(0.6)  # the removal is sent once
        assert len(emsp.pushes("locations")) == 1 and len(emsp.pushes("tariffs")) == 1
        # Accepted again: the EVSE is live again, PUT whole to the eMSP and pulled with its status.
        assert (await client.patch("/stations/CP-1", json={"registration_policy": "accept"})).is_success
        [(put, where, back)] = await eventually(lambda: _true(emsp.pushes("locations")[1:]))
        assert (put, where, back["status"]) == ("PUT", "locations/NL/CTW/CP-1/CP-1*1", "AVAILABLE")
        models.Evse.model_validate(back)
        assert datetime.fromisoformat(back["last_updated"]) >= removed_at
        [location] = await emsp.pull("locations", date_from=back["last_updated"])
        assert [(e["uid"], e["status"]) for e in location["evses"]] == [("CP-1*1", "AVAILABLE")]
        await asyncio.sleep(0.6)
        assert len(emsp.pushes("locations")) == 2
