"""The fleet both clocks drive: the twin, one charger firmware per station, the hooks between them, the
scenario's timeline of operator actions and faults, the plot sampler and the run record.

Virtual time (:mod:`simulator.runner`) and real time (:mod:`simulator.realtime`) differ only in the link
each charger gets (a :class:`LinkFactory`), in who carries out operator actions (an :class:`Operator`) and
in who can crash the CSMS (``crash_csms``: only the embedded CSMS of a virtual run). Station faults are
injected alike under both clocks (:mod:`simulator.faults`).
Construction order is fixed so a seed gives the same run: one ``random.Random(seed)`` draws, in order, the
twin's generator, then per station (scenario order) the charger's and the link's.

    TwinWorld ──StationHooks──▶ FirmwareHooks ──▶ Charger (sans-IO) ──Link──▶ CSMS
        ▲                                            │
        └──────────── reevaluate / meter ────────────┘
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import simpy

from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.outgoing import Call
from csms.ocpp.versions import OCPP16, Version
from csms.uptime import Attempt
from simulator import report
from simulator.faults import CsmsFault, FaultInjector, StationFault
from simulator.operators.base import FleetVehicle
from simulator.pnc import MobilityOperator
from simulator.scenario.models import (
    ChangeAvailability,
    DemandResponse,
    FleetBlock,
    InstallCertificate,
    MigrationAction,
    Onboard,
    ProvisionTokens,
    RegisterVehicles,
    RemoteStart,
    RemoteStop,
    RenewCertificate,
    Reserve,
    Reset,
    Scenario,
    SecurityAction,
    SetTariff,
    Telematics,
    UpdateFirmware,
)
from simulator.scenario.to_twin import twin_spec
from simulator.station.charger import Charger, StationIdentity
from simulator.station.connector import ConnectorSpec
from simulator.station.cost_display import SessionCostShown
from simulator.station.draws import SeededDraws
from simulator.station.iso15118 import EvNeeds
from simulator.station.security import StationSecurity
from simulator.station.vendors import PROFILES
from simulator.twin.interfaces import ChargingLimit, ConnectorRef, MeterReading, VehicleInfo
from simulator.twin.world import TwinWorld
from simulator.verify import cost
from simulator.verify import faults as fv
from simulator.verify.billing import TariffPlan, TruthTimeline, truth_timeline
from simulator.verify.optimum import twin_energy_metrics

log = logging.getLogger(__name__)

Progress = Callable[[float, float], None]
#: Connector statuses (both versions) a driver treats as "out of service".
OUT_OF_SERVICE = frozenset({"Unavailable", "Faulted"})
OperatorCall = RemoteStart | RemoteStop | ChangeAvailability | Reset | SecurityAction | Reserve | UpdateFirmware


class Link(Protocol):
    """What the fleet needs of a charger's link (in-process or WebSocket)."""

    def start(self) -> None: ...
    def poke(self) -> None: ...
    def set_network(self, up: bool) -> None: ...


#: Makes the link of one charger: ``(charger, its own generator's seed, call after the charger acted)``.
LinkFactory = Callable[[Charger, int, Callable[[Charger], None]], Link]


class Operator(Protocol):
    """Carries out the scenario's operator actions on the CSMS (embedded, through our API, or not at all)."""

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None: ...
    def onboard(self, tokens: list[str], item: Onboard, now: float) -> None: ...
    def demand_response(self, item: DemandResponse, now: float) -> None: ...
    def register_vehicles(self, vehicles: list[FleetVehicle], now: float) -> None: ...
    def telematics(self, vehicle_id: str, soc_pct: float, now: float) -> None: ...
    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None: ...
    def set_tariff(self, item: SetTariff, stations: list[str], now: float) -> None: ...


