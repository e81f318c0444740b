"""What the world around the embedded CSMS does to it in a virtual run, under the SimPy clock.

The CSMS itself (group commit, alerts, load management, their timers) is the host's and its plugins', run by
:class:`~simulator.embedded_csms.EmbeddedCsms`. Here are only the systems outside it, each going through the
door a real one would use:

* the site meter reports the building load every ``interval`` through the meter-readings service (the
  function ``POST /sites/{id}/meter-readings`` calls), and the load manager is told, as the API route does;
* the fleet schedule (a depot's dispatch, a resident's app) tells the CSMS each plugged vehicle's needs, unless
  the vehicle is registered in the CSMS's fleet records (``register_vehicles``): the CSMS then works them out
  itself from its plan and telematics (:class:`~csms.core.plugins.fleet.FleetNeeds`);
* the ``csms_crash`` fault kills the process (links dropped, memory gone) and starts it again later on the
  same database; the schedule then re-tells the needs of the vehicles still plugged.

Nothing reaches the CSMS while it is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import simpy

from csms.alerts import AlertRules, RemediationPolicy
from csms.loadmgmt.planner import PlannerConfig
from csms.ocpp.convert import from_posix
from simulator import loadmgmt
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import Fleet
from simulator.links.inprocess import InProcessLink
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
    """The site meter, the fleet schedule and the ``csms_crash`` fault around ``csms`` (``links``: the fleet's
    in-process links, dropped by a crash)."""

    def __init__(self, csms: EmbeddedCsms, fleet: Fleet, links: Mapping[str, InProcessLink]) -> None:
        self.csms, self.fleet, self.links = csms, fleet, links
        self.env, self.epoch, self.scenario = fleet.env, fleet.epoch, fleet.scenario
        #: The fleet schedule: each connector's vehicle and needs (re-told to a restarted CSMS).
        self._needs: dict[tuple[str, int], tuple[str, float, float | None]] = {}
        #: What the load managers of crashed CSMS processes could not steer (their memory died with them).
        self._lm_before_crashes: list[dict[str, Any]] = []
        if loadmgmt.managed(self.scenario):
            loadmgmt.create_site(self.csms.session_factory, self.scenario, self.epoch)
            self.fleet.hooks.on_vehicle = self._vehicle_needs

    def _now(self) -> float:
        return self.epoch + float(self.env.now)

    def start(self) -> None:
        """At the run's start, before the fleet's: the load manager's first plan and the site meter."""
        lm = self.scenario.csms.load_management
        if self.csms.load is not None and lm is not None:
            self.csms.install_site(loadmgmt.SITE_ID, PlannerConfig(interval_s=float(lm.interval)))
            self.env.process(self._site_meter())

    # ---- the fleet schedule and the site meter -----------------------------------------------------------
    def _vehicle_needs(self, connector: ConnectorRef, vehicle: VehicleInfo, now: float) -> None:
        if self.fleet.hooks.speaks_for_itself(connector, vehicle):
            return  # NotifyEVChargingNeeds from the charger tells the CSMS
        if vehicle.vehicle_id in self.fleet.registered:
            return  # the CSMS's fleet records tell it
        needed_wh = max(0.0, (vehicle.target_soc - vehicle.soc) * vehicle.battery_kwh * 1000.0)
        departure = None if vehicle.departure_s is None else self.epoch + vehicle.departure_s
        key = (connector.station_id, connector.connector_id)
        self._needs = {k: v for k, v in self._needs.items() if v[0] != vehicle.vehicle_id}  # one port per vehicle
        self._needs[key] = (vehicle.vehicle_id, needed_wh, departure)
        self._tell_needs(key)

    def _tell_needs(self, key: tuple[str, int]) -> None:
        """The schedule posts a vehicle's needs to the CSMS's API: lost while the CSMS is down."""
        if self.csms.load is not None:
            _, needed_wh, departure = self._needs[key]
            self.csms.load.ev_needs(key, needed_wh, departure)

    def _site_meter(self) -> simpy.events.ProcessGenerator:
        """The site meter reports the building load every ``interval``, a second into the twin's step
        (through the CSMS's API: nothing is recorded while the CSMS is down)."""
        lm = self.scenario.csms.load_management
        assert lm is not None
        yield self.env.timeout(1.0)
        end = float(self.scenario.duration)
        while self.env.now < end:
            if self.csms.load is not None:
                power_w = self.fleet.world.building_kw_now * 1000.0
                loadmgmt.record_reading(self.csms.session_factory, power_w, self._now())
                self.csms.load.site_reading(loadmgmt.SITE_ID, power_w=power_w)
            yield self.env.timeout(float(lm.interval))

    # ---- the report ------------------------------------------------------------------------------------
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
            parts.append(self.csms.load.manager.summary(loadmgmt.SITE_ID, self._now()))
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
        if self.csms.load is not None:
            self._lm_before_crashes.append(self.csms.load.manager.summary(loadmgmt.SITE_ID, now))
        for station_id in self.csms.crash():
            self.links[station_id].drop()
        self.csms.scheduler.call_later(item.restart_after, self._restart)

    def _restart(self) -> None:
        """The CSMS process starts again; the fleet schedule tells it the needs of the vehicles still plugged."""
        self.csms.restart()
        plugged = self.fleet.world.plugged_socs()
        for key, (vehicle_id, _, _) in sorted(self._needs.items()):
            if vehicle_id in plugged:
                self._tell_needs(key)
