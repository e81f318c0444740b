"""``sim run`` in virtual time: the twin, one firmware model per station and the embedded CSMS, joined by
in-process links under one SimPy clock, then the report.

Wiring (all deterministic for a given seed: one ``random.Random`` feeds every child generator in a fixed
order, SimPy breaks ties by insertion order, nothing reads the wall clock except the ``wall_seconds``
measurement):

    TwinWorld ──StationHooks──▶ FirmwareHooks ──▶ Charger (sans-IO) ──InProcessLink──▶ EmbeddedCsms
        ▲                                            │
        └──────────── reevaluate / meter ────────────┘
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simpy
from sqlalchemy import select

from csms.alerts import AlertRules, RemediationPolicy
from csms.loadmgmt.manager import LoadManager
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.services import authorization, stations
from csms.services import uptime as uptime_service
from csms.store.models import Station, Transaction
from simulator import loadmgmt, plots, report
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import FirmwareHooks, Progress, Sampler, TwinMeters, alert_bounds, connector_spec, session_attempts
from simulator.links.inprocess import InProcessLink, NetworkModel, _Alarm
from simulator.scenario.models import (
    ChangeAvailability,
    ConnectorFault,
    CsmsCrash,
    LinkDown,
    MeterFreeze,
    PowerLoss,
    ProvisionTokens,
    RemoteStart,
    RemoteStop,
    Reset,
    Scenario,
    StuckAvailable,
)
from simulator.scenario.to_twin import twin_spec
from simulator.station.charger import Charger, StationIdentity
from simulator.twin.interfaces import ConnectorRef, VehicleInfo
from simulator.twin.world import TwinWorld
from simulator.verify import faults as fv
from simulator.verify.optimum import twin_energy_metrics


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
        scenario = loadmgmt.with_strategy(scenario, strategy)
        self.scenario = scenario
        self.scenario_file = scenario_file
        self.network = network
        self.seed = scenario.seed if seed is None else seed
        self.progress = progress
        rng = random.Random(self.seed)
        self.env = simpy.Environment()
        self.epoch = scenario.start.timestamp()
        self.csms = EmbeddedCsms.create(database_url)
        # Frames that arrive at the same virtual instant share one group commit, as in the gateway.
        self.csms.defer = lambda action: self._later(0.0, action)
        self.truth = fv.FaultTruth()
        self.hooks = FirmwareHooks(self.epoch, self.truth)
        self.meters: dict[str, TwinMeters] = {}
        settings = scenario.csms.alerts
        self._alert_alarm = _Alarm(self.env, self.epoch, self._alert_timer)
        self.csms.enable_monitor(
            AlertRules(
                heartbeat_interval_s=settings.heartbeat_interval,
                offline_after_s=settings.offline_after,
                faulted_after_s=settings.faulted_after,
                stuck_available_failures=settings.stuck_available_failures,
                meter_frozen_after_s=settings.meter_frozen_after,
                meter_frozen_readings=settings.meter_frozen_readings,
            ),
            RemediationPolicy(
                enabled=settings.remediation_after is not None,
                after_s=settings.remediation_after or 600.0,
                max_per_day=settings.remediation_max_per_day,
            ),
            on_deadline=self._alert_alarm.arm,
        )
        self.csms.outbound = lambda station_id, frames: self.hooks.links[station_id].send_from_csms(frames)
        self.alert_effects: list[Any] = []
        self.world = TwinWorld(twin_spec(scenario), random.Random(rng.getrandbits(64)), hooks=self.hooks, env=self.env)
        self.hooks.world = self.world
        self._provision_stations()
        for group in scenario.chargers:
            spec = connector_spec(group.current or "AC", group.phases or 3, group.voltage or 230.0, group.max_kw)
            for station_id in group.station_ids:
                self.meters[station_id] = TwinMeters(self.world, station_id)
                charger = Charger(
                    station_id,
                    group.ocpp,
                    meter=self.meters[station_id],
                    rng=random.Random(rng.getrandbits(64)),
                    connectors=[spec] * group.connectors,
                    identity=StationIdentity(
                        vendor=group.vendor[:20], model=(group.model or "twin")[:20], serial_number=station_id[:25]
                    ),
                    smart_charging=group.smart_charging,
                )
                link = InProcessLink(
                    self.env,
                    self.epoch,
                    charger,
                    self.csms,
                    random.Random(rng.getrandbits(64)),
                    network,
                    on_charger_change=self.hooks.charger_changed,
                    on_link=self.truth.link,
                )
                self.hooks.chargers[station_id] = charger
                self.hooks.links[station_id] = link
        self.history: list[Any] = []
        self.sampler = Sampler()
        self._remote_start_ids = 0
        #: The fleet schedule: each connector's vehicle and needs (re-told to a restarted CSMS).
        self._needs: dict[tuple[str, int], tuple[str, float, float | None]] = {}
        #: What the load managers of crashed CSMS processes could not steer (their memory died with them).
        self._lm_before_crashes: list[dict[str, Any]] = []
        if loadmgmt.managed(scenario):
            self._enable_load_management()

    # ---- load management -------------------------------------------------------------------------------
    def _enable_load_management(self) -> None:
        loadmgmt.create_site(self.csms.session_factory, self.scenario, self.epoch)
        alarm = _Alarm(self.env, self.epoch, lambda: self.csms.load_timer(self.epoch + self.env.now))
        flushing: set[str] = set()

        def outgoing(station_id: str) -> None:
            # Sent once the present step is over (a connection being set up must count it as its own).
            if station_id in flushing:
                return
            flushing.add(station_id)

            def flush(_e: Any) -> None:
                flushing.discard(station_id)
                self.hooks.links[station_id].flush_csms()

            self.env.timeout(0).callbacks.append(flush)

        self.csms.enable_load_management(LoadManager(), outgoing, alarm.arm)
        self.hooks.on_vehicle = self._vehicle_needs

    def _unmanaged_summary(self) -> dict[str, Any]:
        """The load managers' summaries over the run: the crashed processes' ones and the running one's."""
        parts = list(self._lm_before_crashes)
        if self.csms.load is not None:
            parts.append(self.csms.load.summary(loadmgmt.SITE_ID, self.epoch + float(self.env.now)))
        minutes: dict[str, float] = {}
        for part in parts:
            for station, m in part["fallback_minutes"].items():
                minutes[station] = round(minutes.get(station, 0.0) + m, 1)
        return {
            "profiles_rejected": sum(part["profiles_rejected"] for part in parts),
            "stations_noncompliant": [
                {**flag, "at": from_posix(flag["at"]).isoformat()}
                for part in parts
                for flag in part["stations_noncompliant"]
            ],
            "fallback_minutes": dict(sorted(minutes.items())),
        }

    def _vehicle_needs(self, connector: ConnectorRef, vehicle: VehicleInfo, now: float) -> None:
        needed_wh = max(0.0, (vehicle.target_soc - vehicle.soc) * vehicle.battery_kwh * 1000.0)
        departure = None if vehicle.departure_s is None else self.epoch + vehicle.departure_s
        key = (connector.station_id, connector.connector_id)
        self._needs = {k: v for k, v in self._needs.items() if v[0] != vehicle.vehicle_id}  # one port per vehicle
        self._needs[key] = (vehicle.vehicle_id, needed_wh, departure)
        self._tell_needs(key, now)

    def _tell_needs(self, key: tuple[str, int], now: float) -> None:
        """The schedule posts a vehicle's needs to the CSMS's API: lost while the CSMS is down."""
        load = self.csms.load
        if load is not None and self.csms.up:
            _, needed_wh, departure = self._needs[key]
            self.csms.load_commands(load.ev_needs(key, now, energy_needed_wh=needed_wh, departure=departure), now)

    def _restart_csms(self) -> None:
        """The CSMS process starts again; the fleet schedule tells it the needs of the vehicles still plugged."""
        now = self.epoch + self.env.now
        self.csms.restart(now)
        plugged = self.world.plugged_socs()
        for key, (vehicle_id, _, _) in sorted(self._needs.items()):
            if vehicle_id in plugged:
                self._tell_needs(key, now)

    def _site_meter(self) -> simpy.events.ProcessGenerator:
        """The site meter reports the building load every ``interval``, a second into the twin's step
        (through the CSMS's API: nothing is recorded while the CSMS is down)."""
        lm = self.scenario.csms.load_management
        assert lm is not None
        yield self.env.timeout(1.0)
        end = float(self.scenario.duration)
        while self.env.now < end:
            now = self.epoch + self.env.now
            load = self.csms.load
            if load is not None and self.csms.up:
                commands = loadmgmt.record_reading(
                    self.csms.session_factory, load, self.world.building_kw_now * 1000.0, now
                )
                self.csms.load_commands(commands, now)
            yield self.env.timeout(float(lm.interval))

    # ---- set-up ----------------------------------------------------------------------------------------
    def _provision_stations(self) -> None:
        when = from_posix(self.epoch)
        with self.csms.session_factory() as db:
            for group in self.scenario.chargers:
                for station_id in group.station_ids:
                    stations.provision(db, station_id, ocpp_version=group.ocpp, password=None, now=when)
            db.commit()

    # ---- operator actions and faults -------------------------------------------------------------------
    def _timeline(self) -> simpy.events.ProcessGenerator:
        for at_s, item in self.scenario.timeline():
            if at_s > self.env.now:
                yield self.env.timeout(at_s - self.env.now)
            self._execute(item)

    def _execute(self, item: Any) -> None:
        now = self.epoch + self.env.now
        if isinstance(item, ProvisionTokens):
            self._provision_tokens(item, now)
        elif isinstance(item, LinkDown | PowerLoss | MeterFreeze | ConnectorFault | StuckAvailable | CsmsCrash):
            self._fault(item, now)
        elif isinstance(item, RemoteStart | RemoteStop | ChangeAvailability | Reset):
            for station_id in self.scenario.resolve_chargers(item.charger):
                call = self._operator_call(item, station_id)
                if call is not None and station_id in self.csms.sessions:
                    _, frames = self.csms.send_call(station_id, call[0], call[1], now)
                    self.hooks.links[station_id].send_from_csms(frames)

    # ---- faults ----------------------------------------------------------------------------------------------
    def _alert_timer(self) -> None:
        if self.csms.monitor is not None:
            self.csms.monitor.handle_timer(self.epoch + self.env.now)

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.env.timeout(delay_s).callbacks.append(lambda _e: action())

    def _fault(self, item: Any, now: float) -> None:
        if isinstance(item, CsmsCrash):
            self.truth.inject("csms_crash", None, None, now, now + item.restart_after)
            if self.csms.monitor is not None:
                self.alert_effects += self.csms.monitor.effects
            if self.csms.load is not None:
                self._lm_before_crashes.append(self.csms.load.summary(loadmgmt.SITE_ID, self.epoch + self.env.now))
            for station_id in self.csms.crash():
                self.hooks.links[station_id].drop()
            self._later(item.restart_after, self._restart_csms)
            return
        for station_id in self.scenario.resolve_chargers(item.charger):
            charger, link = self.hooks.chargers[station_id], self.hooks.links[station_id]
            if isinstance(item, LinkDown):
                self.truth.inject("link_down", station_id, None, now, now + item.duration)
                link.set_network(False)
                self._later(item.duration, lambda link=link: link.set_network(True))
            elif isinstance(item, PowerLoss):
                self.truth.inject("power_loss", station_id, None, now, now + item.duration)
                charger.power_loss(now, item.duration)
                link.poke()
            elif isinstance(item, MeterFreeze):
                self.truth.inject("meter_freeze", station_id, None, now, now + item.duration)
                meters = self.meters[station_id]
                meters.freeze(list(charger.connectors))
                self._later(item.duration, lambda meters=meters: setattr(meters, "frozen", None))
            elif isinstance(item, ConnectorFault):
                end = None if item.clears_after is None else now + item.clears_after
                self.truth.inject("connector_fault", station_id, item.connector, now, end)
                self._connector_fault(charger, link, item, now)
            elif isinstance(item, StuckAvailable):
                self.truth.inject("stuck_available", station_id, item.connector, now, now + item.duration)
                charger.stuck.add(item.connector)
                link.poke()
                self.env.process(self._stuck_driver(charger, link, item, now + item.duration))

    def _connector_fault(self, charger: Charger, link: InProcessLink, item: ConnectorFault, now: float) -> None:
        charger.fault(item.connector, item.error_code, now)
        link.poke()
        cleared = [False]

        def clear() -> None:
            if cleared[0]:
                return
            cleared[0] = True
            when = self.epoch + self.env.now
            for fault in self.truth.injected:
                if fault["kind"] == "connector_fault" and fault["station_id"] == charger.station_id:
                    fault["end"] = fault["end"] or when
            charger.clear_fault(item.connector, when)
            link.poke()

        if item.clears_after is not None:
            self._later(item.clears_after, clear)
        else:
            previous = charger.on_reboot

            def rebooted(_now: float) -> None:
                charger.on_reboot = previous
                self._later(0.0, clear)

            charger.on_reboot = rebooted

    def _stuck_driver(
        self, charger: Charger, link: InProcessLink, item: StuckAvailable, until: float
    ) -> simpy.events.ProcessGenerator:
        """While the port is stuck the driver gives up after ``give_up_after`` and tries again."""
        cid = item.connector
        while self.epoch + self.env.now + item.give_up_after < until:
            yield self.env.timeout(item.give_up_after)
            now = self.epoch + self.env.now
            tx = charger.transactions.get(cid)
            if tx is not None and charger.online:
                token = tx.id_token
                charger.stop_transaction(tx, "Local", now)
                link.poke()
                if charger.connectors[cid].plugged and token is not None:
                    charger.present_token(cid, token, now)
                    link.poke()
        yield self.env.timeout(max(0.0, until - (self.epoch + self.env.now)))
        charger.stuck.discard(cid)
        link.poke()

    def _provision_tokens(self, item: ProvisionTokens, now: float) -> None:
        tokens: list[str] = list(item.tokens or [])
        if item.vehicles is not None:
            for block in self.scenario.vehicles:
                if block.name == item.vehicles or block.group == item.vehicles:
                    tokens += [t for n in range(1, block.count + 1) if (t := block.token(n)) is not None]
        with self.csms.session_factory() as db:
            for token in tokens:
                authorization.create(db, token, from_posix(now), group_id=item.token_group, upsert=True)
            db.commit()

    def _operator_call(self, item: Any, station_id: str) -> tuple[str, dict[str, Any]] | None:
        version = self.hooks.chargers[station_id].version
        if isinstance(item, RemoteStart):
            self._remote_start_ids += 1
            return commands.remote_start(version, item.id_token, item.connector, remote_start_id=self._remote_start_ids)
        if isinstance(item, Reset):
            return commands.reset(version, item.mode)
        if isinstance(item, ChangeAvailability):
            operative = item.availability == "operative"
            if version == "1.6":
                kind = "Operative" if operative else "Inoperative"
                return "ChangeAvailability", {"connectorId": item.connector or 0, "type": kind}
            payload: dict[str, Any] = {"operationalStatus": "Operative" if operative else "Inoperative"}
            if item.connector:
                payload["evse"] = {"id": item.connector}
            return "ChangeAvailability", payload
        if isinstance(item, RemoteStop):
            with self.csms.session_factory() as db:
                tx = db.scalars(
                    select(Transaction)
                    .where(
                        Transaction.station_id == station_id,
                        Transaction.evse_id == item.connector,
                        Transaction.status == "active",
                    )
                    .order_by(Transaction.id.desc())
                ).first()
            return None if tx is None else commands.remote_stop(version, tx.id, tx.charger_tx_id)
        return None

    # ---- sampling and progress -------------------------------------------------------------------------
    def _sample(self) -> simpy.events.ProcessGenerator:
        step = self.world.step_s
        end = float(self.scenario.duration)
        next_report = 0.0
        while self.env.now < end:
            for ref in self.world.connectors:
                kw = self.world.meter(ref).power_w / 1000.0
                self.sampler.evse_kw.setdefault(str(ref), []).append((self.env.now, kw))
            for vehicle_id, soc in self.world.plugged_socs().items():
                self.sampler.soc.setdefault(vehicle_id, []).append((self.env.now, soc))
            if self.progress is not None and self.env.now >= next_report:
                self.progress(self.env.now, end)
                next_report = self.env.now + end / 100.0
            yield self.env.timeout(step)

    # ---- run -------------------------------------------------------------------------------------------
    def run(self) -> report.RunRecord:
        started = time.perf_counter()
        if self.csms.load is not None:
            now = self.epoch
            commands = loadmgmt.install(self.csms.session_factory, self.scenario, self.csms.load, now)
            self.csms.load_commands(commands, now)
            self.env.process(self._site_meter())
        for link in self.hooks.links.values():
            link.start()
        self.env.process(self._timeline())
        self.env.process(self._sample())
        done = self.world.start()
        self.env.run(until=done)
        if self.progress is not None:
            self.progress(float(self.scenario.duration), float(self.scenario.duration))
        wall = time.perf_counter() - started
        return self._record(wall)

    def _record(self, wall: float) -> report.RunRecord:
        truth = []
        for charger in self.hooks.chargers.values():
            for tx in charger.history:
                key = str(tx.transaction_id) if tx.transaction_id is not None else f"unassigned-{tx.key}"
                end_wh = tx.meter_stop_wh if tx.meter_stop_wh is not None else charger.meter.energy_wh(tx.connector_id)
                truth.append(
                    report.TruthTransaction(
                        station_id=charger.station_id,
                        connector_id=tx.connector_id,
                        key=key,
                        started_s=tx.started_at - self.epoch,
                        stopped_s=None if tx.ended_at is None else tx.ended_at - self.epoch,
                        energy_kwh=(end_wh - tx.meter_start_wh) / 1000.0,
                    )
                )
        with self.csms.session_factory() as db:
            csms_txs = [
                report.CsmsTransaction(tx.station_id, tx.charger_tx_id, tx.energy_wh / 1000.0, tx.status == "completed")
                for tx in db.scalars(select(Transaction).order_by(Transaction.id))
            ]
            booted = len(db.scalars(select(Station.id).where(Station.registration_status == "Accepted")).all())
            period = fv.period_of(self.epoch, float(self.env.now))
            csms_uptime = fv.csms_uptime(uptime_service.port_uptime(db, period))
            attempts = session_attempts(self.hooks.chargers.values())
            uptime = fv.uptime_section(csms_uptime, self.truth, period, self.epoch, attempts)
        effects = self.alert_effects + (self.csms.monitor.effects if self.csms.monitor is not None else [])
        settings = self.scenario.csms.alerts
        network = self.network or NetworkModel()
        bounds = alert_bounds(self.scenario, self.hooks.chargers.values(), network.latency_s + network.jitter_s)
        alerts = fv.alerts_section(
            self.truth, effects, settings.within, self.epoch, self.epoch + float(self.env.now), bounds
        )
        links = self.hooks.links.values()
        site = self.scenario.site
        energy = twin_energy_metrics(self.world, site)
        lm = self.scenario.csms.load_management
        return report.RunRecord(
            scenario_name=self.scenario.name,
            scenario_file=self.scenario_file,
            seed=self.seed,
            start_iso=self.scenario.start.isoformat(),
            mode="virtual",
            simulated_seconds=float(self.env.now),
            wall_seconds=wall,
            grid_limit_kw=self.scenario.site.grid_limit_kw,
            meter_log=self.world.ground_truth,
            vehicles=self.world.vehicle_records(),
            truth_transactions=truth,
            csms_transactions=csms_txs,
            stations=len(self.hooks.chargers),
            stations_booted=booted,
            expect=dict(self.scenario.expect),
            frames={
                "charger_to_csms": self.csms.frames_in,
                "csms_to_charger": self.csms.frames_out,
                "lost_in_network": sum(link.frames_lost for link in links),
            },
            uptime=uptime,
            alerts=alerts,
            energy=energy,
            load_management={
                "strategy": lm.strategy if lm is not None else "none",
                "profiles_sent": self.csms.lm_sent,
                "profiles_failed": self.csms.lm_failed,
                **(self._unmanaged_summary() if loadmgmt.managed(self.scenario) else {}),
            },
            phase_limits_a=site.phase_limits_a,
        )


