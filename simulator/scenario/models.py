"""Pydantic models of a scenario file.

Every model forbids unknown fields, so a typo is an error rather than a silently ignored key. Operator
actions and faults are discriminated unions on ``kind``: a new kind is a new model added to ``Action`` or
``Fault``. Cross-references (a fault naming a charger, a vehicle block assigned to a prefix) are checked by
``reference_problems`` after the models validate, so the loader can point at the offending line.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from csms.ocpp.versions import Version
from csms.tariffs.parse import TariffError, parse_tariff
from simulator.scenario.expect import KNOWN_CHECKS, Comparison, parse_comparison
from simulator.scenario.units import TimePoint, parse_clock, parse_duration_s, parse_session_time, parse_time_point
from simulator.station.vendors import PROFILES
from simulator.twin.catalogue import CATALOGUE, DEFAULT_MODEL
from simulator.twin.curves import TaperCurve

__all__ = [
    "Action",
    "AlertSettings",
    "BuildingLoadSpec",
    "ChangeAvailability",
    "ChargerGroup",
    "ConnectorFault",
    "CsmsCrash",
    "CsmsSettings",
    "Departure",
    "Fault",
    "FleetBlock",
    "LinkDown",
    "LoadManagement",
    "MeterFreeze",
    "PowerLoss",
    "ProvisionTokens",
    "RegisterVehicles",
    "RemoteStart",
    "RemoteStop",
    "Reset",
    "Scenario",
    "Session",
    "SessionReplay",
    "Site",
    "SocDistribution",
    "StuckAvailable",
    "Telematics",
    "TimeDistribution",
    "TwinSettings",
    "UpdateFirmware",
    "VehicleBlock",
    "reference_problems",
    "session_columns",
]

# AC above this is not a real AC connector (63 A × 3 × 230 V), so an unspecified `current` means DC.
AC_MAX_KW = 43.5
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _number_to_str(value: object) -> object:
    """YAML reads ``ocpp: 1.6`` as a float; accept it as the string it was meant to be."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _one_to_list(value: object) -> object:
    return [value] if isinstance(value, dict | str) else value


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"expected a name of letters, digits and '_' starting with a letter, got {value!r}")
    return value


