"""Vendor profiles: what real chargers do that the spec does not ask for, as switches the firmware applies.

Theory of operation
-------------------
A profile (:data:`PROFILES`, chosen per charger group with ``vendor_profile:``) is a name, the family it is
modelled on and its :class:`Quirks`. The charger itself stays the spec's; :class:`VendorFirmware` changes
what goes on the wire, in one place, :meth:`VendorFirmware.outgoing` (every CALL the charger sends passes
it), plus the few moments the wire alone cannot express: statuses sent before the BootNotification
(:meth:`~VendorFirmware.before_boot`), the heartbeat's timing (:meth:`~VendorFirmware.heartbeat_delay`,
and ``Quirks.heartbeat``: a fixed period instead of the spec's inactivity interval),
a vendor configuration key (:func:`config_entries`) and the closing meter values of a stop it did not know
the register for (queued behind the StopTransaction, so they survive a dropped link like any transaction
message). Everything is deterministic: jitter draws from the charger's seeded generator.

The twin's ground truth (:class:`~.transactions.Transaction`) is untouched: a quirk changes what the CSMS
is told, never what happened, so a report's energy check shows whether the CSMS recovered it. Which
published reports each quirk is modelled on, and what the CSMS does with it, is docs/hardware.md.

Valid OCPP-J only: a 1.6 sampled value is a string on the wire (the spec's own choice), so "numbers as
strings" there is a formatting choice (``number_format``); a string where the schema wants a number
(``"meterStart": "12000"``) is not valid and the CSMS answers TypeConstraintViolation, which
tests/csms/test_vendor_quirks.py shows; no profile sends it, since its transaction would be refused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from csms.ocpp.convert import format_time, from_posix
from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, Version
from simulator.station.config import STR, Configuration, Entry
from simulator.station.draws import Draws
from simulator.station.offline_queue import QueuedMessage

if TYPE_CHECKING:
    from simulator.station.transactions import Transaction

__all__ = ["PROFILES", "Quirks", "VendorFirmware", "VendorProfile", "config_entries", "profile_named"]

REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
OFFERED = "Current.Offered"
ALL_VERSIONS = frozenset({OCPP16, OCPP201, OCPP21})


@dataclass(frozen=True, slots=True)
class Quirks:
    """The switches; the defaults are the spec's behaviour."""

    #: StatusNotifications of every connector as soon as the link is up, before the BootNotification.
    status_before_boot: bool = False
    #: The energy register in kWh (three decimals) instead of Wh.
    energy_kwh: bool = False
    #: 1.6: the register's sampled value carries no measurand (the spec's default measurand is the register).
    register_without_measurand: bool = False
    #: Measurands added to every meter value (measurand, unit or None, value).
    extra_measurands: tuple[tuple[str, str | None, float], ...] = ()
    #: Power reported per phase only (L1..L3), no total.
    power_per_phase: bool = False
    #: 1.6: how sampled values are written (a format for a float), e.g. ``"{:.2f}"``.
    number_format: str | None = None
    #: 1.6: every periodic MeterValues of a transaction also carries the register at its start (context
    #: Transaction.Begin), after the periodic reading and with its timestamp.
    begin_reading_repeated: bool = False
    #: The register starts at 0 with each transaction (meterStart 0, readings relative to it).
    register_per_transaction: bool = False
    #: 1.6: meterStop is this value (the firmware did not know the register) and the closing register reading
    #: follows the StopTransaction in a MeterValues with context Transaction.End.
    unknown_meter_stop: int | None = None
    #: A vendor configuration key holding the CSMS URL (1.6 GetConfiguration/ChangeConfiguration); the
    #: charger dials the URL written there from its next reboot on.
    csms_url_key: str | None = None
    #: The key is accepted and stored, but the firmware keeps dialling the URL it was provisioned with.
    csms_url_key_ignored: bool = False
    #: Heartbeats drift by up to ± this fraction of the interval.
    heartbeat_jitter: float = 0.0
    #: How the firmware times heartbeats (:data:`.registration.HEARTBEAT_MODES`): ``periodic`` sends one every
    #: interval whatever else was said; None: the spec's ``inactivity`` unless the scenario says otherwise.
    heartbeat: str | None = None
    #: Configuration keys / variables the family ships with (wire name -> value) per version.
    config: tuple[tuple[Version, str, str], ...] = ()


