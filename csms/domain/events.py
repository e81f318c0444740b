"""Version-neutral events a station reports, and the CSMS's decisions about them.

The version adapters (``csms.ocpp.v16``, ``csms.ocpp.v201``) translate payloads into these records and the
decisions back into payloads; services are written once against them. Times are aware UTC datetimes,
energies in Wh, powers in W, currents in A.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

ENERGY_REGISTER = "Energy.Active.Import.Register"


class Sample(NamedTuple):
    """One sampled value. The adapters normalise the unit: ``value`` is in the base unit (Wh, W, A, varh, var,
    VA; a 2.0.1 multiplier applied), ``unit`` names it (None: the station gave none, the base unit is meant).
    :mod:`csms.domain.meter` says which samples make a meter reading.

    A named tuple rather than a frozen dataclass: every meter value brings several, and building one costs a
    fifth (a frozen dataclass sets each field through ``object.__setattr__``); a ``meter_samples`` row is the
    sample after its station, transaction and EVSE (:data:`csms.services.uow.SAMPLE_COLUMNS`)."""

    timestamp: datetime
    measurand: str
    value: float
    unit: str | None = None
    phase: str | None = None
    location: str | None = None
    context: str | None = None


def sampled(
    timestamp: datetime, measurand: str, value: float, unit: str | None, get: Callable[[str, Any], Any]
) -> Sample:
    """A sample with the sampled value's optional fields (``get``: the value's ``dict.get``) and OCPP's defaults
    for them, the same in 1.6 and 2.0.1."""
    return Sample(
        timestamp,
        measurand,
        value,
        unit,
        get("phase", None),
        get("location", "Outlet"),
        get("context", "Sample.Periodic"),
    )


@dataclass(frozen=True, slots=True)
class BootReported:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    pass


class PortState(StrEnum):
    """What a port's status says, whatever the OCPP version (values: the spec's names)."""

    AVAILABLE = "Available"
    #: A vehicle is plugged in, the port is not (known to be) charging: 1.6 Preparing, SuspendedEV,
    #: SuspendedEVSE; 2.0.1 Occupied (2.0.1 tells charging by the transaction's chargingState).
    OCCUPIED = "Occupied"
    #: 1.6 Charging: energy flows.
    CHARGING = "Charging"
    #: 1.6 Finishing: the session is over, the vehicle not unplugged yet.
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"

    @property
    def plugged(self) -> bool:
        """A vehicle is plugged in and its session is not over."""
        return self in (PortState.OCCUPIED, PortState.CHARGING)


#: Connector statuses of 1.6 (ChargePointStatus) and 2.0.1 (ConnectorStatusEnumType). A name both versions
#: use means the same in both, so one table serves the adapters and the status history the store keeps.
PORT_STATES: Mapping[str, PortState] = {
    "Available": PortState.AVAILABLE,
    "Preparing": PortState.OCCUPIED,
    "Charging": PortState.CHARGING,
    "SuspendedEV": PortState.OCCUPIED,
    "SuspendedEVSE": PortState.OCCUPIED,
    "Finishing": PortState.FINISHING,
    "Occupied": PortState.OCCUPIED,
    "Reserved": PortState.RESERVED,
    "Unavailable": PortState.UNAVAILABLE,
    "Faulted": PortState.FAULTED,
}


def port_state(status: str) -> PortState:
    """The state a 1.6 or 2.0.1 connector status names.

    Raises:
        ValueError: ``status`` is no connector status of either version.
    """
    try:
        return PORT_STATES[status]
    except KeyError:
        raise ValueError(f"{status!r} is not a 1.6 or 2.0.1 connector status") from None


@dataclass(frozen=True, slots=True)
class StatusReported:
    """A port's status. ``status`` is the station's own word (stored and shown), ``state`` what it means."""

    evse_id: int
    connector_id: int
    status: str
    state: PortState
    timestamp: datetime | None
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateId:
    """OCPP 2.0.1 OCSPRequestDataType: a certificate named by hashes of its issuer (hex) and its serial
    number (hex, no leading zeros), and the OCSP responder that knows its status."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    responder_url: str


