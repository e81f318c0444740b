"""Load management as a host plugin: :class:`~csms.loadmgmt.manager.LoadManager` fed with connections and
committed reports, its commands sent as ordinary CSMS calls, each outcome reported back, and one alarm at
its next deadline.

What the manager needs from the store (sites, running sessions, recent meter readings) is read by services
through ``scheduler.run_db`` and handed in: the manager itself reads nothing.

In a cluster (several ``csms serve`` nodes) each site is planned by one node only: the shell holds a lease
per site (:mod:`csms.runtime.leases`) and tells this plugin which sites it owns (:meth:`own`; ``owned`` None,
the default, is a single process owning every site). The owner hears its own stations as usual; those
connected to other nodes it learns from the store through :meth:`sync`, which the shell calls every lease
refresh with the registry's word on where they are. Commands to a station on another node go through the
shell's :class:`Router` (the cluster's Redis routing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from csms.core.scheduler import Alarm
from csms.loadmgmt.manager import LoadManager, Memory, SiteSetup, StoredCurtailment, call_status
from csms.loadmgmt.planner import Command, PlannerConfig
from csms.loadmgmt.state import ExpectedVehicle
from csms.ocpp.convert import from_posix
from csms.ocpp.errors import LocalCallError
from csms.ocpp.rpc import Outcome, PendingCall
from csms.ocpp.versions import Version
from csms.services import demand_response
from csms.services.errors import NotFound
from csms.services.load_memory import read_memory, read_setup, save_forecasts

#: A routed call's end: the outcome as the API reports it (``result``, ``error``, ``timeout``, ``not_sent``)
#: and the answer's payload.
Answered = Callable[[str, Mapping[str, Any] | None], None]

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)


class Router(Protocol):
    """The shell's way to a station connected to another node."""

    def route(self, command: Command, site_id: str, answered: Answered) -> None: ...

    def locate(self, station_ids: list[str], located: Callable[[Mapping[str, bool]], None]) -> None:
        """``located`` with, for each station, whether another node holds its socket (the registry's word)."""
        ...