NO_QUIRKS = Quirks()


@dataclass(frozen=True, slots=True)
class VendorProfile:
    name: str
    #: The charger family the profile is modelled on, as docs/hardware.md lists it.
    family: str
    vendor: str
    model: str
    versions: frozenset[Version]
    quirks: Quirks = field(default_factory=Quirks)

    def config_overrides(self, version: Version) -> dict[str, str]:
        return {name: value for v, name, value in self.quirks.config if v == version}


PROFILES: dict[str, VendorProfile] = {
    p.name: p
    for p in (
        VendorProfile("spec", "the OCPP specification", "ChargeTwin", "Twin", ALL_VERSIONS),
        VendorProfile(
            "alfen-eve",
            "Alfen Eve (Single/Double Pro-line, S-line)",
            "Alfen BV",
            "NG910-60023",
            frozenset({OCPP16}),
            Quirks(
                energy_kwh=True,
                register_without_measurand=True,
                extra_measurands=(("Temperature", "Celsius", 31.5), ("Frequency", None, 50.0)),
                number_format="{:.3f}",
                config=(
                    (OCPP16, "MeterValuesSampledData", f"{POWER},{REGISTER},Current.Import,Voltage,Current.Offered"),
                ),
            ),
        ),
        VendorProfile(
            "abb-terra-ac",
            "ABB Terra AC wallbox",
            "ABB",
            "TAC-W22-T",
            frozenset({OCPP16}),
            Quirks(
                heartbeat_jitter=0.1,
                config=(
                    (OCPP16, "MeterValuesSampledData", f"{REGISTER},Current.Import"),
                    (OCPP16, "TransactionMessageAttempts", "10"),
                    (OCPP16, "TransactionMessageRetryInterval", "10"),
                ),
            ),
        ),
        VendorProfile(
            "openevse",
            "OpenEVSE and other MicroOcpp-based chargers",
            "OpenEVSE",
            "OpenEVSE-WiFi",
            frozenset({OCPP16}),
            # MicroOcpp's HeartbeatService sends one every HeartbeatInterval since its last Heartbeat, whatever
            # else was sent (matth-x/MicroOcpp, src/MicroOcpp/Model/Heartbeat/HeartbeatService.cpp, 2023).
            Quirks(register_per_transaction=True, unknown_meter_stop=0, heartbeat="periodic"),
        ),
        VendorProfile(
            "project-ev",
            "Project EV wallbox",
            "Project EV",
            "EVA-07S",
            frozenset({OCPP16}),
            Quirks(
                power_per_phase=True,
                begin_reading_repeated=True,
                extra_measurands=(("Temperature", "Celsius", 30.0),),
                number_format="{:.2f}",
                config=((OCPP16, "MeterValuesSampledData", f"{REGISTER},{POWER},Current.Import,Voltage"),),
            ),
        ),
        VendorProfile(
            "everest",
            "EVerest-based chargers (libocpp)",
            "EVerest",
            "libocpp",
            ALL_VERSIONS,
            Quirks(status_before_boot=True, csms_url_key="CentralSystemURI", heartbeat_jitter=0.05),
        ),
        VendorProfile(
            "everest-pinned-url",
            "EVerest-based chargers whose integrator pins the CSMS URL: CentralSystemURI is accepted and "
            "stored, the charger keeps dialling its provisioned URL (what a re-point must catch)",
            "EVerest",
            "libocpp-pinned",
            frozenset({OCPP16}),
            Quirks(status_before_boot=True, csms_url_key="CentralSystemURI", csms_url_key_ignored=True),
        ),
    )
}


