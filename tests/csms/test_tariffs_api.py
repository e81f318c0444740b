"""Tariffs over the API: an OCPI 2.2.1 tariff stored with its price history, refused with the field named when
wrong, assigned per station and driver group, and a price quote before the session starts — the issue's example
(0.30/kWh + 2.00/h after a 60-minute grace + 1.00 flat, VAT 20 %) priced to the cent."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from csms.api.routes.tariffs import EXAMPLE
from csms.services import authorization, stations
from tests.support.api import api_client


@pytest.fixture
def provisioned(session_factory):
    now = datetime.now(UTC)
    with session_factory() as db:
        stations.provision(db, "CP-1", ocpp_version="2.0.1", password=None, now=now)
        authorization.create(db, "RES-1", now, group_id="residents")
        authorization.create(db, "GUEST-1", now)
        db.commit()
    return session_factory


async def test_tariffs_versions_assignments_and_a_quote_to_the_cent(provisioned, gateway):
    async with api_client(provisioned, gateway) as api:
        created = await api.put("/api/v1/tariffs/STANDARD", json=EXAMPLE)
        assert created.status_code == 201 and created.json()["version"] == 1
        assert (await api.put("/api/v1/tariffs/STANDARD", json=EXAMPLE)).json()["version"] == 1  # unchanged
        cheaper = copy.deepcopy(EXAMPLE) | {"id": "RESIDENTS"}
        cheaper["elements"][1]["price_components"][0]["price"] = "0.20"
        assert (await api.put("/api/v1/tariffs/RESIDENTS", json=cheaper)).status_code == 201
        raised = copy.deepcopy(EXAMPLE)
        raised["elements"][1]["price_components"][0]["price"] = "0.35"
        assert (await api.put("/api/v1/tariffs/STANDARD", json=raised)).json()["version"] == 2
        history = (await api.get("/api/v1/tariffs/STANDARD/versions")).json()
        assert [v["body"]["elements"][1]["price_components"][0]["price"] for v in history] == ["0.30", "0.35"]
        assert (await api.put("/api/v1/tariffs/STANDARD", json=EXAMPLE)).json()["version"] == 3  # back to 0.30

        everyone = {"tariff_id": "STANDARD", "station_id": "CP-1"}
        residents = {"tariff_id": "RESIDENTS", "station_id": "CP-1", "evse_id": 1, "group_id": "residents"}
        for body in (everyone, residents):
            assert (await api.post("/api/v1/tariff-assignments", json=body)).status_code == 201

        quote = "/api/v1/stations/CP-1/price-quote?kwh=22&minutes=150&time_zone=Europe/Amsterdam"
        guest = (await api.get(quote + "&id_token=GUEST-1")).json()
        assert guest["tariff_id"] == "STANDARD"
        assert guest["total_cost"] == {"excl_vat": "10.60", "incl_vat": "12.72"}  # 1.00 + 22 x 0.30 + 1.5 h x 2.00
        resident = (await api.get(quote + "&id_token=RES-1")).json()
        assert resident["tariff_id"] == "RESIDENTS" and resident["total_cost"]["excl_vat"] == "8.40"

        assert (await api.delete("/api/v1/tariffs/STANDARD")).status_code == 409  # still assigned
        assert (await api.get("/api/v1/stations/NOPE/price-quote?kwh=1&minutes=10")).status_code in (404, 422)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "EUX"}, "currency"),
        ({"elements": []}, "elements"),
    ],
)
async def test_a_wrong_tariff_is_a_422_naming_the_field(provisioned, gateway, change, field):
    async with api_client(provisioned, gateway) as api:
        refused = await api.put("/api/v1/tariffs/BAD", json=EXAMPLE | {"id": "BAD"} | change)
    assert refused.status_code == 422 and field in refused.text


async def test_a_negative_price_is_refused_with_its_path(provisioned, gateway):
    bad = copy.deepcopy(EXAMPLE)
    bad["elements"][1]["price_components"][0]["price"] = "-0.10"
    async with api_client(provisioned, gateway) as api:
        refused = await api.put("/api/v1/tariffs/STANDARD", json=bad)
    assert refused.status_code == 422 and "elements[1].price_components[0].price" in refused.text


async def test_a_station_default_tariff_is_one_patch(provisioned, gateway):
    async with api_client(provisioned, gateway) as api:
        assert (await api.put("/api/v1/tariffs/STANDARD", json=EXAMPLE)).status_code == 201
        quote = "/api/v1/stations/CP-1/price-quote?kwh=22&minutes=150&time_zone=Europe/Amsterdam"
        assert (await api.get(quote)).status_code == 422  # no tariff applies yet
        patched = await api.patch("/api/v1/stations/CP-1", json={"tariff_id": "STANDARD"})
        assert patched.status_code == 200 and patched.json()["tariff_id"] == "STANDARD"
        assert (await api.get("/api/v1/stations/CP-1")).json()["tariff_id"] == "STANDARD"
        assert (await api.get("/api/v1/stations")).json()[0]["tariff_id"] == "STANDARD"
        assert (await api.get(quote)).json()["total_cost"]["excl_vat"] == "10.60"
        [assignment] = (await api.get("/api/v1/tariff-assignments")).json()
        assert assignment["station_id"] == "CP-1" and assignment["group_id"] is None

        unknown = await api.patch("/api/v1/stations/CP-1", json={"tariff_id": "NO-SUCH"})
        assert unknown.status_code == 404 and "NO-SUCH" in unknown.text
        bad = await api.patch("/api/v1/stations/CP-1", json={"tariff_id": "has space"})
        assert bad.status_code == 422 and "tariff_id" in bad.text

        removed = await api.patch("/api/v1/stations/CP-1", json={"tariff_id": None})
        assert removed.status_code == 200 and removed.json()["tariff_id"] is None
        assert (await api.get("/api/v1/tariff-assignments")).json() == []
        assert (await api.get(quote)).status_code == 422


def test_the_cli_manages_tariffs_and_quotes(provisioned, database_url, tmp_path, capsys):
    import json

    from csms.cli import main

    database = ["--database-url", database_url]
    path = tmp_path / "standard.json"
    path.write_text(json.dumps(EXAMPLE))
    assert main(["tariffs", "put", "STANDARD", "--file", str(path), *database]) == 0
    assert "tariff STANDARD created" in capsys.readouterr().out
    raised = copy.deepcopy(EXAMPLE)
    raised["elements"][1]["price_components"][0]["price"] = "0.35"
    path.write_text(json.dumps(raised))
    assert main(["tariffs", "put", "STANDARD", "--file", str(path), *database]) == 0
    assert "now at version 2" in capsys.readouterr().out
    broken = copy.deepcopy(EXAMPLE)
    del broken["currency"]
    path.write_text(json.dumps(broken))
    assert main(["tariffs", "put", "BROKEN", "--file", str(path), *database]) == 2
    assert "currency" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["tariffs", "put", "BROKEN", "--file", str(path), *database]) == 2
    assert "not JSON" in capsys.readouterr().err

    assert main(["tariffs", "versions", "STANDARD", *database]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3  # header + two versions
    assert main(["tariffs", "show", "STANDARD", *database]) == 0
    assert json.loads(capsys.readouterr().out)["elements"][1]["price_components"][0]["price"] == "0.35"
    assert main(["tariffs", "assign", "STANDARD", "--station", "CP-1", "--group", "residents", *database]) == 0
    assert "assignment 1" in capsys.readouterr().out
    assert main(["tariffs", "assignments", *database]) == 0
    assert "residents" in capsys.readouterr().out

    start = ["--start", "2026-11-10T09:00:00+00:00", "--tz", "Europe/Amsterdam"]
    quote = ["tariffs", "quote", "CP-1", "--kwh", "22", "--minutes", "150", *start, *database]
    assert main([*quote, "--token", "GUEST-1"]) == 2  # the residents' tariff is not a guest's
    assert "no tariff applies" in capsys.readouterr().err
    assert main([*quote, "--token", "RES-1"]) == 0
    out = capsys.readouterr().out
    assert "11.70 EUR" in out and "14.04 EUR" in out  # 1.00 + 22 x 0.35 + 1.5 h x 2.00, VAT 20 %

    assert main(["tariffs", "delete", "STANDARD", *database]) == 2  # still assigned
    assert main(["tariffs", "unassign", "1", *database]) == 0
    assert main(["tariffs", "delete", "STANDARD", *database]) == 0
    capsys.readouterr()
    assert main(["tariffs", "list", *database]) == 0
    assert "STANDARD" not in capsys.readouterr().out
