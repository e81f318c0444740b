"""Version-neutral shapes of the calls the CSMS sends; ``v16/commands.py`` and ``v201/commands.py`` render
them as each version's payload, :mod:`csms.ocpp.commands` picks the version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

#: ``(action, payload)`` of one call, ready for :meth:`csms.core.session.StationSession.send_call`.
Call = tuple[str, dict[str, Any]]

#: ``soft``: when the station is idle (1.6 Soft, 2.0.1 OnIdle); ``hard``: at once (Hard, Immediate).
ResetKind = Literal["soft", "hard"]

#: What a secret (a station password) reads as wherever a call is written down (message log, any log line).
MASK = "********"


@dataclass(frozen=True, slots=True)
class VariableRef:
    """A setting of a station: 2.0.1 a device-model variable of a component (on an EVSE, 0: the station);
    1.6 a configuration key (``variable``; no component)."""

    variable: str
    component: str | None = None
    evse_id: int = 0
    #: 2.0.1: the variable's instance (e.g. ItemsPerMessage's GetVariables), None when it has none.
    instance: str | None = None


@dataclass(frozen=True, slots=True)
class VariableResult:
    """What a station said of one setting: ``status`` in its version's words (1.6 GetConfiguration: Accepted
    for a known key, UnknownKey; ChangeConfiguration: Accepted, Rejected, RebootRequired, NotSupported; 2.0.1
    attributeStatus), the value it reported or took, and whether it is read-only (None: not said)."""

    ref: VariableRef
    status: str
    value: str | None = None
    readonly: bool | None = None


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """A 2.0.1 variable monitor to set: a threshold, a delta or a period on a component's variable; ``id``
    replaces the station's monitor of that id."""

    ref: VariableRef
    type: str
    value: float
    severity: int
    transaction: bool = False
    id: int | None = None


@dataclass(frozen=True, slots=True)
class CredentialChange:
    """A call that changes how the station authenticates: a new HTTP Basic password, or a new security
    profile. ``problem`` says why the call cannot be what it claims (e.g. an AuthorizationKey that is not hex)."""

    password: str | None = None
    profile: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation the CSMS made (its ``reservation_id``, chosen and kept by the CSMS): ``evse_id`` None
    reserves any port (1.6 connector 0, 2.0.1 no evseId). ``connector_type`` and ``group_id`` are 2.0.1's
    (1.6 sends the group as parentIdTag)."""

    reservation_id: int
    expires_at: datetime
    id_token: str
    id_token_type: str = "ISO14443"
    evse_id: int | None = None
    connector_type: str | None = None
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class SignedFirmware:
    """A signed firmware image to install: where the station downloads it, and how it checks it."""

    location: str
    request_id: int
    retrieve_at: str
    signing_certificate: str
    signature: str
    install_at: str | None = None
    retries: int | None = None
    retry_interval: int | None = None

    def firmware_payload(self, retrieve_key: str, install_key: str) -> dict[str, Any]:
        firmware: dict[str, Any] = {
            "location": self.location,
            retrieve_key: self.retrieve_at,
            "signingCertificate": self.signing_certificate,
            "signature": self.signature,
        }
        if self.install_at:
            firmware[install_key] = self.install_at
        return firmware


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_s: int
    limit: float
    number_phases: int | None = None

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"startPeriod": self.start_s, "limit": self.limit}
        if self.number_phases is not None:
            out["numberPhases"] = self.number_phases
        return out


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """One Absolute charging profile with one schedule, valid and started at ``start`` (POSIX seconds).

    ``purpose`` is named as in 2.0.1 (``TxProfile``, ``TxDefaultProfile``, ``ChargingStationMaxProfile``);
    ``evse_id`` 0 is the whole station; ``unit`` is ``A`` or ``W``.

    Raises:
        ValueError: a TxProfile without the transaction it is bound to.
    """

    profile_id: int
    evse_id: int
    stack_level: int
    purpose: str
    unit: str
    start: float
    periods: tuple[SchedulePeriod, ...]
    transaction_id: str | None = None

    def __post_init__(self) -> None:
        if self.purpose == "TxProfile" and self.transaction_id is None:
            raise ValueError(f"a TxProfile needs a transaction id (EVSE {self.evse_id})")

    @property
    def start_text(self) -> str:
        """``start`` as chargers read it best: whole seconds, UTC, ``Z``."""
        return datetime.fromtimestamp(self.start, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def periods_payload(self) -> list[dict[str, Any]]:
        return [period.payload() for period in self.periods]


def retry_fields(retries: int | None, retry_interval: int | None) -> dict[str, int]:
    """The optional ``retries`` / ``retryInterval`` of a transfer (same names in both versions)."""
    return {k: v for k, v in (("retries", retries), ("retryInterval", retry_interval)) if v is not None}


def get_log(
    location: str,
    request_id: int,
    *,
    start_time: str | None,
    stop_time: str | None,
    log_type: str,
    retries: int | None,
    retry_interval: int | None,
) -> Call:
    """GetLog, one shape in 2.0.1 and the 1.6 security extension: log.remoteLocation, the time window as
    oldest/latestTimestamp, requestId, DiagnosticsLog or SecurityLog."""
    log: dict[str, Any] = {"remoteLocation": location}
    if start_time:
        log["oldestTimestamp"] = start_time
    if stop_time:
        log["latestTimestamp"] = stop_time
    return "GetLog", {"logType": log_type, "requestId": request_id, "log": log, **retry_fields(retries, retry_interval)}


@dataclass(frozen=True, slots=True)
class SessionCost:
    """What a running session has cost so far (2.0.1 CostUpdated, 1.6 California Pricing RunningCost).

    ``total`` incl. VAT in the tariff's currency; ``charging`` False while parked; ``prices`` the tariff's
    prices incl. VAT as California Pricing names them (``kWhPrice``, ``hourPrice``, ``flatFee``) and
    ``idle_prices`` its parking price (``hourPrice``) with ``graceMinutes`` when it has one."""

    transaction_id: int
    charger_tx_id: str
    total: Decimal
    at: datetime
    meter_wh: int
    charging: bool = True
    prices: dict[str, Decimal] | None = None
    idle_prices: dict[str, Decimal | int] | None = None
