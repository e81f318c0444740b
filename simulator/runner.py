"""``sim run`` in virtual time: the :class:`~simulator.fleet.Fleet` on in-process links to the embedded CSMS,
under one SimPy clock, then the report.

Deterministic for a given seed: the fleet draws every generator in a fixed order, SimPy breaks ties by
insertion order, nothing reads the wall clock except the ``wall_seconds`` measurement.

    TwinWorld ──StationHooks──▶ FirmwareHooks ──▶ Charger (sans-IO) ──InProcessLink──▶ EmbeddedCsms
        ▲                                            │                                   ▲
        └──────────── reevaluate / meter ────────────┘       EmbeddedOperator, EmbeddedCsmsWiring, CsmsRecords
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import simpy

from csms.ocpp.versions import Version
from csms.services.config import CsmsConfig
from csms.services.payments import SandboxCardProcessor
from simulator import loadmgmt, report
from simulator.collector import paced_collector
from simulator.embedded_csms import EmbeddedCsms, EmbeddedPki
from simulator.embedded_migration import PlatformMigration, refuse_repoint_mode
from simulator.embedded_operator import CsmsRecords, EmbeddedOperator
from simulator.embedded_wiring import EmbeddedCsmsWiring, alert_rules
from simulator.fleet import Fleet, FleetVehicle, OperatorCall, Progress, commission, station_passwords
from simulator.links.inprocess import InProcessLink, NetworkModel
from simulator.pnc import InProcessLookups, MobilityOperator
from simulator.scenario.models import (
    DemandResponse,
    FleetBlock,
    Onboard,
    Reserve,
    Scenario,
    SecurityAction,
    SetTariff,
    UpdateFirmware,
)
from simulator.scheduler import SimPyScheduler
from simulator.station.charger import Charger
from simulator.verify import billing
from simulator.verify import faults as fv
from simulator.verify import multifamily as mf
from simulator.verify.migration import Holder

if TYPE_CHECKING:
    from simulator.embedded_ocpi import EmbeddedRoaming


class MigratingOperator:
    """The operator of a run that moves its fleet: each action goes to the CSMS that holds the station then (the
    old one until the cut-over, none until the station's wave, the new one after it); the migration's record
    notes every action after the cut-over with where it went and how it ended."""

    def __init__(self, migration: PlatformMigration, old: EmbeddedOperator, new: EmbeddedOperator) -> None:
        self.migration, self.old, self.new = migration, old, new

    def _current(self) -> EmbeddedOperator:
        """Tokens, onboarding and demand response: the old CSMS until the cut-over, then the new one."""
        return self.old if self.migration.cutover_s is None else self.new

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        self._current().provision_tokens(tokens, group, now)

    def onboard(self, tokens: list[str], item: Onboard, now: float) -> None:
        self._current().onboard(tokens, item, now)

    def demand_response(self, item: DemandResponse, now: float) -> None:
        self._current().demand_response(item, now)

    def register_vehicles(self, vehicles: list[FleetVehicle], now: float) -> None:
        self._current().register_vehicles(vehicles, now)

    def telematics(self, vehicle_id: str, soc_pct: float, now: float) -> None:
        self._current().telematics(vehicle_id, soc_pct, now)

    def set_tariff(self, item: SetTariff, stations: list[str], now: float) -> None:
        self._current().set_tariff(item, stations, now)
        self.migration.operator_action(
            now - self.migration.epoch, item.kind, item.tariff, self._holder(), "set", station=False
        )

    def _holder(self) -> Holder:
        return "old" if self.migration.cutover_s is None else "new"

    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None:
        migration, at_s = self.migration, now - self.migration.epoch
        holder = migration.holder(station_id)
        if holder is None:
            migration.operator_action(at_s, item.kind, station_id, None, "not sent: no CSMS serves it until its wave")
            return
        operator = self.old if holder == "old" else self.new
        if isinstance(item, SecurityAction | Reserve | UpdateFirmware):  # several calls, followed elsewhere
            operator.call(station_id, version, item, now)
            migration.operator_action(at_s, item.kind, station_id, holder, "sent")
            return

        def answered(outcome: str) -> None:
            migration.operator_action(at_s, item.kind, station_id, holder, outcome)

        operator.call(station_id, version, item, now, on_answer=answered)


def _plug_and_charge(scenario: Scenario) -> bool:
    return any(isinstance(block, FleetBlock) and block.plug_and_charge for block in scenario.vehicles)


class VirtualRun:
    def __init__(
        self,
        scenario: Scenario,
        *,
        scenario_file: str = "",
        seed: int | None = None,
        database_url: str = "sqlite://",
        network: NetworkModel | None = None,
        progress: Progress | None = None,
        strategy: str | None = None,
    ) -> None:
        self.scenario = loadmgmt.with_strategy(scenario, strategy)
        self.scenario_file = scenario_file
        self.network = network or NetworkModel()
        self.progress = progress
        self.env = simpy.Environment()
        self.epoch = self.scenario.start.timestamp()
        self.scheduler = SimPyScheduler(self.env, self.epoch)
        #: The mobility operator of Plug & Charge vehicles, reached by the embedded CSMS in-process.
        self.mobility = MobilityOperator(self.scenario.start) if _plug_and_charge(self.scenario) else None
        pki = self.scenario.csms.pki
        self.pki = (
            None
            if pki is None
            else EmbeddedPki.create(self.epoch, organisation=pki.organisation, certificate_days=pki.certificate_days)
        )
        self.passwords = station_passwords(self.scenario, None)
        seed = self.scenario.seed if seed is None else seed
        #: OCPI roaming: the CSMS's OCPI port and the twin's eMSP, on loopback (None: no roaming).
        self.roaming: EmbeddedRoaming | None = None
        if self.scenario.roaming is not None:
            from simulator.embedded_ocpi import EmbeddedRoaming, Loopback  # FastAPI and uvicorn: only when roaming

            self.roaming = EmbeddedRoaming(self.scenario, self.scheduler, Loopback(), seed)
        lookups = None if self.mobility is None else InProcessLookups(self.scheduler, self.mobility)
        #: The card processor of ad-hoc payments (csms.adhoc_payments): outside the CSMS, its books survive a crash.
        self.card_processor = SandboxCardProcessor() if self.scenario.csms.adhoc_payments is not None else None
        self.csms = EmbeddedCsms.create(
            self.scheduler,
            database_url,
            self._config(),
            alerts=alert_rules(self.scenario.csms.alerts),
            load_management=loadmgmt.managed(self.scenario),
            lookups=lookups if self.roaming is None else self.roaming.lookups(lookups),
            pki=self.pki,
        )
        self.truth = fv.FaultTruth()
        self.links: dict[str, InProcessLink] = {}
        #: A platform migration's new CSMS (its own database); the run's record is then the new CSMS's.
        self.migration = None
        if self.scenario.migrates:
            refuse_repoint_mode(self.scenario, scenario_file)
            self.migration = PlatformMigration(self.scenario, self.csms, self._new_csms(), self.links)
        self.fleet = Fleet(self.scenario, seed, self.env, self._make_link, truth=self.truth, contracts=self.mobility)
        commission(self.fleet.chargers.values(), self.scenario, None if self.pki is None else self.pki.csms_root_pem)
        self.operator = EmbeddedOperator(self.csms)
        self.operator.provision_stations(self.scenario, self.epoch)
        if self.mobility is not None:
            self.operator.install_contract_root(self.mobility.root_pem, self.epoch)
        if self.scenario.csms.adhoc_payments is not None:
            self.operator.set_card_fee(self.scenario.csms.adhoc_payments)
        self.wiring = EmbeddedCsmsWiring(self.csms, self.fleet, self.links)
        self.records = CsmsRecords(self.csms if self.migration is None else self.migration.new)
        if self.roaming is not None:
            self.roaming.attach(self.csms, self.fleet)

    def _new_csms(self) -> EmbeddedCsms:
        """The CSMS the fleet moves to: the same settings as the old one, a database of its own."""
        return EmbeddedCsms.create(
            self.scheduler, "sqlite://", self._config(), alerts=alert_rules(self.scenario.csms.alerts)
        )

    def _config(self) -> CsmsConfig:
        """The CSMS's settings: tariffs' local times are the site's (the scenario's time zone)."""
        adhoc = self.scenario.csms.adhoc_payments
        return CsmsConfig(
            message_log_per_station=0,
            tariff_time_zone=self.scenario.timezone or "UTC",
            card_processor=self.card_processor,
            adhoc_preauth=Decimal(adhoc.preauth) if adhoc is not None else Decimal(50),
        )

    def _make_link(self, charger: Charger, seed: int, on_change: Callable[[Charger], None]) -> InProcessLink:
        link = InProcessLink(
            self.scheduler,
            charger,
            self.csms if self.migration is None else self.migration.route(charger.station_id),
            seed,
            self.network,
            on_charger_change=on_change,
            on_link=self.truth.link,
            password=self.passwords[charger.station_id],
        )
        self.links[charger.station_id] = link
        return link

    def run(self) -> report.RunRecord:
        return self.record(self.simulate())

    def simulate(self) -> float:
        """The night itself, up to the scenario's end; returns its wall time. :meth:`record` reads it after."""
        started = time.perf_counter()
        self.wiring.start()
        migrate = operator = None
        if self.migration is not None:
            migrate = self.migration.execute
            operator = MigratingOperator(self.migration, self.operator, EmbeddedOperator(self.migration.new))
        done = self.fleet.start(operator or self.operator, self.progress, crash_csms=self.wiring.crash, migrate=migrate)
        with paced_collector():
            if self.roaming is None:
                self.env.run(until=done)
            else:
                self.roaming.start(self.env)
                self.roaming.run(self.env, done)
        if self.progress is not None:
            self.progress(float(self.scenario.duration), float(self.scenario.duration))
        return time.perf_counter() - started

    def record(self, wall: float) -> report.RunRecord:
        """What the run did, beside what the CSMS stored (the offline optimum, uptime, billing, …)."""
        record = self._fleet_record(wall)
        if self.roaming is not None:
            zone = self.csms.config.tariff_time_zone
            record.roaming = self.roaming.section(self.records.session_keys(), self.fleet.tariff_plan, zone)
        return record

    def _fleet_record(self, wall: float) -> report.RunRecord:
        period = fv.period_of(self.epoch, float(self.env.now))
        latency_s = self.network.latency_s + self.network.jitter_s
        return self.fleet.record(
            mode="virtual",
            scenario_file=self.scenario_file,
            wall_seconds=wall,
            csms_transactions=self.records.transactions(),
            csms_source="embedded",
            stations_booted=self.records.stations_accepted(),
            frames={
                "charger_to_csms": sum(csms.frames_in for csms in self._processes()),
                "csms_to_charger": sum(csms.frames_out for csms in self._processes()),
                "lost_in_network": sum(link.frames_lost for link in self.links.values()),
            },
            uptime=self.fleet.uptime_section(self.records.port_uptime(period)),
            alerts=self.fleet.alerts_section(self.csms.alert_effects, latency_s),
            load_management=self.wiring.load_management_section(),
            security=None if self.pki is None else self.records.security(self.fleet.chargers, self.operator),
            multifamily=self._multifamily(),
            migration=None if self.migration is None else self.migration.report(),
            billing=billing.section(
                self.fleet.truth_transactions(),
                self.records.cdrs(),
                self.fleet.costs_shown(),
                self.fleet.truth_timelines(),
                self.fleet.tariff_plan,
                self.csms.config.tariff_time_zone,
                adhoc=self._adhoc(),
            ),
        )

    def _adhoc(self) -> dict[str, Any] | None:
        """Every card's hold beside the CDR of its session and what the processor's own books captured."""
        terms, processor = self.scenario.csms.adhoc_payments, self.card_processor
        if terms is None or processor is None:
            return None
        books = {key: hold.captured_minor for key, hold in processor.holds.items()}
        return billing.adhoc_section(self.records.card_holds(), self.records.cdrs(), books, terms)

    def _multifamily(self) -> dict[str, Any] | None:
        """Unit statements beside the cost worked out from the twin's truth (a scenario with csms.property)."""
        terms = self.scenario.csms.property
        if terms is None:
            return None
        end = self.epoch + float(self.env.now)
        self.operator.post_unit_statements(self.epoch, end)
        statements = self.records.unit_statements(self.epoch, end)
        truth_wh, running = self.fleet.truth_wh_by_token()
        return mf.section(statements, truth_wh, running, terms)

    def _processes(self) -> list[EmbeddedCsms]:
        return [self.csms] if self.migration is None else [self.csms, self.migration.new]
