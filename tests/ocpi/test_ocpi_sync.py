"""What the CPO sends on its own over real HTTP (csms serve, the twin's eMSP on its own server): a location whose
details change and a tariff created or changed are PUT to the eMSP's receivers (what it had when it registered is
not sent again), and the eMSP's tokens are pulled now and then, ``date_from`` the last pull."""

from __future__ import annotations

import asyncio
from typing import Any

from csms.ocpi import models
from simulator.roaming.emsp import Emsp, running_emsp
from tests.ocpi.test_ocpi_cpo import LOCATION, cli, cpo, registered
from tests.support.live import eventually


async def test_changed_locations_and_tariffs_are_put_and_tokens_pulled_since_the_last_pull(sqlite_url, capsys):
    async with cpo(sqlite_url, sync_s=0.2, token_pull_s=1.0) as (endpoints, client), running_emsp() as emsp:
        emsp.token_list = [Emsp.token("P1"), Emsp.token("P2", "NEVER")]
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *LOCATION)
        assert code == 0, err
        await registered(capsys, sqlite_url, endpoints, emsp)
        assert endpoints.ocpi_url is not None
        base = endpoints.ocpi_url.removesuffix("/versions") + "/2.2.1"
        # Pulled in full at once (never pulled before), then since the last pull.
        await eventually(lambda: _true(emsp.token_since[:1] == [None]))
        async with emsp.client() as c:
            kept = (await c.get(f"{base}/tokens/DE/EMS/P2")).json()
            assert kept["status_code"] == 1000 and kept["data"]["whitelist"] == "NEVER"
        since = await eventually(lambda: _true(emsp.token_since[1:2]))
        assert since[0] is not None and since[0].endswith("Z")
        # What the eMSP had when it registered (it pulled) is not sent again.
        await asyncio.sleep(0.6)
        assert emsp.pushes("locations") == [] and emsp.pushes("tariffs") == []
        # The location's details change: the whole Location is PUT.
        renamed = [*LOCATION, "--name", "Central station"]
        code, _, err = await asyncio.to_thread(cli, capsys, sqlite_url, "ocpi", "locations", "set", "CP-1", *renamed)
        assert code == 0, err
        [(method, path, body)] = await eventually(lambda: _true(emsp.pushes("locations")))
        assert (method, path) == ("PUT", "locations/NL/CTW/CP-1") and body["name"] == "Central station"
        models.Location.model_validate(body)
        # A tariff is created, then changed: PUT each time; unchanged, not again.
        tariff = {"currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30",
                                                                          "step_size": 1}]}]}  # fmt: skip
        assert (await client.put("/tariffs/STD", json=tariff)).status_code in (200, 201)
        [(method, path, first)] = await eventually(lambda: _true(emsp.pushes("tariffs")))
        assert (method, path, first["id"], first["country_code"]) == ("PUT", "tariffs/NL/CTW/STD", "STD", "NL")
        tariff["elements"][0]["price_components"][0]["price"] = "0.35"
        assert (await client.put("/tariffs/STD", json=tariff)).is_success
        pushed = await eventually(lambda: _true(emsp.pushes("tariffs")[1:]))
        assert float(pushed[0][2]["elements"][0]["price_components"][0]["price"]) == 0.35
        await asyncio.sleep(0.6)
        assert len(emsp.pushes("tariffs")) == 2 and len(emsp.pushes("locations")) == 1


async def _true(value: Any) -> Any:
    return value
