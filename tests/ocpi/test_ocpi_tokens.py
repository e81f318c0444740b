"""Tokens receiver over real HTTP: the eMSP (its own server on loopback) pushes and patches its drivers' tokens,
reads them back, cannot write another party's; a 1.6 ChargePoint on a real WebSocket presents them and the CSMS
authorises by the whitelist or, where the token says so, by asking the eMSP in real time (also with it down)."""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.v16 import call as call16

from simulator.roaming.emsp import Emsp, running_emsp
from tests.ocpi.test_ocpi_cpo import cli, cpo, registered, station16


async def authorize(cp: Any, id_tag: str) -> str:
    return (await cp.call(call16.Authorize(id_tag=id_tag))).id_tag_info["status"]


def asked(emsp: Emsp, uid: str) -> list[Any]:
    return [r for r in emsp.received if r[0] == "POST" and r[1] == f"tokens/{uid}/authorize"]


async def test_tokens_pushed_by_the_emsp_authorise_its_drivers(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1/tokens/DE/EMS"
        async with emsp.client() as c:
            for uid, whitelist in (("RF1", "ALWAYS"), ("RF2", "NEVER"), ("RF3", "ALLOWED_OFFLINE")):
                answer = await c.put(f"{base}/{uid}", json=Emsp.token(uid, whitelist))
                assert answer.json()["status_code"] == 1000, answer.text
            got = (await c.get(f"{base}/RF2", params={"type": "RFID"})).json()
            assert got["data"]["whitelist"] == "NEVER" and got["data"]["contract_id"] == "DE-EMS-CRF2"
            assert got["data"]["last_updated"] == "2026-12-04T10:00:00Z"
            # Unknown: 2004; malformed: 2001 naming the field; the URL and the body disagree: 2001.
            unknown = await c.get(f"{base}/NOPE")
            assert unknown.status_code == 404 and unknown.json()["status_code"] == 2004
            bad = await c.put(f"{base}/RF4", json={**Emsp.token("RF4"), "whitelist": "SOMETIMES"})
            assert bad.json()["status_code"] == 2001 and "whitelist" in bad.json()["status_message"]
            other = await c.put(f"{base}/RF5", json=Emsp.token("RF6"))
            assert other.json()["status_code"] == 2001
            assert (await c.get(f"{base}/RF1", params={"type": "BADGE"})).json()["status_code"] == 2001
            # Another party's codes: refused, nothing stored.
            foreign = {**Emsp.token("RF9"), "country_code": "FR", "party_id": "XYZ"}
            refused = await c.put(base.replace("DE/EMS", "FR/XYZ") + "/RF9", json=foreign)
            assert refused.status_code == 403 and refused.json()["status_code"] == 2000

            async with station16(endpoints, client, "CP-1") as cp:
                # Whitelisted (ALWAYS): accepted without asking the eMSP.
                assert await authorize(cp, "RF1") == "Accepted"
                assert asked(emsp, "RF1") == []
                # NEVER: the eMSP is asked, its answer decides.
                assert await authorize(cp, "RF2") == "Accepted"
                assert len(asked(emsp, "RF2")) == 1
                assert asked(emsp, "RF2")[0][2] == {"location_id": "CP-1"}
                emsp.authorize_answer = "BLOCKED"
                assert await authorize(cp, "RF2") == "Blocked"
                # The eMSP down: ALLOWED_OFFLINE falls back to the whitelist, NEVER is refused.
                emsp.down = True
                assert await authorize(cp, "RF3") == "Accepted"
                assert await authorize(cp, "RF2") == "Invalid"
                emsp.down = False
                # A token the eMSP invalidates by PATCH is refused; an unknown one too.
                patched = await c.patch(f"{base}/RF1", json={"valid": False, "last_updated": "2026-12-04T11:00:00Z"})
                assert patched.json()["status_code"] == 1000
                assert (await c.get(f"{base}/RF1")).json()["data"]["valid"] is False
                assert await authorize(cp, "RF1") == "Invalid"
                assert await authorize(cp, "NOBODY") == "Invalid"
                # A token that needs real-time authorisation is asked about even when not valid (12.4.5).
                await c.patch(f"{base}/RF2", json={"valid": False, "last_updated": "2026-12-04T11:00:00Z"})
                emsp.authorize_answer = "ALLOWED"
                before = len(asked(emsp, "RF2"))
                assert await authorize(cp, "RF2") == "Accepted"
                assert len(asked(emsp, "RF2")) == before + 1
                # A PATCH that breaks the token is refused; a PATCH without last_updated too.
                broken = await c.patch(f"{base}/RF1", json={"whitelist": "X", "last_updated": "2026-12-04T11:00:00Z"})
                assert broken.json()["status_code"] == 2001
                assert (await c.patch(f"{base}/RF1", json={"valid": True})).json()["status_code"] == 2001
                assert await authorize(cp, "RF1") == "Invalid"


async def test_the_cpo_pulls_every_token_of_the_emsp_page_by_page(sqlite_url, capsys):
    async with cpo(sqlite_url) as (endpoints, client), running_emsp() as emsp:
        await registered(capsys, sqlite_url, endpoints, emsp)
        emsp.token_list = [Emsp.token(f"P{i}", "ALWAYS") for i in range(5)]
        emsp.token_list.append({**Emsp.token("P9"), "whitelist": "SOMETIMES"})  # malformed
        emsp.token_list.append({**Emsp.token("P8"), "country_code": "FR", "party_id": "XYZ"})  # another party's
        code, out, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "tokens", "pull", "DE", "EMS")
        assert code == 0, err
        assert "5 token(s) kept" in out
        assert "whitelist" in err and "P8: FR-XYZ is another party's" in err
        assert emsp.token_pages == [0, 2, 4, 6]  # the first page, then each Link's next
        async with station16(endpoints, client, "CP-1") as cp:
            assert await authorize(cp, "P3") == "Accepted"
            assert await authorize(cp, "P9") == "Invalid"
        # Not registered: refused with the reason.
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "tokens", "pull", "FR", "XYZ")
        assert code == 2 and "not found" in err
