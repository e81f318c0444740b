"""Everything a virtual run drives in the embedded CSMS besides the stations' frames, under the SimPy clock.

This is the one place where the harness schedules the CSMS's own work (to be replaced by the CSMS host's
scheduler):

* group commit: frames that arrive at the same virtual instant share one commit (``EmbeddedCsms.defer``);
* the alert monitor, with the scenario's alert settings, and its alarm; remediation calls go out through
  the stations' in-process links;
* load management (when the scenario manages the site): the site in the store, the manager's alarm, its
  calls flushed once the present step is over, the site meter's readings and the fleet schedule's vehicle
  needs (both through the CSMS's API functions, lost while the CSMS is down);
* the ``csms_crash`` fault: the process dies (links dropped, in-memory state gone) and restarts later on the
  same database; the schedule re-tells the needs of the vehicles still plugged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import simpy

from csms.alerts import AlertRules, RemediationPolicy
from csms.alerts import engine as al
from csms.loadmgmt.manager import LoadManager
from csms.ocpp.convert import from_posix
from simulator import loadmgmt
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import Fleet
from simulator.links.inprocess import InProcessLink, _Alarm
from simulator.scenario.models import AlertSettings, CsmsCrash
from simulator.twin.interfaces import ConnectorRef, VehicleInfo


def alert_rules(settings: AlertSettings) -> tuple[AlertRules, RemediationPolicy]:
    return (
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
    )


class EmbeddedCsmsWiring:
    """Drives ``csms`` beside ``fleet``; ``links`` are the fleet's in-process links (CSMS-initiated frames)."""

    def __init__(self, csms: EmbeddedCsms, fleet: Fleet, links: Mapping[str, InProcessLink]) -> None:
        self.csms, self.fleet, self.links = csms, fleet, links
        self.env, self.epoch, self.scenario = fleet.env, fleet.epoch, fleet.scenario
        csms.defer = lambda action: self._later(0.0, action)
        self._alert_alarm = _Alarm(self.env, self.epoch, self._alert_timer)
        rules, remediation = alert_rules(self.scenario.csms.alerts)
        csms.enable_monitor(rules, remediation, on_deadline=self._alert_alarm.arm)
        csms.outbound = lambda station_id, frames: self.links[station_id].send_from_csms(frames)
        #: What the alert monitors of crashed CSMS processes did (they died with their effects list).
        self._effects_before_crashes: list[al.Effect] = []
        #: The fleet schedule: each connector's vehicle and needs (re-told to a restarted CSMS).
        self._needs: dict[tuple[str, int], tuple[str, float, float | None]] = {}
        #: What the load managers of crashed CSMS processes could not steer (their memory died with them).
        self._lm_before_crashes: list[dict[str, Any]] = []
        if loadmgmt.managed(self.scenario):
            self._enable_load_management()

    def _now(self) -> float:
        return self.epoch + self.env.now

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.env.timeout(delay_s).callbacks.append(lambda _e: action())

    def start(self) -> None:
        """At the run's start, before the fleet's: the load manager's first plan and the site meter."""
        if self.csms.load is not None:
            now = self.epoch
            commands = loadmgmt.install(self.csms.session_factory, self.scenario, self.csms.load, now)
            self.csms.load_commands(commands, now)
            self.env.process(self._site_meter())

    # ---- alerts ----------------------------------------------------------------------------------------
    def _alert_timer(self) -> None:
        if self.csms.monitor is not None:
            self.csms.monitor.handle_timer(self._now())

    def alert_effects(self) -> list[al.Effect]:
        """Every effect of the alert monitors over the run (the crashed processes' and the running one's)."""
        running = self.csms.monitor.effects if self.csms.monitor is not None else []
        return self._effects_before_crashes + running

    # ---- load management -------------------------------------------------------------------------------
    def _enable_load_management(self) -> None:
        loadmgmt.create_site(self.csms.session_factory, self.scenario, self.epoch)
        alarm = _Alarm(self.env, self.epoch, lambda: self.csms.load_timer(self._now()))
        flushing: set[str] = set()

        def outgoing(station_id: str) -> None:
            # Sent once the present step is over (a connection being set up must count it as its own).
            if station_id in flushing:
                return
            flushing.add(station_id)

            def flush(_e: Any) -> None:
                flushing.discard(station_id)
                self.links[station_id].flush_csms()

            self.env.timeout(0).callbacks.append(flush)

        self.csms.enable_load_management(LoadManager(), outgoing, alarm.arm)
        self.fleet.hooks.on_vehicle = self._vehicle_needs

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

    def _site_meter(self) -> simpy.events.ProcessGenerator:
        """The site meter reports the building load every ``interval``, a second into the twin's step
        (through the CSMS's API: nothing is recorded while the CSMS is down)."""
        lm = self.scenario.csms.load_management
        assert lm is not None
        yield self.env.timeout(1.0)
        end = float(self.scenario.duration)
        while self.env.now < end:
            now = self._now()
            load = self.csms.load
            if load is not None and self.csms.up:
                commands = loadmgmt.record_reading(
                    self.csms.session_factory, load, self.fleet.world.building_kw_now * 1000.0, now
                )
                self.csms.load_commands(commands, now)
            yield self.env.timeout(float(lm.interval))

    def load_management_section(self) -> dict[str, Any]:
        lm = self.scenario.csms.load_management
        return {
            "strategy": lm.strategy if lm is not None else "none",
            "profiles_sent": self.csms.lm_sent,
            "profiles_failed": self.csms.lm_failed,
            **(self._unmanaged_summary() if loadmgmt.managed(self.scenario) else {}),
        }

    def _unmanaged_summary(self) -> dict[str, Any]:
        """The load managers' summaries over the run: the crashed processes' ones and the running one's."""
        parts = list(self._lm_before_crashes)
        if self.csms.load is not None:
            parts.append(self.csms.load.summary(loadmgmt.SITE_ID, self._now()))
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

    # ---- the csms_crash fault --------------------------------------------------------------------------
    def crash(self, item: CsmsCrash) -> None:
        now = self._now()
        self.fleet.truth.inject("csms_crash", None, None, now, now + item.restart_after)
        if self.csms.monitor is not None:
            self._effects_before_crashes += self.csms.monitor.effects
        if self.csms.load is not None:
            self._lm_before_crashes.append(self.csms.load.summary(loadmgmt.SITE_ID, now))
        for station_id in self.csms.crash():
            self.links[station_id].drop()
        self._later(item.restart_after, self._restart)

    def _restart(self) -> None:
        """The CSMS process starts again; the fleet schedule tells it the needs of the vehicles still plugged."""
        now = self._now()
        self.csms.restart(now)
        plugged = self.fleet.world.plugged_socs()
        for key, (vehicle_id, _, _) in sorted(self._needs.items()):
            if vehicle_id in plugged:
                self._tell_needs(key, now)
