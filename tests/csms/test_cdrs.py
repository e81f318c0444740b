"""Cost while charging and the CDR at the end, over real WebSockets with the ``ocpp`` package's own ChargePoint
(it validates our answers with its schemas): the issue's tariff (0.30/kWh + 2.00/h after a 60-minute grace +
1.00 flat, VAT 20 %) priced to the cent, the ledger debited once, and sessions that cross a tariff change or
local midnight split into charging periods."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy import select

from csms.api.routes.tariffs import EXAMPLE
from csms.services import authorization, billing, cdrs, stations, tariffs
from csms.services.config import CsmsConfig
from csms.store import models
from tests.csms.test_ocpp_chargepoint import charger
from tests.support.api import api_client


def _iso(at: datetime) -> str:
    return at.isoformat()


def _set_up(session_factory, station_id: str, version: str, *, tariff: dict[str, Any] = EXAMPLE) -> None:
    now = datetime.now(UTC)
    with session_factory() as db:
        stations.provision(db, station_id, ocpp_version=version, password=None, now=now)
        authorization.create(db, "DRIVER", now, group_id="members")
        authorization.create(db, "NOBODY-PAYS", now)
        billing.create_account(db, "acct-1", kind="driver", name="D", billing="postpaid", currency="EUR", now=now)
        billing.link_token(db, "acct-1", "DRIVER")
        tariffs.put(db, tariff["id"], tariff, now - timedelta(days=1))
        tariffs.assign(db, tariff["id"], now=now, station_id=station_id)
        db.commit()


def _energy(wh: float) -> list[dict[str, Any]]:
    return [{"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]


def _event(kind: str, seq: int, at: datetime, wh: float, trigger: str, **extra: Any) -> call201.TransactionEvent:
    info = {"transaction_id": "tx-1", **extra.pop("info", {})}
    return call201.TransactionEvent(
        event_type=kind,
        timestamp=_iso(at),
        trigger_reason=trigger,
        seq_no=seq,
        transaction_info=info,
        meter_value=[{"timestamp": _iso(at), "sampled_value": _energy(wh)}],
        **extra,
    )


async def test_a_201_session_is_told_its_cost_and_closes_with_a_cdr_to_the_cent(session_factory, gateway):
    _set_up(session_factory, "cp-cost", "2.0.1")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=150)
    async with charger(gateway, "cp-cost", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"))
        authorized = await cp.call(call201.Authorize(id_token={"id_token": "DRIVER", "type": "ISO14443"}))
        assert authorized.id_token_info["status"] == "Accepted"
        text = authorized.id_token_info["personal_message"]["content"]
        assert "0.30 EUR/kWh" in text and "1.00 EUR per session" in text

        token = {"id_token": "DRIVER", "type": "ISO14443"}
        started = await cp.call(
            _event(
                "Started",
                0,
                start,
                0,
                "Authorized",
                id_token=token,
                evse={"id": 1, "connector_id": 1},
                info={"charging_state": "Charging"},
            )
        )
        assert started.id_token_info["status"] == "Accepted" and "personal_message" in started.id_token_info
        costs = []
        for minutes in (30, 60, 90, 120):
            answer = await cp.call(
                _event(
                    "Updated",
                    minutes // 30,
                    start + timedelta(minutes=minutes),
                    22_000 * minutes / 150,
                    "MeterValuePeriodic",
                )
            )
            costs.append(Decimal(str(answer.total_cost)))
        # 1.00 + 0.30/kWh so far (+ 2.00/h after the first hour), incl. 20 % VAT
        assert costs == [Decimal("2.78"), Decimal("4.37"), Decimal("7.15"), Decimal("9.94")]

        stop = start + timedelta(minutes=150)
        ended = _event("Ended", 5, stop, 22_000, "StopAuthorized", info={"stopped_reason": "Local"})
        final = await cp.call(ended)
        assert Decimal(str(final.total_cost)) == Decimal("12.72")  # 10.60 excl.: 1.00 + 22 x 0.30 + 1.5 h x 2.00
        again = await cp.call(ended)  # a replay is answered as the first one
        assert Decimal(str(again.total_cost)) == Decimal("12.72")

    with session_factory() as db:
        (tx,) = db.scalars(select(models.Transaction)).all()
        entries = billing.ledger(db, "acct-1")
        assert [(e.kind, e.amount_minor, e.vat_minor) for e in entries if e.kind == "charge"] == [("charge", 1272, 212)]
    async with api_client(session_factory, gateway) as api:
        cdr = (await api.get(f"/api/v1/transactions/{tx.id}/cdr")).json()
    assert cdr["id"] == f"CDR-{tx.id}" and cdr["currency"] == "EUR"
    assert cdr["cdr_token"]["uid"] == "DRIVER" and cdr["cdr_token"]["type"] == "RFID"  # an ISO 14443 card
    assert cdr["total_cost"] == {"excl_vat": 10.6, "incl_vat": 12.72}
    assert cdr["total_energy"] == 22 and cdr["total_time"] == 2.5 and cdr["total_parking_time"] == 0
    assert cdr["total_fixed_cost"] == {"excl_vat": 1, "incl_vat": 1.2}
    assert cdr["tariffs"][0]["id"] == "STANDARD" and cdr["tariff_version"] == 1
    periods = cdr["charging_periods"]
    assert [p["dimensions"] for p in periods] == [
        [{"type": "ENERGY", "volume": 8.8}, {"type": "TIME", "volume": 1}],
        [{"type": "ENERGY", "volume": 13.2}, {"type": "TIME", "volume": 1.5}],
    ]  # the grace hour, then the hours that cost time


async def test_parking_time_no_tariff_and_a_running_session_over_16(session_factory, gateway):
    idle_fee = copy.deepcopy(EXAMPLE) | {"id": "IDLE"}
    idle_fee["elements"].append(
        {"price_components": [{"type": "PARKING_TIME", "price": "6.00", "vat": "20", "step_size": 60}]}
    )
    _set_up(session_factory, "cp16-cost", "1.6", tariff=idle_fee)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    async with charger(gateway, "cp16-cost", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER", meter_start=5_000, timestamp=_iso(start))
        )
        tx_id = started.transaction_id
        async with api_client(session_factory, gateway) as api:
            running = await api.get(f"/api/v1/transactions/{tx_id}/cdr")
            assert running.status_code == 404 and "still running" in running.json()["detail"]
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging", timestamp=_iso(start))
        )
        for minutes, wh in ((30, 8_000), (60, 15_000)):
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=tx_id,
                    meter_value=[
                        {
                            "timestamp": _iso(start + timedelta(minutes=minutes)),
                            "sampled_value": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}],
                        }
                    ],
                )
            )
        await cp.call(
            call16.StatusNotification(
                connector_id=1,
                error_code="NoError",
                status="SuspendedEV",
                timestamp=_iso(start + timedelta(minutes=60)),
            )
        )
        await cp.call(
            call16.StopTransaction(transaction_id=tx_id, meter_stop=15_000, timestamp=_iso(start + timedelta(hours=2)))
        )
        # A session of a token in no tariff's reach: none applies at this station without the assignment.
        with session_factory() as db:
            tariffs.unassign(db, tariffs.assignments(db)[0].id)
            db.commit()
        other = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="NOBODY-PAYS", meter_start=15_000, timestamp=_iso(start))
        )
        await cp.call(
            call16.StopTransaction(
                transaction_id=other.transaction_id, meter_stop=16_000, timestamp=_iso(start + timedelta(minutes=10))
            )
        )
    async with api_client(session_factory, gateway) as api:
        cdr = (await api.get(f"/api/v1/transactions/{tx_id}/cdr")).json()
        none = await api.get(f"/api/v1/transactions/{other.transaction_id}/cdr")
    assert none.status_code == 404 and "no tariff applied" in none.json()["detail"]
    # 10 kWh x 0.30 + 1.00 flat (the first hour is grace for TIME), then 1 h parked x 6.00
    assert cdr["total_energy"] == 10 and cdr["total_parking_time"] == 1
    assert cdr["total_cost"] == {"excl_vat": 10, "incl_vat": 12}
    assert [p["dimensions"][-1]["type"] for p in cdr["charging_periods"]] == ["TIME", "PARKING_TIME"]


def test_a_session_across_a_new_tariff_version_and_local_midnight_is_split(session_factory):
    """23:00-01:00 in Amsterdam: the night rate (from 00:00) and a price rise set at 00:30 each start a period."""
    tz = "Europe/Amsterdam"
    start = datetime(2026, 3, 10, 22, 0, tzinfo=UTC)  # 23:00 local (CET)
    night = {
        "id": "NIGHT",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": "0.20", "step_size": 1}],
                "restrictions": {"start_time": "00:00", "end_time": "06:00"},
            },
            {"price_components": [{"type": "ENERGY", "price": "0.40", "step_size": 1}]},
        ],
    }
    dearer = copy.deepcopy(night)
    dearer["elements"][0]["price_components"][0]["price"] = "0.25"
    config = CsmsConfig(tariff_time_zone=tz)
    with session_factory() as db:
        stations.provision(db, "cp-night", ocpp_version="2.0.1", password=None, now=start)
        tariffs.put(db, "NIGHT", night, start - timedelta(days=3))
        tariffs.put(db, "NIGHT", dearer, start + timedelta(minutes=90))  # 00:30 local
        tariffs.assign(db, "NIGHT", now=start, station_id="cp-night")
        tx = models.Transaction(
            station_id="cp-night",
            charger_tx_id="n-1",
            evse_id=1,
            connector_id=1,
            status="completed",
            started_at=start,
            stopped_at=start + timedelta(hours=2),
            offline_events=0,
            meter_start_explicit=False,
        )
        db.add(tx)
        db.flush()
        for minute in range(0, 121, 15):  # 1 kWh every 15 minutes
            db.add(
                models.MeterSample(
                    station_id="cp-night",
                    transaction_id=tx.id,
                    evse_id=1,
                    timestamp=start + timedelta(minutes=minute),
                    measurand="Energy.Active.Import.Register",
                    unit="Wh",
                    location="Outlet",
                    value=1000.0 * minute / 15,
                )
            )
        row = cdrs.close(db, tx, config, start + timedelta(hours=3))
        assert row is not None
        periods = row.body["charging_periods"]
        assert [(p["start_date_time"], p["dimensions"]) for p in periods] == [
            ("2026-03-10T22:00:00Z", [{"type": "ENERGY", "volume": 4}, {"type": "TIME", "volume": 1}]),  # 0.40
            ("2026-03-10T23:00:00Z", [{"type": "ENERGY", "volume": 2}, {"type": "TIME", "volume": 0.5}]),  # night
            ("2026-03-10T23:30:00Z", [{"type": "ENERGY", "volume": 2}, {"type": "TIME", "volume": 0.5}]),  # v2
        ]
        assert Decimal(row.total_cost_excl_vat) == Decimal("2.50")  # 4 x 0.40 + 2 x 0.20 + 2 x 0.25
        assert row.tariff_version == 2 and [
            t["elements"][0]["price_components"][0]["price"] for t in row.body["tariffs"]
        ] == ["0.20", "0.25"]


def test_a_version_in_another_currency_prices_the_whole_session_in_it(session_factory):
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    euros = {
        "id": "MOVED",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": "0.40", "step_size": 1}]}],
    }
    pounds = copy.deepcopy(euros) | {"currency": "GBP"}
    pounds["elements"][0]["price_components"][0]["price"] = "0.35"
    with session_factory() as db:
        stations.provision(db, "cp-gbp", ocpp_version="2.0.1", password=None, now=start)
        tariffs.put(db, "MOVED", euros, start - timedelta(days=1))
        tariffs.put(db, "MOVED", pounds, start + timedelta(minutes=30))
        tariffs.assign(db, "MOVED", now=start, station_id="cp-gbp")
        tx = models.Transaction(
            station_id="cp-gbp",
            charger_tx_id="g-1",
            evse_id=1,
            connector_id=1,
            status="completed",
            started_at=start,
            stopped_at=start + timedelta(hours=1),
            offline_events=0,
            meter_start_explicit=False,
        )
        db.add(tx)
        db.flush()
        for minute, wh in ((0, 0.0), (60, 10_000.0)):
            db.add(
                models.MeterSample(
                    station_id="cp-gbp",
                    transaction_id=tx.id,
                    evse_id=1,
                    unit="Wh",
                    timestamp=start + timedelta(minutes=minute),
                    location="Outlet",
                    measurand="Energy.Active.Import.Register",
                    value=wh,
                )
            )
        row = cdrs.close(db, tx, CsmsConfig(), start + timedelta(hours=2))
        assert row is not None and row.currency == "GBP" and row.total_cost_excl_vat == "3.50"


def test_a_meter_that_runs_backwards_never_lowers_the_cost_and_the_cdr_says_why(session_factory):
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    per_kwh = {
        "id": "KWH",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": "0.50", "step_size": 1}]}],
    }
    with session_factory() as db:
        stations.provision(db, "cp-back", ocpp_version="2.0.1", password=None, now=start)
        tariffs.put(db, "KWH", per_kwh, start - timedelta(days=1))
        tariffs.assign(db, "KWH", now=start, station_id="cp-back")
        tx = models.Transaction(
            station_id="cp-back",
            charger_tx_id="b-1",
            evse_id=1,
            connector_id=1,
            status="completed",
            started_at=start,
            stopped_at=start + timedelta(minutes=30),
            offline_events=0,
            meter_start_explicit=False,
        )
        db.add(tx)
        db.flush()
        for minute, wh in ((0, 1000.0), (10, 3000.0), (20, 500.0), (30, 4000.0)):  # a reset to 500 at 20'
            db.add(
                models.MeterSample(
                    station_id="cp-back",
                    transaction_id=tx.id,
                    evse_id=1,
                    unit="Wh",
                    timestamp=start + timedelta(minutes=minute),
                    location="Outlet",
                    measurand="Energy.Active.Import.Register",
                    value=wh,
                )
            )
        row = cdrs.close(db, tx, CsmsConfig(), start + timedelta(hours=1))
        assert row is not None and Decimal(row.total_cost_excl_vat) == Decimal("1.50")  # 3 kWh: 1000 -> 4000
        assert any("backwards" in reason for reason in row.review_reasons)
        assert "backwards" in row.body["remark"]


async def test_a_closing_register_sent_after_the_16_stop_is_priced_and_a_changed_debit_flagged(
    session_factory, gateway
):
    per_kwh = {
        "id": "KWH",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": "1.00", "step_size": 1}]}],
    }
    _set_up(session_factory, "cp16-late", "1.6", tariff=per_kwh)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    async with charger(gateway, "cp16-late", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER", meter_start=0, timestamp=_iso(start))
        )
        tx_id = started.transaction_id
        reading = [{"value": "2500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
        at = _iso(start + timedelta(minutes=20))
        await cp.call(
            call16.MeterValues(
                connector_id=1, transaction_id=tx_id, meter_value=[{"timestamp": at, "sampled_value": reading}]
            )
        )
        stop = _iso(start + timedelta(minutes=30))
        # MicroOcpp-style: meterStop 0 ("unknown"), the closing register in a MeterValues after the stop
        await cp.call(call16.StopTransaction(transaction_id=tx_id, meter_stop=0, timestamp=stop))
        async with api_client(session_factory, gateway) as api:
            assert (await api.get(f"/api/v1/transactions/{tx_id}/cdr")).json()["total_cost"]["excl_vat"] == 2.5
        closing = [{"value": "3125", "unit": "Wh", "context": "Transaction.End"}]
        await cp.call(
            call16.MeterValues(
                connector_id=1, transaction_id=tx_id, meter_value=[{"timestamp": stop, "sampled_value": closing}]
            )
        )
    async with api_client(session_factory, gateway) as api:
        cdr = (await api.get(f"/api/v1/transactions/{tx_id}/cdr")).json()
    assert cdr["total_energy"] == 3.125 and cdr["total_cost"]["excl_vat"] == 3.13  # 3.125 x 1.00, half up
    assert cdr["review_reasons"] == ["the account was debited 2.50 EUR before this CDR changed"]
    with session_factory() as db:
        assert [e.amount_minor for e in billing.ledger(db, "acct-1") if e.kind == "charge"] == [250]
