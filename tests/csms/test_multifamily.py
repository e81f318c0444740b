"""Multifamily garages: invitations that create the resident's token and pass, access rules answered to real
chargers (the ``ocpp`` package's ChargePoint, 1.6 renders the refusals Invalid), and a unit's statement and the
owner's reconciliation against the site meter, to the cent and the Wh."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from ocpp.v16 import call as call16
from sqlalchemy import select

from csms import cli
from csms.services import authorization, billing, multifamily, sites, stations
from csms.services.errors import Conflict, Invalid, NotFound
from csms.store.models import Transaction
from tests.csms.test_loadmgmt_gateway import connect
from tests.support.api import API_KEY, api_client

T0 = datetime(2026, 11, 10, 17, 0, tzinfo=UTC)


@pytest.fixture
def session_factory(sqlite_factory):
    return sqlite_factory


@pytest.fixture
def garage(sqlite_factory):
    with sqlite_factory() as db:
        for sid in ("hv-1", "hv-2"):
            stations.provision(db, sid, ocpp_version="1.6", password=None, now=T0)
        stations.provision(db, "street-1", ocpp_version="1.6", password=None, now=T0)
        sites.create(db, "hv-garage", now=T0, nodes=[{"id": "grid", "limit_kw": 40}],
                     evses=[{"station_id": s, "evse_id": 1, "node": "grid"} for s in ("hv-1", "hv-2")])  # fmt: skip
        multifamily.create_property(db, "hv", name="Harbour View", site_id="hv-garage", currency="EUR",
                                    billing_mode="cost_recovery", utility_rate="0.2450", margin_pct="10",
                                    vat_pct="21", tz="Europe/Amsterdam", now=T0)  # fmt: skip
        for unit in ("4B", "5A"):
            multifamily.add_unit(db, "hv", unit, now=T0)
        authorization.create(db, "STRANGER", T0)
        db.commit()
    return sqlite_factory


def test_invitations_make_tokens_and_passes_and_the_garage_lets_in_only_those(garage):
    with garage() as db:
        multifamily.invite(db, "hv", "code-resident-4B", kind="resident", unit="4B", now=T0)
        multifamily.invite(db, "hv", "code-visitor-1", kind="visitor", max_kwh=10, now=T0)
        multifamily.invite(db, "hv", "code-staff-1", kind="staff", now=T0)
        resident = multifamily.redeem(db, "code-resident-4B", holder="Ana", now=T0, new_token="MFANA")
        visitor = multifamily.redeem(db, "code-visitor-1", holder="guest", now=T0, new_token="MFGUEST")
        night = multifamily.redeem(db, "code-staff-1", holder="janitor", now=T0, id_token="STAFFCARD",
                                   new_token="unused", hours="22:00-06:00")  # fmt: skip
        assert billing.account_of_token(db, "MFANA").id == "unit:hv:4B"  # the unit pays for its resident
        assert billing.account_of_token(db, "MFGUEST") is None
        with pytest.raises(Conflict):
            multifamily.redeem(db, "code-resident-4B", holder="again", now=T0, new_token="X")
        with pytest.raises(NotFound):
            multifamily.redeem(db, "no-such-code", holder="x", now=T0, new_token="X")
        assert multifamily.access(db, resident.id_token, "hv-1", T0) is None
        assert multifamily.access(db, "STRANGER", "hv-1", T0) == "NotAtThisLocation"
        assert multifamily.access(db, "STRANGER", "street-1", T0) is None  # not a garage: no rule
        assert multifamily.access(db, visitor.id_token, "hv-2", T0 + timedelta(hours=2)) is None
        assert multifamily.access(db, visitor.id_token, "hv-2", T0 + timedelta(days=2)) == "NotAtThisTime"  # expired
        db.add(Transaction(station_id="hv-2", charger_tx_id="v1", evse_id=1, id_token="MFGUEST", started_at=T0,
                           meter_start_wh=0, meter_stop_wh=10_500, status="completed"))  # fmt: skip
        db.flush()
        assert (
            multifamily.access(db, visitor.id_token, "hv-2", T0 + timedelta(hours=3)) == "NotAtThisTime"
        )  # 10 kWh used
        evening, late = (
            datetime(2026, 11, 10, 19, tzinfo=UTC),
            datetime(2026, 11, 10, 23, tzinfo=UTC),
        )  # 20:00, 00:00 local
        assert multifamily.access(db, night.id_token, "hv-1", evening) == "NotAtThisTime"
        assert multifamily.access(db, night.id_token, "hv-1", late) is None  # a window over midnight
        with pytest.raises(Invalid, match="unit"):
            multifamily.invite(db, "hv", "c", kind="resident", now=T0)


def test_statements_and_the_reconciliation_add_up_to_the_cent_and_the_wh(garage):
    with garage() as db:
        multifamily.invite(db, "hv", "r4b", kind="resident", unit="4B", now=T0)
        multifamily.invite(db, "hv", "v1", kind="visitor", now=T0)
        multifamily.redeem(db, "r4b", holder="Ana", now=T0, new_token="MFANA")
        multifamily.redeem(db, "v1", holder="guest", now=T0, new_token="MFGUEST")
        for tx, (token, wh) in enumerate((("MFANA", 12_345), ("MFANA", 7_655), ("MFGUEST", 5_000))):
            db.add(Transaction(station_id="hv-1", charger_tx_id=str(tx), evse_id=1, id_token=token,
                               started_at=T0 + timedelta(hours=tx), meter_start_wh=1000, meter_stop_wh=1000 + wh,
                               status="completed"))  # fmt: skip
        for hour in range(10):  # the garage meter: 10 kW for ten hours = 100 kWh
            sites.record_reading(db, "hv-garage", timestamp=T0 + timedelta(hours=hour), now=T0 + timedelta(hours=hour),
                                 power_w=10_000.0)  # fmt: skip
        sites.record_reading(db, "hv-garage", timestamp=T0 + timedelta(hours=10), now=T0, power_w=0.0)
        db.commit()
        four_b = multifamily.statement(db, "hv", "4B", 2026, 11)
        assert (four_b.sessions, four_b.energy_wh) == (2, 20_000.0)
        assert four_b.total_minor == 539  # 20 kWh x 0.2450 x 1.10 = 5.39 EUR
        assert four_b.vat_minor == 94  # 21 % VAT included: 5.39 x 21/121 = 0.935 -> 0.94
        assert multifamily.statement(db, "hv", "5A", 2026, 11).total_minor == 0
        owner = multifamily.reconciliation(db, "hv", 2026, 11)
        assert (owner["billed_kwh"], owner["visitors_and_staff_kwh"], owner["site_meter_kwh"]) == (25.0, 5.0, 100.0)
        assert owner["common_area_kwh"] == 75.0 and owner["units"]["4B"]["billed"] == "5.39"


def test_a_flat_fee_with_an_allowance_bills_only_the_energy_beyond_it(garage):
    with garage() as db:
        stations.provision(db, "lofts-1", ocpp_version="1.6", password=None, now=T0)
        sites.create(db, "lofts-garage", now=T0, nodes=[{"id": "grid", "limit_kw": 20}],
                     evses=[{"station_id": "lofts-1", "evse_id": 1, "node": "grid"}])  # fmt: skip
        multifamily.create_property(db, "lofts", name="Lofts", site_id="lofts-garage", currency="EUR",
                                    billing_mode="flat_fee", utility_rate="0.30", flat_fee="25.00",
                                    allowance_kwh="100", now=T0)  # fmt: skip
        multifamily.add_unit(db, "lofts", "1", now=T0)
        multifamily.invite(db, "lofts", "l1", kind="resident", unit="1", now=T0)
        multifamily.redeem(db, "l1", holder="Bo", now=T0, new_token="MFBO")
        db.add(Transaction(station_id="lofts-1", charger_tx_id="1", evse_id=1, id_token="MFBO", started_at=T0,
                           meter_start_wh=0, meter_stop_wh=112_500, status="completed"))  # fmt: skip
        db.commit()
        lines = multifamily.statement(db, "lofts", "1", 2026, 11).lines
    assert [line["amount_minor"] for line in lines] == [2500, 375]  # 25.00 + 12.5 kWh x 0.30


@pytest.fixture
async def client(garage, gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(garage, gateway, key=None) as c:
        yield c


async def test_a_resident_invited_through_the_api_is_let_in_by_a_real_charger_and_a_stranger_is_not(client, gateway):
    key = {"Authorization": f"Bearer {API_KEY}"}
    made = await client.post("/api/v1/properties/hv/invitations", json={"kind": "resident", "unit": "5A"}, headers=key)
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    redeemed = await client.post(f"/api/v1/invitations/{code}/redeem", json={"holder": "Chen"})  # no API key
    assert redeemed.status_code == 201, redeemed.text
    token = redeemed.json()["id_token"]
    assert (await client.post(f"/api/v1/invitations/{code}/redeem", json={"holder": "Chen"})).status_code == 409
    async with connect(gateway, "hv-1") as charger:
        resident = await charger.call(call16.Authorize(id_tag=token))
        stranger = await charger.call(call16.Authorize(id_tag="STRANGER"))
        # A StartTransaction (its token read without the ORM, the garage's rule then with it) is refused alike.
        at = T0.isoformat()
        started = await charger.call(call16.StartTransaction(connector_id=1, id_tag=token, meter_start=0, timestamp=at))
        barged = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="STRANGER", meter_start=5, timestamp=at)
        )
    assert resident.id_tag_info["status"] == started.id_tag_info["status"] == "Accepted"
    assert (
        stranger.id_tag_info["status"] == barged.id_tag_info["status"] == "Invalid"
    )  # NotAtThisLocation, as 1.6 says it
    statement = await client.get("/api/v1/properties/hv/units/5A/statement?month=2026-11", headers=key)
    assert statement.status_code == 200 and statement.json()["total"] == "0.00"
    assert (await client.get("/api/v1/properties/hv/reconciliation?month=2026-13", headers=key)).status_code == 422


def _resident_sessions(db, token: str, *energies_wh: int, at: datetime = T0) -> None:
    start = len(list(db.scalars(select(Transaction.id))))
    for n, wh in enumerate(energies_wh):
        db.add(Transaction(station_id="hv-1", charger_tx_id=f"s{start + n}", evse_id=1, id_token=token,
                           started_at=at + timedelta(hours=n), meter_start_wh=0, meter_stop_wh=wh,
                           status="completed"))  # fmt: skip
    db.flush()


def test_a_statement_is_posted_to_the_units_ledger_once_and_a_corrected_one_replaces_it(garage):
    later = T0 + timedelta(days=25)
    with garage() as db:
        multifamily.invite(db, "hv", "r4b", kind="resident", unit="4B", now=T0)
        multifamily.redeem(db, "r4b", holder="Ana", now=T0, new_token="MFANA")
        _resident_sessions(db, "MFANA", 12_345, 7_655)
        found, first = multifamily.post_statement(db, "hv", "4B", 2026, 11, now=later)
        assert found.total_minor == 539 and first.total_minor == 539 and len(first.posted) == 1
        assert first.posted[0].vat_minor == 94 and first.posted[0].kind == "statement"
        _, again = multifamily.post_statement(db, "hv", "4B", 2026, 11, now=later + timedelta(hours=1))
        assert (again.posted, again.reversals) == ([], [])  # posting twice posts once
        assert billing.balance(db, "unit:hv:4B") == 539
        _resident_sessions(db, "MFANA", 10_000, at=T0 + timedelta(days=2))  # a session reported late
        corrected, fix = multifamily.post_statement(db, "hv", "4B", 2026, 11, now=later + timedelta(days=1))
        assert corrected.total_minor == 809  # 30 kWh x 0.2450 x 1.10 = 8.085 -> 8.09
        assert [r.reverses_id for r in fix.reversals] == [first.posted[0].id] and fix.total_minor == 809
        entries = sorted(billing.ledger(db, "unit:hv:4B"), key=lambda e: e.id)
        assert [(e.kind, e.amount_minor) for e in entries] == [("statement", 539), ("reversal", -539),
                                                               ("statement", 809)]  # fmt: skip
        assert first.posted[0].amount_minor == 539  # the first line stands as it was written, reversed
        assert billing.balance(db, "unit:hv:4B") == multifamily.posted_minor(db, "hv", "4B", 2026, 11) == 809
        assert entries[0].at < datetime(2026, 11, 30, 23, tzinfo=UTC)  # in its month, for the month's invoice
        invoices = billing.issue_invoices(db, 2026, 11, tz=UTC, now=datetime(2026, 12, 4, tzinfo=UTC))
        assert [(i.account_id, i.gross_minor) for i in invoices] == [("unit:hv:4B", 809)]
        with pytest.raises(Invalid, match="not begun"):
            multifamily.post_statement(db, "hv", "4B", 2027, 1, now=later)


def test_a_residents_session_at_their_garage_is_billed_by_the_statement_not_debited_on_its_own(garage):
    with garage() as db:
        stations.provision(db, "street-2", ocpp_version="1.6", password=None, now=T0)
        multifamily.invite(db, "hv", "r4b", kind="resident", unit="4B", now=T0)
        multifamily.redeem(db, "r4b", holder="Ana", now=T0, new_token="MFANA")
        assert multifamily.billed_by_statement(db, "MFANA", "hv-1")
        assert not multifamily.billed_by_statement(db, "MFANA", "street-1")  # elsewhere the account pays per session
        assert not multifamily.billed_by_statement(db, "STRANGER", "hv-1")
        assert not multifamily.billed_by_statement(db, None, "hv-1")


async def test_statements_are_posted_over_the_api_and_the_cli(garage, client):
    key = {"Authorization": f"Bearer {API_KEY}"}
    with garage() as db:
        multifamily.invite(db, "hv", "r4b", kind="resident", unit="4B", now=T0)
        multifamily.redeem(db, "r4b", holder="Ana", now=T0, new_token="MFANA")
        _resident_sessions(db, "MFANA", 20_000)
        db.commit()
    url = "/api/v1/properties/hv/units/4B/statement/posting?month=2026-11"
    first = await client.post(url, headers=key)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["statement_total"], body["ledger_total"], body["changed"]) == ("5.39", "5.39", True)
    second = (await client.post(url, headers=key)).json()
    assert second["changed"] is False and second["posted_entry_ids"] == []
    ledger = (await client.get("/api/v1/accounts/unit:hv:4B/ledger", headers=key)).json()
    assert [(e["kind"], e["amount"], e["reference"]) for e in ledger] == [("statement", "5.39",
                                                                           "statement:hv:4B:2026-11")]  # fmt: skip
    assert (await client.post(url.replace("2026-11", "2026-13"), headers=key)).status_code == 422
    assert (await client.post(url.replace("4B", "9Z"), headers=key)).status_code == 404
    with garage() as db:
        url_db = str(db.get_bind().url)
        _resident_sessions(db, "MFANA", 10_000, at=T0 + timedelta(days=1))
        db.commit()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["properties", "statements", "hv", "--month", "2026-11", "--post",
                         "--database-url", url_db]) == 0  # fmt: skip
    rows = {line.split()[0]: line.split() for line in out.getvalue().splitlines() if line[:2] in ("4B", "5A")}
    assert rows["4B"][1:] == ["2", "30.000", "8.09", "EUR", "8.09", "EUR", "corrected"]  # the late session
    assert rows["5A"][-1] == "unchanged"
    with garage() as db:
        assert billing.balance(db, "unit:hv:4B") == 809 and billing.balance(db, "unit:hv:5A") == 0
        assert sorted(e.kind for e in billing.ledger(db, "unit:hv:4B")) == ["reversal", "statement", "statement"]
