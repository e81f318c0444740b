"""The chargetwin operator turns a case's ReserveNow (any version, its id ignored) into a request for a
reservation: chargetwin chooses the id."""

from __future__ import annotations

from simulator.operators.chargetwin import reservation_body


def test_the_chargetwin_operator_asks_for_a_reservation_without_the_cases_id():
    v16 = {"connectorId": 0, "expiryDate": "2026-12-04T18:00:00Z", "idTag": "T", "reservationId": 4711}
    assert reservation_body(v16) == {"id_token": "T", "expires_at": "2026-12-04T18:00:00Z", "evse_id": None}
    v201 = {
        "id": 9,
        "expiryDateTime": "2026-12-04T18:00:00Z",
        "idToken": {"idToken": "T", "type": "ISO14443"},
        "connectorType": "cType2",
        "groupIdToken": {"idToken": "G", "type": "Central"},
    }
    assert reservation_body(v201) == {
        "id_token": "T",
        "id_token_type": "ISO14443",
        "expires_at": "2026-12-04T18:00:00Z",
        "connector_type": "cType2",
        "group_id_token": "G",
    }