class TwinMeters:
    """The firmware's view of the twin's meters (``MeterSource``) for one station."""

    __slots__ = ("_refs", "frozen", "station_id", "world")

    def __init__(self, world: TwinWorld, station_id: str) -> None:
        self.world, self.station_id = world, station_id
        self.frozen: dict[int, float] | None = None  # the meter_freeze fault: registers held at these values
        #: The world's own ``ConnectorRef`` of connector n at index n - 1 (filled as connectors are first asked
        #: for): the one cache of them for the station's meters and hooks, a list rather than a dict.
        self._refs: list[ConnectorRef] = []

    def ref(self, connector_id: int) -> ConnectorRef:
        """The world's own key of the station's connector (a dict finds it by identity, skipping ``__eq__``)."""
        refs = self._refs
        while len(refs) < connector_id:
            refs.append(self.world.ref(self.station_id, len(refs) + 1))
        return refs[connector_id - 1]

    def _read(self, connector_id: int) -> MeterReading:
        return self.world.meter(self.ref(connector_id))

    def energy_wh(self, connector_id: int) -> float:
        if self.frozen is not None and connector_id in self.frozen:
            return self.frozen[connector_id]
        return self._read(connector_id).energy_register_wh

    def freeze(self, connectors: list[int]) -> None:
        self.frozen = {c: self._read(c).energy_register_wh for c in connectors}

    def thaw(self) -> None:
        self.frozen = None

    def power_w(self, connector_id: int) -> float:
        return self._read(connector_id).power_w

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return self._read(connector_id).phase_currents_a

    def voltage_v(self, connector_id: int) -> float:
        return self._read(connector_id).voltage_v

    def soc(self, connector_id: int) -> float | None:
        soc = self._read(connector_id).soc
        return None if soc is None else soc * 100.0


def ev_needs(vehicle: VehicleInfo, spec: ConnectorSpec, epoch: float) -> EvNeeds:
    """What an ISO 15118 vehicle tells the charger: energy to its target, its departure, the most it takes."""
    energy_wh = max(0.0, (vehicle.target_soc - vehicle.soc) * vehicle.battery_kwh * 1000.0)
    departure = None if vehicle.departure_s is None else epoch + vehicle.departure_s
    max_kw = (vehicle.max_dc_kw if spec.dc else vehicle.max_ac_kw) or spec.max_power_w / 1000.0
    return EvNeeds(energy_wh, departure, max_kw * 1000.0, spec.dc, spec.phases, spec.voltage_v)