class LoadManagement:
    """Plans every managed site (or the sites it :meth:`own` s) and enforces the plan through the host."""

    def __init__(self, manager: LoadManager | None = None, *, owned: set[str] | None = None) -> None:
        self.manager = manager or LoadManager()
        #: The sites this process plans; None: every site (a single process).
        self.owned = owned
        self.router: Router | None = None
        self.config: PlannerConfig | None = None
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None
        #: Commands sent, and profiles the manager counted as failed (reports, tests, diagnostics).
        self.sent = 0
        self.failed = 0
        #: The manager's revision when the alarm was last armed and the forecasts last handed out (-1: never).
        self._sent_revision = -1

    # ---- plugin ------------------------------------------------------------------------------------------
    def attach(self, host: CsmsHost) -> None:
        self._host = host
        self._alarm = Alarm(host.scheduler, self._on_timer)

    @property
    def host(self) -> CsmsHost:
        assert self._host is not None, "attach the plugin to a host first"
        return self._host

    def start(self, config: PlannerConfig | None = None) -> None:
        """Plan from what the store remembers (sites, running transactions, recent meter readings): a
        started process knows nothing else."""
        self.config = config
        self._resume(self.owned)

    def _resume(self, sites: set[str] | None) -> None:
        now = self.host.scheduler.now()
        config = self.config

        def read() -> Memory:
            with self.host.session_factory() as db:
                return read_memory(db, now, config, sites)

        self.host.scheduler.run_db(read, partial(self._resumed, now))

    def _resumed(self, now: float, memory: Memory) -> None:
        """A cluster node taking sites over first asks where their other stations are, so that its first plan
        counts those on other nodes as online (not as unseen stations reserved at their rating, which would
        leave the ones connected here next to nothing until the next lease round)."""
        if self._host is None:
            return
        here = set(self.host.connections)
        away = sorted({e.station_id for setup in memory.setups for e in setup.topology.evses} - here)
        if self.router is None or self.owned is None or not away:
            self.send(self.manager.resume(memory, now))
            return
        self.router.locate(away, partial(self._located, memory))

    def _located(self, memory: Memory, elsewhere: Mapping[str, bool]) -> None:
        if self._host is None or self.owned is None:
            return
        kept = [setup for setup in memory.setups if setup.site_id in self.owned]  # a lease lost meanwhile
        if kept:
            evses = {e.key for setup in kept for e in setup.topology.evses}
            sessions = [s for s in memory.sessions if s.key in evses]
            readings = [r for r in memory.readings if r.site_id in self.owned]
            curtailments = [c for c in memory.curtailments if c.site_id in self.owned]
            forecasts = {site: f for site, f in memory.forecasts.items() if site in self.owned}
            memory = Memory(kept, sessions, readings, curtailments=curtailments, forecasts=forecasts)
            self.send(self.manager.resume(memory, self.host.scheduler.now(), elsewhere))

    # ---- cluster ----------------------------------------------------------------------------------------
    def own(self, sites: set[str]) -> None:
        """The sites whose lease this node holds now: a site lost is no longer planned (its commands stop at
        once); a site gained is planned from what the store has, as a process that starts."""
        if self._host is None:
            return
        before = self.owned if self.owned is not None else set(self.manager.setups)
        self.owned = set(sites)
        for site_id in sorted(before - self.owned):
            log.info("site %s: no longer planned here", site_id)
            self.manager.remove(site_id)
        gained = self.owned - before
        if gained:
            log.info("planning sites %s", ", ".join(sorted(gained)))
            self._resume(gained)
        self._arm()

    def stations_elsewhere(self) -> list[str]:
        """The stations of the sites planned here that are not connected to this process."""
        return sorted(
            {e.station_id for setup in self.manager.setups.values() for e in setup.topology.evses}
            - set(self.host.connections)
        )

    def sync(self, elsewhere: Mapping[str, bool]) -> None:
        """Catch up with the planned sites' stations on other nodes (``elsewhere``: station → held by another
        node) from the store, and take in set-up changes made through another node's API."""
        if self._host is None or not self.manager.setups:
            return
        sites, config, now = set(self.manager.setups), self.config, self.host.scheduler.now()

        def read() -> Memory:
            with self.host.session_factory() as db:
                return read_memory(db, now, config, sites)

        self.host.scheduler.run_db(read, partial(self._synced, elsewhere, now))

    def _synced(self, elsewhere: Mapping[str, bool], now: float, memory: Memory) -> None:
        if self._host is None:
            return
        for setup in memory.setups:
            if setup.site_id in self.manager.setups and setup != self.manager.setups[setup.site_id]:
                self.send(self.manager.install(setup, now))  # changed through another node's API
        remote = {s: held for s, held in elsewhere.items() if not self.host.is_connected(s)}
        self.send(self.manager.sync(memory, remote, now))

    def sync_demand_response(self) -> None:
        """Take in the stored demand-response limits of the sites planned here that were not delivered (a cluster
        node's lease round: the VEN may run on another node and its message may have been lost)."""
        if self._host is None or not self.manager.planners:
            return
        sites, now = set(self.manager.planners), self.host.scheduler.now()

        def read() -> list[StoredCurtailment]:
            with self.host.session_factory() as db:
                return demand_response.active(db, now, sites)

        self.host.scheduler.run_db(read, self._stored_curtailments)

    def _stored_curtailments(self, stored: list[StoredCurtailment]) -> None:
        if self._host is not None:
            self.send(self.manager.stored_curtailments(stored, self.host.scheduler.now()))

    def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.disarm()
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        self.send(self.manager.connected(station_id, version, now, registered=registered))

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        """Stations gone (all of them when the shell stops): their sites planned once."""

        def gone() -> list[Command]:
            commands: list[Command] = []
            for station_id in station_ids:
                if not self.host.is_connected(station_id):  # (else replaced by a newer connection: still online)
                    commands += self.manager.disconnected(station_id, now)
            return commands

        commands = self.manager.together(now, gone)
        if commands:
            self.send(commands)

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        """One station's committed reports: the sites they change are planned at :meth:`commit_ended`, with the
        other stations' of the same group commit."""
        commands = self.manager.committed(station_id, reports, now, plan=False)
        if commands:
            self.send(commands)

    def commit_ended(self, now: float) -> None:
        """Every station's reports of a group commit were told: each site they changed is planned once."""
        self._send_if_moved(self.manager.plan_due(now))

    # ---- what the API and the fleet's systems tell --------------------------------------------------------
    def site_changed(self, site_id: str, config: PlannerConfig | None = None) -> None:
        """The site's set-up changed (created, PATCH, nodes, EVSEs): read it again and re-plan."""

        def read() -> SiteSetup | None:
            with self.host.session_factory() as db:
                try:
                    return read_setup(db, site_id, config)
                except NotFound:
                    return None

        self.host.scheduler.run_db(read, partial(self._install, site_id))

    def _install(self, site_id: str, setup: SiteSetup | None) -> None:
        if self._host is None or (self.owned is not None and site_id not in self.owned):
            return
        if setup is None:
            self.manager.remove(site_id)
            self._arm()
            return
        self.send(self.manager.install(setup, self.host.scheduler.now()))

    def site_reading(
        self,
        site_id: str,
        *,
        power_w: float | None,
        currents_a: list[float | None] | tuple[float | None, ...] | None = None,
        includes_ev: bool | None = None,
    ) -> None:
        """A site meter reading that was committed (API, meter integration)."""
        now = self.host.scheduler.now()
        self.send(
            self.manager.site_reading(site_id, now, power_w=power_w, currents_a=currents_a, includes_ev=includes_ev)
        )

    def ev_needs(self, port: tuple[str, int], energy_needed_wh: float | None, departure: float | None) -> None:
        """A vehicle's needs as the fleet schedule or the driver's app tells them."""
        now = self.host.scheduler.now()
        self.send(self.manager.ev_needs(port, now, energy_needed_wh=energy_needed_wh, departure=departure))

    def expect(self, site_id: str, vehicle_id: str, energy_needed_wh: float | None, departure: float | None) -> None:
        """A fleet vehicle on its way to ``site_id`` (its expected need and departure; None: no longer expected)."""
        vehicle = None
        if energy_needed_wh is not None and departure is not None:
            vehicle = ExpectedVehicle(vehicle_id, energy_needed_wh, departure)
        self.manager.expect(site_id, vehicle_id, vehicle)

    def arrived(self, vehicle_id: str) -> None:
        """A fleet vehicle plugged in: it is no longer on its way (its needs are a session's now)."""
        self.manager.forget_expected(vehicle_id)

    def curtail(self, site_id: str, event_id: str, start: float, end: float, limit_kw: float | None) -> bool:
        """A demand-response event (the site's grid limit lowered from ``start`` to ``end``; ``limit_kw`` None
        cancels it). False when this process does not plan the site."""
        if self._host is None or site_id not in self.manager.planners:
            return False
        self.send(self.manager.curtail(site_id, event_id, start, end, limit_kw, self.host.scheduler.now()))
        return True

    def demand_response(self, site_id: str, event_id: str, steps: Sequence[tuple[float, float, float]]) -> bool:
        """What a demand-response event says for a site: its steps (start, end, limit kW), ``{event_id}#{i}``,
        replacing what it said before (no steps: cancelled). False when this process does not plan the site."""
        if self._host is None or site_id not in self.manager.planners:
            return False
        manager, now = self.manager, self.host.scheduler.now()

        def replace() -> list[Command]:  # (the site planned once, with its new steps)
            out: list[Command] = []
            for c in self.curtailments(site_id):
                if c.event_id.startswith(f"{event_id}#"):
                    out += manager.curtail(site_id, c.event_id, c.start, c.end, None, now)
            for i, (start, end, limit_kw) in enumerate(steps):
                out += manager.curtail(site_id, f"{event_id}#{i}", start, end, limit_kw, now)
            return out

        self.send(manager.together(now, replace))
        return True

    def grid_limit_kw(self, site_id: str) -> float | None:
        """The site's own limit at its grid connection [kW] (total, or its phase limits at their voltage)."""
        planner = self.manager.planners.get(site_id)
        return None if planner is None else planner.site.grid_limit_kw

    def curtailments(self, site_id: str) -> list[Any]:
        planner = self.manager.planners.get(site_id)
        return [] if planner is None else sorted(planner.curtailments.values(), key=lambda c: c.start)

    def planned_w(self, site_id: str) -> float | None:
        """What the latest plan lets the site's EVSEs draw [W] (None: this process does not plan the site)."""
        planner = self.manager.planners.get(site_id)
        if planner is None:
            return None
        return 0.0 if planner.last_allocation is None else planner.last_allocation.total_w()

    def limits_now(self) -> dict[tuple[str, int], float]:
        """The power each EVSE of the sites planned here may draw by the latest plan [W] (the fleet board)."""
        out: dict[tuple[str, int], float] = {}
        for planner in self.manager.planners.values():
            if planner.last_allocation is not None:
                out.update(planner.last_allocation.power_w)
        return out

    # ---- commands ---------------------------------------------------------------------------------------
    def _send_if_moved(self, commands: list[Command]) -> None:
        """:meth:`send`, skipped when there is nothing to send and nothing the alarm or the stored forecasts are
        computed from moved since the last one (most committed reports and profile answers)."""
        if commands or self.manager.revision.count != self._sent_revision:
            self.send(commands)

    def send(self, commands: list[Command]) -> None:
        if self._host is None:
            return
        for command in commands:
            try:
                self.host.call(
                    command.station_id, command.action, command.payload, on_done=partial(self._answered, command)
                )
            except LookupError:  # not connected here: another node's, or its disconnect re-plans with the fallback
                self._route(command)
                continue
            except LocalCallError:
                log.exception("load management built an invalid %s for %s", command.action, command.station_id)
                self._report(command, "error")
                continue
            self.sent += 1
        self._sent_revision = self.manager.revision.count
        self._arm()
        self._store_forecasts()

    def _store_forecasts(self) -> None:
        """The building forecasts that learnt a slot since they were stored (a write per site every 15 minutes
        at most): a restarted process plans with them (:meth:`LoadManager.resume`)."""
        records = self.manager.forecasts_to_store()
        if not records:
            return
        at = from_posix(self.host.scheduler.now())

        def save() -> None:
            with self.host.session_factory() as db:
                save_forecasts(db, records, at)
                db.commit()

        self.host.scheduler.run_db(save, lambda _: None)

    def _route(self, command: Command) -> None:
        site_id = self.manager.site_of(command.station_id)
        if self.router is None or site_id is None:
            return
        self.sent += 1
        self.router.route(command, site_id, partial(self._routed, command))

    def _routed(self, command: Command, outcome: str, payload: Mapping[str, Any] | None) -> None:
        if outcome in ("cancelled", "not_connected"):
            return  # as a local call cancelled with its connection: the station's disconnect re-plans it
        self._report(command, call_status(outcome, payload))

    def _answered(self, command: Command, pending: PendingCall) -> None:
        if pending.outcome is Outcome.CANCELLED:
            return  # cancelled with its connection: the disconnect re-plans the station as offline
        self._report(command, call_status((pending.outcome or Outcome.CANCELLED).value, pending.payload))

    def _report(self, command: Command, status: str) -> None:
        if self._host is None:
            return
        if status != "Accepted":
            log.info("%s %s: %s", command.station_id, command.action, status)
        before = self.manager.failed_profiles
        commands = self.manager.call_result(command, status, self.host.scheduler.now())
        self.failed += self.manager.failed_profiles - before
        self._send_if_moved(commands)  # most answers are Accepted and change nothing

    # ---- timer ------------------------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._alarm is not None:
            self._alarm.arm(self.manager.next_deadline())

    def _on_timer(self) -> None:
        if self._host is not None:
            self.send(self.manager.handle_timer(self.host.scheduler.now()))
