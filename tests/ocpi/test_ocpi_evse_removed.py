"""An EVSE that moves to another location is REMOVED at the old one and live at the new, pushed and pulled alike,
over real HTTP (csms serve, the twin's eMSP on its own server); moved back, the other way round (OCPI 2.2.1
never deletes an EVSE: the location it left keeps listing it REMOVED)."""

from __future__ import annotations

import asyncio
from typing import Any

from csms.ocpi import models
from simulator.roaming.emsp import Emsp, serving
from tests.ocpi.test_ocpi_cpo import LOCATION, cpo, registered, station16, status
from tests.ocpi.test_ocpi_orgs import _cli
from tests.support.live import eventually

SITE = {"id": "central", "nodes": [{"id": "grid", "limit_kw": 100}],
        "evses": [{"station_id": "CP-1", "evse_id": 1, "node": "grid", "max_current_a": 16}]}  # fmt: skip


def _evses(locations: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    for location in locations:
        models.Location.model_validate(location)
    return {loc["id"]: [(e["uid"], e["status"]) for e in loc["evses"]] for loc in locations}


async def test_a_moved_evse_is_removed_at_the_old_location_and_live_at_the_new(database_url, capsys):
    async with cpo(database_url, sync_s=0.2) as (endpoints, client), serving(Emsp()) as emsp:
        async with station16(endpoints, client, "CP-1") as cp:
            await status(cp, 1, "Available")
        await _cli(capsys, database_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        await registered(capsys, database_url, endpoints, emsp)
        assert _evses(await emsp.pull("locations")) == {"CP-1": [("CP-1*1", "AVAILABLE")]}
        await asyncio.sleep(0.6)  # its first round records what it pulled

        def sent(after: int) -> Any:
            async def check() -> list[tuple[str, str, Any]]:
                found = emsp.pushes("locations")[after:]
                return sorted(found, key=lambda p: (p[0], p[1])) if len(found) >= 2 else []

            return check

        # Moved into the site "central" (published): REMOVED at its own location, live at central.
        assert (await client.post("/sites", json=SITE)).status_code == 201
        await _cli(capsys, database_url, "ocpi", "locations", "set", "central", *LOCATION, "--name", "Central")
        (patch, path, body), (put, where, location) = await eventually(sent(0))
        assert (patch, path, body["status"]) == ("PATCH", "locations/NL/CTW/CP-1/CP-1*1", "REMOVED")
        assert (put, where, _evses([location])) == ("PUT", "locations/NL/CTW/central",
                                                    {"central": [("CP-1*1", "AVAILABLE")]})  # fmt: skip
        assert _evses(await emsp.pull("locations")) == {"CP-1": [("CP-1*1", "REMOVED")],
                                                        "central": [("CP-1*1", "AVAILABLE")]}  # fmt: skip
        async with emsp.client() as c:
            base = emsp.cpo_endpoints["locations"]
            old = (await c.get(f"{base}/CP-1/CP-1*1")).json()["data"]
            new = (await c.get(f"{base}/central/CP-1*1")).json()["data"]
            assert (old["status"], old["last_updated"]) == ("REMOVED", body["last_updated"])
            assert new["status"] == "AVAILABLE" and new["connectors"][0]["max_amperage"] == 16
            assert old["connectors"][0]["max_amperage"] == 32  # as it was last published there
        # Moved back: live at its own location again (PUT whole), REMOVED at central.
        assert (await client.delete("/sites/central/evses/CP-1/1")).status_code == 204
        (patch, path, body), (put, where, evse) = await eventually(sent(2))
        assert (patch, path, body["status"]) == ("PATCH", "locations/NL/CTW/central/CP-1*1", "REMOVED")
        assert (put, where, evse["status"]) == ("PUT", "locations/NL/CTW/CP-1/CP-1*1", "AVAILABLE")
        models.Evse.model_validate(evse)
        assert _evses(await emsp.pull("locations")) == {"CP-1": [("CP-1*1", "AVAILABLE")],
                                                        "central": [("CP-1*1", "REMOVED")]}  # fmt: skip
        await asyncio.sleep(0.6)  # each change is sent once
        assert len(emsp.pushes("locations")) == 4