def write_outputs(
    run: VirtualRun | None,
    rec: report.RunRecord,
    out_dir: Path,
    *,
    reproducible: bool,
    sampler: Sampler | None,
    step_s: float,
    scenario: Scenario,
) -> dict[str, Any]:
    rec.reproducible = reproducible
    data = report.build(rec)
    report.write(data, out_dir)
    title = scenario.name
    plots.site_import(rec.meter_log, scenario.start, out_dir / "site_import.png", title)
    if sampler is not None:
        plots.evse_power(
            sampler.evse_kw, scenario.start, step_s, float(scenario.duration), out_dir / "evse_power.png", title
        )
        targets = {v.vehicle_id: v.target_soc for v in rec.vehicles}
        plots.vehicle_soc(sampler.soc, targets, scenario.start, out_dir / "vehicle_soc.png", title)
    return data


def stderr_progress() -> Progress:
    """A progress line on stderr: a live bar on a terminal, a line every 10% otherwise."""
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done_s: float, total_s: float) -> None:
        pct = int(100 * done_s / total_s) if total_s else 100
        if tty:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r  simulating [{bar:<25}] {pct:3d}%  {done_s / 3600:5.1f} h of {total_s / 3600:.1f} h")
            if pct >= 100:
                sys.stderr.write("\n")
        elif pct // 10 != last[0]:
            sys.stderr.write(f"  simulated {pct}% ({done_s / 3600:.1f} h of {total_s / 3600:.1f} h)\n")
        last[0] = pct // 10
        sys.stderr.flush()

    return show
