"""OCPI 2.2.1 objects the CPO reads (pydantic v2, the project's own: the Python OCPI libraries are pydantic v1 or
unmaintained). Field names, types and lengths follow the specification; an object that breaks them is refused
with status 2001 naming the field (:mod:`csms.ocpi.envelope`). Objects the CPO only writes are built as dicts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VERSION = "2.2.1"

CountryCode = Field(pattern=r"^[A-Z]{2}$", min_length=2, max_length=2)
PartyId = Field(pattern=r"^[A-Z0-9]{3}$", min_length=3, max_length=3)

Role = Literal["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"]
TokenType = Literal["AD_HOC_USER", "APP_USER", "OTHER", "RFID"]
Whitelist = Literal["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]


class _Object(BaseModel):
    """OCPI objects may carry fields a later minor version adds: kept, not refused."""

    model_config = ConfigDict(extra="allow")


class Image(_Object):
    url: str = Field(max_length=255)
    thumbnail: str | None = Field(None, max_length=255)
    category: str
    type: str = Field(max_length=4)
    width: int | None = None
    height: int | None = None


class BusinessDetails(_Object):
    name: str = Field(max_length=100)
    website: str | None = Field(None, max_length=255)
    logo: Image | None = None


class CredentialsRole(_Object):
    role: Role
    business_details: BusinessDetails
    party_id: str = PartyId
    country_code: str = CountryCode


class Credentials(_Object):
    #: Printable non-whitespace ASCII (U+0021 to U+007E), 7.3.1.
    token: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    url: str = Field(min_length=1, max_length=255)
    roles: list[CredentialsRole] = Field(min_length=1)


class Version(_Object):
    version: str
    url: str


class Endpoint(_Object):
    identifier: str
    role: Literal["SENDER", "RECEIVER"]
    url: str


class VersionDetails(_Object):
    version: str
    endpoints: list[Endpoint]


class EnergySource(_Object):
    source: str
    percentage: float


class EnergyContract(_Object):
    supplier_name: str = Field(max_length=64)
    contract_id: str | None = Field(None, max_length=64)


class Token(_Object):
    country_code: str = CountryCode
    party_id: str = PartyId
    uid: str = Field(min_length=1, max_length=36)
    type: TokenType
    contract_id: str = Field(min_length=1, max_length=36)
    visual_number: str | None = Field(None, max_length=64)
    issuer: str = Field(max_length=64)
    group_id: str | None = Field(None, max_length=36)
    valid: bool
    whitelist: Whitelist
    language: str | None = Field(None, min_length=2, max_length=2)
    default_profile_type: Literal["CHEAP", "FAST", "GREEN", "REGULAR"] | None = None
    energy_contract: EnergyContract | None = None
    last_updated: datetime


class TokenPatch(_Object):
    """PATCH: any of the Token's fields, ``last_updated`` always."""

    contract_id: str | None = Field(None, min_length=1, max_length=36)
    visual_number: str | None = Field(None, max_length=64)
    issuer: str | None = Field(None, max_length=64)
    group_id: str | None = Field(None, max_length=36)
    valid: bool | None = None
    whitelist: Whitelist | None = None
    language: str | None = Field(None, min_length=2, max_length=2)
    last_updated: datetime


class DisplayText(_Object):
    language: str = Field(min_length=2, max_length=2)
    text: str = Field(max_length=512)


class AuthorizationInfo(_Object):
    allowed: Literal["ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"]
    token: Token
    authorization_reference: str | None = Field(None, max_length=36)
    info: DisplayText | None = None


class _Command(_Object):
    response_url: str = Field(min_length=1, max_length=255)


class StartSession(_Command):
    token: Token
    location_id: str = Field(min_length=1, max_length=36)
    evse_uid: str | None = Field(None, max_length=36)
    connector_id: str | None = Field(None, max_length=36)
    authorization_reference: str | None = Field(None, max_length=36)


class StopSession(_Command):
    session_id: str = Field(min_length=1, max_length=36)


