"""BootNotification and the 1.6 StartTransaction written with Core statements (no ORM session on the way): what a
station is answered and what is stored, including in a batch where other calls have the ORM session open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from csms.domain import events as ev
from csms.ocpp import framing
from csms.ocpp.framing import CallResult
from csms.services import authorization, cdrs, stations, tariffs, transactions
from csms.services.config import CsmsConfig
from csms.services.errors import NotFound
from csms.services.live_transactions import LiveTransactions
from csms.services.uow import transaction
from csms.store import models
from tests.csms.helpers import T0, StationPair, call_frame, ts

BOOT_16 = {
    "chargePointVendor": "Acme",
    "chargePointModel": "Wallbox",
    "chargePointSerialNumber": "SN-1",
    "firmwareVersion": "1.2.3",
}


def start_16(id_tag: str = "TOKEN", meter_start: int = 1000, at: float = 0) -> dict:
    return {"connectorId": 1, "idTag": id_tag, "meterStart": meter_start, "timestamp": ts(at)}


def meter_16(tx_id: int, wh: float, at: float) -> dict:
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    return {"connectorId": 1, "transactionId": tx_id, "meterValue": [{"timestamp": ts(at), "sampledValue": sampled}]}


def with_token(pair: StationPair, token: str = "TOKEN", **fields) -> None:
    with pair.session_factory() as db:
        authorization.create(db, token, datetime.fromtimestamp(T0, UTC), **fields)
        db.commit()


@pytest.mark.parametrize(("policy", "status"), [("accept", "Accepted"), ("pending", "Pending"), ("reject", "Rejected")])
def test_a_boot_is_answered_and_stored_by_the_station_policy(session_factory, policy, status):
    pair = StationPair(session_factory, policy=policy, registration_status=None)
    answer = pair.ok("BootNotification", BOOT_16)
    assert answer["status"] == status
    (row,) = pair.rows(models.Station)
    booted = datetime.fromtimestamp(pair.now, UTC)
    assert (row.vendor, row.model, row.serial_number, row.firmware_version) == ("Acme", "Wallbox", "SN-1", "1.2.3")
    assert (row.registration_status, row.last_boot_at, row.last_seen_at) == (status, booted, booted)


def test_a_boot_of_a_station_that_is_gone_is_not_found_and_stores_nothing(session_factory):
    now = datetime.fromtimestamp(T0, UTC)
    with pytest.raises(NotFound), transaction(session_factory) as uow:
        stations.boot(uow, "nobody", ev.BootReported("Acme", "Wallbox"), now, CsmsConfig())
    with session_factory() as db:
        assert db.scalars(select(models.Station)).all() == []


def test_the_orm_copy_of_a_station_held_in_the_batch_reads_the_boot(session_factory):
    pair = StationPair(session_factory, registration_status=None)
    now = datetime.fromtimestamp(T0 + 60, UTC)
    with transaction(session_factory) as uow:
        held = uow.session.get(models.Station, "cs1")
        assert held is not None and held.vendor is None
        decision = stations.boot(uow, "cs1", ev.BootReported("Acme", "Wallbox"), now, pair.config)
        assert decision.status == "Accepted"
        assert (held.vendor, held.registration_status, held.last_boot_at) == ("Acme", "Accepted", now)


def test_a_start_is_stored_as_before_and_a_replay_gets_the_same_transaction(session_factory):
    pair = StationPair(session_factory)
    with_token(pair)
    first = pair.ok("StartTransaction", start_16())
    assert first["idTagInfo"] == {"status": "Accepted"}
    (row,) = pair.rows(models.Transaction)
    started = datetime.fromtimestamp(T0, UTC).replace(microsecond=0)
    assert row.id == first["transactionId"] and row.charger_tx_id == str(row.id)
    assert (row.station_id, row.evse_id, row.connector_id, row.id_token, row.auth_status) == (
        "cs1",
        1,
        1,
        "TOKEN",
        "Accepted",
    )
    assert (row.status, row.started_at, row.meter_start_wh, row.meter_start_at) == ("active", started, 1000, started)
    assert (row.meter_start_explicit, row.last_meter_wh, row.last_meter_at, row.offline_events) == (
        True,
        1000,
        started,
        0,
    )
    assert row.stopped_at is None and row.last_seq_no is None
    again = pair.ok("StartTransaction", start_16())  # the answer was lost: the same transaction
    assert again["transactionId"] == first["transactionId"]
    assert pair.count(models.Transaction) == 1


def test_a_start_and_its_meter_values_in_one_batch_move_its_register(session_factory):
    pair = StationPair(session_factory)
    with_token(pair)
    pair.session.receive_frame(call_frame("s", "StartTransaction", start_16()), pair.now)
    pair.commit()
    tx_id = orjson_result(pair.drain()[0])["transactionId"]
    for unique_id, wh, at in (("m1", 1500, 60), ("m2", 2500, 120)):
        pair.session.receive_frame(call_frame(unique_id, "MeterValues", meter_16(tx_id, wh, at)), pair.now)
    pair.session.receive_frame(call_frame("dup", "StartTransaction", start_16()), pair.now)
    pair.commit()
    answers = [orjson_result(frame) for frame in pair.drain()]
    assert answers[2]["transactionId"] == tx_id
    (row,) = pair.rows(models.Transaction)
    assert (row.meter_start_wh, row.last_meter_wh) == (1000, 2500)  # meterStart stays the start
    assert [s.transaction_id for s in pair.rows(models.MeterSample)] == [tx_id, tx_id]


def test_a_start_with_an_unknown_expired_or_blocked_token_is_answered_so(session_factory):
    pair = StationPair(session_factory)
    with_token(pair, "OLD", expiry=datetime.fromtimestamp(T0 - 60, UTC))
    with_token(pair, "BLOCKED", status="Blocked")
    statuses = [
        pair.ok("StartTransaction", start_16(token, at=n))["idTagInfo"]["status"]
        for n, token in enumerate(("NOBODY", "OLD", "BLOCKED"))
    ]
    assert statuses == ["Invalid", "Expired", "Blocked"]
    assert [row.auth_status for row in pair.rows(models.Transaction)] == ["Unknown", "Expired", "Blocked"]


def test_the_tariff_of_a_start_is_found_as_the_orm_found_it(session_factory):
    """The lookup on the batch's connection picks the tariff :func:`tariffs.resolve` picks (by the token's group)."""
    pair = StationPair(session_factory)
    with_token(pair, "GROUPED", group_id="FLEET")
    at = datetime.fromtimestamp(T0 - 86400, UTC)
    body = {
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]}],
    }
    with session_factory() as db:
        tariffs.put(db, "ANYONE", {"id": "ANYONE", **body}, at)
        tariffs.put(db, "FLEET", {"id": "FLEET", **body}, at)
        tariffs.set_station_default(db, "cs1", "ANYONE", at)
        db.commit()
    with session_factory() as db:
        tariffs.assign(db, "FLEET", now=at, station_id="cs1", group_id="FLEET")
        db.commit()
    now = datetime.fromtimestamp(T0, UTC)
    with transaction(session_factory, LiveTransactions()) as uow:
        assert cdrs_tariff(uow, "GROUPED") == "FLEET"
        assert cdrs_tariff(uow, "OTHER") == "ANYONE"
    with session_factory() as db:
        assert [getattr(tariffs.resolve(db, "cs1", 1, group), "id", None) for group in ("FLEET", None)] == [
            "FLEET",
            "ANYONE",
        ]
    with transaction(session_factory, LiveTransactions()) as uow:
        report = ev.TransactionStarted(1, 1, timestamp=now + timedelta(seconds=1), id_token="GROUPED", meter_start_wh=0)
        ack = transactions.start(uow, "cs1", report, now)
    assert ack.authorization is not None and ack.authorization.group_id == "FLEET"


def cdrs_tariff(uow, token: str) -> str | None:
    found = cdrs.tariff_for(uow, "cs1", 1, token)
    return None if found is None else found.id


def orjson_result(frame: str) -> dict:
    message = framing.decode(frame)
    assert isinstance(message, CallResult), message
    return message.payload