def _check_check_name(value: str) -> str:
    if value not in KNOWN_CHECKS:
        known = ", ".join(sorted(KNOWN_CHECKS))
        raise ValueError(f"expected a known check ({known}), got {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration_s)]
"""Seconds; written as "13h", "30m", "90s", "1h30m" or a number of seconds."""
PositiveDuration = Annotated[float, BeforeValidator(parse_duration_s), Field(gt=0)]
When = Annotated[TimePoint, PlainValidator(parse_time_point), PlainSerializer(str)]
SessionTime = Annotated[TimePoint, PlainValidator(parse_session_time), PlainSerializer(str)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, PlainValidator(lambda v: _check_name(_as_str(v)))]
CheckName = Annotated[str, PlainValidator(lambda v: _check_check_name(_as_str(v)))]
Expectation = Annotated[Comparison, PlainValidator(parse_comparison), PlainSerializer(str)]


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- site ---------------------------------------------------------------------------------------------------
def _clock_hours(value: object) -> float:
    t = parse_clock(value)
    return t.hour + t.minute / 60.0 + t.second / 3600.0


ClockHours = Annotated[float, PlainValidator(_clock_hours)]


class BuildingLoadSpec(_Model):
    """Either a constant ``kw`` or a daily ``profile`` of ``"HH:MM": kw`` points (linear in between)."""

    kw: Annotated[float, Field(ge=0)] | None = None
    profile: dict[ClockHours, Annotated[float, Field(ge=0)]] | None = None
    noise_kw: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _one_shape(self) -> BuildingLoadSpec:
        if (self.kw is None) == (self.profile is None):
            raise ValueError("expected exactly one of 'kw' (a constant) or 'profile' (a daily profile)")
        if self.profile is not None and not self.profile:
            raise ValueError("expected at least one point in 'profile'")
        return self

    def points(self) -> tuple[tuple[float, float], ...]:
        """``(hour_of_day, kw)`` points sorted by hour."""
        if self.profile is None:
            return ((0.0, float(self.kw or 0.0)),)
        return tuple(sorted(self.profile.items()))


PhaseCurrent = Annotated[float, Field(gt=0)]


class TariffPeriod(_Model):
    from_: Annotated[str, Field(alias="from", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    price: Annotated[float, Field(ge=0.0)]


class UtilityTariff(_Model):
    """What the site pays its utility: time-of-use prices per kWh, each from its local time (the scenario's
    zone) until the next, and a demand charge per kW of the run's peak 15-minute average import."""

    currency: Annotated[str, Field(pattern="^[A-Z]{3}$")] = "EUR"
    periods: Annotated[list[TariffPeriod], Field(min_length=1)]
    demand_charge_per_kw: Annotated[float, Field(ge=0.0)] = 0.0


class Site(_Model):
    """``grid_limit_kw`` and/or ``phase_limits_a`` (the grid connection's L1, L2, L3 in A: a three-phase
    site is three limits, not one number); ``voltage`` is phase-to-neutral."""

    name: str | None = None
    utility_tariff: UtilityTariff | None = None
    grid_limit_kw: Annotated[float, Field(gt=0)] | None = None
    phase_limits_a: tuple[PhaseCurrent, PhaseCurrent, PhaseCurrent] | None = None
    voltage: Annotated[float, Field(gt=0)] = 230.0
    building_load: BuildingLoadSpec = Field(default_factory=lambda: BuildingLoadSpec(kw=0.0))


# -- chargers -----------------------------------------------------------------------------------------------
class ChargerGroup(_Model):
    """``count`` identical chargers with station ids ``{prefix}-1`` … ``{prefix}-{count}``.

    ``max_kw`` is per connector. ``current`` defaults to AC up to 43.5 kW and DC above; AC defaults to
    3 phases at 230 V per phase.
    """

    prefix: Name
    count: Annotated[int, Field(ge=1)]
    ocpp: Annotated[Version, BeforeValidator(_number_to_str)]
    vendor: str = "ChargeTwin"
    model: str | None = None
    max_kw: Annotated[float, Field(gt=0)]
    connectors: Annotated[int, Field(ge=1, le=8)] = 1
    current: Literal["AC", "DC"] | None = None
    phases: Literal[1, 3] | None = None
    voltage: Annotated[float, Field(gt=0)] | None = None
    #: Site phase of single-phase chargers: L1, L2, L3, or ``rotate`` (L1, L2, L3, L1 … across the group).
    phase: Literal["L1", "L2", "L3", "rotate"] | None = None
    password: str | None = None
    #: How the chargers connect at the start: 1 (HTTP Basic over ws://) or 2 (wss:// + HTTP Basic, the CSMS
    #: root installed when they were commissioned). Profile 3 needs a certificate the CSMS issues: reach it
    #: with the ``renew_certificate`` and ``upgrade_security_profile`` actions.
    security_profile: Literal[1, 2] = 1
    #: The firmware's treatment of charging profiles: obeys them, answers them Rejected, or accepts and
    #: ignores them (keeps drawing its rating).
    smart_charging: Literal["compliant", "reject", "ignore"] = "compliant"
    #: A payment terminal beside the RFID reader (2.0.1): guests pay by card (``pays_by_card`` vehicles), the
    #: CSMS pre-authorises an amount on the card and captures the session's cost (docs/billing.md).
    payment_terminal: bool = False
    #: The charger family whose quirks the firmware has (simulator/station/vendors.py, docs/hardware.md);
    #: it also names the vendor and model the chargers boot with unless ``vendor``/``model`` are given.
    vendor_profile: str | None = None
    #: How the firmware times its heartbeats: ``inactivity`` (the OCPP spec's HeartbeatInterval: a Heartbeat
    #: only after that long without any exchange with the CSMS) or ``periodic`` (one every interval, whatever
    #: else was sent, as many chargers do). Unset: the vendor profile's, else ``inactivity``.
    heartbeat: Literal["inactivity", "periodic"] | None = None

    @field_validator("vendor_profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in PROFILES:
            raise ValueError(f"expected a vendor profile ({', '.join(sorted(PROFILES))}), got {value!r}")
        return value

    @model_validator(mode="after")
    def _profile_speaks_the_version(self) -> ChargerGroup:
        if self.vendor_profile is None:
            return self
        profile = PROFILES[self.vendor_profile]
        if self.ocpp not in profile.versions:
            spoken = ", ".join(sorted(profile.versions))
            raise ValueError(f"vendor profile {profile.name!r} models OCPP {spoken} chargers, not {self.ocpp}")
        if "vendor" not in self.model_fields_set:
            self.vendor = profile.vendor
        if "model" not in self.model_fields_set:
            self.model = profile.model
        return self

    @model_validator(mode="after")
    def _electrical_defaults(self) -> ChargerGroup:
        if self.current is None:
            self.current = "AC" if self.max_kw <= AC_MAX_KW else "DC"
        if self.current == "DC":
            if self.phases is not None or self.voltage is not None:
                raise ValueError("'phases' and 'voltage' apply to AC chargers only (DC follows the car)")
        else:
            self.phases = 3 if self.phases is None else self.phases
            self.voltage = 230.0 if self.voltage is None else self.voltage
        if self.phase is not None and (self.current != "AC" or self.phases != 1):
            raise ValueError("'phase' applies to single-phase AC chargers only (set 'phases: 1')")
        if self.model is None:
            self.model = f"Twin-{self.current}{self.max_kw:g}"
        return self

    @property
    def station_ids(self) -> list[str]:
        return [f"{self.prefix}-{n}" for n in range(1, self.count + 1)]

    def site_phases(self, station_index: int) -> tuple[int, ...]:
        """Site phases (0 = L1) the ``station_index``-th charger (0-based) is wired to."""
        if self.current == "DC" or self.phases == 3:
            return (0, 1, 2)
        if self.phase == "rotate":
            return (station_index % 3,)
        return (("L1", "L2", "L3").index(self.phase or "L1"),)


# -- vehicles -----------------------------------------------------------------------------------------------
class NormalTime(_Model):
    mean: When
    std: Duration


class TimeDistribution(_Model):
    """Exactly one of ``between: [t1, t2]`` (uniform), ``normal: {mean, std}`` or ``at``. The twin's arrival
    generator draws from it (``simulator.scenario.to_twin`` maps it to a ``simulator.twin.specs.TimeSpec``)."""

    between: tuple[When, When] | None = None
    normal: NormalTime | None = None
    at: When | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> TimeDistribution:
        given = [k for k in ("between", "normal", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of 'between', 'normal' or 'at', got {given or 'none'}")
        return self


class Departure(TimeDistribution):
    target_soc: Fraction | None = None


class NormalSoc(_Model):
    mean: Fraction
    std: Annotated[float, Field(ge=0)]


def _fixed_soc(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"fixed": value}
    return value


class SocDistribution(_Model):
    """Exactly one of ``uniform: [lo, hi]``, ``normal: {mean, std}`` (clipped to [0, 1]) or a number. The
    twin's arrival generator draws from it (mapped to a ``simulator.twin.specs.SocSpec``)."""

    uniform: tuple[Fraction, Fraction] | None = None
    normal: NormalSoc | None = None
    fixed: Fraction | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> SocDistribution:
        given = [k for k in ("uniform", "normal", "fixed") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"expected one of 'uniform', 'normal' or a number, got {given or 'none'}")
        if self.uniform is not None and self.uniform[1] < self.uniform[0]:
            raise ValueError(f"expected uniform [low, high] with low <= high, got {list(self.uniform)}")
        return self


def _check_curve(value: list[tuple[float, float]]) -> list[tuple[float, float]]:
    TaperCurve(tuple(value))  # raises ValueError with the rule it breaks
    return value


def _check_token_template(value: str) -> str:
    try:
        value.format(n=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"expected a token template using only {{n}}, e.g. 'RES-{{n:03d}}': {exc}") from None
    return value


Curve = Annotated[list[tuple[Fraction, Fraction]], AfterValidator(_check_curve)]
TokenTemplate = Annotated[str, AfterValidator(_check_token_template)]


def _model_weights(value: object) -> object:
    return {value: 1.0} if isinstance(value, str) else value


class Telematics(_Model):
    """Each vehicle's telematics reports its state of charge to the CSMS's fleet records (``POST
    /fleet/telematics``) every ``every``, from ``before_arrival`` ahead of its arrival until it plugs in (the
    twin models no driving, so what it reports is the SoC it arrives with). Needs the vehicles registered in the
    CSMS's fleet records (a ``register_vehicles`` action)."""

    before_arrival: Duration = 3600.0
    every: PositiveDuration = 900.0


class FleetBlock(_Model):
    """``count`` vehicles sharing a model mix and arrival/departure/SoC distributions.

    ``model`` is a catalogue name or a ``{name: weight}`` mix; ``battery_kwh``, ``max_ac_kw``,
    ``max_dc_kw``, ``ac_phases`` and ``curve`` override the model. ``id_token`` is a template formatted with
    ``n`` (1-based within the block), e.g. ``"RES-{n:03d}"``. ``assign_to`` restricts the chargers (prefixes
    or station ids); ``assign`` picks among the free connectors. ``plug_and_charge``: each vehicle carries an
    ISO 15118 contract certificate whose eMAID is its ``id_token``; a 2.0.1 charger authorizes it with the
    certificate's OCSP data, without an RFID token (docs/security.md). ``iso15118``: each vehicle speaks
    ISO 15118 to a 2.0.1 charger and tells the CSMS its needs itself (NotifyEVChargingNeeds: departure, energy
    to its target, its limits), so the fleet schedule does not (docs/protocol.md). ``telematics``: each vehicle
    reports its SoC to the CSMS's fleet records before it arrives (:class:`Telematics`).
    """

    name: Name = "ev"
    count: Annotated[int, Field(ge=0)]
    model: Annotated[dict[str, Annotated[float, Field(gt=0)]], BeforeValidator(_model_weights)] = Field(
        default_factory=lambda: {DEFAULT_MODEL: 1.0}
    )
    battery_kwh: Annotated[float, Field(gt=0)] | None = None
    max_ac_kw: Annotated[float, Field(ge=0)] | None = None
    max_dc_kw: Annotated[float, Field(ge=0)] | None = None
    ac_phases: Literal[1, 3] | None = None
    curve: Curve | None = None
    arrival: TimeDistribution
    departure: Departure
    soc_on_arrival: Annotated[SocDistribution, BeforeValidator(_fixed_soc)] = Field(
        default_factory=lambda: SocDistribution(uniform=(0.2, 0.5))
    )
    target_soc: Fraction | None = None
    charge_limit_soc: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    plug_in_delay: Duration = 60.0
    id_token: TokenTemplate | None = None
    group: str | None = None
    assign_to: Annotated[list[str], BeforeValidator(_one_to_list)] | None = None
    assign: Literal["first_free", "random"] = "first_free"
    plug_and_charge: bool = False
    iso15118: bool = False
    telematics: Telematics | None = None
    #: Each driver pays by card at the charger's payment terminal (a charger group with ``payment_terminal``);
    #: ``id_token`` is then the template of the cards' references (``card_visa_{n:04d}``; one starting
    #: ``card_nofunds`` or ``card_declined`` is declined by the sandbox processor).
    pays_by_card: bool = False

    @field_validator("model")
    @classmethod
    def _known_models(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [m for m in value if m not in CATALOGUE]
        if unknown:
            known = ", ".join(repr(m) for m in CATALOGUE)
            raise ValueError(f"expected a catalogue model ({known}), got {unknown[0]!r}")
        if not value:
            raise ValueError("expected at least one model")
        return value

    @model_validator(mode="after")
    def _contracts_named(self) -> FleetBlock:
        if self.plug_and_charge and self.id_token is None:
            raise ValueError("plug_and_charge needs id_token: the template of the contracts' eMAIDs")
        if self.pays_by_card and self.id_token is None:
            raise ValueError("pays_by_card needs id_token: the template of the cards' references")
        return self

    @model_validator(mode="after")
    def _targets_agree(self) -> FleetBlock:
        a, b = self.target_soc, self.departure.target_soc
        if a is not None and b is not None and a != b:
            raise ValueError(f"target_soc given twice with different values ({a} and departure {b})")
        return self

    @property
    def resolved_target_soc(self) -> float:
        for value in (self.departure.target_soc, self.target_soc):
            if value is not None:
                return value
        return 0.8

    def token(self, n: int) -> str | None:
        return None if self.id_token is None else self.id_token.format(n=n)

    def tokens(self) -> list[str | None]:
        return [self.token(n) for n in range(1, self.count + 1)]


class Session(_Model):
    """One replayed charging session, in the shape of a Caltech ACN-Data session: the vehicle plugs in at
    ``arrival`` (ACN ``connectionTime``), unplugs at ``departure`` (``disconnectTime``) and wants
    ``energy_kwh`` (``kWhRequested``, or ``kWhDelivered`` to replay what was delivered). ``station``
    (``stationID``/``spaceID``) is a station id of the scenario; without one the vehicle takes the first
    free connector. ``max_kw`` and ``battery_kwh`` override the replay block's."""

    arrival: SessionTime = Field(validation_alias=AliasChoices("arrival", "connectionTime"))
    departure: SessionTime = Field(validation_alias=AliasChoices("departure", "disconnectTime"))
    energy_kwh: Annotated[float, Field(gt=0)] = Field(
        validation_alias=AliasChoices("energy_kwh", "kWhRequested", "kWhDelivered")
    )
    max_kw: Annotated[float, Field(gt=0)] | None = None
    station: str | None = Field(default=None, validation_alias=AliasChoices("station", "stationID", "spaceID"))
    battery_kwh: Annotated[float, Field(gt=0)] | None = None
    id_token: str | None = None


def session_columns() -> dict[str, str]:
    """Every name a session field may be given by (ACN-Data's included) → the field's own name."""
    names: dict[str, str] = {}
    for field_name, info in Session.model_fields.items():
        names[field_name] = field_name
        if isinstance(info.validation_alias, AliasChoices):
            names.update({str(alias): field_name for alias in info.validation_alias.choices})
    return names


class SessionReplay(_Model):
    """Vehicles replayed from explicit ``sessions`` (a list here, or a CSV file named by ``sessions_file``,
    relative to the scenario file, that the loader reads into ``sessions``) instead of distributions.

    Each vehicle is an ideal battery (the ``curve`` is flat unless given) of the session's ``battery_kwh``,
    else the block's, else its ``model``'s. It accepts up to ``max_kw`` (the session's, else the block's,
    else the model's AC and DC peaks) and stops when it holds its requested energy: it arrives at SoC
    ``target_soc - energy_kwh / battery_kwh`` and its charge limit is ``target_soc``.
    """

    name: Name = "ev"
    sessions: Annotated[list[Session], Field(min_length=1)]
    sessions_file: str | None = None
    model: str = DEFAULT_MODEL
    battery_kwh: Annotated[float, Field(gt=0)] | None = None
    max_kw: Annotated[float, Field(gt=0)] | None = None
    ac_phases: Literal[1, 3] | None = None
    curve: Curve | None = None
    target_soc: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    id_token: TokenTemplate | None = None
    group: str | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in CATALOGUE:
            known = ", ".join(repr(m) for m in CATALOGUE)
            raise ValueError(f"expected a catalogue model ({known}), got {value!r}")
        return value

    @property
    def count(self) -> int:
        return len(self.sessions)

    def battery_of(self, session: Session) -> float:
        return session.battery_kwh or self.battery_kwh or CATALOGUE[self.model].battery_kwh

    def tokens(self) -> list[str | None]:
        """Each session's ``id_token``, else the block's template formatted with ``n`` (1-based)."""
        template = self.id_token
        return [
            s.id_token if s.id_token is not None else (None if template is None else template.format(n=n))
            for n, s in enumerate(self.sessions, start=1)
        ]


def _vehicle_kind(value: object) -> str:
    if isinstance(value, dict):
        return "replay" if "sessions" in value or "sessions_file" in value else "fleet"
    return "replay" if isinstance(value, SessionReplay) else "fleet"


VehicleBlock = Annotated[
    Annotated[FleetBlock, Tag("fleet")] | Annotated[SessionReplay, Tag("replay")], Discriminator(_vehicle_kind)
]
"""A block of ``vehicles``: sampled from distributions, or replayed from explicit sessions."""


# -- operator actions ---------------------------------------------------------------------------------------
class ProvisionTokens(_Model):
    """Register id tokens in the CSMS: an explicit list, or every token of a vehicle ``group``."""

    kind: Literal["provision_tokens"]
    at: When
    tokens: list[str] | None = None
    vehicles: str | None = None
    token_group: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ProvisionTokens:
        if (self.tokens is None) == (self.vehicles is None):
            raise ValueError("expected exactly one of 'tokens' (a list) or 'vehicles' (a vehicle group)")
        return self


class RemoteStart(_Model):
    kind: Literal["remote_start"]
    at: When
    charger: str
    connector: Annotated[int, Field(ge=1)] = 1
    id_token: str


class RemoteStop(_Model):
    kind: Literal["remote_stop"]
    at: When
    charger: str
    connector: Annotated[int, Field(ge=1)] = 1


class ChangeAvailability(_Model):
    """``charger`` is a station id or a prefix (all its stations); no ``connector`` means the station."""

    kind: Literal["change_availability"]
    at: When
    charger: str
    connector: Annotated[int, Field(ge=1)] | None = None
    availability: Literal["operative", "inoperative"]


class Reset(_Model):
    kind: Literal["reset"]
    at: When
    charger: str
    mode: Literal["soft", "hard"] = "soft"


class InstallCertificate(_Model):
    """The operator installs the CSMS's root certificate on the chargers (InstallCertificate
    CSMSRootCertificate; 1.6 CentralSystemRootCertificate): what they verify the server with on wss://."""

    kind: Literal["install_certificate"]
    at: When
    charger: str
    certificate: Literal["csms_root"] = "csms_root"


class RenewCertificate(_Model):
    """The operator asks the chargers for a CSR (2.0.1 TriggerMessage SignChargingStationCertificate, 1.6
    ExtendedTriggerMessage SignChargePointCertificate); the CSMS's station CA signs it (CertificateSigned)."""

    kind: Literal["renew_certificate"]
    at: When
    charger: str


class UpgradeSecurityProfile(_Model):
    """The operator moves the chargers to a higher security profile as ``POST
    /stations/{id}/security-profile`` does (2.0.1 SetNetworkProfile + NetworkConfigurationPriority + Reset
    OnIdle; 1.6 ChangeConfiguration SecurityProfile + Reset Hard), each call once the one before was accepted."""

    kind: Literal["upgrade_security_profile"]
    at: When
    charger: str
    profile: Literal[2, 3]


class Reserve(_Model):
    """The operator reserves a connector of the chargers (no ``connector``: any) for ``id_token`` during
    ``valid_for``, as ``csms stations reserve`` does; the CSMS chooses the reservation's id. In real time
    through the operator adapter (``valid_for`` is scenario time, sent to the CSMS as wall seconds)."""

    kind: Literal["reserve"]
    at: When
    charger: str
    connector: Annotated[int, Field(ge=1)] | None = None
    id_token: str
    valid_for: PositiveDuration = 1800.0


class UpdateFirmware(_Model):
    """The operator rolls out firmware ``version`` to the chargers (station id or prefix): the CSMS stores
    an image named ``{version}.bin`` and sends UpdateFirmware; each charger downloads it, installs it at
    its next idle moment and boots with the new version. In real time through the operator adapter.

    ``signed``: the image comes with the run's firmware-signing certificate and its signature (1.6
    SignedUpdateFirmware, 2.0.1 UpdateFirmware with both), which each charger checks before installing.
    ``tampered`` (signed only): the image stored (``{version}-tampered.bin``) is the signed one altered
    afterwards; each charger refuses it (InvalidSignature, and the security event InvalidFirmwareSignature)."""

    kind: Literal["update_firmware"]
    at: When
    charger: str
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,86}$")]
    signed: bool = False
    tampered: bool = False

    @model_validator(mode="after")
    def _tampered_needs_signed(self) -> UpdateFirmware:
        if self.tampered and not self.signed:
            raise ValueError("tampered needs signed: true (without a signature no charger can tell)")
        return self


class Onboard(_Model):
    """Invite the drivers of a vehicle group to the garage (``csms.property``) and redeem each invitation with the
    vehicle's own token, as the resident or visitor would: residents get a unit each (named by their token)."""

    kind: Literal["onboard"]
    at: When
    vehicles: str
    role: Literal["resident", "visitor", "staff"] = "resident"
    pass_days: Annotated[int | None, Field(ge=1)] = None


class RegisterVehicles(_Model):
    """Register the vehicles of a group in the CSMS's fleet records, as a depot's operator does (``POST
    /fleet/vehicles``, ``PUT /fleet/vehicles/{id}/plan``): each with its battery, its power limits, the token that
    brings it to a charger, the depot (``depot``: the CSMS's site id; in virtual time the scenario's site) and a
    weekly plan leaving every day at its own departure time with its target SoC. From then on the CSMS works its
    needs out of these records (its telematics SoC, its plan) and the twin no longer tells them as an app."""

    kind: Literal["register_vehicles"]
    at: When
    vehicles: str
    depot: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._:-]{1,36}$")] = None


class DemandResponse(_Model):
    """A utility's demand-response event, as the CSMS's VEN would receive it: from ``at`` for ``duration`` the site
    may draw at most ``limit_kw`` at its grid connection (building included)."""

    kind: Literal["demand_response"]
    at: When
    duration: PositiveDuration
    limit_kw: Annotated[float, Field(ge=0.0)]


def _exact(value: float) -> str:
    """A price as the decimal the file wrote (0.3, not 0.299999…)."""
    return format(Decimal(repr(value)).normalize(), "f")


def _exact_prices(value: object) -> object:
    """OCPI JSON with every ``price`` and ``vat`` written as the decimal the file wrote (0.3, not 0.299999…)."""
    if isinstance(value, list):
        return [_exact_prices(v) for v in value]
    if isinstance(value, dict):
        exact = ("price", "vat")
        return {k: _exact(v) if k in exact and isinstance(v, float) else _exact_prices(v) for k, v in value.items()}
    return value


class SetTariff(_Model):
    """The operator sets a tariff on the CSMS (``PUT /tariffs/{id}``), an OCPI 2.2.1 tariff: either one energy
    price per kWh (with VAT in percent when given, and a flat fee per session when given), or the tariff's own
    OCPI ``elements`` (price components ENERGY, TIME, PARKING_TIME, FLAT with ``price``, ``vat``, ``step_size``;
    restrictions such as ``start_time``/``end_time`` in local time, ``day_of_week``, ``min_kwh``,
    ``max_duration``), checked at load as the CSMS checks a tariff. Setting an id again with other prices makes
    its next version (the old one stays in the price history). ``charger`` (station id or prefix): the tariff
    applies at each of these stations (one assignment each), for the driver ``group`` (a token group; none:
    everyone)."""

    kind: Literal["set_tariff"]
    at: When
    tariff: Annotated[str, Field(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    energy_price: Annotated[float, Field(ge=0.0)] | None = None
    flat_fee: Annotated[float, Field(ge=0.0)] | None = None
    vat: Annotated[float, Field(ge=0.0, le=100.0)] | None = None
    elements: Annotated[list[dict[str, object]], Field(min_length=1)] | None = None
    charger: str | None = None
    group: str | None = None

    @field_validator("elements")
    @classmethod
    def _valid_ocpi(cls, value: list[dict[str, object]] | None, info: ValidationInfo) -> list[dict[str, object]] | None:
        if value is None:
            return None
        elements = _exact_prices(value)
        body = {"id": "check", "currency": info.data.get("currency", "EUR"), "elements": elements}
        try:
            parse_tariff(body)
        except TariffError as exc:
            raise ValueError(f"not a valid OCPI 2.2.1 tariff: {exc.field}: {exc.reason}") from None
        return elements  # type: ignore[return-value]

    @model_validator(mode="after")
    def _one_way(self) -> SetTariff:
        if (self.energy_price is None) == (self.elements is None):
            raise ValueError("give energy_price (with flat_fee, vat) or elements (an OCPI tariff's), one of them")
        if self.elements is not None and (self.flat_fee is not None or self.vat is not None):
            raise ValueError("flat_fee and vat go with energy_price; with elements, each price component has its own")
        return self

    def ocpi(self) -> dict[str, object]:
        """The tariff as OCPI 2.2.1 JSON (prices as decimal strings, exact)."""
        if self.elements is not None:
            return {"currency": self.currency, "elements": self.elements}
        assert self.energy_price is not None  # one of the two, checked at load
        vat = {} if self.vat is None else {"vat": _exact(self.vat)}
        components = [{"type": "ENERGY", "price": _exact(self.energy_price), "step_size": 1, **vat}]
        elements: list[dict[str, object]] = [{"price_components": components}]
        if self.flat_fee is not None:
            flat = [{"type": "FLAT", "price": _exact(self.flat_fee), "step_size": 1, **vat}]
            elements.insert(0, {"price_components": flat})
        return {"currency": self.currency, "elements": elements}


class ExportImport(_Model):
    """Platform migration, the cut-over: the old CSMS (the one the run starts with) stops serving OCPP (every
    connection closed, new ones refused, as when its endpoint is switched off), its database is exported
    (``csms export``) and imported into the new CSMS (``csms import``). Chargers keep charging offline and
    queue their messages until a ``repoint`` wave lets them reach the new CSMS. In real time the run does it
    through both CSMSs' APIs (:mod:`simulator.realtime_migration`)."""

    kind: Literal["export_import"]
    at: When


class Repoint(_Model):
    """Platform migration, one wave: the chargers (station id or prefix) reach the new CSMS from now on, by the
    host cut-over (``forward``: their old host name now leads to the new CSMS, which accepts their old path,
    ``csms serve --accept-path``). It needs no reboot, so sessions running on the chargers carry over, and it
    works for chargers that ignore a re-point (``everest-pinned-url``). ``window``: how long after the wave
    each of its stations may take to arrive; the new CSMS declares the planned outage from the cut-over to
    its arrival (at most to the window's end) as excluded from uptime.

    ``mode: repoint`` (real time only): the wave's chargers stay on the old CSMS across the cut-over and are
    re-pointed through its API at the wave (``POST /stations/{id}/repoint``, ``csms migrate repoint``: 2.0.1
    SetNetworkProfile, NetworkConfigurationPriority and Reset OnIdle; 1.6 the vendor's URL key and a Reset);
    they reboot onto the new CSMS's URL. One that cannot be re-pointed (a vendor without a known key, one
    that ignores it, a session still running at the deadline) moves by the host cut-over instead. It reboots
    the charger, so it is for idle chargers: what the old CSMS records of them between the export and the wave
    stays there."""

    kind: Literal["repoint"]
    at: When
    charger: str
    mode: Literal["forward", "repoint"] = "forward"
    window: PositiveDuration = 900.0


MigrationAction = ExportImport | Repoint

Action = Annotated[
    DemandResponse
    | Onboard
    | RegisterVehicles
    | ProvisionTokens
    | RemoteStart
    | RemoteStop
    | ChangeAvailability
    | Reset
    | InstallCertificate
    | RenewCertificate
    | UpgradeSecurityProfile
    | Reserve
    | UpdateFirmware
    | ExportImport
    | Repoint
    | SetTariff,
    Field(discriminator="kind"),
]
SecurityAction = InstallCertificate | RenewCertificate | UpgradeSecurityProfile


# -- faults -------------------------------------------------------------------------------------------------
class LinkDown(_Model):
    """The charger's connection to the CSMS is down for ``duration`` (``charger``: station id or prefix)."""

    kind: Literal["link_down"]
    at: When
    charger: str
    duration: PositiveDuration


class ConnectorFault(_Model):
    """A connector faults with ``error_code`` (a running transaction ends); it clears by itself after
    ``clears_after``, or (``clears_on: reset``) when the station reboots after a remote Reset."""

    kind: Literal["connector_fault"]
    at: When
    charger: str
    connector: Annotated[int, Field(ge=1)] = 1
    error_code: str = "GroundFailure"
    clears_after: PositiveDuration | None = None
    clears_on: Literal["reset"] | None = None

    @model_validator(mode="after")
    def _one_way_to_clear(self) -> ConnectorFault:
        if (self.clears_after is None) == (self.clears_on is None):
            raise ValueError("expected exactly one of 'clears_after' and 'clears_on'")
        return self


class PowerLoss(_Model):
    """The station loses power for ``duration``: transactions end (PowerLoss), the link drops, it boots after."""

    kind: Literal["power_loss"]
    at: When
    charger: str
    duration: PositiveDuration


class CsmsCrash(_Model):
    """The CSMS process dies: its in-memory state is lost, every link drops; it restarts on the same database
    after ``restart_after`` and the chargers reconnect with their back-off."""

    kind: Literal["csms_crash"]
    at: When
    restart_after: PositiveDuration


class MeterFreeze(_Model):
    """The energy register in the meter values stops advancing for ``duration`` while power still flows."""

    kind: Literal["meter_freeze"]
    at: When
    charger: str
    duration: PositiveDuration


class StuckAvailable(_Model):
    """For ``duration`` the port reports Available but never energizes: sessions start and deliver nothing
    (the driver gives up after ``give_up_after`` and tries again)."""

    kind: Literal["stuck_available"]
    at: When
    charger: str
    connector: Annotated[int, Field(ge=1)] = 1
    duration: PositiveDuration
    give_up_after: PositiveDuration = 120.0


Fault = Annotated[
    LinkDown | ConnectorFault | PowerLoss | CsmsCrash | MeterFreeze | StuckAvailable, Field(discriminator="kind")
]
"""A discriminated union on ``kind``; add new fault models here."""


# -- the CSMS -----------------------------------------------------------------------------------------------
class LoadManagement(_Model):
    """How the embedded CSMS manages the site's load (``csms.loadmgmt``); ``none`` leaves it unmanaged.

    ``prices`` are time-of-use energy prices (``"HH:MM": price per kWh``, each until the next) and
    ``demand_charge_per_kw`` the peak charge, both used by ``optimal``.
    """

    strategy: Literal["none", "equal_share", "priority", "deadline", "optimal"] = "equal_share"
    interval: PositiveDuration = 60.0
    safety_margin_kw: Annotated[float, Field(ge=0)] = 0.0
    fallback_current_a: Annotated[float, Field(ge=0)] = 6.0
    min_current_a: Annotated[float, Field(gt=0)] = 6.0
    priority_groups: list[Name] = Field(default_factory=list)
    prices: dict[ClockHours, Annotated[float, Field(ge=0)]] | None = None
    demand_charge_per_kw: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _prices_not_empty(self) -> LoadManagement:
        if self.prices is not None and not self.prices:
            raise ValueError("expected at least one point in 'prices'")
        return self


class AlertSettings(_Model):
    """The embedded CSMS's alert rules (``csms.alerts.AlertRules``) and the auto-remediation policy;
    ``within`` is how long after a fault starts its alert must be raised (else it counts as late)."""

    heartbeat_interval: PositiveDuration = 300.0
    offline_after: PositiveDuration = 600.0
    faulted_after: PositiveDuration = 300.0
    stuck_available_failures: Annotated[int, Field(ge=1)] = 3
    meter_frozen_after: PositiveDuration = 900.0
    meter_frozen_readings: Annotated[int, Field(ge=1)] = 3
    remediation_after: PositiveDuration | None = None
    remediation_max_per_day: Annotated[int, Field(ge=0)] = 2
    within: PositiveDuration = 900.0


class PkiSettings(_Model):
    """The embedded CSMS runs its own station CA and serves wss:// (``csms serve --pki``): stations'
    CSRs are signed (SignCertificate → CertificateSigned) and security profiles 2 and 3 can be used."""

    organisation: str = "chargetwin"
    certificate_days: Annotated[int, Field(ge=1)] = 365


_AMOUNT = r"^[0-9]+(\.[0-9]+)?$"


class PropertyTerms(_Model):
    """The site as a multifamily property in the CSMS: how its residents are billed (docs/multifamily.md)."""

    billing_mode: Literal["cost_recovery", "flat_fee"] = "cost_recovery"
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$")] = "EUR"
    utility_rate: Annotated[str, Field(pattern=_AMOUNT)]
    margin_pct: Annotated[str, Field(pattern=_AMOUNT)] = "0"
    flat_fee: Annotated[str, Field(pattern=_AMOUNT)] = "0"
    allowance_kwh: Annotated[str, Field(pattern=_AMOUNT)] = "0"
    vat_pct: Annotated[str, Field(pattern=_AMOUNT)] = "0"


class AdhocPayments(_Model):
    """Guests pay by card at chargers' payment terminals (docs/billing.md): the CSMS pre-authorises ``preauth``
    (in the tariff's currency) on each card through the built-in sandbox processor, and discloses the card's
    processing fee (``card_fee_fixed`` + ``card_fee_percent`` of the session's cost) on every receipt."""

    preauth: Annotated[str, Field(pattern=_AMOUNT)] = "50"
    currency: Annotated[str, Field(pattern="^[A-Z]{3}$")] = "EUR"
    card_fee_fixed: Annotated[str, Field(pattern=_AMOUNT)] = "0"
    card_fee_percent: Annotated[str, Field(pattern=_AMOUNT)] = "0"


class CsmsSettings(_Model):
    load_management: LoadManagement | None = None
    property: PropertyTerms | None = None
    adhoc_payments: AdhocPayments | None = None
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    pki: PkiSettings | None = None


class RoamingDrivers(_Model):
    """The drivers of a vehicle group (a block's ``name`` or ``group``) are the eMSP's customers: ``card``: they
    present their token at the charger (the eMSP pushed it; ``whitelist`` NEVER or ALLOWED_OFFLINE: the CSMS
    asks the eMSP in real time); ``app``: they plug in and the eMSP starts the session by command
    (START_SESSION)."""

    vehicles: str
    start: Literal["card", "app"] = "card"
    whitelist: Literal["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"] = "ALLOWED"


class EmspDown(_Model):
    """The eMSP answers every push with 503 from ``at`` for ``duration`` (the CSMS's outbox retries)."""

    at: When
    duration: PositiveDuration


class RoamingLocation(_Model):
    """The OCPI details the operator gives every location of the run (``csms ocpi locations set``)."""

    address: str = "Stationsplein 1"
    city: str = "Amsterdam"
    country: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "NLD"
    latitude: str = "52.378900"
    longitude: str = "4.900000"
    time_zone: str = "Europe/Amsterdam"


class Roaming(_Model):
    """OCPI 2.2.1 roaming: the CSMS serves its CPO API on loopback and the twin's eMSP (its own HTTP server)
    registers with it, pulls locations and tariffs, pushes its drivers' tokens, starts sessions by command and
    receives sessions and CDRs (docs/ocpi.md)."""

    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "NL"
    party_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$")] = "CTW"
    emsp_country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "DE"
    emsp_party_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$")] = "EMS"
    register_at: When | None = None
    location: RoamingLocation = Field(default_factory=RoamingLocation)
    drivers: Annotated[list[RoamingDrivers], Field(min_length=1)]
    emsp_down: list[EmspDown] = Field(default_factory=list)


# -- the scenario -------------------------------------------------------------------------------------------
class TwinSettings(_Model):
    step: PositiveDuration = 60.0
    efficiency: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0


def _valid_zone(value: object) -> str | None:
    if value is not None:
        value = _as_str(value)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone like 'America/New_York', got {value!r}") from None
    return value


class Scenario(_Model):
    """A whole scenario file. ``start`` must carry a UTC offset unless ``timezone`` is given; with
    ``timezone`` the start is expressed in that zone (so "HH:MM" times follow its daylight-saving rules)."""

    name: str
    description: str | None = None
    seed: int
    timezone: Annotated[str | None, PlainValidator(_valid_zone)] = None
    start: datetime
    duration: PositiveDuration
    site: Site = Field(default_factory=Site)
    csms: CsmsSettings = Field(default_factory=CsmsSettings)
    twin: TwinSettings = Field(default_factory=TwinSettings)
    chargers: Annotated[list[ChargerGroup], Field(min_length=1)]
    vehicles: Annotated[list[VehicleBlock], BeforeValidator(_one_to_list)] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    expect: dict[CheckName, Expectation] = Field(default_factory=dict)
    roaming: Roaming | None = None

    @field_validator("start")
    @classmethod
    def _zoned_start(cls, start: datetime, info: ValidationInfo) -> datetime:
        zone_name = info.data.get("timezone")
        if zone_name is not None:
            zone = ZoneInfo(zone_name)
            return start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
        if start.tzinfo is None:
            raise ValueError(
                "expected a date-time with a UTC offset (e.g. 2026-01-15T17:00:00-05:00) or a 'timezone' field"
            )
        return start

    # -- helpers for the harness ------------------------------------------------------------------------
    @property
    def end_s(self) -> float:
        return self.duration

    def seconds(self, when: TimePoint) -> float:
        """Seconds after the start for a point on the timeline."""
        return when.seconds_after(self.start)

    def station_ids(self) -> list[str]:
        return [sid for group in self.chargers for sid in group.station_ids]

    def group_of(self, station_id: str) -> ChargerGroup:
        """Raises KeyError for an unknown station id."""
        for group in self.chargers:
            if station_id in group.station_ids:
                return group
        raise KeyError(station_id)

    def resolve_chargers(self, ref: str) -> list[str]:
        """Station ids named by ``ref``: a station id, or a prefix meaning all of its stations."""
        for group in self.chargers:
            if ref == group.prefix:
                return group.station_ids
        return [ref] if ref in self.station_ids() else []

    @property
    def migrates(self) -> bool:
        """The run moves the fleet from one CSMS to another (an ``export_import`` action)."""
        return any(isinstance(a, ExportImport) for a in self.actions)

    def timeline(self) -> list[tuple[float, Action | Fault]]:
        """Actions and faults in time order (stable for equal times: actions first, file order)."""
        items: list[tuple[float, int, Action | Fault]] = [
            (self.seconds(a.at), i, a) for i, a in enumerate([*self.actions, *self.faults])
        ]
        return [(t, item) for t, _, item in sorted(items, key=lambda x: (x[0], x[1]))]


_Problem = tuple[tuple[str | int, ...], str]


def reference_problems(scenario: Scenario) -> list[_Problem]:
    """Cross-field problems as ``(loc, message)`` pairs, ``loc`` in pydantic's form."""
    problems, prefixes = _duplicate_prefixes(scenario)
    problems += _reference_problems(scenario, prefixes)
    problems += _times_outside(scenario)
    problems += _session_problems(scenario)
    problems += _load_management_problems(scenario)
    problems += _security_problems(scenario)
    problems += _onboarding_problems(scenario)
    problems += _migration_problems(scenario)
    problems += _roaming_problems(scenario)
    if scenario.twin.step > scenario.duration or not math.isfinite(scenario.twin.step):
        problems.append((("twin", "step"), "expected a physics step no longer than the duration"))
    return problems


def _roaming_problems(scenario: Scenario) -> list[_Problem]:
    """Roaming drivers name a vehicle group (a block's name or group) whose vehicles carry a token."""
    if scenario.roaming is None:
        return []
    named = {name for b in scenario.vehicles for name in (b.name, b.group) if name and b.id_token is not None}
    return [
        (("roaming", "drivers", i, "vehicles"), f"expected a vehicle group with id_token ({sorted(named)}), got "
         f"{d.vehicles!r}")
        for i, d in enumerate(scenario.roaming.drivers)
        if d.vehicles not in named
    ]  # fmt: skip


def _onboarding_problems(scenario: Scenario) -> list[_Problem]:
    """Onboarding needs the property's terms and a site the CSMS knows (load management creates it)."""
    problems: list[_Problem] = []
    for i, action in enumerate(scenario.actions):
        if isinstance(action, Onboard) and (scenario.csms.property is None or scenario.csms.load_management is None):
            problems.append((("actions", i, "kind"), "'onboard' needs csms.property and csms.load_management"))
        if isinstance(action, DemandResponse) and scenario.csms.load_management is None:
            problems.append((("actions", i, "kind"), "'demand_response' needs csms.load_management"))
    return problems + _fleet_record_problems(scenario)


def _fleet_record_problems(scenario: Scenario) -> list[_Problem]:
    """Registered vehicles need a token (the charger knows them by it); telematics need registered vehicles."""
    problems: list[_Problem] = []
    registered = {a.vehicles for a in scenario.actions if isinstance(a, RegisterVehicles)}
    for i, block in enumerate(scenario.vehicles):
        if not isinstance(block, FleetBlock):
            continue
        named = {block.name, block.group} & registered
        if named and block.id_token is None:
            problems.append(
                (("vehicles", i, "id_token"), "registered vehicles need id_token (chargers know them by it)")
            )
        if block.telematics is not None and not named:
            group = block.group or block.name
            message = f"telematics need the vehicles registered: add a register_vehicles action for {group!r}"
            problems.append((("vehicles", i, "telematics"), message))
    return problems


def _duplicate_prefixes(scenario: Scenario) -> tuple[list[_Problem], dict[str, int]]:
    """Problems with charger prefixes used twice, and each prefix's first charger group."""
    problems: list[_Problem] = []
    seen: dict[str, int] = {}
    for i, group in enumerate(scenario.chargers):
        if group.prefix in seen:
            problems.append(
                (
                    ("chargers", i, "prefix"),
                    f"expected a unique prefix, {group.prefix!r} is already used by chargers[{seen[group.prefix]}]",
                )
            )
        seen.setdefault(group.prefix, i)
    return problems, seen


def _reference_problems(scenario: Scenario, prefixes: dict[str, int]) -> list[_Problem]:
    """References to chargers and vehicle groups that name nothing in the scenario."""
    known = f"a station id or prefix ({', '.join(repr(p) for p in prefixes)})"
    groups = {b.group for b in scenario.vehicles if b.group is not None}
    problems: list[_Problem] = []
    for i, block in enumerate(scenario.vehicles):
        if isinstance(block, FleetBlock):
            for j, ref in enumerate(block.assign_to or []):
                problems += _charger_problem(scenario, known, ("vehicles", i, "assign_to", j), ref)
    for i, action in enumerate(scenario.actions):
        problems += _action_problems(scenario, known, groups, i, action)
    for i, fault in enumerate(scenario.faults):
        if not isinstance(fault, CsmsCrash):
            problems += _charger_problem(scenario, known, ("faults", i, "charger"), fault.charger)
    return problems


def _charger_problem(scenario: Scenario, known: str, loc: tuple[str | int, ...], ref: str) -> list[_Problem]:
    return [] if scenario.resolve_chargers(ref) else [(loc, f"expected {known}, got {ref!r}")]


def _action_problems(scenario: Scenario, known: str, groups: set[str], i: int, action: Action) -> list[_Problem]:
    if isinstance(action, DemandResponse):
        return []  # the whole site's
    if isinstance(action, ProvisionTokens | Onboard | RegisterVehicles):
        if action.vehicles is not None and action.vehicles not in groups:
            message = f"expected a vehicle group ({', '.join(map(repr, sorted(groups)))}), got {action.vehicles!r}"
            return [(("actions", i, "vehicles"), message)]
        return []
    if isinstance(action, RemoteStart | RemoteStop):
        if action.charger not in set(scenario.station_ids()):
            return [(("actions", i, "charger"), f"expected a station id, got {action.charger!r}")]
        if action.connector > (n := scenario.group_of(action.charger).connectors):
            return [
                (
                    ("actions", i, "connector"),
                    f"expected a connector of {action.charger} (1..{n}), got {action.connector}",
                )
            ]
        return []
    if isinstance(action, ExportImport) or action.charger is None:  # a tariff assigned nowhere yet
        return []
    return _charger_problem(scenario, known, ("actions", i, "charger"), action.charger)


def _times_outside(scenario: Scenario) -> list[_Problem]:
    """Actions and faults timed before the start or after the end of the scenario."""
    problems: list[_Problem] = []
    for section, items in (("actions", scenario.actions), ("faults", scenario.faults)):
        for i, item in enumerate(items):
            t_s = scenario.seconds(item.at)
            if not 0 <= t_s <= scenario.duration:
                problems.append(
                    (
                        (section, i, "at"),
                        f"expected a time within the scenario (0 to {scenario.duration:g} s after "
                        f"the start), got {item.at} = {t_s:g} s",
                    )
                )
    return problems


def _session_problems(scenario: Scenario) -> list[_Problem]:
    """Replayed sessions that name no station, fall outside the run, end before they start or ask for more
    energy than the battery holds below its target."""
    problems: list[_Problem] = []
    stations = set(scenario.station_ids())
    for i, block in enumerate(scenario.vehicles):
        if not isinstance(block, SessionReplay):
            continue
        for j, session in enumerate(block.sessions):
            loc = ("vehicles", i, "sessions", j)
            if session.station is not None and session.station not in stations:
                problems.append(((*loc, "station"), f"expected a station id of the scenario, got {session.station!r}"))
            arrival_s, departure_s = scenario.seconds(session.arrival), scenario.seconds(session.departure)
            if not 0 <= arrival_s < scenario.duration:
                message = (
                    f"expected an arrival within the scenario (0 to {scenario.duration:g} s after the start), "
                    f"got {session.arrival} = {arrival_s:g} s"
                )
                problems.append(((*loc, "arrival"), message))
            if departure_s <= arrival_s:
                message = f"expected a departure after the arrival ({arrival_s:g} s), got {departure_s:g} s"
                problems.append(((*loc, "departure"), message))
            battery_kwh = block.battery_of(session)
            if session.energy_kwh > block.target_soc * battery_kwh + 1e-9:
                message = (
                    f"expected at most {block.target_soc * battery_kwh:g} kWh (target_soc {block.target_soc:g} of "
                    f"a {battery_kwh:g} kWh battery; give a larger battery_kwh), got {session.energy_kwh:g}"
                )
                problems.append(((*loc, "energy_kwh"), message))
    return problems


def _load_management_problems(scenario: Scenario) -> list[_Problem]:
    """A managed site needs a limit, and AC chargers that can draw the strategy's minimum current."""
    lm = scenario.csms.load_management
    if lm is None or lm.strategy == "none":
        return []
    problems: list[_Problem] = []
    if scenario.site.grid_limit_kw is None and scenario.site.phase_limits_a is None:
        problems.append(
            (
                ("csms", "load_management", "strategy"),
                "expected a site limit (site.grid_limit_kw or site.phase_limits_a) to manage",
            )
        )
    for i, group in enumerate(scenario.chargers):
        rating_a = group.max_kw * 1000.0 / ((group.voltage or 230.0) * (group.phases or 3))
        if group.current == "AC" and rating_a < lm.min_current_a:
            message = (
                f"expected chargers rated above min_current_a ({lm.min_current_a:g} A), got {rating_a:.1f} A per phase"
            )
            problems.append((("chargers", i, "max_kw"), message))
    return problems


def _migration_problems(scenario: Scenario) -> list[_Problem]:
    """One cut-over at most, and every wave after it (a wave before the cut-over has nowhere to go)."""
    cutovers = [(i, a) for i, a in enumerate(scenario.actions) if isinstance(a, ExportImport)]
    problems: list[_Problem] = [
        (("actions", i, "kind"), "expected one export_import, this is another") for i, _ in cutovers[1:]
    ]
    first = min((scenario.seconds(a.at) for _, a in cutovers), default=None)
    for i, action in enumerate(scenario.actions):
        if isinstance(action, Repoint) and (first is None or scenario.seconds(action.at) < first):
            problems.append((("actions", i, "at"), "expected a repoint wave at or after the export_import"))
    return problems


def _security_problems(scenario: Scenario) -> list[_Problem]:
    """wss:// and certificates need the CSMS's PKI; security profile 2 also needs a password."""
    problems: list[_Problem] = []
    no_pki = "expected csms.pki (the CSMS's station CA and wss://) for"
    for i, group in enumerate(scenario.chargers):
        if group.security_profile == 2:
            if scenario.csms.pki is None:
                problems.append((("chargers", i, "security_profile"), f"{no_pki} security profile 2"))
            if group.password is None:
                problems.append((("chargers", i, "password"), "expected a password for security profile 2"))
    for i, action in enumerate(scenario.actions):
        if isinstance(action, SecurityAction) and scenario.csms.pki is None:
            problems.append((("actions", i, "kind"), f"{no_pki} {action.kind}"))
        if isinstance(action, UpgradeSecurityProfile) and action.profile == 2:
            for station_id in scenario.resolve_chargers(action.charger):
                if scenario.group_of(station_id).password is None:
                    message = f"expected a password on {station_id}'s charger group: profile 2 is TLS + HTTP Basic"
                    problems.append((("actions", i, "profile"), message))
                    break
    return problems


def field_names() -> set[str]:
    """Every field name of every scenario model, for "did you mean" hints."""
    names: set[str] = set()
    stack: list[type[BaseModel]] = [Scenario]
    seen: set[type[BaseModel]] = set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        names.update(model.model_fields)
        stack.extend(_Model.__subclasses__())
        stack.extend(model.__subclasses__())
    return names
