"""Commands receiver over real HTTP: the eMSP (its own server) sends START_SESSION, STOP_SESSION, RESERVE_NOW,
CANCEL_RESERVATION and UNLOCK_CONNECTOR; the CPO answers at once with a CommandResponse, a 1.6 ChargePoint on a
real WebSocket gets the OCPP call, and its answer reaches the eMSP's response_url as the CommandResult."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from csms.ocpi import models
from simulator.roaming.emsp import Emsp, running_emsp
from tests.ocpi.test_ocpi_cpo import LOCATION, cli, cpo, registered, station16, status
from tests.support.live import eventually


class Obedient(ChargePoint16):
    received: list[tuple[str, dict[str, Any]]]

    @on("RemoteStartTransaction")
    def on_start(self, **kwargs: Any) -> result16.RemoteStartTransaction:
        self.received.append(("RemoteStartTransaction", kwargs))
        return result16.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    def on_stop(self, **kwargs: Any) -> result16.RemoteStopTransaction:
        self.received.append(("RemoteStopTransaction", kwargs))
        return result16.RemoteStopTransaction(status="Accepted")

    @on("ReserveNow")
    def on_reserve(self, **kwargs: Any) -> result16.ReserveNow:
        self.received.append(("ReserveNow", kwargs))
        return result16.ReserveNow(status="Accepted")

    @on("CancelReservation")
    def on_cancel(self, **kwargs: Any) -> result16.CancelReservation:
        self.received.append(("CancelReservation", kwargs))
        return result16.CancelReservation(status="Accepted")

    @on("UnlockConnector")
    def on_unlock(self, **kwargs: Any) -> result16.UnlockConnector:
        self.received.append(("UnlockConnector", kwargs))
        return result16.UnlockConnector(status="Unlocked")


@contextlib.asynccontextmanager
async def obedient(endpoints: Any, client: Any) -> AsyncIterator[Any]:
    async with station16(endpoints, client, "CP-1", Obedient) as cp:
        cp.received = []
        yield cp


async def result_of(emsp: Emsp, name: str) -> dict[str, Any]:
    async def posted() -> list[Any]:
        return [r for r in emsp.received if r[0] == "POST" and r[1] == f"commands/{name}"]

    [(_, _, body)] = await eventually(posted)
    models.CommandResult.model_validate(body)
    return body


async def test_commands_become_ocpp_calls_and_their_results_reach_the_emsp(database_url, capsys):
    async with cpo(database_url) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, database_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1/commands"
        code, _, err = await asyncio.to_thread(cli, capsys, database_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert code == 0, err
        c = emsp.client()
        async with obedient(endpoints, client) as cp:
            await status(cp, 1, "Available")
            token = Emsp.token("RF1", "ALWAYS")

            async def send(command: str, body: dict[str, Any], ref: str) -> dict[str, Any]:
                body = {"response_url": f"{emsp.base}/2.2.1/commands/{command}/{ref}", **body}
                answer = await c.post(f"{base}/{command}", json=body)
                assert answer.json()["status_code"] == 1000, answer.text
                models.CommandResponse.model_validate(answer.json()["data"])
                return answer.json()["data"]

            # START_SESSION → RemoteStartTransaction; the result is POSTed to the response_url.
            started = await send("START_SESSION", {"token": token, "location_id": "CP-1", "evse_uid": "CP-1*1",
                                                   "authorization_reference": "AUTH-1"}, "s1")  # fmt: skip
            assert started == {"result": "ACCEPTED", "timeout": 30}
            assert await result_of(emsp, "START_SESSION/s1") == {"result": "ACCEPTED"}
            assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "RF1", "connector_id": 1})
            # The station starts the session with the token the eMSP started it with: authorised.
            start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="RF1", meter_start=1000,
                                                          timestamp=datetime.now(UTC).isoformat()))  # fmt: skip
            assert start.id_tag_info["status"] == "Accepted"
            # STOP_SESSION names our session id → RemoteStopTransaction.
            stopped = await send("STOP_SESSION", {"session_id": str(start.transaction_id)}, "s2")
            assert stopped["result"] == "ACCEPTED"
            assert await result_of(emsp, "STOP_SESSION/s2") == {"result": "ACCEPTED"}
            assert cp.received[-1] == ("RemoteStopTransaction", {"transaction_id": start.transaction_id})
            unknown = await send("STOP_SESSION", {"session_id": "999999"}, "s3")
            assert unknown["result"] == "UNKNOWN_SESSION"
            # RESERVE_NOW → ReserveNow; CANCEL_RESERVATION by the eMSP's reservation id → CancelReservation.
            expiry = (datetime.now(UTC) + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
            reserved = await send("RESERVE_NOW", {"token": token, "expiry_date": expiry, "reservation_id": "R1",
                                                  "location_id": "CP-1", "evse_uid": "CP-1*1"}, "r1")  # fmt: skip
            assert reserved["result"] == "ACCEPTED"
            assert await result_of(emsp, "RESERVE_NOW/r1") == {"result": "ACCEPTED"}
            action, sent = cp.received[-1]
            assert action == "ReserveNow" and sent["id_tag"] == "RF1" and sent["connector_id"] == 1
            reservations = (await client.get("/stations/CP-1/reservations")).json()
            assert [r["status"] for r in reservations] == ["active"]
            # The same reservation_id again replaces it (OCPI 13.3.5): ReserveNow with the same id, a later expiry.
            later = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            again = await send("RESERVE_NOW", {"token": token, "expiry_date": later, "reservation_id": "R1",
                                               "location_id": "CP-1", "evse_uid": "CP-1*1"}, "r1b")  # fmt: skip
            assert again["result"] == "ACCEPTED"
            assert await result_of(emsp, "RESERVE_NOW/r1b") == {"result": "ACCEPTED"}
            action, resent = cp.received[-1]
            assert action == "ReserveNow" and resent["reservation_id"] == sent["reservation_id"]
            assert resent["expiry_date"] != sent["expiry_date"]
            reservations = (await client.get("/stations/CP-1/reservations")).json()
            assert [(r["id"], r["status"]) for r in reservations] == [(sent["reservation_id"], "active")]
            assert reservations[0]["expires_at"].startswith(later[:16])
            assert (await send("CANCEL_RESERVATION", {"reservation_id": "R1"}, "r2"))["result"] == "ACCEPTED"
            assert await result_of(emsp, "CANCEL_RESERVATION/r2") == {"result": "ACCEPTED"}
            assert cp.received[-1] == ("CancelReservation", {"reservation_id": sent["reservation_id"]})
            assert (await client.get("/stations/CP-1/reservations")).json()[0]["status"] == "cancelled"
            assert (await send("CANCEL_RESERVATION", {"reservation_id": "R9"}, "r3"))["result"] == "REJECTED"
            # UNLOCK_CONNECTOR → UnlockConnector (Unlocked is ACCEPTED).
            unlocked = await send("UNLOCK_CONNECTOR", {"location_id": "CP-1", "evse_uid": "CP-1*1",
                                                       "connector_id": "1"}, "u1")  # fmt: skip
            assert unlocked["result"] == "ACCEPTED"
            assert await result_of(emsp, "UNLOCK_CONNECTOR/u1") == {"result": "ACCEPTED"}
            assert cp.received[-1] == ("UnlockConnector", {"connector_id": 1})
            # A token the eMSP wants asked about is not asked again within 15 minutes of its START_SESSION there.
            app = Emsp.token("APP1", "NEVER")
            assert (await send("START_SESSION", {"token": app, "location_id": "CP-1"}, "s4"))["result"] == "ACCEPTED"
            assert await result_of(emsp, "START_SESSION/s4") == {"result": "ACCEPTED"}
            assert cp.received[-1] == ("RemoteStartTransaction", {"id_tag": "APP1"})
            assert (await cp.call(call16.Authorize(id_tag="APP1"))).id_tag_info["status"] == "Accepted"
            assert not [r for r in emsp.received if r[1].startswith("tokens/APP1")]
            # Refused at once: an unknown command, an unknown EVSE; malformed: 2001 naming the field.
            assert (await send("FLY_TO_MOON", {}, "x"))["result"] == "NOT_SUPPORTED"
            far = await send(
                "UNLOCK_CONNECTOR", {"location_id": "CP-1", "evse_uid": "CP-9*1", "connector_id": "1"}, "x"
            )
            assert far["result"] == "REJECTED" and "CP-9*1" in far["message"][0]["text"]
            bad = await c.post(f"{base}/START_SESSION", json={"response_url": "http://x/y", "location_id": "CP-1"})
            assert bad.json()["status_code"] == 2001 and "token" in bad.json()["status_message"]
        # The station gone: rejected at once.
        unlock = {"response_url": "http://x/y", "location_id": "CP-1", "evse_uid": "CP-1*1", "connector_id": "1"}
        offline = await c.post(f"{base}/UNLOCK_CONNECTOR", json=unlock)
        assert offline.json()["data"]["result"] == "REJECTED"
        await c.aclose()
