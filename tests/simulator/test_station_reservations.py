"""The twin's reservations against the CSMS's own session (virtual time): answers per connector state, the
Reserved status, other tokens refused, the holder's transaction naming it, expiry, cancellation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from csms.ocpp.convert import format_time
from csms.services import authorization, reservations
from tests.simulator.helpers import STATION, T0
from tests.simulator.test_station_pairing import VERSIONS, make


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def reserve_now(version: str, rid: int, evse: int | None, token: str, until: float, **extra: Any) -> dict[str, Any]:
    expiry = format_time(datetime.fromtimestamp(until, UTC))
    if version == "1.6":
        return {"connectorId": evse or 0, "expiryDate": expiry, "idTag": token, "reservationId": rid, **extra}
    body: dict[str, Any] = {"id": rid, "expiryDateTime": expiry, "idToken": {"idToken": token, "type": "ISO14443"}}
    return body | ({"evseId": evse} if evse is not None else {}) | extra


def answer(pair: Any, payload: dict[str, Any]) -> str:
    pending = pair.csms_call("ReserveNow", payload)
    return str(pending.payload["status"])


def started_with(pair: Any) -> list[Any]:
    if pair.version == "1.6":
        return [c.payload.get("reservationId") for c in pair.calls("StartTransaction")]
    return [e.get("reservationId") for e in pair.tx_events() if e["eventType"] == "Started"]


def test_a_reserved_connector_refuses_other_tokens_and_its_holder_uses_it(tmp_path, version):
    pair = make(tmp_path, version, tokens={"TOKEN-OK": "Accepted", "OTHER": "Accepted"})
    assert answer(pair, reserve_now(version, 7, 1, "TOKEN-OK", pair.now + 600)) == "Accepted"
    assert pair.statuses()[-1] == "Reserved"
    pair.charger.plug_in(1, "OTHER", pair.now)
    pair.settle()
    assert pair.charger.transactions == {} and started_with(pair) == []  # the other driver cannot charge
    pair.charger.present_token(1, "TOKEN-OK", pair.now)
    pair.settle()
    assert started_with(pair) == [7]
    assert pair.charger.reservations.by_id == {}


def test_the_answer_follows_the_connector_and_connector_zero_needs_support(tmp_path):
    pair = make(tmp_path, "1.6", connectors=2, config={"ReserveConnectorZeroSupported": "false"})
    pair.charger.fault(1, "GroundFailure", pair.now)
    pair.charger.plug_in(2, None, pair.now)
    pair.settle()
    assert answer(pair, reserve_now("1.6", 1, 1, "TOKEN-OK", pair.now + 600)) == "Faulted"
    assert answer(pair, reserve_now("1.6", 2, 2, "TOKEN-OK", pair.now + 600)) == "Occupied"
    assert answer(pair, reserve_now("1.6", 3, 9, "TOKEN-OK", pair.now + 600)) == "Rejected"
    assert answer(pair, reserve_now("1.6", 4, None, "TOKEN-OK", pair.now + 600)) == "Rejected"


def test_any_evse_takes_a_free_one_of_the_wanted_type_and_expiry_frees_it(tmp_path):
    pair = make(tmp_path, "2.0.1", connectors=2)
    assert answer(pair, reserve_now("2.0.1", 5, None, "TOKEN-OK", pair.now + 60, connectorType="cCCS2")) == "Rejected"
    assert answer(pair, reserve_now("2.0.1", 5, None, "TOKEN-OK", pair.now + 60, connectorType="cType2")) == "Accepted"
    assert answer(pair, reserve_now("2.0.1", 6, None, "TOKEN-OK", pair.now + 60)) == "Accepted"
    assert answer(pair, reserve_now("2.0.1", 8, None, "TOKEN-OK", pair.now + 60)) == "Occupied"
    assert pair.statuses(1)[-1] == pair.statuses(2)[-1] == "Reserved"
    pair.run(61)
    updates = [c.payload for c in pair.calls("ReservationStatusUpdate")]
    assert sorted(u["reservationId"] for u in updates) == [5, 6]
    assert {u["reservationUpdateStatus"] for u in updates} == {"Expired"}
    assert pair.statuses(1)[-1] == pair.statuses(2)[-1] == "Available"


def test_cancel_frees_the_connector_and_an_unknown_id_is_rejected(tmp_path, version):
    pair = make(tmp_path, version)
    answer(pair, reserve_now(version, 11, 1, "TOKEN-OK", pair.now + 600))
    assert pair.csms_call("CancelReservation", {"reservationId": 12}).payload == {"status": "Rejected"}
    assert pair.csms_call("CancelReservation", {"reservationId": 11}).payload == {"status": "Accepted"}
    assert pair.statuses()[-2:] == ["Reserved", "Available"]


def test_a_fault_removes_the_reservation_with_a_status_update(tmp_path):
    pair = make(tmp_path, "2.0.1")
    answer(pair, reserve_now("2.0.1", 21, 1, "TOKEN-OK", pair.now + 600))
    pair.charger.fault(1, "GroundFailure", pair.now)
    pair.settle()
    assert [c.payload for c in pair.calls("ReservationStatusUpdate")] == [
        {"reservationId": 21, "reservationUpdateStatus": "Removed"}
    ]


def test_the_csms_marks_its_reservation_used_by_the_transaction(tmp_path, version):
    pair = make(tmp_path, version)
    at = datetime.fromtimestamp(T0, UTC)
    with pair.db() as db:
        wanted = reservations.Wanted("TOKEN-OK", datetime.fromtimestamp(pair.now + 600, UTC), evse_id=1)
        row = reservations.create(db, STATION, wanted, at)
        row.status = reservations.ACTIVE
        rid = row.id
        db.commit()
    answer(pair, reserve_now(version, rid, 1, "TOKEN-OK", pair.now + 600))
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    (tx,) = pair.transactions()
    with pair.db() as db:
        row = reservations.get(db, rid)
        assert (row.status, row.transaction_id) == ("used", tx.id)


def test_an_unavailable_connector_loses_its_reservation_and_comes_back_available(tmp_path, version):
    pair = make(tmp_path, version)
    answer(pair, reserve_now(version, 31, 1, "TOKEN-OK", pair.now + 600))
    change = (
        {"connectorId": 1, "type": "Inoperative"}
        if version == "1.6"
        else {"evse": {"id": 1}, "operationalStatus": "Inoperative"}
    )
    pair.csms_call("ChangeAvailability", change)
    back = (
        {"connectorId": 1, "type": "Operative"}
        if version == "1.6"
        else {"evse": {"id": 1}, "operationalStatus": "Operative"}
    )
    pair.csms_call("ChangeAvailability", back)
    assert pair.statuses()[-3:] == ["Reserved", "Unavailable", "Available"]
    assert pair.charger.reservations.by_id == {}


def test_a_member_of_the_reservations_group_may_use_it(tmp_path, version):
    pair = make(tmp_path, version)
    with pair.db() as db:
        authorization.create(db, "MEMBER", datetime.fromtimestamp(T0, UTC), group_id="FLEET")
        authorization.create(db, "OUTSIDER", datetime.fromtimestamp(T0, UTC), group_id="OTHERS")
        db.commit()
    group = {"parentIdTag": "FLEET"} if version == "1.6" else {"groupIdToken": {"idToken": "FLEET", "type": "Central"}}
    assert answer(pair, reserve_now(version, 41, 1, "TOKEN-OK", pair.now + 600, **group)) == "Accepted"
    pair.charger.present_token(1, "OUTSIDER", pair.now)  # accepted by the CSMS, but not of the group
    pair.settle()
    assert pair.statuses()[-1] == "Reserved" and pair.charger.transactions == {}
    pair.charger.plug_in(1, "MEMBER", pair.now)
    pair.settle()
    assert started_with(pair) == [41]
