"""Sessions sender over real HTTP: a roaming driver's 1.6 transaction on a real WebSocket is pushed to the eMSP
(its own server) when it starts and when it ends, and pulled with its kWh in between; a local driver's session
is not the eMSP's to see."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v16 import call as call16

from csms.ocpi import models
from simulator.roaming.emsp import Emsp, running_emsp
from tests.ocpi.test_ocpi_cpo import LOCATION, cli, cpo, registered, station16, status
from tests.support.live import eventually


def now() -> str:
    return datetime.now(UTC).isoformat()


async def test_a_roaming_session_is_pushed_and_pulled_with_its_kwh(sqlite_url, capsys):
    async with cpo(sqlite_url, session_progress_s=0.0) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert code == 0, err
        tariff = {"currency": "DKK", "elements": [{"price_components": [{"type": "ENERGY", "price": "2.50",
                                                                          "step_size": 1}]}]}  # fmt: skip
        assert (await client.put("/tariffs/DK", json=tariff)).status_code in (200, 201)
        assert (await client.post("/tokens", json={"id_token": "LOCAL1"})).status_code == 201
        async with emsp.client() as c, station16(endpoints, client, "CP-1") as cp:
            assert (await client.post("/tariff-assignments", json={"tariff_id": "DK", "station_id": "CP-1"})).is_success
            assert (await c.put(f"{base}/tokens/DE/EMS/RF1", json=Emsp.token("RF1", "ALWAYS"))).is_success
            await status(cp, 1, "Available")
            hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            started = await cp.call(call16.StartTransaction(connector_id=1, id_tag="RF1", meter_start=1000,
                                                            timestamp=hour_ago))  # fmt: skip
            local = await cp.call(call16.StartTransaction(connector_id=2, id_tag="LOCAL1", meter_start=0,
                                                          timestamp=now()))  # fmt: skip
            assert started.id_tag_info["status"] == local.id_tag_info["status"] == "Accepted"
            session_id = str(started.transaction_id)

            async def pushed(state: str) -> list[Any]:
                return [r for r in emsp.pushes("sessions") if r[2].get("status") == state]

            [(method, path, body)] = await eventually(lambda: pushed("ACTIVE"))
            assert method == "PUT" and path == f"sessions/NL/CTW/{session_id}"
            models.Session.model_validate(body)
            assert body["kwh"] == 0 and body["currency"] == "DKK" and body["auth_method"] == "WHITELIST"
            assert body["cdr_token"] == {"country_code": "DE", "party_id": "EMS", "uid": "RF1", "type": "RFID",
                                         "contract_id": "DE-EMS-CRF1"}  # fmt: skip
            assert (body["location_id"], body["evse_uid"], body["connector_id"]) == ("CP-1", "CP-1*1", "1")
            # The meter moves: a pull shows the kWh so far; the local driver's session is not listed.
            sample = {"timestamp": now(), "sampled_value": [{"value": "6000", "measurand":
                      "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic"}]}  # fmt: skip
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=started.transaction_id,
                                             meter_value=[sample]))  # fmt: skip
            listed = (await c.get(f"{base}/sessions", params={"date_from": "2000-01-01T00:00:00Z"})).json()["data"]
            assert [(s["id"], s["kwh"], s["status"]) for s in listed] == [(session_id, 5.0, "ACTIVE")]
            assert listed[0]["total_cost"] == {"excl_vat": 12.5, "incl_vat": 12.5}  # so far: 5 kWh at 2.50 DKK
            # … and its charging periods so far, as the CDR will have them (one tariff element: one period).
            [period] = listed[0]["charging_periods"]
            assert period["tariff_id"] == "DK" and {"type": "ENERGY", "volume": 5} in period["dimensions"]
            # … and is PATCHed to the eMSP while the session runs (here at every reading; 5 min by default).

            async def progress() -> list[Any]:
                return [r for r in emsp.pushes("sessions") if r[0] == "PATCH"]

            [(_, path, patch)] = await eventually(progress)
            assert (
                path == f"sessions/NL/CTW/{session_id}"
                and patch["kwh"] == 5.0
                and set(patch) == {"kwh", "last_updated"}
            )
            # It ends: pushed COMPLETED with its energy and end.
            await cp.call(call16.StopTransaction(meter_stop=23000, timestamp=now(),
                                                 transaction_id=started.transaction_id, id_tag="RF1"))  # fmt: skip
            [(_, _, done)] = await eventually(lambda: pushed("COMPLETED"))
            models.Session.model_validate(done)
            stored = (await client.get(f"/transactions/{session_id}/cdr")).json()
            assert done["total_cost"] == stored["total_cost"] and done["currency"] == "DKK"  # the CDR's cost
            assert done["kwh"] == 22.0 and "end_date_time" in done and done["id"] == session_id
            assert done["charging_periods"] == stored["charging_periods"]  # the CDR's own periods
            later = await c.get(f"{base}/sessions", params={"date_from": "2099-01-01T00:00:00Z"})
            assert later.json()["data"] == [] and later.headers["X-Total-Count"] == "0"
            assert len(emsp.pushes("sessions")) == 3  # start, progress, end; the local session never


async def test_through_a_hub_sessions_are_routed_to_the_emsp_whose_token_it_is(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as hub:
        hub.role = ("HUB", "NL", "HUB")
        code, out, _ = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "parties", "add", "NL", "HUB")
        assert endpoints.ocpi_url is not None
        await hub.register(endpoints.ocpi_url, out.splitlines()[0])
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert code == 0, err
        async with hub.client() as c, station16(endpoints, client, "CP-1") as cp:
            # The hub pushes the tokens of the eMSPs behind it, under their codes.
            other = {**Emsp.token("FR1", "ALWAYS"), "country_code": "FR", "party_id": "ABC"}
            assert (await c.put(f"{base}/tokens/FR/ABC/FR1", json=other)).json()["status_code"] == 1000
            assert (await c.put(f"{base}/tokens/DE/EMS/DE1", json=Emsp.token("DE1", "ALWAYS"))).is_success
            await status(cp, 1, "Available")
            started = await cp.call(call16.StartTransaction(connector_id=1, id_tag="FR1", meter_start=0,
                                                            timestamp=now()))  # fmt: skip
            assert started.id_tag_info["status"] == "Accepted"

            async def pushed() -> list[Any]:
                return [r for r in hub.pushes("sessions") if r[0] == "PUT"]

            [(_, path, body)] = await eventually(pushed)
            assert path == f"sessions/NL/CTW/{started.transaction_id}" and body["cdr_token"]["party_id"] == "ABC"
            sent = hub.headers[-1]
            assert (sent["ocpi-to-country-code"], sent["ocpi-to-party-id"]) == ("FR", "ABC")
            assert (sent["ocpi-from-country-code"], sent["ocpi-from-party-id"]) == ("NL", "CTW")


async def test_the_cdr_of_a_roaming_session_reaches_the_emsp_once_also_when_it_was_down(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert code == 0, err
        tariff = {"currency": "EUR", "elements": [{"price_components": [
            {"type": "FLAT", "price": "1.00", "vat": 20, "step_size": 1},
            {"type": "ENERGY", "price": "0.30", "vat": 20, "step_size": 1}]}]}  # fmt: skip
        assert (await client.put("/tariffs/STD", json=tariff)).status_code in (200, 201)
        async with emsp.client() as c, station16(endpoints, client, "CP-1") as cp:
            assert (
                await client.post("/tariff-assignments", json={"tariff_id": "STD", "station_id": "CP-1"})
            ).is_success
            assert (await c.put(f"{base}/tokens/DE/EMS/RF1", json=Emsp.token("RF1", "ALWAYS"))).is_success
            await status(cp, 1, "Available")
            hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            started = await cp.call(call16.StartTransaction(connector_id=1, id_tag="RF1", meter_start=1000,
                                                            timestamp=hour_ago))  # fmt: skip
            emsp.down = True  # the eMSP is down when the session ends
            await cp.call(call16.StopTransaction(meter_stop=11000, timestamp=now(),
                                                 transaction_id=started.transaction_id, id_tag="RF1"))  # fmt: skip

            async def failing() -> bool:
                pending = (await client.get("/ocpi/pushes", params={"status": "pending"})).json()
                return any(p["module"] == "cdrs" and p["attempts"] >= 2 for p in pending)

            await eventually(failing)
            emsp.down = False

            async def delivered() -> list[Any]:
                return [r for r in emsp.received if r[1] == "cdrs/"]

            [(_, _, cdr)] = await eventually(delivered)
            # The CDR the CSMS stored (priced once, csms/services/cdrs.py), with the eMSP's token and our location.
            stored = (await client.get(f"/transactions/{started.transaction_id}/cdr")).json()
            assert cdr["id"] == stored["id"] and cdr["total_cost"] == stored["total_cost"]
            assert cdr["total_energy"] == stored["total_energy"] == 10  # kWh, over the hour
            assert cdr["total_cost"] == {"excl_vat": 4, "incl_vat": 4.8}  # 1.00 + 10 × 0.30, 20 % VAT
            assert (cdr["country_code"], cdr["party_id"], cdr["session_id"]) == (
                "NL",
                "CTW",
                str(started.transaction_id),
            )
            assert cdr["cdr_token"] == {"country_code": "DE", "party_id": "EMS", "uid": "RF1", "type": "RFID",
                                        "contract_id": "DE-EMS-CRF1"}  # fmt: skip
            location = cdr["cdr_location"]
            assert (location["id"], location["evse_uid"], location["evse_id"]) == ("CP-1", "CP-1*1", "NL*CTW*ECP1*1")
            assert location["city"] == "Amsterdam" and location["coordinates"]["latitude"] == "52.378900"
            # Pulled too; and never pushed twice (a later status, a later round: still one).
            listed = (await c.get(f"{base}/cdrs")).json()["data"]
            assert [x["id"] for x in listed] == [cdr["id"]] and listed[0]["total_cost"] == cdr["total_cost"]
            await status(cp, 1, "Available")
            await asyncio.sleep(0.5)
            assert len(await delivered()) == 1


async def test_a_cdr_rebuilt_after_it_was_sent_is_credited_and_sent_again_under_a_new_id(sqlite_url, capsys):
    """OCPI 2.2.1 CDRs are immutable once sent: when 1.6 meter values after the stop rebuild the CDR, the eMSP
    gets a credit CDR for the one it has (credit, credit_reference_id, costs negated) and the corrected CDR under a
    new id; the same report again changes nothing more."""
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert code == 0, err
        tariff = {"currency": "EUR", "elements": [{"price_components": [
            {"type": "FLAT", "price": "1.00", "vat": 20, "step_size": 1},
            {"type": "ENERGY", "price": "0.30", "vat": 20, "step_size": 1}]}]}  # fmt: skip
        assert (await client.put("/tariffs/STD", json=tariff)).status_code in (200, 201)
        async with emsp.client() as c, station16(endpoints, client, "CP-1") as cp:
            assert (
                await client.post("/tariff-assignments", json={"tariff_id": "STD", "station_id": "CP-1"})
            ).is_success
            assert (await c.put(f"{base}/tokens/DE/EMS/RF1", json=Emsp.token("RF1", "ALWAYS"))).is_success
            await status(cp, 1, "Available")
            hour_ago = datetime.now(UTC) - timedelta(hours=1)
            started = await cp.call(call16.StartTransaction(connector_id=1, id_tag="RF1", meter_start=1000,
                                                            timestamp=hour_ago.isoformat()))  # fmt: skip
            stop = datetime.now(UTC).replace(microsecond=0)
            await cp.call(call16.StopTransaction(meter_stop=11000, timestamp=stop.isoformat(),
                                                 transaction_id=started.transaction_id, id_tag="RF1"))  # fmt: skip

            async def delivered() -> list[Any]:
                return [r[2] for r in emsp.received if r[1] == "cdrs/"]

            [first] = await eventually(delivered)
            assert first["total_cost"] == {"excl_vat": 4, "incl_vat": 4.8} and "credit" not in first
            # the charger's closing register arrives after the stop (docs/hardware.md): 12 kWh, not 10
            late = {"timestamp": stop.isoformat(), "sampled_value": [{"value": "13000", "measurand":
                    "Energy.Active.Import.Register", "unit": "Wh", "context": "Transaction.End"}]}  # fmt: skip
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=started.transaction_id,
                                             meter_value=[late]))  # fmt: skip

            async def three() -> list[Any]:
                found = await delivered()
                return found if len(found) >= 3 else []

            _, credit, fixed = await eventually(three)
            assert credit["id"] == f"{first['id']}-C" and credit["credit"] is True
            assert credit["credit_reference_id"] == first["id"]
            assert credit["total_cost"] == {"excl_vat": -4, "incl_vat": -4.8}
            assert credit["total_energy"] == first["total_energy"] == 10
            assert fixed["id"] == f"{first['id']}-R1" and "credit" not in fixed
            assert fixed["total_energy"] == 12 and fixed["total_cost"] == {"excl_vat": 4.6, "incl_vat": 5.52}
            # the same closing register again: the CDR comes out the same, nothing more is sent
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=started.transaction_id,
                                             meter_value=[late]))  # fmt: skip
            await asyncio.sleep(1.0)
            assert len(await delivered()) == 3
            # pulled, the eMSP sees the same three, the first one unchanged
            listed = (await c.get(f"{base}/cdrs")).json()["data"]
            assert [x["id"] for x in listed] == [first["id"], credit["id"], fixed["id"]]
            assert listed[0]["total_cost"] == first["total_cost"]