def profile_named(name: str) -> VendorProfile:
    """Raises: KeyError naming the known profiles."""
    profile = PROFILES.get(name)
    if profile is None:
        raise KeyError(f"unknown vendor profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return profile


def config_entries(profile: VendorProfile, version: Version) -> tuple[Entry, ...]:
    """The profile's own configuration keys (1.6 only: 2.0.1 keeps the URL in its network profiles)."""
    key = profile.quirks.csms_url_key
    if key is None or version != OCPP16:
        return ()
    reads = "stored only" if profile.quirks.csms_url_key_ignored else "the CSMS URL from the next reboot on"
    return (Entry("csms_url", key, "", False, STR, reads, True),)


class FirmwareView(Protocol):
    """What the vendor layer reads of the charger."""

    @property
    def rng(self) -> Draws: ...
    @property
    def version(self) -> Version: ...
    @property
    def history(self) -> list[Transaction]: ...
    @property
    def connectors(self) -> Mapping[int, Any]: ...
    @property
    def protocol(self) -> Any: ...

    def send(self, action: str, payload: dict[str, Any], now: float) -> bool: ...
    def queue_message(
        self, message: QueuedMessage | None, now: float, *, phase: str = "update", register_wh: float | None = None
    ) -> None: ...


class VendorFirmware:
    """One charger's vendor layer."""

    __slots__ = ("_closing_queued", "_plain", "charger", "profile", "quirks")

    def __init__(self, profile: VendorProfile, charger: FirmwareView) -> None:
        self.profile, self.quirks, self.charger = profile, profile.quirks, charger
        self._plain = profile.quirks == NO_QUIRKS  # the spec's firmware: every payload goes out as built
        self._closing_queued: set[int] = set()  # tx keys whose closing MeterValues is queued

    # ---- moments ------------------------------------------------------------------------------------
    def before_boot(self, now: float) -> None:
        """The link is up and a BootNotification is due: some firmware reports its connectors first."""
        if self.quirks.status_before_boot:
            for payload in self.charger.protocol.all_status_payloads(now):
                self.charger.send("StatusNotification", payload, now)

    def heartbeat_delay(self, interval: int) -> float:
        jitter = self.quirks.heartbeat_jitter
        if jitter <= 0 or interval <= 0:
            return float(interval)
        return interval * (1.0 + self.charger.rng.uniform(-jitter, jitter))

    def csms_url_at_boot(self, config: Configuration) -> str | None:
        """1.6 at a reboot: the URL the vendor key names (None: no key, an empty one, or a firmware that
        ignores it)."""
        if self.quirks.csms_url_key is None or self.quirks.csms_url_key_ignored or not config.has("csms_url"):
            return None
        return config.value(self.quirks.csms_url_key) or None

    # ---- the wire -----------------------------------------------------------------------------------
    def outgoing(self, action: str, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """The payload as this firmware sends it (a copy when changed: queued messages are resent as built)."""
        if self._plain or action not in _REWRITTEN:
            return payload
        payload = copy.deepcopy(payload)
        tx = self._transaction_of(action, payload)
        offset = tx.meter_start_wh if tx is not None and self.quirks.register_per_transaction else 0.0
        if self.charger.version == OCPP16:
            self._outgoing_16(action, payload, tx, offset, now)
        for meter_value in _meter_values(action, payload):
            meter_value["sampledValue"] = list(self._sampled(meter_value["sampledValue"], tx, offset))
            meter_value["sampledValue"] += [self._extra(m, unit, v) for m, unit, v in self.quirks.extra_measurands]
            if self.quirks.begin_reading_repeated and action == "MeterValues" and "transactionId" in payload:
                meter_value["sampledValue"].append(self._begin(tx, offset))
        return payload

    def _begin(self, tx: Transaction | None, offset: float) -> dict[str, Any]:
        start = 0.0 if tx is None else tx.meter_start_wh - offset
        sv = {"value": start, "context": "Transaction.Begin", "measurand": REGISTER, "unit": "Wh"}
        return self._formatted(sv | {"location": "Outlet"})

    def _outgoing_16(
        self, action: str, payload: dict[str, Any], tx: Transaction | None, offset: float, now: float
    ) -> None:
        if action == "StartTransaction" and self.quirks.register_per_transaction:
            payload["meterStart"] = 0
        elif action == "StopTransaction":
            payload["meterStop"] = round(payload["meterStop"] - offset)
            if self.quirks.unknown_meter_stop is not None:
                payload["meterStop"] = self.quirks.unknown_meter_stop
                if tx is not None:
                    self._queue_closing_values(tx, now)

    def _queue_closing_values(self, tx: Transaction, now: float) -> None:
        """The register at the stop, sent after the StopTransaction (and through the queue, so it is not lost)."""
        if tx.key in self._closing_queued or tx.meter_stop_wh is None or tx.ended_at is None:
            return
        self._closing_queued.add(tx.key)
        sampled = {"value": f"{tx.meter_stop_wh:.3f}", "context": "Transaction.End", "measurand": REGISTER}
        sampled |= {"unit": "Wh", "location": "Outlet"}
        reading = {"timestamp": format_time(from_posix(tx.ended_at)), "sampledValue": [sampled]}
        message = QueuedMessage("MeterValues", {"connectorId": tx.connector_id, "meterValue": [reading]}, tx.key)
        self.charger.queue_message(message, now, register_wh=tx.meter_stop_wh)

    def _sampled(self, values: list[dict[str, Any]], tx: Transaction | None, offset: float) -> Iterator[dict[str, Any]]:
        for sv in values:
            measurand = sv.get("measurand", REGISTER)
            if measurand == REGISTER:
                yield self._register(sv, offset)
            elif measurand == POWER and self.quirks.power_per_phase and "phase" not in sv:
                yield from self._per_phase(sv, tx)
            else:
                yield self._formatted(sv)

    def _register(self, sv: dict[str, Any], offset: float) -> dict[str, Any]:
        wh = float(sv["value"]) - offset
        if self.quirks.register_without_measurand and self.charger.version == OCPP16:
            sv.pop("measurand", None)
        if not self.quirks.energy_kwh:
            return self._formatted(sv) if offset == 0 else self._formatted({**sv, "value": wh})
        if self.charger.version == OCPP16:
            sv["value"], sv["unit"] = f"{wh / 1000.0:.3f}", "kWh"
        else:
            sv["value"], sv["unitOfMeasure"] = round(wh / 1000.0, 3), {"unit": "kWh"}
        return sv

    def _per_phase(self, sv: dict[str, Any], tx: Transaction | None) -> Iterator[dict[str, Any]]:
        connector = self.charger.connectors.get(tx.connector_id) if tx is not None else None
        phases = 1 if connector is None or connector.spec.dc else connector.spec.phases
        for line in ("L1", "L2", "L3")[:phases]:
            yield self._formatted({**sv, "value": float(sv["value"]) / phases, "phase": line})

    def _formatted(self, sv: dict[str, Any]) -> dict[str, Any]:
        value = float(sv["value"])
        if self.charger.version != OCPP16:
            sv["value"] = round(value, 3)
        elif self.quirks.number_format is not None:
            sv["value"] = self.quirks.number_format.format(value)
        else:
            sv["value"] = str(round(value, 3))
        return sv

    def _extra(self, measurand: str, unit: str | None, value: float) -> dict[str, Any]:
        sv: dict[str, Any] = {"measurand": measurand, "context": "Sample.Periodic", "location": "Body"}
        if self.charger.version == OCPP16:
            sv["value"] = (self.quirks.number_format or "{:g}").format(value)
            if unit is not None:
                sv["unit"] = unit
        else:
            sv["value"] = value
            if unit is not None:
                sv["unitOfMeasure"] = {"unit": unit}
        return sv

    # ---- which transaction a message is about -------------------------------------------------------
    def _transaction_of(self, action: str, payload: dict[str, Any]) -> Transaction | None:
        if action == "TransactionEvent":
            return self._by_id(payload["transactionInfo"]["transactionId"])
        if "transactionId" in payload:
            return self._by_id(payload["transactionId"])
        connector = payload.get("connectorId", payload.get("evseId"))
        return next((t for t in reversed(self.charger.history) if t.connector_id == connector), None)

    def _by_id(self, transaction_id: int | str) -> Transaction | None:
        wanted = str(transaction_id)
        return next((t for t in reversed(self.charger.history) if str(t.transaction_id) == wanted), None)


_REWRITTEN = frozenset({"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"})


def _meter_values(action: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    if action == "StopTransaction":
        return list(payload.get("transactionData", []))
    return list(payload.get("meterValue", []))
