"""The OCPI models take the example objects of the OCPI 2.2.1 specification and refuse broken ones naming the
field (the live tests validate what the CPO sends against the same models)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from csms.ocpi import models as m

ROLE = {"role": "CPO", "party_id": "EXA", "country_code": "NL", "business_details": {"name": "Example Operator"}}
# 7.3.2: the specification's credentials examples.
CREDENTIALS = [
    {"token": "ebf3b399-779f-4497-9b9d-ac6ad3cc44d2", "url": "https://example.com/ocpi/versions", "roles": [ROLE]},
    {"token": "9e80a9c4-28be-11e9-b210-d663bd873d93", "url": "https://ocpi.example.com/versions",
     "roles": [ROLE, {**ROLE, "role": "EMSP", "business_details": {"name": "Example Provider"}}]},
    {"token": "9e80ae10-28be-11e9-b210-d663bd873d93", "url": "https://example.com/ocpi/versions",
     "roles": [{**ROLE, "business_details": {"name": "Example Operator", "logo": {
         "url": "https://example.com/img/logo.jpg", "thumbnail": "https://example.com/img/logo_thumb.jpg",
         "category": "OPERATOR", "type": "jpeg", "width": 512, "height": 512}, "website": "http://example.com"}}]},
    {"token": "9e80aca8-28be-11e9-b210-d663bd873d93", "url": "https://ocpi.example.com/versions",
     "roles": [{**ROLE, "party_id": p, "business_details": {"name": n}} for p, n in
               (("EXO", "Excellent Operator"), ("PFC", "Plug Flex Charging"), ("CGP", "Charging Green Power"))]},
]  # fmt: skip
# 12.3.2.1: a simple APP_USER token and a full RFID token.
TOKENS = [
    {"country_code": "DE", "party_id": "TNM", "uid": "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1", "type": "APP_USER",
     "contract_id": "DE8ACC12E46L89", "issuer": "TheNewMotion", "valid": True, "whitelist": "ALLOWED",
     "last_updated": "2018-12-10T17:16:15Z"},
    {"country_code": "DE", "party_id": "TNM", "uid": "12345678905880", "type": "RFID", "contract_id": "DE8ACC12E46L89",
     "visual_number": "DF000-2001-8999-1", "issuer": "TheNewMotion", "group_id": "DF000-2001-8999", "valid": True,
     "whitelist": "ALLOWED", "language": "it", "default_profile_type": "GREEN",
     "energy_contract": {"supplier_name": "Greenpeace Energy eG", "contract_id": "0123456789"},
     "last_updated": "2018-12-10T17:25:10Z"},
]  # fmt: skip
CDR_TOKEN = {
    "country_code": "NL",
    "party_id": "TST",
    "uid": "123abc",
    "type": "RFID",
    "contract_id": "NL-TST-C12345678-S",
}
# 9.3.1.1: a session just started, and a short finished one.
SESSIONS = [
    {"country_code": "NL", "party_id": "STK", "id": "101", "start_date_time": "2020-03-09T10:17:09Z", "kwh": 0.0,
     "cdr_token": CDR_TOKEN, "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": "3256",
     "connector_id": "1", "currency": "EUR", "total_cost": {"excl_vat": 2.5}, "status": "PENDING",
     "last_updated": "2020-03-09T10:17:09Z"},
    {"country_code": "BE", "party_id": "BEC", "id": "101", "start_date_time": "2015-06-29T22:39:09Z",
     "end_date_time": "2015-06-29T23:50:16Z", "kwh": 41.12, "cdr_token": CDR_TOKEN, "auth_method": "WHITELIST",
     "location_id": "LOC1", "evse_uid": "3256", "connector_id": "1", "currency": "EUR",
     "charging_periods": [{"start_date_time": "2015-06-29T22:39:09Z", "dimensions": [{"type": "ENERGY", "volume": 120},
                           {"type": "MAX_CURRENT", "volume": 30}]}],
     "total_cost": {"excl_vat": 8.50, "incl_vat": 9.35}, "status": "COMPLETED", "last_updated": "2015-06-29T23:50:17Z"},
]  # fmt: skip
# 8.3.1.1: a public charging location.
CONNECTOR = {"id": "1", "standard": "IEC_62196_T2", "format": "CABLE", "power_type": "AC_3_PHASE", "max_voltage": 220,
             "max_amperage": 16, "tariff_ids": ["11"], "last_updated": "2015-03-16T10:10:02Z"}  # fmt: skip
LOCATION = {
    "country_code": "BE", "party_id": "BEC", "id": "LOC1", "publish": True, "name": "Gent Zuid",
    "address": "F.Rooseveltlaan 3A", "city": "Gent", "postal_code": "9000", "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"}, "parking_type": "ON_STREET",
    "evses": [
        {"uid": "3256", "evse_id": "BE*BEC*E041503001", "status": "AVAILABLE", "capabilities": ["RESERVABLE"],
         "connectors": [CONNECTOR, {**CONNECTOR, "id": "2", "format": "SOCKET", "tariff_ids": ["13"]}],
         "physical_reference": "1", "floor_level": "-1", "last_updated": "2015-06-28T08:12:01Z"},
        {"uid": "3257", "evse_id": "BE*BEC*E041503002", "status": "RESERVED", "capabilities": ["RESERVABLE"],
         "connectors": [{**CONNECTOR, "format": "SOCKET", "tariff_ids": ["12"]}], "physical_reference": "2",
         "floor_level": "-2", "last_updated": "2015-06-29T20:39:09Z"},
    ],
    "operator": {"name": "BeCharged"}, "time_zone": "Europe/Brussels", "last_updated": "2015-06-29T20:39:09Z",
}  # fmt: skip
RESPONSE_URL = "https://www.server.com/ocpi/emsp/2.2.1/commands/START_SESSION/1234"
COMMANDS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (m.StartSession, {"response_url": RESPONSE_URL, "token": TOKENS[1], "location_id": "LOC1", "evse_uid": "3256"}),
    (m.StopSession, {"response_url": RESPONSE_URL, "session_id": "101"}),
    (m.ReserveNow, {"response_url": RESPONSE_URL, "token": TOKENS[0], "expiry_date": "2015-06-29T23:50:16Z",
                    "reservation_id": "1234", "location_id": "LOC1"}),
    (m.CancelReservation, {"response_url": RESPONSE_URL, "reservation_id": "1234"}),
    (m.UnlockConnector, {"response_url": RESPONSE_URL, "location_id": "LOC1", "evse_uid": "3256", "connector_id": "1"}),
    (m.CommandResponse, {"result": "ACCEPTED", "timeout": 30}),
    (m.CommandResult, {"result": "EVSE_OCCUPIED", "message": [{"language": "en", "text": "occupied"}]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "example"),
    [(m.Credentials, c) for c in CREDENTIALS] + [(m.Token, t) for t in TOKENS] + [(m.Session, s) for s in SESSIONS]
    + [(m.Location, LOCATION)] + COMMANDS,
)  # fmt: skip
def test_the_specification_examples_validate(model: type[BaseModel], example: dict[str, Any]) -> None:
    parsed = model.model_validate(example)
    assert parsed.model_dump(mode="json", exclude_none=True).keys() == example.keys()


@pytest.mark.parametrize(
    ("model", "example", "field"),
    [
        (m.Credentials, {**CREDENTIALS[0], "token": "has space"}, "token"),
        (m.Credentials, {**CREDENTIALS[0], "roles": []}, "roles"),
        (m.Credentials, {**CREDENTIALS[0], "roles": [{**ROLE, "party_id": "TOOLONG"}]}, "roles.0.party_id"),
        (m.Token, {**TOKENS[0], "whitelist": "SOMETIMES"}, "whitelist"),
        (m.Token, {k: v for k, v in TOKENS[0].items() if k != "contract_id"}, "contract_id"),
        (m.Session, {**SESSIONS[0], "status": "RUNNING"}, "status"),
        (m.Location, {**LOCATION, "coordinates": {"latitude": "51", "longitude": "3.729944"}}, "coordinates.latitude"),
        (m.StartSession, {"response_url": RESPONSE_URL, "location_id": "LOC1"}, "token"),
    ],
)  # fmt: skip
def test_a_broken_object_is_refused_naming_the_field(model: type[BaseModel], example: dict[str, Any], field: str):
    with pytest.raises(ValidationError) as refused:
        model.model_validate(example)
    assert ".".join(str(p) for p in refused.value.errors()[0]["loc"]) == field
