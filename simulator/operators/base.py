"""The operator: whatever makes a CSMS do what a person at its console would (provision a station or a token,
send a station a command) and tells what the CSMS stored (transactions, statuses, uptime).

Three adapters implement :class:`Operator`: chargetwin's own REST API (:mod:`.chargetwin`), a YAML file of
HTTP calls for any other CSMS with an API (:mod:`.hooks`), and a person following printed instructions
(:mod:`.manual`). What an adapter cannot do it says *before* trying (:meth:`Operator.cannot`), so a
conformance case that needs it is reported *not run* with that reason, and a scenario report shows the
figure as *not measured* — never as passed, never as a zero error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

#: What an operator may be asked to do or read; ``cannot(capability)`` answers for each.
Capability = Literal[
    "provision_station",
    "provision_token",
    "install_contract_root",  # trust a root of ISO 15118 contract certificates (Plug & Charge)
    "send_call",  # make the CSMS send a station a CALL (any action, or those the adapter lists)
    "read_transactions",
    "read_station",
    "read_uptime",
    "configure",  # change how the CSMS treats a station (see Operator.configure)
    "reserve",  # make the CSMS reserve a connector for a token (it chooses the reservation's id)
    "update_firmware",  # store a firmware image on the CSMS and make it send UpdateFirmware pointing at it
    "fleet",  # register a depot's vehicles with their departure plans and post their telematics SoC
    "onboard",  # make the garage a multifamily property and invite its drivers, each redeeming with their card
]

#: What :meth:`Operator.configure` may be asked, with its keyword arguments:
#: ``boot_answer`` (status: Accepted | Pending | Rejected) — how the CSMS answers the station's next boot;
#: ``tariff`` (kwh_price: a decimal string, currency: ISO 4217) — the station's sessions cost that much per kWh
#: (no VAT), for everyone.
SETTINGS = ("boot_answer", "tariff")


class OperatorError(Exception):
    """The operator tried and failed (HTTP error, refused request); the message says what and why."""


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What the CSMS reported of a call it was asked to send: ``accepted`` once it took the request;
    ``response`` is the station's answer when the CSMS tells it (chargetwin does), else None."""

    accepted: bool
    response: dict[str, Any] | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """A firmware image for the CSMS to store as ``name`` and send in UpdateFirmware; signed when both the
    signing certificate (PEM) and the signature (base64) are given."""

    name: str
    image: bytes
    signing_certificate: str | None = None
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class FleetVehicle:
    """A depot's vehicle for the CSMS's fleet records: its battery and limits, the token that brings it to a
    charger, its depot (a site id; None: the CSMS's site holding ``stations``, the chargers it may use, where the
    adapter can look it up), and its weekly departures ``(weekday 0 = Monday, "HH:MM" local in ``tz``, target
    SoC %)``."""

    vehicle_id: str
    battery_kwh: float
    id_token: str
    tz: str
    departures: tuple[tuple[int, str, float], ...]
    depot_id: str | None = None
    max_ac_kw: float | None = None
    max_dc_kw: float | None = None
    stations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Garage:
    """A multifamily garage for the CSMS: its property id and name, the chargers that make it (the CSMS's site
    holding them is the property's), its time zone, and its billing ``terms`` (the property API's fields:
    billing_mode, currency, utility_rate, margin_pct, flat_fee, allowance_kwh, vat_pct)."""

    property_id: str
    name: str
    stations: tuple[str, ...]
    tz: str
    terms: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """One transaction as the CSMS stored it (energy in Wh, as the CSMS computed it; None: not stored)."""

    station_id: str
    transaction_id: str
    started_at: datetime | None
    stopped_at: datetime | None
    energy_wh: float | None
    id_token: str | None = None
    stop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredStation:
    station_id: str
    connected: bool | None
    statuses: dict[tuple[int, int], str]  # (evse, connector) -> last status the CSMS stored
    registration: str | None = None  # the CSMS's last answer to the station's boot ("Accepted"); None: unknown


class Operator(Protocol):
    name: str

    def cannot(self, capability: Capability, action: str | None = None) -> str | None:
        """None when the adapter can do ``capability`` (for ``send_call``: that ``action``), else why not."""
        ...

    async def provision_station(self, station_id: str, version: str, password: str | None) -> None:
        """Make the station known (idempotent: an existing one is updated). Raises OperatorError."""
        ...

    async def provision_token(self, id_token: str, *, status: str = "Accepted", group: str | None = None) -> None:
        """Make a driver's token known with ``status`` (idempotent). Raises OperatorError."""
        ...

    async def install_contract_root(self, pem: str, *, kind: str = "MO") -> None:
        """Make the CSMS trust ``pem`` (a CA certificate) for contract certificates (idempotent). Raises
        OperatorError."""
        ...

    async def send_call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float = 30.0
    ) -> CallOutcome:
        """Make the CSMS send ``action`` with (the equivalent of) ``payload`` to the station. Raises OperatorError."""
        ...

    async def reserve(
        self, station_id: str, id_token: str, *, connector: int | None, valid_for_s: float, timeout_s: float = 30.0
    ) -> CallOutcome:
        """Make the CSMS reserve ``connector`` (None: any) for ``id_token`` during ``valid_for_s`` from when it
        sends ReserveNow (relative, so the twin's and the CSMS's clocks need not agree). Raises OperatorError."""
        ...

    async def update_firmware(
        self, station_id: str, firmware: FirmwareImage, *, retrieve_at: datetime, timeout_s: float = 30.0
    ) -> CallOutcome:
        """Make the CSMS store ``firmware`` (once: an image stored already under its name is kept) and send the
        station UpdateFirmware (signed: 1.6 SignedUpdateFirmware) to fetch it from ``retrieve_at`` (the
        station's clock). Raises OperatorError."""
        ...

    async def register_vehicle(self, vehicle: FleetVehicle) -> None:
        """Make the vehicle and its weekly plan known to the CSMS's fleet records (idempotent). Raises
        OperatorError."""
        ...

    async def record_soc(self, vehicle_id: str, soc_pct: float, at: datetime) -> None:
        """A telematics state of charge of a registered vehicle. Raises OperatorError."""
        ...

    async def onboard(self, garage: Garage, role: str, tokens: list[str], pass_days: int | None) -> None:
        """Make ``garage`` a property (once) and bring each token's driver in as the ``role`` (resident: a unit of
        their own, named by the token), by an invitation redeemed with the token as their own card. Raises
        OperatorError."""
        ...

    async def transactions(self, station_ids: list[str], since: datetime) -> list[StoredTransaction]:
        """Transactions the CSMS stored for these stations since ``since``. Raises OperatorError."""
        ...

    async def station(self, station_id: str) -> StoredStation:
        """The station as the CSMS sees it. Raises OperatorError."""
        ...

    async def uptime(self, station_ids: list[str], start: datetime, end: datetime) -> dict[str, Any]:
        """The CSMS's uptime figures for these stations over [start, end): ``{"ports": [{"station_id",
        "evse_id", "uptime_pct", ...}, ...]}`` (``uptime_pct`` in percent). Raises OperatorError."""
        ...

    async def configure(self, station_id: str, setting: str, **values: Any) -> None:
        """Change a setting of :data:`SETTINGS` for the station. Raises OperatorError."""
        ...

    async def close(self) -> None: ...
