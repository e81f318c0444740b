"""Billing through the API and the services: accounts and their tokens, sessions charged once with the
payment method's fee disclosed, payments and top-ups booked once per reference, reversals instead of edits,
monthly invoices numbered without gaps (JSON, PDF, CSV), and signed payment webhooks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from csms.services import billing, payments
from csms.services.errors import Conflict, Invalid
from csms.store.models import IdToken
from tests.support.api import api_client

SECRET = "bank-webhook-secret-0123456789"
NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
AMS = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def db(session_factory):
    with session_factory() as session:
        for token in ("VAN-1", "VAN-2", "RES-7"):
            session.add(IdToken(id_token=token, created_at=NOW, updated_at=NOW))
        session.commit()
        yield session


def charge(db, token, tx, gross, vat, at):
    return billing.charge_session(db, token, transaction_id=tx, gross_minor=gross, vat_minor=vat, currency="EUR",
                                  description=f"charging session {tx}", at=at, now=NOW)  # fmt: skip


def test_a_session_is_charged_once_with_its_payment_methods_fee_and_mistakes_are_reversed(db):
    billing.create_account(db, "ACME", kind="fleet", name="ACME", billing="postpaid", currency="EUR", now=NOW,
                           payment_method="card")  # fmt: skip
    billing.link_token(db, "ACME", "VAN-1")
    billing.set_fee(db, "card", "EUR", fixed_minor=25, percent="2.9")
    first = charge(db, "VAN-1", "17", 1234, 206, datetime(2026, 11, 5, tzinfo=UTC))
    assert [(e.kind, e.amount_minor) for e in first] == [("charge", 1234), ("fee", 25 + 36)]  # 2.9 % of 12.34 = 0.36
    assert first[1].description == "card processing fee (0.25 EUR + 2.9 %)"
    assert charge(db, "VAN-1", "17", 1234, 206, NOW) == first  # the same session again books nothing
    assert charge(db, "NOBODY", "18", 500, 0, NOW) == []  # a token no account pays for
    assert billing.balance(db, "ACME") == 1295
    undone = billing.reverse(db, first[0].id, reason="charged twice", now=NOW)
    assert (undone.amount_minor, undone.vat_minor, undone.reverses_id) == (-1234, -206, first[0].id)
    assert billing.balance(db, "ACME") == 61
    with pytest.raises(Conflict):
        billing.reverse(db, first[0].id, reason="again", now=NOW)
    with pytest.raises(Conflict):
        billing.reverse(db, undone.id, reason="a reversal is final", now=NOW)
    assert [e.amount_minor for e in billing.ledger(db, "ACME")] == [1234, 61, -1234]  # nothing was edited


def test_payments_and_top_ups_are_booked_once_per_reference(db):
    billing.create_account(db, "RES-7", kind="driver", name="Resident 7", billing="prepaid", currency="EUR", now=NOW)
    top_up = billing.record_credit(db, "RES-7", kind="top_up", amount_minor=5000, reference="tu-1", at=NOW, now=NOW)
    again = billing.record_credit(db, "RES-7", kind="top_up", amount_minor=5000, reference="tu-1", at=NOW, now=NOW)
    assert again.id == top_up.id and billing.balance(db, "RES-7") == -5000  # 50.00 in credit
    with pytest.raises(Conflict):
        billing.record_credit(db, "RES-7", kind="top_up", amount_minor=4000, reference="tu-1", at=NOW, now=NOW)
    billing.create_account(db, "POST", kind="driver", name="P", billing="postpaid", currency="EUR", now=NOW)
    with pytest.raises(Invalid):
        billing.record_credit(db, "POST", kind="top_up", amount_minor=100, reference="x", at=NOW, now=NOW)
    with pytest.raises(Invalid):
        billing.create_account(db, "X", kind="driver", name="X", billing="postpaid", currency="EUX", now=NOW)


def test_monthly_invoices_bill_what_is_not_invoiced_yet_numbered_without_gaps(db):
    for account in ("ACME", "BETA"):
        billing.create_account(db, account, kind="fleet", name=account, billing="postpaid", currency="EUR", now=NOW)
    billing.link_token(db, "ACME", "VAN-1")
    billing.link_token(db, "BETA", "VAN-2")
    charge(db, "VAN-1", "1", 1200, 200, datetime(2026, 10, 31, 23, 30, tzinfo=UTC))  # 1 Nov 00:30 in Amsterdam
    charge(db, "VAN-1", "2", 600, 100, datetime(2026, 11, 20, tzinfo=UTC))
    charge(db, "VAN-2", "3", 2400, 400, datetime(2026, 11, 21, tzinfo=UTC))
    charge(db, "VAN-1", "4", 999, 166, datetime(2026, 11, 30, 23, 30, tzinfo=UTC))  # 1 Dec local: next month
    issued = billing.issue_invoices(db, 2026, 11, tz=AMS, now=NOW)
    assert [(i.number, i.account_id, i.gross_minor, i.vat_minor, i.net_minor) for i in issued] == [
        ("INV-2026-000001", "ACME", 1800, 300, 1500),
        ("INV-2026-000002", "BETA", 2400, 400, 2000),
    ]
    assert billing.issue_invoices(db, 2026, 11, tz=AMS, now=NOW) == []  # nothing new to bill
    late = charge(db, "VAN-2", "5", 300, 50, datetime(2026, 11, 29, tzinfo=UTC))  # a session priced late
    assert [(i.number, i.gross_minor) for i in billing.issue_invoices(db, 2026, 11, tz=AMS, now=NOW)] == [
        ("INV-2026-000003", 300)
    ]
    assert late[0].id in {line["entry_id"] for line in billing.get_invoice(db, "INV-2026-000003").lines}
    with pytest.raises(Invalid):
        billing.issue_invoices(db, 2026, 12, tz=AMS, now=NOW)  # December has not ended


@pytest.fixture
async def client(session_factory, gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(session_factory, gateway, payment_providers=payments.payment_providers(SECRET)) as c:
        yield c


async def test_accounts_invoices_and_documents_over_the_api(client, session_factory):
    with session_factory() as db:
        db.add(IdToken(id_token="VAN-1", created_at=NOW, updated_at=NOW))
        db.commit()
    body = {"id": "ACME", "kind": "fleet", "name": "ACME Logistics", "billing": "postpaid", "currency": "EUR",
            "address": "Dock 4\n1000 AB Amsterdam", "vat_id": "NL001234567B01", "payment_method": "card"}  # fmt: skip
    assert (await client.post("/api/v1/accounts", json=body)).status_code == 201
    assert (await client.post("/api/v1/accounts", json={**body, "currency": "EUX"})).status_code == 422
    assert (await client.post("/api/v1/accounts/ACME/tokens", json={"id_token": "VAN-1"})).json()["tokens"] == ["VAN-1"]
    fee = await client.put("/api/v1/payment-fees/card/EUR", json={"fixed": "0.25", "percent": "2.9"})
    assert fee.json()["disclosed"] == "card processing fee (0.25 EUR + 2.9 %)"
    with session_factory() as db:
        charge(db, "VAN-1", "9", 1234, 206, datetime(2026, 11, 5, tzinfo=UTC))
        db.commit()
    account = (await client.get("/api/v1/accounts/ACME")).json()
    assert account["balance"] == "12.95"
    issued = await client.post("/api/v1/invoices", json={"month": "2026-11", "tz": "Europe/Amsterdam"})
    assert issued.status_code == 201, issued.text
    invoice = issued.json()[0]
    assert (invoice["number"], invoice["gross"], invoice["vat"], invoice["net"]) == (
        "INV-2026-000001",
        "12.95",
        "2.06",
        "10.89",
    )
    assert [line["kind"] for line in invoice["lines"]] == ["charge", "fee"]
    pdf = await client.get("/api/v1/invoices/INV-2026-000001/document")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert b"Invoice INV-2026-000001" in pdf.content  # the document's title
    rows = list(
        csv.DictReader(io.StringIO((await client.get("/api/v1/invoices/INV-2026-000001/document?format=csv")).text))
    )
    assert [(r["kind"], r["gross"]) for r in rows] == [("charge", "12.34"), ("fee", "0.61"), ("", "12.95")]
    payment = {"kind": "payment", "amount": "12.95", "reference": "bank #118"}
    assert (await client.post("/api/v1/accounts/ACME/credits", json=payment)).status_code == 201
    assert (await client.get("/api/v1/accounts/ACME")).json()["balance"] == "0.00"
    assert (await client.post("/api/v1/invoices", json={"month": "2026-13"})).status_code == 422


async def test_a_payment_webhook_is_booked_once_and_only_when_its_signature_verifies(client):
    body = {"id": "RES-7", "kind": "driver", "name": "Resident 7", "billing": "prepaid", "currency": "EUR"}
    await client.post("/api/v1/accounts", json=body)
    document = json.dumps(
        {
            "payments": [
                {"account_id": "RES-7", "kind": "top_up", "amount": "20.00", "currency": "EUR", "reference": "stmt-1"}
            ]
        }
    ).encode()
    signature = payments.BankTransfer(SECRET).sign(document)
    public = {"Authorization": ""}  # the provider has no API key: its signature is its credential
    forged = await client.post("/api/v1/payments/webhooks/bank_transfer", content=document,
                               headers={**public, "X-Chargetwin-Signature": "sha256=" + "0" * 64})  # fmt: skip
    assert forged.status_code == 401
    assert (await client.get("/api/v1/accounts/RES-7")).json()["balance"] == "0.00"
    for _ in range(2):  # a provider retries: the second delivery books nothing new
        booked = await client.post("/api/v1/payments/webhooks/bank_transfer", content=document,
                                   headers={**public, "X-Chargetwin-Signature": signature})  # fmt: skip
        assert booked.status_code == 200, booked.text
    assert (await client.get("/api/v1/accounts/RES-7")).json()["balance"] == "-20.00"
    assert len((await client.get("/api/v1/accounts/RES-7/ledger")).json()) == 1
    assert (await client.post("/api/v1/payments/webhooks/paypal", content=document)).status_code == 404
    incomplete = json.dumps({"payments": [{"account_id": "RES-7", "amount": "1"}]}).encode()
    signed = {"X-Chargetwin-Signature": payments.BankTransfer(SECRET).sign(incomplete)}
    refused = await client.post("/api/v1/payments/webhooks/bank_transfer", content=incomplete, headers=signed)
    assert refused.status_code == 422 and "missing field 'currency'" in refused.text


def test_the_cli_runs_accounts_and_invoices(db, database_url, tmp_path, capsys, monkeypatch):
    from csms.cli import main

    database = ["--database-url", database_url]
    assert main(["accounts", "add", "ACME", "--name", "ACME Logistics", "--kind", "fleet", *database]) == 0
    assert main(["accounts", "link", "ACME", "VAN-1", *database]) == 0
    assert main(["accounts", "link", "ACME", "NO-SUCH-TOKEN", *database]) == 2
    charge(db, "VAN-1", "77", 1500, 250, datetime(2026, 11, 10, tzinfo=UTC))
    db.commit()
    capsys.readouterr()
    assert main(["accounts", "list", *database]) == 0
    listing = capsys.readouterr().out
    assert "ACME Logistics" in listing and "15.00 EUR" in listing
    assert main(["invoices", "issue", "--month", "2026-11", "--tz", "Europe/Amsterdam", *database]) == 0
    assert "INV-" in capsys.readouterr().out
    monkeypatch.setenv("CHARGETWIN_SELLER_NAME", "Depot Energy BV")
    number = "INV-2026-000001"
    assert main(["invoices", "document", number, "--out", str(tmp_path / "i.pdf"), *database]) == 0
    pdf = (tmp_path / "i.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"Depot Energy BV" in pdf  # the seller from CHARGETWIN_SELLER_NAME
    assert main(["invoices", "document", number, "--out", str(tmp_path / "i.csv"), *database]) == 0
    assert "TOTAL" in (tmp_path / "i.csv").read_text()
