"""Load management as a host plugin: :class:`~csms.loadmgmt.manager.LoadManager` fed with connections and
committed reports, its commands sent as ordinary CSMS calls, each outcome reported back, and one alarm at
its next deadline.

What the manager needs from the store (sites, running sessions, recent meter readings) is read by services
through ``scheduler.run_db`` and handed in: the manager itself reads nothing.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from csms.core.scheduler import Alarm
from csms.loadmgmt.manager import LoadManager, Memory, SiteSetup, call_status
from csms.loadmgmt.planner import Command, PlannerConfig
from csms.ocpp.errors import LocalCallError
from csms.ocpp.rpc import Outcome, PendingCall
from csms.ocpp.versions import Version
from csms.services.errors import NotFound
from csms.services.load_memory import read_memory, read_setup

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports

log = logging.getLogger(__name__)


class LoadManagement:
    """Plans every managed site and enforces the plan through the host."""

    def __init__(self, manager: LoadManager | None = None) -> None:
        self.manager = manager or LoadManager()
        self._host: CsmsHost | None = None
        self._alarm: Alarm | None = None
        #: Commands sent, and profiles the manager counted as failed (reports, tests, diagnostics).
        self.sent = 0
        self.failed = 0

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
        now = self.host.scheduler.now()

        def read() -> Memory:
            with self.host.session_factory() as db:
                return read_memory(db, now, config)

        self.host.scheduler.run_db(read, lambda memory: self.send(self.manager.resume(memory, now)))

    def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.disarm()
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        self.send(self.manager.connected(station_id, version, now, registered=registered))

    def disconnected(self, station_id: str, now: float) -> None:
        if self.host.is_connected(station_id):
            return  # replaced by a newer connection: still online
        self.send(self.manager.disconnected(station_id, now))

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        self.send(self.manager.committed(station_id, reports, now))

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
        if self._host is None:
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

    def ev_needs(self, port: tuple[str, int], energy_needed_wh: float, departure: float | None) -> None:
        """A vehicle's needs as the fleet schedule or the driver's app tells them."""
        now = self.host.scheduler.now()
        self.send(self.manager.ev_needs(port, now, energy_needed_wh=energy_needed_wh, departure=departure))

    # ---- commands ---------------------------------------------------------------------------------------
    def send(self, commands: list[Command]) -> None:
        if self._host is None:
            return
        for command in commands:
            try:
                self.host.call(
                    command.station_id, command.action, command.payload, on_done=partial(self._answered, command)
                )
            except LookupError:  # not connected (any more): its disconnect re-plans with the fallback
                continue
            except LocalCallError:
                log.exception("load management built an invalid %s for %s", command.action, command.station_id)
                self._report(command, "error")
                continue
            self.sent += 1
        self._arm()

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
        self.send(commands)

    # ---- timer ------------------------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._alarm is not None:
            self._alarm.arm(self.manager.next_deadline())

    def _on_timer(self) -> None:
        if self._host is not None:
            self.send(self.manager.handle_timer(self.host.scheduler.now()))
