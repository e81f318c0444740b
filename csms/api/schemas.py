"""Request and response bodies of the HTTP API (pydantic); the OpenAPI document is generated from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from csms.ocpp.versions import Version


def _as_utc(value: datetime) -> datetime:
    """Naive input is taken as UTC; aware input is converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
#: Printable identifiers: no control characters (PostgreSQL refuses NUL), no '/' (it would break our paths).
StationId = Annotated[str, StringConstraints(min_length=1, max_length=48, pattern=r"^[^\x00-\x1f/]+$")]
TokenText = Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=r"^[^\x00-\x1f]+$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=r"^[^\x00-\x1f]+$")]
TariffRef = Annotated[str, StringConstraints(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")]

Policy = Literal["accept", "pending", "reject"]
SecurityProfile = Literal[1, 2, 3]
TokenStatus = Literal["Accepted", "Blocked", "Expired", "Invalid"]


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """A request model's examples, published in the OpenAPI (and shown by /docs and /redoc)."""
    return ConfigDict(json_schema_extra={"examples": list(bodies)})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---- stations -----------------------------------------------------------------------------------------------
class StationCreate(Strict):
    model_config = examples(
        {"id": "CP-1", "password": "s3cret-pass-0042", "ocpp_version": "2.0.1", "security_profile": 1},
        {"id": "CP-2", "password": "s3cret-pass-0043", "ocpp_version": "1.6", "security_profile": 2},
    )

    id: StationId
    password: Secret | None = Field(
        description="HTTP Basic password (profiles 1 and 2): 2.0.1 16-40 characters of passwordString, 1.6 16-20 "
        "printable characters; null: no password (profile 1 without authentication, or profile 3)"
    )
    ocpp_version: Version
    registration_policy: Policy = "accept"
    security_profile: SecurityProfile = Field(
        1, description="1 Basic auth over ws or wss; 2 wss + Basic auth; 3 wss + a client certificate naming the id"
    )


class StationUpdate(Strict):
    model_config = examples({"registration_policy": "accept"}, {"password": "n3w-pass-0043-long"})

    registration_policy: Policy | None = Field(None, description="`accept` accepts a pending auto-registered station")
    password: Secret | None = Field(None, description="a new password; send null to remove it")
    security_profile: SecurityProfile | None = Field(None, description="1, 2 or 3 (see StationCreate)")
    tariff_id: TariffRef | None = Field(
        None, description="the station's tariff for every driver (a tariff assignment; null removes it)"
    )


class PendingRegistrationOut(Out):
    station_id: str
    ocpp_version: str
    source: str | None
    attempts: int
    first_seen_at: UtcDatetime
    last_seen_at: UtcDatetime


class StationApprove(Strict):
    model_config = examples({"password": "s3cret-pass-0042", "security_profile": 1})

    password: Secret | None = Field(
        None, description="the password the station is set up with (profiles 1 and 2); never the one it offered"
    )
    security_profile: SecurityProfile = Field(1, description="1, 2 or 3 (3: a client certificate, no password)")
    ocpp_version: Version | None = Field(None, description="default: the version it connected with")


class ConnectorOut(Out):
    evse_id: int
    connector_id: int
    status: str | None
    error_code: str | None
    info: str | None
    status_at: UtcDatetime | None


class StationOut(Out):
    id: str
    ocpp_version: str
    registration_policy: str
    registration_status: str | None
    security_profile: int
    pending_security_profile: int | None = Field(
        None, description="a profile the station accepted and has not yet connected at (then it is security_profile)"
    )
    auto_registered: bool
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    connected: bool
    created_at: UtcDatetime
    last_boot_at: UtcDatetime | None
    last_seen_at: UtcDatetime | None
    tariff_id: str | None = Field(None, description="the station's tariff for every driver, when it has one")
    connectors: list[ConnectorOut]


# ---- id tokens ----------------------------------------------------------------------------------------------
class TokenCreate(Strict):
    model_config = examples({"id_token": "04A1B2C3", "status": "Accepted", "type": "ISO14443", "group_id": "residents"})

    id_token: TokenText
    status: TokenStatus = "Accepted"
    type: Label = "ISO14443"
    expiry: UtcDatetime | None = None
    group_id: TokenText | None = None


class TokenUpdate(Strict):
    model_config = examples({"status": "Blocked"}, {"expiry": "2027-01-01T00:00:00Z"})

    status: TokenStatus | None = None
    type: Label | None = None
    expiry: UtcDatetime | None = None
    group_id: TokenText | None = None


class TokenOut(Out):
    id_token: str
    status: str
    type: str = Field(validation_alias=AliasChoices("token_type", "type"))
    expiry: UtcDatetime | None
    group_id: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


# ---- plug and charge -----------------------------------------------------------------------------------------
class ContractRootIn(Strict):
    model_config = examples({"pem": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n", "kind": "MO"})

    pem: str = Field(max_length=20_000)
    kind: Literal["MO", "V2G"] = "MO"


class ContractRootOut(Out):
    fingerprint: str
    kind: str
    subject: str
    not_after: UtcDatetime
    created_at: UtcDatetime


# ---- transactions -------------------------------------------------------------------------------------------
class TransactionOut(Out):
    id: int
    station_id: str
    charger_transaction_id: str
    evse_id: int | None
    connector_id: int | None
    id_token: str | None
    auth_status: str | None
    status: str
    started_at: UtcDatetime | None
    stopped_at: UtcDatetime | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    energy_wh: float
    energy_kwh: float
    stop_reason: str | None
    offline_events: int


class SampleOut(Out):
    timestamp: UtcDatetime
    evse_id: int
    measurand: str
    phase: str | None
    location: str | None
    context: str | None
    unit: str | None
    value: float


class TransactionDetail(TransactionOut):
    samples: list[SampleOut]


# ---- calls to stations --------------------------------------------------------------------------------------
class CallErrorOut(BaseModel):
    code: str | None
    description: str | None
    details: dict[str, Any]


class DisconnectOut(BaseModel):
    """Whether the station was connected (to any node) and its connection was closed."""

    station_id: str
    disconnected: bool


class CallOut(BaseModel):
    """What became of a call: `result` (the CALLRESULT payload), `error` (the CALLERROR), `timeout` or
    `cancelled` (the station disconnected first)."""

    action: str
    message_id: str
    outcome: Literal["result", "error", "timeout", "cancelled", "pending"]
    payload: dict[str, Any] | None = None
    error: CallErrorOut | None = None


class PasswordRequest(Strict):
    """Exactly one of the two."""

    model_config = examples({"generate": True}, {"password": "n3w-pass-0043-long"})

    password: Secret | None = Field(None, description="the new password (the spec's rule for the version applies)")
    generate: bool = Field(False, description="let the CSMS generate one; it is returned once, in this answer")


class PasswordOut(BaseModel):
    call: CallOut
    adopted: bool = Field(description="the station took it: it is now the stored password")
    password: str | None = Field(None, description="the generated password (only with generate); shown once")


class ProfileRequest(Strict):
    model_config = examples(
        {"profile": 2}, {"profile": 3, "csms_url": "wss://csms.example.com:9443/ocpp", "configuration_slot": 2}
    )

    profile: SecurityProfile
    csms_url: str | None = Field(
        None,
        max_length=512,
        pattern=r"^wss?://[^\s]+$",
        description="the URL the station reconnects to (2.0.1); default: this CSMS's wss:// listener "
        "(ws:// for profile 1) on the host the request came to",
    )
    configuration_slot: int = Field(2, ge=0, le=9, description="2.0.1 network profile slot to write")


class ProfileOut(BaseModel):
    calls: list[CallOut] = Field(description="the calls sent, in order; the first one not accepted ends the list")
    pending_security_profile: int | None = Field(
        description="the profile the station took; the stored profile changes when it reconnects at it"
    )


class RemoteStartRequest(Strict):
    model_config = examples({"id_token": "04A1B2C3", "evse_id": 1})

    id_token: TokenText
    evse_id: int | None = Field(
        None,
        ge=1,
        le=1000,
        validation_alias=AliasChoices("evse_id", "connector_id"),
        description="2.0.1 evseId; 1.6 connectorId (also accepted as `connector_id`)",
    )
    id_token_type: Label = Field("ISO14443", description="2.0.1 idToken type")


class RemoteStartOut(CallOut):
    remote_start_id: int | None = Field(None, description="2.0.1 remoteStartId we sent")


class RemoteStopRequest(Strict):
    model_config = examples({"transaction_id": 42})

    transaction_id: int = Field(ge=1, le=2**31 - 1, description="our transaction id (`GET /transactions`)")


# ---- configuration, connectors, charging profiles -----------------------------------------------------------
ComponentName = Annotated[str, StringConstraints(min_length=1, max_length=50)]
VariableName = Annotated[str, StringConstraints(min_length=1, max_length=50)]


class VariableIn(Strict):
    """A 2.0.1 device-model variable (`component` required) or a 1.6 configuration key (`variable` only)."""

    component: ComponentName | None = None
    variable: VariableName
    evse_id: Annotated[int, Field(ge=0)] = 0
    instance: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None


class VariablesGetRequest(Strict):
    """The settings to read; 1.6 may leave the list empty: every key."""

    model_config = examples(
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        {"variables": [{"variable": "MeterValueSampleInterval"}]},
    )

    variables: Annotated[list[VariableIn], Field(max_length=200)] = Field(default_factory=list)


class VariableValueIn(VariableIn):
    value: Annotated[str, StringConstraints(max_length=1000)]


class VariablesSetRequest(Strict):
    model_config = examples(
        {"values": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "600"}]},
        {"values": [{"variable": "MeterValueSampleInterval", "value": "60"}]},
    )

    values: Annotated[list[VariableValueIn], Field(min_length=1, max_length=200)]


class VariableResultOut(BaseModel):
    component: str | None
    evse_id: int
    variable: str
    instance: str | None = None
    status: str
    value: str | None = None
    readonly: bool | None = None


class VariablesOut(BaseModel):
    """The station's answer per setting (`results`) and every call sent (`calls`)."""

    results: list[VariableResultOut]
    calls: list[CallOut]


class StoredVariableOut(BaseModel):
    component: str | None
    evse_id: int
    variable: str
    instance: str | None = None
    attribute: str
    value: str | None
    readonly: bool | None
    updated_at: datetime


class UnlockRequest(Strict):
    model_config = examples({"evse_id": 1})

    evse_id: Annotated[int, Field(ge=1)]
    connector_id: Annotated[int, Field(ge=1)] = 1


class ClearProfileRequest(Strict):
    """Which profiles to clear; all fields empty: every profile the station holds (except its
    ChargingStationExternalConstraints)."""

    model_config = examples({"evse_id": 1, "purpose": "TxDefaultProfile"}, {"id": 12})

    id: Annotated[int, Field(ge=0)] | None = None
    evse_id: Annotated[int, Field(ge=0)] | None = None
    purpose: Literal["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"] | None = None
    stack_level: Annotated[int, Field(ge=0)] | None = None


class CompositeScheduleRequest(Strict):
    model_config = examples({"evse_id": 1, "duration_s": 3600, "unit": "A"})

    evse_id: Annotated[int, Field(ge=0)]
    duration_s: Annotated[int, Field(ge=1, le=7 * 86400)]
    unit: Literal["A", "W"] | None = None


# ---- display messages --------------------------------------------------------------------------------------
class DisplayMessageRequest(Strict):
    """A message for the station's display; the CSMS numbers it. `transaction_id`: our transaction id (the
    message goes when that transaction ends)."""

    model_config = examples(
        {"text": "Charging at 0.35 EUR/kWh", "priority": "NormalCycle", "state": "Idle"},
        {"text": "Closed for maintenance 14:00-16:00", "priority": "AlwaysFront",
         "start": "2026-12-05T13:00:00Z", "end": "2026-12-05T15:00:00Z"},
    )  # fmt: skip

    text: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    priority: Literal["AlwaysFront", "InFront", "NormalCycle"] = "NormalCycle"
    format: Literal["ASCII", "HTML", "URI", "UTF8"] = "UTF8"
    language: Annotated[str, StringConstraints(min_length=2, max_length=8)] | None = None
    state: Literal["Charging", "Faulted", "Idle", "Unavailable"] | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    transaction_id: Annotated[int, Field(ge=1)] | None = None


class DisplayMessageOut(BaseModel):
    message_id: int
    priority: str
    state: str | None
    start: datetime | None
    end: datetime | None
    transaction_id: str | None
    text: str
    format: str
    language: str | None
    status: str
    created_at: datetime
    cleared_at: datetime | None


class DisplayMessageCallOut(BaseModel):
    """The message as stored (its `status` is the station's answer) and the call that carried it."""

    message: DisplayMessageOut
    call: CallOut


class DisplayQueryRequest(Strict):
    model_config = examples({"priority": "AlwaysFront"}, {})

    ids: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=100)] = Field(default_factory=list)
    priority: Literal["AlwaysFront", "InFront", "NormalCycle"] | None = None
    state: Literal["Charging", "Faulted", "Idle", "Unavailable"] | None = None