class ReserveNow(_Command):
    token: Token
    expiry_date: datetime
    reservation_id: str = Field(min_length=1, max_length=36)
    location_id: str = Field(min_length=1, max_length=36)
    evse_uid: str | None = Field(None, max_length=36)
    authorization_reference: str | None = Field(None, max_length=36)


class CancelReservation(_Command):
    reservation_id: str = Field(min_length=1, max_length=36)


class UnlockConnector(_Command):
    location_id: str = Field(min_length=1, max_length=36)
    evse_uid: str = Field(min_length=1, max_length=36)
    connector_id: str = Field(min_length=1, max_length=36)


# ---- objects the CPO writes (the tests validate what it sends against these) --------------------------------------
class GeoLocation(_Object):
    latitude: str = Field(pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
    longitude: str = Field(pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")


class Connector(_Object):
    id: str = Field(min_length=1, max_length=36)
    standard: str
    format: Literal["SOCKET", "CABLE"]
    power_type: Literal["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"]
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None = None
    tariff_ids: list[str] | None = None
    last_updated: datetime


class Evse(_Object):
    uid: str = Field(min_length=1, max_length=36)
    evse_id: str | None = Field(None, pattern=r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9\*]{1,30}$")
    status: Literal["AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED",
                    "RESERVED", "UNKNOWN"]  # fmt: skip
    capabilities: list[str] | None = None
    connectors: list[Connector] = Field(min_length=1)
    last_updated: datetime


class Location(_Object):
    country_code: str = CountryCode
    party_id: str = PartyId
    id: str = Field(min_length=1, max_length=36)
    publish: bool
    name: str | None = Field(None, max_length=255)
    address: str = Field(max_length=45)
    city: str = Field(max_length=45)
    postal_code: str | None = Field(None, max_length=10)
    country: str = Field(pattern=r"^[A-Z]{3}$")
    coordinates: GeoLocation
    evses: list[Evse] | None = None
    time_zone: str = Field(max_length=255)
    last_updated: datetime


class CdrToken(_Object):
    country_code: str = CountryCode
    party_id: str = PartyId
    uid: str = Field(min_length=1, max_length=36)
    type: TokenType
    contract_id: str = Field(min_length=1, max_length=36)


class Price(_Object):
    excl_vat: float
    incl_vat: float | None = None


class CdrDimension(_Object):
    type: Literal["CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT", "MAX_POWER",
                  "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME", "STATE_OF_CHARGE", "TIME"]  # fmt: skip
    volume: float


class ChargingPeriod(_Object):
    start_date_time: datetime
    dimensions: list[CdrDimension] = Field(min_length=1)
    tariff_id: str | None = Field(None, max_length=36)


class Session(_Object):
    country_code: str = CountryCode
    party_id: str = PartyId
    id: str = Field(min_length=1, max_length=36)
    start_date_time: datetime
    end_date_time: datetime | None = None
    kwh: float = Field(ge=0)
    cdr_token: CdrToken
    auth_method: Literal["AUTH_REQUEST", "COMMAND", "WHITELIST"]
    authorization_reference: str | None = Field(None, max_length=36)
    location_id: str = Field(min_length=1, max_length=36)
    evse_uid: str = Field(min_length=1, max_length=36)
    connector_id: str = Field(min_length=1, max_length=36)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: Literal["ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"]
    last_updated: datetime


class CommandResponse(_Object):
    result: Literal["NOT_SUPPORTED", "REJECTED", "ACCEPTED", "UNKNOWN_SESSION"]
    timeout: int
    message: list[DisplayText] | None = None


class CommandResult(_Object):
    result: Literal["ACCEPTED", "CANCELED_RESERVATION", "EVSE_OCCUPIED", "EVSE_INOPERATIVE", "FAILED",
                    "NOT_SUPPORTED", "REJECTED", "TIMEOUT", "UNKNOWN_RESERVATION"]  # fmt: skip
    message: list[DisplayText] | None = None
