"""The narrow boundary between the twin's physics and the charger firmware model.

The twin owns cables, batteries and meters; the firmware (``simulator.station``) owns OCPP, transactions and
charging profiles. They meet only here:

* the twin tells the firmware what a driver did (``on_plug_in``, ``on_unplug``) and when a vehicle stopped
  drawing power (``on_ev_suspended``);
* the twin asks the firmware whether a connector may deliver (``is_energizing``), whether drivers may use it
  at all (``is_available``), and what the active charging-profile composite allows (``charging_limit``);
* the firmware reads electrical quantities through ``TwinReadout.meter`` and, whenever its answer to either
  question changes (transaction started/stopped/suspended, new profile), calls ``TwinReadout.reevaluate``
  so the twin applies it at once instead of at the next physics step.

All times are ``now_s``: seconds since the scenario start (the SimPy ``env.now``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "AlwaysOn",
    "ChargingLimit",
    "ConnectorRef",
    "MeterReading",
    "StationHooks",
    "TwinReadout",
    "VehicleInfo",
]


class ConnectorRef(NamedTuple):
    """A connector: OCPP 1.6 ``connectorId`` / OCPP 2.0.1 ``evseId`` (each EVSE has one connector, id 1).

    A named tuple rather than a frozen dataclass: the twin keys its dicts and sets by connector (~230,000
    hashes in four hours of a 200-charger night), and a tuple hashes in C where the dataclass ran a generated
    Python ``__hash__``. The hash is the same value (the dataclass hashed the tuple of its fields), so sets of
    connectors iterate in the same order; equality and order are the fields' as before.
    """

    station_id: str
    connector_id: int

    def __str__(self) -> str:
        return f"{self.station_id}#{self.connector_id}"


@dataclass(frozen=True)
class VehicleInfo:
    """What a charger can learn about a plugged vehicle (the token the driver presents, and for DC/ISO 15118
    the battery data)."""

    vehicle_id: str
    model: str
    id_token: str | None
    group: str | None
    battery_kwh: float
    soc: float
    target_soc: float
    departure_s: float | None
    #: ISO 15118 Plug & Charge: the vehicle presents a contract certificate whose eMAID is ``id_token``.
    plug_and_charge: bool = False
    #: ISO 15118 smart charging: the vehicle tells the charger its needs; with what it can take [kW].
    iso15118: bool = False
    max_ac_kw: float | None = None
    max_dc_kw: float | None = None
    #: The driver pays by card at the charger's payment terminal; ``id_token`` is the card's reference.
    pays_by_card: bool = False


@dataclass(frozen=True)
class ChargingLimit:
    """The active charging-profile composite at one instant: ``value`` in W or in A per phase."""

    value: float
    unit: Literal["W", "A"] = "W"

    @property
    def limit_w(self) -> float | None:
        return self.value if self.unit == "W" else None

    @property
    def limit_a(self) -> float | None:
        return self.value if self.unit == "A" else None


class MeterReading(NamedTuple):
    """Electrical state of one connector at ``now_s``; the register is integrated up to ``now_s``. A tuple:
    one is built at every sample of every charging connector."""

    now_s: float
    energy_register_wh: float
    power_w: float
    voltage_v: float
    current_a: float
    phase_currents_a: tuple[float, float, float]
    active_phases: int
    soc: float | None
    vehicle_plugged: bool


class StationHooks(Protocol):
    """Implemented by the firmware model; called by the twin."""

    def on_plug_in(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None: ...

    def on_unplug(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None: ...

    def on_ev_suspended(self, connector: ConnectorRef, now_s: float) -> None:
        """The vehicle is plugged and energized but draws nothing (battery at its charge limit)."""
        ...

    def is_energizing(self, connector: ConnectorRef) -> bool:
        """True while a transaction is authorised and running and not suspended by the EVSE."""
        ...

    def is_available(self, connector: ConnectorRef) -> bool:
        """False while the connector shows it is out of service (Unavailable, Faulted): drivers go elsewhere."""
        ...

    def charging_limit(self, connector: ConnectorRef, now_s: float) -> ChargingLimit | None:
        """The composite charging-profile limit now, or None for no limit."""
        ...


class TwinReadout(Protocol):
    """Implemented by ``TwinWorld``; used by the firmware model."""

    def meter(self, connector: ConnectorRef) -> MeterReading: ...

    def reevaluate(self, connector: ConnectorRef) -> None: ...


class AlwaysOn:
    """Hooks for a charger without a backend: energizes whenever a vehicle is plugged, no limit.

    Records every callback in ``events`` as ``(now_s, name, connector)`` for tests. ``limits`` may be set to
    impose a fixed limit per connector.
    """

    def __init__(self) -> None:
        self.events: list[tuple[float, str, ConnectorRef]] = []
        self.limits: dict[ConnectorRef, ChargingLimit] = {}
        self._plugged: set[ConnectorRef] = set()

    def on_plug_in(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None:
        self._plugged.add(connector)
        self.events.append((now_s, "plug_in", connector))

    def on_unplug(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None:
        self._plugged.discard(connector)
        self.events.append((now_s, "unplug", connector))

    def on_ev_suspended(self, connector: ConnectorRef, now_s: float) -> None:
        self.events.append((now_s, "ev_suspended", connector))

    def is_energizing(self, connector: ConnectorRef) -> bool:
        return connector in self._plugged

    def is_available(self, connector: ConnectorRef) -> bool:
        return True

    def charging_limit(self, connector: ConnectorRef, now_s: float) -> ChargingLimit | None:
        return self.limits.get(connector)