# ---- the device model: reports, monitors, station events -----------------------------------------------------
class BaseReportRequest(Strict):
    model_config = examples({"base": "FullInventory"})

    base: Literal["FullInventory", "ConfigurationInventory", "SummaryInventory"] = "FullInventory"


class MonitorIn(Strict):
    component: ComponentName
    variable: VariableName
    evse_id: Annotated[int, Field(ge=0)] = 0
    type: Literal["UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned"]
    value: Annotated[float, Field(allow_inf_nan=False)]
    severity: Annotated[int, Field(ge=0, le=9)] = 5
    transaction: bool = False
    id: Annotated[int, Field(ge=0)] | None = Field(None, description="the station's id of a monitor to replace")


class MonitorsRequest(Strict):
    model_config = examples(
        {"monitors": [{"component": "EVSE", "evse_id": 1, "variable": "Power", "type": "UpperThreshold",
                       "value": 7000, "severity": 4}]}
    )  # fmt: skip

    monitors: Annotated[list[MonitorIn], Field(min_length=1, max_length=100)]


class MonitorOut(BaseModel):
    monitor_id: int | None
    component: str
    evse_id: int
    variable: str
    type: str
    value: float
    severity: int
    transaction: bool
    status: str
    created_at: datetime
    cleared_at: datetime | None