class FirmwareHooks:
    """The twin's ``StationHooks``, answered by the chargers' firmware; tells the twin when answers change."""

    def __init__(
        self, epoch: float, truth: fv.FaultTruth | None = None, contracts: MobilityOperator | None = None
    ) -> None:
        self.epoch = epoch
        #: Who issued the Plug & Charge vehicles' contracts (None: they present their eMAID as a plain token).
        self.contracts = contracts
        self.chargers: dict[str, Charger] = {}
        self.links: dict[str, Link] = {}
        self.world: TwinWorld | None = None
        self.truth = truth
        #: The fleet schedule / driver app: tells the CSMS each plugged vehicle's needs (load management).
        self.on_vehicle: Callable[[ConnectorRef, VehicleInfo, float], None] | None = None
        #: A roaming driver's app: True when it starts the session itself (the driver presents no token).
        self.driver_app: Callable[[ConnectorRef, VehicleInfo, float], bool] | None = None
        #: Each station's view of the twin's meters (``Fleet`` fills it); they also hold its connectors' refs.
        self.meters: dict[str, TwinMeters] = {}
        #: Per connector, what the hooks last saw: energizing, limit, available, and the status the truth last got.
        self._seen: dict[ConnectorRef, tuple[bool, float | None, bool, str]] = {}

    def _now(self, now_s: float) -> float:
        return self.epoch + now_s

    def on_plug_in(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None:
        charger, now = self.chargers[connector.station_id], self._now(now_s)
        if vehicle.plug_and_charge and vehicle.id_token is not None and self.contracts is not None:
            contract = self.contracts.contract(vehicle.id_token, from_posix(now))
            charger.plug_in(connector.connector_id, vehicle.id_token, now, "eMAID", contract)
        elif self.driver_app is not None and self.driver_app(connector, vehicle, now):
            charger.plug_in(connector.connector_id, None, now)
        elif vehicle.pays_by_card:  # the driver's card at the charger's terminal (without one: no way to pay)
            terminal = charger.payment_terminal
            token = None if terminal is None or vehicle.id_token is None else terminal.present_card(vehicle.id_token)
            charger.plug_in(connector.connector_id, token, now, "Local")
        else:
            charger.plug_in(connector.connector_id, vehicle.id_token, now)
        if vehicle.iso15118:
            spec = charger.connectors[connector.connector_id].spec
            charger.ev_charging_needs(connector.connector_id, ev_needs(vehicle, spec, self.epoch), now)
        self.links[connector.station_id].poke()
        if self.on_vehicle is not None:
            self.on_vehicle(connector, vehicle, self._now(now_s))

    def speaks_for_itself(self, connector: ConnectorRef, vehicle: VehicleInfo) -> bool:
        """The vehicle tells the CSMS its needs itself (ISO 15118 through a 2.0.1 charger): no schedule need."""
        return vehicle.iso15118 and self.chargers[connector.station_id].version != OCPP16

    def on_unplug(self, connector: ConnectorRef, vehicle: VehicleInfo, now_s: float) -> None:
        self.chargers[connector.station_id].unplug(connector.connector_id, self._now(now_s))
        self.links[connector.station_id].poke()

    def on_ev_suspended(self, connector: ConnectorRef, now_s: float) -> None:
        self.chargers[connector.station_id].ev_suspended(connector.connector_id, True, self._now(now_s))
        self.links[connector.station_id].poke()

    def is_energizing(self, connector: ConnectorRef) -> bool:
        return self.chargers[connector.station_id].is_energizing(connector.connector_id)

    def is_available(self, connector: ConnectorRef) -> bool:
        return self.chargers[connector.station_id].status(connector.connector_id) not in OUT_OF_SERVICE

    def charging_limit(self, connector: ConnectorRef, now_s: float) -> ChargingLimit | None:
        limit = self.chargers[connector.station_id].limit_w(connector.connector_id, self._now(now_s))
        return None if limit is None else ChargingLimit(limit, "W")

    def charger_changed(self, charger: Charger) -> None:
        """After the firmware acted: wake the twin's delivery where energizing or the limit changed."""
        if self.world is None:
            return
        world, truth, seen = self.world, self.truth, self._seen
        now = self.epoch + world.env.now
        meters = self.meters[charger.station_id]
        for connector_id, connector in charger.connectors.items():
            status = connector.status
            energizing = charger.is_energizing(connector_id)
            limit = charger.limit_w(connector_id, now)
            ref = meters.ref(connector_id)
            before = seen.get(ref)
            # The usual case, nothing the twin sees changed (whether available follows from the status).
            if before is not None and before[3] == status and before[0] == energizing and before[1] == limit:
                continue
            available = status not in OUT_OF_SERVICE
            state = seen[ref] = (energizing, limit, available, status)
            if truth is not None and (before is None or before[3] != status):
                truth.status(ref, status, now)  # the truth records changes only, and is told only here
            if before is None or before[:3] != state[:3]:
                world.reevaluate(ref)
                if available and before is not None and not before[2]:
                    world.connector_available(ref)


@dataclass
class Sampler:
    """Series for the plots, taken at every physics step. ``evse_kw`` holds only the steps where a connector's
    power changed (it holds until the next point): most connectors sit at one power for hours."""

    evse_kw: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    soc: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def connector_spec(current: str, phases: int, voltage: float, max_kw: float) -> ConnectorSpec:
    dc = current == "DC"
    lines = 1 if dc else phases
    return ConnectorSpec(
        voltage_v=voltage if not dc else 400.0,
        phases=lines,
        dc=dc,
        max_current_a=max_kw * 1000.0 / ((voltage if not dc else 400.0) * lines),
    )


def session_attempts(chargers: Iterable[Charger]) -> dict[tuple[str, int], list[Attempt]]:
    """Every ended session per port with the energy the firmware metered (the twin's uptime truth)."""
    attempts: dict[tuple[str, int], list[Attempt]] = {}
    for charger in chargers:
        for tx in charger.history:
            if tx.ended_at is not None and tx.meter_stop_wh is not None:
                attempts.setdefault((charger.station_id, tx.connector_id), []).append(
                    Attempt(from_posix(tx.started_at), from_posix(tx.ended_at), tx.meter_stop_wh - tx.meter_start_wh)
                )
    return attempts


def alert_bounds(scenario: Scenario, chargers: Iterable[Charger], latency_s: float) -> dict[str, float]:
    """Per fault kind, the rule's own worst-case delay where it is known (``alerts_section``'s ``bounds``)."""
    settings = scenario.csms.alerts
    sample_interval = max((c.config.integer("sample_interval") for c in chargers), default=60)
    return {
        "meter_freeze": fv.meter_frozen_bound(
            settings.meter_frozen_after, settings.meter_frozen_readings, sample_interval, latency_s
        )
    }


def station_passwords(scenario: Scenario, default: str | None) -> dict[str, str | None]:
    """Each station's HTTP Basic password: its charger group's ``password``, else ``default``."""
    return {sid: group.password or default for group in scenario.chargers for sid in group.station_ids}


def commission(chargers: Iterable[Charger], scenario: Scenario, csms_root_pem: str | None) -> None:
    """What the installer set before the run, under both clocks: each charger's organisation, the O of its CSRs
    that the CSMS's station CA checks (1.6 ``CpoName``, 2.0.1 ``SecurityCtrlr.OrganizationName``), and on
    chargers that start on wss:// the CSMS's root certificate."""
    pki = scenario.csms.pki
    for charger in chargers:
        if pki is not None:
            charger.security.organization = pki.organisation
        if charger.security.profile >= 2 and csms_root_pem is not None:
            charger.security.install_root("CSMSRootCertificate", csms_root_pem)


def security_calls(item: SecurityAction, version: Version, csms_root_pem: str, tls_url: str) -> list[Call]:
    """The calls of a security action, in order (each to be sent once the one before was accepted)."""
    if isinstance(item, InstallCertificate):
        return [commands.install_certificate(version, "CSMSRootCertificate", csms_root_pem)]
    if isinstance(item, RenewCertificate):
        return [commands.trigger_certificate_renewal(version)]
    return commands.upgrade_profile(version, item.profile, tls_url)


def scenario_tokens(scenario: Scenario, item: ProvisionTokens) -> list[str]:
    """The id tokens a ``provision_tokens`` action names (listed, and those of the named vehicle blocks)."""
    tokens: list[str] = list(item.tokens or [])
    if item.vehicles is not None:
        tokens += group_tokens(scenario, item.vehicles)
    return tokens


def group_tokens(scenario: Scenario, name: str) -> list[str]:
    """The id tokens of the vehicle blocks with this name or group."""
    tokens: list[str] = []
    for block in scenario.vehicles:
        if block.name == name or block.group == name:
            tokens += [t for t in block.tokens() if t is not None]
    return tokens


def block_vehicle_ids(scenario: Scenario, name: str) -> list[str]:
    """The twin's vehicle ids of the vehicle blocks with this name or group (``{block name}-{n}``)."""
    return [
        f"{block.name}-{n}"
        for block in scenario.vehicles
        if block.name == name or block.group == name
        for n in range(1, len(block.tokens()) + 1)
    ]


def operator_payload(item: OperatorCall, version: Version, remote_start_id: int) -> tuple[str, dict[str, Any]] | None:
    """The OCPP call for a remote start, reset or availability change (a remote stop needs the CSMS's id)."""
    if isinstance(item, RemoteStart):
        return commands.remote_start(version, item.id_token, item.connector, remote_start_id=remote_start_id)
    if isinstance(item, Reset):
        return commands.reset(version, item.mode)
    if isinstance(item, ChangeAvailability):
        return commands.change_availability(version, item.connector or 0, item.availability == "operative")
    return None


class Fleet:
    """The twin and its chargers under one SimPy environment, linked by ``make_link``."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        env: simpy.Environment,
        make_link: LinkFactory,
        *,
        charger_options: dict[str, Any] | None = None,
        truth: fv.FaultTruth | None = None,
        contracts: MobilityOperator | None = None,
        epoch: float | None = None,
    ) -> None:
        self.scenario, self.seed, self.env = scenario, seed, env
        self._crash_csms: Callable[[CsmsFault], None] | None = None
        self._migrate: Callable[[MigrationAction], None] | None = None
        rng = random.Random(seed)
        #: The chargers' clock at the twin's 0 (POSIX s): the scenario's start, or the wall clock of a real-time run
        #: started now (``--start now``); the twin itself (building load, arrivals, the utility's tariff) keeps the
        #: scenario's time of day.
        self.epoch = scenario.start.timestamp() if epoch is None else epoch
        #: What really happened (statuses, links, faults), for the ``uptime`` and ``alerts`` sections.
        self.truth = truth if truth is not None else fv.FaultTruth()
        #: Demand-response events as the utility sent them: (start_s, end_s, limit_kw).
        self.dr_events: list[tuple[float, float, float]] = []
        #: Vehicles registered in the CSMS's fleet records (``register_vehicles``): the CSMS works their needs out.
        self.registered: set[str] = set()
        #: The tariffs the scenario's set_tariff actions set, and the token groups its drivers are in.
        self.tariff_plan = TariffPlan()
        self.hooks = FirmwareHooks(self.epoch, self.truth, contracts)
        self.world = TwinWorld(twin_spec(scenario), random.Random(rng.getrandbits(64)), hooks=self.hooks, env=env)
        self.hooks.world = self.world
        for group in scenario.chargers:
            spec = connector_spec(group.current or "AC", group.phases or 3, group.voltage or 230.0, group.max_kw)
            for station_id in group.station_ids:
                self.meters[station_id] = TwinMeters(self.world, station_id)
                charger = Charger(
                    station_id,
                    group.ocpp,
                    meter=self.meters[station_id],
                    rng=SeededDraws(rng.getrandbits(64)),  # as random.Random(seed) draws, without its 2.5 kB
                    connectors=[spec] * group.connectors,
                    identity=StationIdentity(
                        vendor=group.vendor[:20], model=(group.model or "twin")[:20], serial_number=station_id[:25]
                    ),
                    smart_charging=group.smart_charging,
                    vendor=None if group.vendor_profile is None else PROFILES[group.vendor_profile],
                    security=StationSecurity(station_id, profile=group.security_profile, password=group.password),
                    payment_terminal=group.payment_terminal,
                    heartbeat=group.heartbeat,
                    **(charger_options or {}),
                )
                self.hooks.chargers[station_id] = charger
                self.hooks.links[station_id] = make_link(charger, rng.getrandbits(64), self.hooks.charger_changed)
        self.sampler = Sampler()
        self.faults = FaultInjector(env, self.epoch, self.truth, self.chargers, self.links, self.meters)

    @property
    def chargers(self) -> dict[str, Charger]:
        return self.hooks.chargers

    @property
    def links(self) -> dict[str, Link]:
        return self.hooks.links

    @property
    def meters(self) -> dict[str, TwinMeters]:
        return self.hooks.meters

    # ---- run -------------------------------------------------------------------------------------------
    def start(
        self,
        operator: Operator,
        progress: Progress | None,
        crash_csms: Callable[[CsmsFault], None] | None = None,
        migrate: Callable[[MigrationAction], None] | None = None,
    ) -> simpy.Process:
        """Start the links, the timeline and the sampler, then the twin; returns the twin's ``done``.
        ``crash_csms`` injects the faults done to the CSMS (only an embedded CSMS can take them); ``migrate``
        carries out a platform migration's steps (a run with an old and a new CSMS)."""
        self._crash_csms, self._migrate = crash_csms, migrate
        for link in self.links.values():
            link.start()
        self.env.process(self._timeline(operator))
        self.env.process(self._sample(progress))
        self._start_telematics(operator)
        return self.world.start()

    def _timeline(self, operator: Operator) -> simpy.events.ProcessGenerator:
        for at_s, item in self.scenario.timeline():
            if at_s > self.env.now:
                yield self.env.timeout(at_s - self.env.now)
            self._execute(item, operator)

    def _execute(self, item: Any, operator: Operator) -> None:
        now = self.epoch + self.env.now
        if isinstance(item, ProvisionTokens | Onboard | DemandResponse | SetTariff | RegisterVehicles):
            self._operate(item, operator, now)
        elif isinstance(item, CsmsFault):
            if self._crash_csms is None:  # a real-time run refuses such a scenario before it starts
                raise RuntimeError(f"{item.kind} cannot be injected into this CSMS")
            self._crash_csms(item)
        elif isinstance(item, MigrationAction):
            if self._migrate is None:  # a real-time run refuses such a scenario before it starts
                raise RuntimeError(f"{item.kind} needs a run with two CSMSs")
            self._migrate(item)
        elif isinstance(item, StationFault):
            for station_id in self.scenario.resolve_chargers(item.charger):
                self.faults.inject(item, station_id)
        elif isinstance(item, OperatorCall):
            for station_id in self.scenario.resolve_chargers(item.charger):
                operator.call(station_id, self.chargers[station_id].version, item, now)

    def _operate(
        self,
        item: ProvisionTokens | Onboard | DemandResponse | SetTariff | RegisterVehicles,
        operator: Operator,
        now: float,
    ) -> None:
        """The operator's actions that are not calls to a station."""
        if isinstance(item, SetTariff):
            stations = [] if item.charger is None else self.scenario.resolve_chargers(item.charger)
            operator.set_tariff(item, stations, now)
            self.tariff_plan.set(from_posix(now), item.tariff, {**item.ocpi(), "id": item.tariff}, stations, item.group)
            return
        if isinstance(item, RegisterVehicles):
            vehicles = self.fleet_vehicles(item)
            self.registered.update(v.vehicle_id for v in vehicles)
            operator.register_vehicles(vehicles, now)
        elif isinstance(item, ProvisionTokens):
            tokens = scenario_tokens(self.scenario, item)
            operator.provision_tokens(tokens, item.token_group, now)
            for token in tokens:
                if item.token_group is None:
                    self.tariff_plan.token_groups.pop(token, None)
                else:
                    self.tariff_plan.token_groups[token] = item.token_group
        elif isinstance(item, Onboard):
            operator.onboard(group_tokens(self.scenario, item.vehicles), item, now)
        else:
            self.dr_events.append((self.env.now, self.env.now + item.duration, item.limit_kw))
            operator.demand_response(item, now)

    def fleet_vehicles(self, item: RegisterVehicles) -> list[FleetVehicle]:
        """The vehicles a ``register_vehicles`` action names, as a depot's operator registers them: each leaves
        every day at its own planned departure (local time of the scenario, to the minute) with its target."""
        zone = self.scenario.start.tzinfo
        tz = self.scenario.timezone or (zone.key if isinstance(zone, ZoneInfo) else "UTC")
        wanted = set(block_vehicle_ids(self.scenario, item.vehicles))
        out = []
        for plan in self.world.arrivals():
            v = plan.vehicle
            if v.vehicle_id not in wanted or plan.id_token is None:
                continue
            leaves = datetime.fromtimestamp(self.epoch + plan.planned_departure_s, ZoneInfo(tz)).strftime("%H:%M")
            departures = tuple((day, leaves, round(v.target_soc * 100.0, 1)) for day in range(7))
            limits = {"max_ac_kw": v.max_ac_kw or None, "max_dc_kw": v.max_dc_kw or None}
            out.append(FleetVehicle(v.vehicle_id, v.battery_kwh, plan.id_token, tz, departures, item.depot, **limits,
                                    stations=tuple(sorted(self.chargers))))  # fmt: skip
        return out

    def _start_telematics(self, operator: Operator) -> None:
        """Each vehicle of a block with ``telematics`` reports its SoC before it arrives (once registered)."""
        settings: dict[str, Telematics] = {}
        for block in self.scenario.vehicles:
            if isinstance(block, FleetBlock) and block.telematics is not None:
                settings |= dict.fromkeys(block_vehicle_ids(self.scenario, block.name), block.telematics)
        for plan in self.world.arrivals():
            found = settings.get(plan.vehicle.vehicle_id)
            if found is not None:
                self.env.process(self._telematics(plan.vehicle.vehicle_id, plan.arrival_s, found, operator))

    def _telematics(
        self, vehicle_id: str, arrival_s: float, settings: Telematics, operator: Operator
    ) -> simpy.events.ProcessGenerator:
        """The SoC it will arrive with (the twin models no driving), every ``settings.every`` until it arrives."""
        start = max(0.0, arrival_s - settings.before_arrival)
        if start > self.env.now:
            yield self.env.timeout(start - self.env.now)
        soc = next(p.soc_on_arrival for p in self.world.arrivals() if p.vehicle.vehicle_id == vehicle_id)
        if self.env.now >= arrival_s:
            return
        while True:
            if vehicle_id in self.registered:
                operator.telematics(vehicle_id, soc * 100.0, self.epoch + self.env.now)
            if self.env.now + settings.every >= arrival_s:
                return  # the last report: ends now rather than asleep in the fleet's memory until the next tick
            yield self.env.timeout(settings.every)

    def _sample(self, progress: Progress | None) -> simpy.events.ProcessGenerator:
        step = self.world.step_s
        end = float(self.scenario.duration)
        next_report = 0.0
        series = {ref: self.sampler.evse_kw.setdefault(str(ref), []) for ref in self.world.connectors}
        # Only a connector that delivers, or whose last point is not 0 kW, can add a point: the others sit at 0 W.
        drawing: set[ConnectorRef] = set(series)
        world, socs = self.world, self.sampler.soc
        while (now := self.env.now) < end:
            for ref in drawing | world.may_deliver():
                points = series[ref]
                kw = world.power_w(ref) / 1000.0
                if not points or points[-1][1] != kw:
                    points.append((now, kw))
                if kw == 0.0:
                    drawing.discard(ref)
                else:
                    drawing.add(ref)
            for vehicle_id, soc in world.plugged_socs().items():
                socs.setdefault(vehicle_id, []).append((now, soc))
            if progress is not None and now >= next_report:
                progress(now, end)
                next_report = now + end / 100.0
            yield self.env.timeout(step)

    # ---- the record ------------------------------------------------------------------------------------
    def uptime_section(self, csms_rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The CSMS's per-port uptime (``port_uptime`` rows) beside the twin's truth over the run so far."""
        period = fv.period_of(self.epoch, float(self.env.now))
        attempts = session_attempts(self.chargers.values())
        return fv.uptime_section(fv.csms_uptime(csms_rows), self.truth, period, self.epoch, attempts)

    def alerts_section(self, effects: Iterable[Any], latency_s: float) -> dict[str, Any]:
        """The CSMS's alert effects (raised at twin times) matched to the faults injected so far."""
        bounds = alert_bounds(self.scenario, self.chargers.values(), latency_s)
        end = self.epoch + float(self.env.now)
        return fv.alerts_section(self.truth, effects, self.scenario.csms.alerts.within, self.epoch, end, bounds)

    def truth_transactions(self) -> list[report.TruthTransaction]:
        truth = []
        for charger in self.chargers.values():
            for tx in charger.history:
                end_wh = tx.meter_stop_wh if tx.meter_stop_wh is not None else charger.meter.energy_wh(tx.connector_id)
                truth.append(
                    report.TruthTransaction(
                        station_id=charger.station_id,
                        connector_id=tx.connector_id,
                        key=transaction_key(tx),
                        started_s=tx.started_at - self.epoch,
                        stopped_s=None if tx.ended_at is None else tx.ended_at - self.epoch,
                        energy_kwh=(end_wh - tx.meter_start_wh) / 1000.0,
                    )
                )
        return truth

    def truth_timelines(self) -> dict[tuple[str, str], TruthTimeline]:
        """Each ended session's truth timeline from the twin's physics (the connector's power log), by (station,
        the transaction id the CSMS knows)."""
        out = {}
        for charger in self.chargers.values():
            for tx in charger.history:
                if tx.ended_at is None:
                    continue
                log = self.world.power_log(ConnectorRef(charger.station_id, tx.connector_id))
                shifted = [(self.epoch + t, wh, p) for t, wh, p in log]
                out[(charger.station_id, transaction_key(tx))] = truth_timeline(
                    shifted, tx.started_at, tx.ended_at, tx.id_token
                )
        return out

    def _cost(self) -> dict[str, Any] | None:
        """The site's grid import priced by the scenario's utility tariff (None: it gives none)."""
        spec = self.scenario.site.utility_tariff
        if spec is None:
            return None
        start = self.scenario.start.timestamp()  # the tariff's hours are the twin's, whatever the chargers' clock
        return cost.section(self.world, self.scenario.site, spec, self.scenario.timezone, start, self.dr_events)

    def costs_shown(self) -> dict[tuple[str, str], SessionCostShown]:
        """What each charger's display showed last of each session's cost, by (station, transaction id)."""
        return {
            (charger.station_id, key): shown
            for charger in self.chargers.values()
            for key, shown in charger.costs.sessions.items()
        }

    def truth_wh_by_token(self) -> tuple[dict[str, float], set[str]]:
        """Energy each id token's sessions really delivered (the twin's meters), and the tokens with a session
        still running at the end (billed only once it ends), for billing checks."""
        out: dict[str, float] = {}
        running: set[str] = set()
        for charger in self.chargers.values():
            for tx in charger.history:
                if tx.id_token is None:
                    continue
                stop = tx.meter_stop_wh
                end_wh = stop if stop is not None else charger.meter.energy_wh(tx.connector_id)
                out[tx.id_token] = out.get(tx.id_token, 0.0) + end_wh - tx.meter_start_wh
                if tx.ended_at is None:
                    running.add(tx.id_token)
        return out, running

    def acknowledged_transactions(self) -> list[report.CsmsTransaction]:
        """The CSMS's side as the chargers saw it acknowledged: a transaction is recorded once its start got a
        CALLRESULT, and (if it ended) its stop too; its energy is the last acknowledged register reading minus
        the start, as they travel (1.6 ``meterStart``/``meterStop`` are whole Wh)."""
        out = []
        for charger in self.chargers.values():
            wire: Callable[[float], float] = round if charger.version == OCPP16 else float
            for tx in charger.history:
                if not tx.start_acknowledged or (tx.ended_at is not None and not tx.end_acknowledged):
                    continue
                last = tx.acknowledged_wh if tx.acknowledged_wh is not None else tx.meter_start_wh
                energy_kwh = (wire(last) - wire(tx.meter_start_wh)) / 1000.0
                out.append(
                    report.CsmsTransaction(charger.station_id, transaction_key(tx), energy_kwh, tx.end_acknowledged)
                )
        return out

    def record(  # noqa: PLR0913 - the report's sections the CSMS side fills in, each by name
        self,
        *,
        mode: str,
        scenario_file: str,
        wall_seconds: float,
        csms_transactions: list[report.CsmsTransaction],
        csms_source: str,
        stations_booted: int,
        frames: dict[str, int],
        uptime: dict[str, Any] | None = None,
        alerts: dict[str, Any] | None = None,
        notes: list[str] | None = None,
        load_management: dict[str, Any] | None = None,
        security: dict[str, Any] | None = None,
        multifamily: dict[str, Any] | None = None,
        migration: dict[str, Any] | None = None,
        billing: dict[str, Any] | None = None,
    ) -> report.RunRecord:
        return report.RunRecord(
            scenario_name=self.scenario.name,
            scenario_file=scenario_file,
            seed=self.seed,
            start_iso=self.scenario.start.isoformat(),
            mode=mode,
            simulated_seconds=float(self.env.now),
            wall_seconds=wall_seconds,
            grid_limit_kw=self.scenario.site.grid_limit_kw,
            meter_log=self.world.ground_truth,
            vehicles=self.world.vehicle_records(),
            truth_transactions=self.truth_transactions(),
            csms_transactions=csms_transactions,
            csms_source=csms_source,
            stations=len(self.chargers),
            stations_booted=stations_booted,
            expect=dict(self.scenario.expect),
            frames=frames,
            uptime=uptime,
            alerts=alerts,
            notes=list(notes or []),
            energy=twin_energy_metrics(self.world, self.scenario.site, self.dr_events),
            load_management=load_management,
            security=security,
            multifamily=multifamily,
            demand_response=report.dr_section(self.world.ground_truth, self.dr_events) if self.dr_events else None,
            energy_cost=self._cost(),
            migration=migration,
            billing=billing,
            phase_limits_a=self.scenario.site.phase_limits_a,
        )


def transaction_key(tx: Any) -> str:
    """The id the CSMS knows a charger transaction by (1.6: the CSMS's, 2.0.1: the charger's)."""
    return str(tx.transaction_id) if tx.transaction_id is not None else f"unassigned-{tx.key}"