#: The 2.0.1 idToken additionalInfo type under which a charger's payment terminal gives the card's reference.
PAYMENT_CARD = "PaymentCard"


@dataclass(frozen=True, slots=True)
class AuthorizationRequested:
    """``certificate`` (a PEM contract-certificate chain) and ``contract`` (its OCSP data) are ISO 15118
    Plug & Charge: the id token is then the contract's eMAID."""

    id_token: str
    token_type: str | None = None
    certificate: str | None = None
    contract: tuple[CertificateId, ...] = ()
    #: A payment terminal's card reference (2.0.1 additionalInfo of type ``PaymentCard``): an ad-hoc payment.
    payment_card: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateStatusRequested:
    """2.0.1 GetCertificateStatus: the station wants the OCSP answer about one of its certificates."""

    certificate: CertificateId


@dataclass(frozen=True, slots=True)
class EvCertificateRequested:
    """2.0.1 Get15118EVCertificate: an EV's CertificateInstallationReq/UpdateReq, EXI, base64 (opaque here)."""

    schema_version: str
    action: str
    exi_request: str


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    """1.6 StartTransaction (``charger_tx_id`` None: the CSMS assigns it) or 2.0.1 TransactionEvent(Started)."""

    evse_id: int
    connector_id: int
    timestamp: datetime
    id_token: str | None
    meter_start_wh: float | None = None
    charger_tx_id: str | None = None
    seq_no: int | None = None
    offline: bool = False
    trigger_reason: str | None = None
    remote_start_id: int | None = None
    samples: tuple[Sample, ...] = ()
    #: The CSMS's reservation this transaction uses up (1.6 StartTransaction, 2.0.1 TransactionEvent).
    reservation_id: int | None = None
    #: 2.0.1 transactionInfo.chargingState (Charging, EVConnected, SuspendedEV, SuspendedEVSE, Idle).
    charging_state: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionUpdated:
    charger_tx_id: str
    timestamp: datetime
    seq_no: int
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    offline: bool = False
    trigger_reason: str | None = None
    charging_state: str | None = None
    samples: tuple[Sample, ...] = ()
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class TransactionEnded:
    charger_tx_id: str
    timestamp: datetime
    meter_stop_wh: float | None = None
    reason: str | None = None
    id_token: str | None = None
    seq_no: int | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    offline: bool = False
    trigger_reason: str | None = None
    samples: tuple[Sample, ...] = ()
    charging_state: str | None = None


@dataclass(frozen=True, slots=True)
class MeterValuesReported:
    evse_id: int
    samples: tuple[Sample, ...]
    charger_tx_id: str | None = None


@dataclass(frozen=True, slots=True)
class VendorDataReceived:
    vendor_id: str
    message_id: str | None
    data: Any


@dataclass(frozen=True, slots=True)
class StationNotice:
    """A report that is stored and shown, but changes no state machine: firmware/log/diagnostics status,
    security events, device events, device-model reports."""

    kind: str
    timestamp: datetime | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReservationStatusReported:
    """2.0.1 ReservationStatusUpdate: the station ended a reservation itself (``Expired`` or ``Removed``)."""

    reservation_id: int
    status: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChargingNeedsReported:
    """2.0.1 NotifyEVChargingNeeds: what the vehicle on an EVSE asks for (``data``: the payload, stored)."""

    evse_id: int
    energy_needed_wh: float | None
    departure: datetime | None
    data: dict[str, Any] = field(default_factory=dict)
    #: What the vehicle can take (ISO 15118): per-phase current (AC) or power (DC); None: not told.
    ev_max_current_a: float | None = None
    ev_max_power_w: float | None = None
    #: The most schedule periods the EV accepts (K15.FR.04); None: not told.
    max_schedule_tuples: int | None = None