class MonitorsCallOut(BaseModel):
    monitors: list[MonitorOut]
    call: CallOut


class ClearMonitorsRequest(Strict):
    model_config = examples({"ids": [1, 2]})

    ids: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=100)]


class LoggedMessageOut(BaseModel):
    """One frame of the OCPP message log (``direction``: ``in`` from the station, ``out`` from the CSMS)."""

    id: int
    direction: str
    action: str | None
    frame: str
    at: datetime


class StationEventOut(BaseModel):
    kind: str
    timestamp: datetime
    data: dict[str, Any]


class ResetRequest(Strict):
    model_config = examples({"type": "soft"})

    type: Literal["soft", "hard"] = "soft"


# ---- sites and load management ------------------------------------------------------------------------------
NodeId = Annotated[str, StringConstraints(min_length=1, max_length=48, pattern=r"^[^\x00-\x1f/]+$")]
StrategyName = Literal["none", "equal_share", "priority", "deadline", "optimal"]
Amps = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
Kilowatts = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
Phases = Annotated[str, StringConstraints(pattern=r"^(L[123]){1,3}$")]


class NodeIn(Strict):
    id: NodeId
    parent: NodeId | None = Field(None, description="null: the grid connection (exactly one node)")
    limit_kw: Kilowatts | None = None
    phase_limits_a: tuple[Amps, Amps, Amps] | None = Field(None, description="per phase L1, L2, L3 (A)")
    safety_margin_kw: Kilowatts = 0.0


