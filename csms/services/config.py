"""Operator-facing settings of the CSMS core (the CLI and scenarios fill them in)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from csms.pki.authority import StationCa

if TYPE_CHECKING:
    from csms.services.payments import CardProcessor


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    heartbeat_interval_s: int = 300
    #: Retry interval given to stations answered Pending / Rejected.
    pending_interval_s: int = 60
    rejected_interval_s: int = 600
    #: Unknown stations that connect are noted as pending registrations for an operator to approve (they are
    #: refused until then) instead of only refused.
    auto_register: bool = False
    #: Caps on pending registrations: in all, and per source address.
    max_pending_registrations: int = 100
    max_pending_per_source: int = 5
    #: Handshake failures (per station id, per source address) before further attempts are refused without
    #: a password check, until the window that began with the first failure ends.
    handshake_failure_limit: int = 5
    #: Per source address it is higher: many honest stations may share one address (NAT, a proxy).
    handshake_source_failure_limit: int = 20
    handshake_failure_window_s: float = 60.0
    call_timeout_s: float = 30.0
    #: How long an answer may wait for an outside lookup (an OCSP responder, the contract-certificate
    #: provider) before it is given without it; well inside a station's reply timeout (often 30 s).
    lookup_timeout_s: float = 5.0
    #: Frames kept per station in the OCPP message log (0: no log).
    message_log_per_station: int = 500
    #: The largest log or diagnostics file a station may upload (GetDiagnostics, GetLog) [bytes].
    max_upload_bytes: int = 50 * 1024 * 1024
    #: Vendor ids whose DataTransfer we understand.
    known_vendors: frozenset[str] = frozenset({"org.chargetwin"})
    #: The CA that signs stations' CSRs (SignCertificate); None: every CSR is answered Rejected.
    station_ca: StationCa | None = None
    #: A station certificate this close to its end raises ``certificate_expiring`` and is renewed [days].
    renew_before_days: int = 30
    #: CertificateSigned is sent again this many times when the station does not answer it.
    certificate_signed_retries: int = 2
    #: The IANA time zone whose local time tariffs' time-of-day, day-of-week and date restrictions (and the
    #: midnight splits of charging periods) are read in.
    tariff_time_zone: str = "UTC"
    #: How often a running session's cost is sent to the charger (2.0.1 CostUpdated, 1.6 RunningCost) [s].
    cost_update_interval_s: float = 300.0
    #: The OCPI party that issues CDRs (country code, party id).
    ocpi_country_code: str = "NL"
    ocpi_party_id: str = "CTW"
    #: The card processor that pre-authorises ad-hoc payments at chargers' payment terminals; None: such cards
    #: are answered Invalid (csms.services.payments).
    card_processor: CardProcessor | None = None
    #: The amount pre-authorised on a card for one ad-hoc session, in whole units of the tariff's currency.
    adhoc_preauth: Decimal = Decimal(50)
    #: The driver group whose tariff an ad-hoc (payment terminal) session pays; None: the place's default.
    adhoc_group_id: str | None = None
    #: A card hold whose session token has started no transaction this long after it was made is voided [s].
    adhoc_hold_ttl_s: float = 900.0