@dataclass(frozen=True, slots=True)
class EvScheduleReported:
    """2.0.1 NotifyEVChargingSchedule: the schedule the EV will follow, its periods relative to ``time_base``
    (``schedule``: the ChargingScheduleType as sent)."""

    evse_id: int
    time_base: datetime
    schedule: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CertificateSigningRequested:
    """SignCertificate (2.0.1, and 1.6 with the security extension): a PEM CSR for the CSMS's CA."""

    csr: str
    #: ChargingStationCertificate or V2GCertificate (1.6 has only the former).
    certificate_type: str = "ChargingStationCertificate"


StationReport = (
    BootReported
    | HeartbeatReceived
    | StatusReported
    | AuthorizationRequested
    | TransactionStarted
    | TransactionUpdated
    | TransactionEnded
    | MeterValuesReported
    | VendorDataReceived
    | ChargingNeedsReported
    | EvScheduleReported
    | ReservationStatusReported
    | StationNotice
    | CertificateSigningRequested
    | CertificateStatusRequested
    | EvCertificateRequested
)


# ---- decisions --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BootDecision:
    status: str  # Accepted | Pending | Rejected
    interval_s: int
    current_time: datetime


@dataclass(frozen=True, slots=True)
class AuthorizationInfo:
    status: str  # Accepted | Blocked | Expired | Invalid | ConcurrentTx | Unknown (2.0.1)
    expiry: datetime | None = None
    group_id: str | None = None
    #: The tariff's text for the driver (2.0.1 personalMessage; 1.6 SetUserPrice where the charger shows prices).
    price_text: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionAck:
    transaction_id: int
    authorization: AuthorizationInfo | None
    duplicate: bool = False
    #: The session's cost so far incl. VAT (the final cost on an end), when a tariff applies: 2.0.1 totalCost.
    total_cost: Decimal | None = None
    #: An ad-hoc (card) session's cost at which the CSMS stops it: the card's hold is then nearly used up.
    cost_limit: Decimal | None = None
    #: The report (of a session that had ended) rebuilt its stored CDR.
    cdr_rebuilt: bool = False


@dataclass(frozen=True, slots=True)
class DataTransferDecision:
    status: str  # Accepted | Rejected | UnknownMessageId | UnknownVendorId
    data: Any = None


@dataclass(frozen=True, slots=True)
class TimeNow:
    current_time: datetime


@dataclass(frozen=True, slots=True)
class Acknowledged:
    #: The report rebuilt a stored CDR (1.6 meter values after the stop): a CDR sent to a roaming partner is
    #: corrected (csms/ocpi/cdrs.py).
    cdr_rebuilt: bool = False


@dataclass(frozen=True, slots=True)
class CertificateSigningDecision:
    """Accepted: the CA signed the CSR; ``chain`` (the certificate and its CAs, PEM) goes to the station in
    a CertificateSigned call once the answer is committed. Rejected: ``reason`` says which check failed."""

    status: str  # Accepted | Rejected
    certificate_type: str
    chain: str | None = None
    serial: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ContractAuthorization:
    """Authorize with a contract certificate: the eMAID's status and the certificate's
    (AuthorizeCertificateStatusEnumType), decided apart (C07)."""

    token: AuthorizationInfo
    certificate_status: str


@dataclass(frozen=True, slots=True)
class CertificateStatusAnswer:
    status: str  # Accepted | Failed
    ocsp_result: str | None = None  # the responder's DER OCSPResponse, base64


@dataclass(frozen=True, slots=True)
class EvCertificateAnswer:
    status: str  # Accepted | Failed
    exi_response: str = ""


@dataclass(frozen=True, slots=True)
class EvChargingAnswer:
    """The answer to the EV's needs (Accepted | Processing | Rejected, K15) or to its schedule (Accepted |
    Rejected, K17); ``reason`` says why a schedule was rejected."""

    status: str
    reason: str | None = None


Decision = (
    BootDecision
    | AuthorizationInfo
    | TransactionAck
    | DataTransferDecision
    | TimeNow
    | Acknowledged
    | CertificateSigningDecision
    | ContractAuthorization
    | CertificateStatusAnswer
    | EvCertificateAnswer
    | EvChargingAnswer
)