class NodePut(Strict):
    model_config = examples({"parent": "grid", "limit_kw": 50, "safety_margin_kw": 2})

    parent: NodeId | None = None
    limit_kw: Kilowatts | None = None
    phase_limits_a: tuple[Amps, Amps, Amps] | None = None
    safety_margin_kw: Kilowatts = 0.0


class EvseWiring(Strict):
    model_config = examples({"node": "garage", "phases": "L1L2L3", "max_current_a": 32, "min_current_a": 6})

    node: NodeId
    phases: Phases = Field(
        "L1L2L3", description="site phases of the EVSE's L1, L2, L3: 'L2' single phase, 'L2L3L1' rotated"
    )
    max_current_a: Amps = 32.0
    min_current_a: Amps = 6.0
    fallback_current_a: Amps = Field(6.0, description="planned when the station is offline or does not answer")
    dc: bool = False
    max_power_kw: Kilowatts | None = None


class EvseIn(EvseWiring):
    model_config = examples({"station_id": "CP-1", "evse_id": 1, "node": "garage", "max_current_a": 32})

    station_id: StationId
    evse_id: int = Field(ge=1, le=1000)


class TariffPeriodIn(Strict):
    from_: Annotated[str, Field(alias="from", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    price: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, description="per kWh, from this local time")]


class UtilityTariffIn(Strict):
    """What the site pays its utility: time-of-use energy prices (each from its local time until the next) and
    a monthly demand charge on the peak. Load management plans with it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    tz: str = Field("UTC", max_length=40)
    currency: str = Field("EUR", pattern="^[A-Z]{3}$")
    periods: list[TariffPeriodIn] = Field(min_length=1, max_length=48)
    demand_charge_per_kw: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 0.0


#: An OpenADR resource id (the VTN's name for a site): printable, no slash.
OpenAdrResource = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f/]+$")]


class SiteFields(Strict):
    name: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")] | None = None
    strategy: StrategyName = "none"
    interval_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    voltage: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 230.0
    safety_margin_kw: Kilowatts = 0.0
    priority_groups: list[TokenText] = Field(default_factory=list, max_length=50)
    meter_station_id: StationId | None = Field(
        None, description="a station whose EVSE-0 MeterValues are the site meter"
    )
    meter_includes_ev: bool = False
    utility_tariff: UtilityTariffIn | None = None
    openadr_enrolled: bool = Field(
        False, description="demand response: the OpenADR VEN speaks for this site; its events lower the site's limit"
    )
    openadr_resource_id: OpenAdrResource | None = Field(
        None, description="the resource id the VTN's events name this site by (default: the site's id)"
    )


class SiteCreate(SiteFields):
    model_config = examples(
        {
            "id": "depot",
            "name": "Bus depot",
            "strategy": "equal_share",
            "interval_s": 60,
            "nodes": [{"id": "grid", "limit_kw": 400}, {"id": "garage", "parent": "grid", "limit_kw": 150}],
            "evses": [{"station_id": "CP-1", "evse_id": 1, "node": "garage", "max_current_a": 32}],
        }
    )

    id: StationId
    nodes: list[NodeIn] = Field(min_length=1, max_length=10_000)
    evses: list[EvseIn] = Field(default_factory=list, max_length=100_000)


class SiteUpdate(Strict):
    model_config = examples({"strategy": "deadline", "interval_s": 30})

    name: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")] | None = None
    strategy: StrategyName | None = None
    interval_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] | None = None
    voltage: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] | None = None
    safety_margin_kw: Kilowatts | None = None
    priority_groups: list[TokenText] | None = None
    meter_station_id: StationId | None = None
    meter_includes_ev: bool | None = None
    utility_tariff: UtilityTariffIn | None = None
    openadr_enrolled: bool | None = None
    openadr_resource_id: OpenAdrResource | None = None


class NodeOut(BaseModel):
    id: str
    parent: str | None
    limit_kw: float | None
    phase_limits_a: tuple[float, float, float] | None
    safety_margin_kw: float


class EvseOut(Out):
    station_id: str
    evse_id: int
    node: str
    phases: str
    max_current_a: float
    min_current_a: float
    fallback_current_a: float
    dc: bool
    max_power_kw: float | None


class SiteOut(Out):
    id: str
    name: str | None
    strategy: str
    interval_s: float
    voltage: float
    safety_margin_kw: float
    priority_groups: list[str]
    meter_station_id: str | None
    meter_includes_ev: bool
    utility_tariff: dict[str, Any] | None = None
    openadr_enrolled: bool = False
    openadr_resource_id: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    nodes: list[NodeOut]
    evses: list[EvseOut]


class MeterReadingIn(Strict):
    """Give the total power (`power_w` or `power_kw`) and/or the per-phase currents."""

    model_config = examples(
        {"timestamp": "2026-01-15T18:00:00Z", "power_kw": 42.5},
        {"timestamp": "2026-01-15T18:00:00Z", "currents_a": [61.0, 58.5, 60.2], "includes_ev": True},
    )

    timestamp: UtcDatetime
    power_w: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] | None = None
    power_kw: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] | None = None
    currents_a: tuple[Amps, Amps, Amps] | None = Field(None, description="L1, L2, L3 (A)")
    includes_ev: bool | None = Field(None, description="the meter sees the EVs too (default: the site's setting)")


class MeterReadingOut(Out):
    id: int
    timestamp: UtcDatetime
    source: str
    power_w: float | None
    current_l1_a: float | None
    current_l2_a: float | None
    current_l3_a: float | None
    includes_ev: bool


# ---- certificates -------------------------------------------------------------------------------------------
RootCertificateType = Literal[
    "CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate", "MORootCertificate"
]
PemText = Annotated[str, StringConstraints(min_length=1, max_length=5500, pattern=r"^-----BEGIN CERTIFICATE-----")]
HexText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9A-Fa-f]+$")]


class IssuedCertificateOut(BaseModel):
    station_id: str
    certificate_type: str
    serial: str = Field(description="lower-case hex")
    fingerprint: str = Field(description="SHA-256 of the DER certificate, hex")
    subject: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    delivery: str = Field(description="CertificateSigned: sending, Accepted, Rejected (by the station) or failed")
    revoked_at: datetime | None


class RevokedOut(IssuedCertificateOut):
    disconnected: list[str] = Field(description="stations connected with it here, now closed")


class CertificateHashData(Strict):
    hashAlgorithm: Literal["SHA256", "SHA384", "SHA512"]
    issuerNameHash: HexText
    issuerKeyHash: HexText
    serialNumber: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[0-9A-Fa-f]+$")]


class InstalledCertificateOut(BaseModel):
    certificate_type: str
    hash_data: CertificateHashData
    reported_at: datetime


class InstallCertificateRequest(Strict):
    model_config = examples(
        {
            "certificate_type": "CSMSRootCertificate",
            "certificate": "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n",
        }
    )

    certificate_type: RootCertificateType = Field(description="1.6 stations take CSMS and Manufacturer roots only")
    certificate: PemText


class DeleteCertificateRequest(Strict):
    model_config = examples(
        {
            "hash_data": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "7a7b3e4c0d5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3",
                "issuerKeyHash": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
                "serialNumber": "1a2b3c4d",
            }
        }
    )

    hash_data: CertificateHashData


class CertificateCallOut(CallOut):
    installed: list[InstalledCertificateOut] = Field(description="what the station reported installed, as stored")


class EvChargingOut(BaseModel):
    """ISO 15118 smart charging on one EVSE (2.0.1 K15–K18): the EV's needs (NotifyEVChargingNeeds), the TxProfile
    the station accepted last, and the EV's schedule (NotifyEVChargingSchedule) with the CSMS's verdict."""

    model_config = ConfigDict(from_attributes=True)

    evse_id: int
    transaction_id: str | None
    needs: dict[str, Any] | None
    needs_at: datetime | None
    profile: dict[str, Any] | None
    profile_at: datetime | None
    ev_schedule: dict[str, Any] | None
    ev_schedule_at: datetime | None
    ev_schedule_status: str | None
    ev_schedule_reason: str | None


# ---- reservations -------------------------------------------------------------------------------------------
class ReservationRequest(Strict):
    """Exactly one of `expires_at` and `valid_for_s`. No id: the CSMS chooses the reservation's id."""

    model_config = examples(
        {"id_token": "04A1B2C3", "evse_id": 1, "valid_for_s": 1800},
        {"id_token": "04A1B2C3", "connector_type": "cType2", "expires_at": "2026-12-04T18:00:00Z"},
    )

    id_token: TokenText
    id_token_type: Label = Field("ISO14443", description="2.0.1 idToken type")
    evse_id: int | None = Field(
        None,
        ge=0,
        le=1000,
        validation_alias=AliasChoices("evse_id", "connector_id"),
        description="2.0.1 evseId; 1.6 connectorId (also accepted as `connector_id`); absent or 0: any",
    )
    connector_type: Label | None = Field(None, description="2.0.1 connectorType (e.g. cType2, cCCS2)")
    group_id_token: TokenText | None = Field(None, description="2.0.1 groupIdToken; 1.6 parentIdTag")
    expires_at: UtcDatetime | None = None
    valid_for_s: float | None = Field(None, gt=0, le=7 * 86400, description="seconds from now")

    @model_validator(mode="after")
    def _one_expiry(self) -> ReservationRequest:
        if (self.expires_at is None) == (self.valid_for_s is None):
            raise ValueError("give exactly one of expires_at and valid_for_s")
        return self


class ReservationOut(BaseModel):
    id: int = Field(description="the reservationId the CSMS chose and sent")
    station_id: str
    evse_id: int | None = Field(description="1.6 connector / 2.0.1 EVSE; null: any")
    connector_type: str | None
    id_token: str
    id_token_type: str
    group_id: str | None
    expires_at: datetime
    status: str = Field(
        description="pending, active, used, cancelled, expired, removed, failed, or the station's refusal "
        "(rejected, faulted, occupied, unavailable)"
    )
    created_at: datetime
    ended_at: datetime | None
    transaction_id: int | None = Field(description="our id of the transaction that used it")
    detail: str | None


class ReservationCallOut(BaseModel):
    """The station's answer to ReserveNow / CancelReservation, and the reservation as now stored."""

    call: CallOut
    reservation: ReservationOut
