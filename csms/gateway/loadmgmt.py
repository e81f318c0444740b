"""Load management in the asyncio gateway: the shell around :class:`csms.loadmgmt.manager.LoadManager`.

It observes the gateway (connections, committed reports), sends the manager's commands as ordinary calls
(:meth:`Gateway.call`), reports each outcome back, and keeps one timer at the manager's next deadline.
Reading a site's set-up from the store runs on a worker thread; everything else is quick and runs on the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from csms.domain.events import Decision, StationReport
from csms.loadmgmt.manager import LoadManager, Memory, call_status
from csms.loadmgmt.planner import Command
from csms.ocpp.errors import LocalCallError
from csms.services.errors import NotFound
from csms.services.load_memory import read_memory, read_setup

log = logging.getLogger(__name__)


class LoadManagement:
    """A :class:`~csms.gateway.server.StationObserver` that plans every managed site and enforces the plan."""

    def __init__(self, gateway: object, session_factory: sessionmaker[Session]) -> None:
        from csms.gateway.server import Gateway

        assert isinstance(gateway, Gateway)
        self.gateway = gateway
        self.session_factory = session_factory
        self.manager = LoadManager()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Commands sent and their outcomes (tests, diagnostics).
        self.sent = 0
        self.failed = 0

    async def start(self) -> None:
        """Plan from what the store remembers (sites, running transactions, recent meter readings): a
        restarted process has nothing else."""
        now = time.time()
        memory = await asyncio.to_thread(self._read_memory, now)
        self._send(self.manager.resume(memory, now))

    def _read_memory(self, now: float) -> Memory:
        with self.session_factory() as db:
            return read_memory(db, now)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- API hooks --------------------------------------------------------------------------------------
    async def site_changed(self, site_id: str) -> None:
        """The site's set-up changed (created, PATCH, nodes, EVSEs): rebuild its planner."""

        def read():
            with self.session_factory() as db:
                try:
                    return read_setup(db, site_id)
                except NotFound:
                    return None

        setup = await asyncio.to_thread(read)
        if setup is None:
            self.manager.remove(site_id)
            self._arm()
            return
        self._send(self.manager.install(setup, time.time()))

    def site_reading(
        self,
        site_id: str,
        *,
        power_w: float | None,
        currents_a: Sequence[float | None] | None,
        includes_ev: bool | None,
    ) -> None:
        """A reading posted through the API (committed)."""
        commands = self.manager.site_reading(
            site_id, time.time(), power_w=power_w, currents_a=currents_a, includes_ev=includes_ev
        )
        self._send(commands)

    # ---- observer ---------------------------------------------------------------------------------------
    def connected(self, station_id: str, version: str, now: float) -> None:
        link = self.gateway.links.get(station_id)
        registered = link is not None and link.session.registration_status == "Accepted"
        self._send(self.manager.connected(station_id, version, now, registered=registered))

    def disconnected(self, station_id: str, now: float) -> None:
        if station_id in self.gateway.links:
            return  # replaced by a newer connection: still online
        self._send(self.manager.disconnected(station_id, now))

    def committed(self, station_id: str, reports: list[tuple[StationReport, Decision]], now: float) -> None:
        self._send(self.manager.committed(station_id, reports, now))

    # ---- commands ---------------------------------------------------------------------------------------
    def _send(self, commands: list[Command]) -> None:
        for command in commands:
            task = asyncio.ensure_future(self._call(command))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._arm()

    async def _call(self, command: Command) -> None:
        self.sent += 1
        try:
            pending = await self.gateway.call(command.station_id, command.action, command.payload)
        except LocalCallError:
            log.exception("load management built an invalid %s for %s", command.action, command.station_id)
            status = "error"
        except LookupError:  # not connected (any more): its disconnect re-plans with the fallback
            return
        else:
            status = call_status(pending.outcome.value if pending.outcome else "cancelled", pending.payload)
        if status != "Accepted":
            self.failed += 1
            log.info("%s %s: %s", command.station_id, command.action, status)
        self._send(self.manager.call_result(command, status, time.time()))

    # ---- timer ------------------------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.manager.next_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, deadline - time.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._send(self.manager.handle_timer(time.time()))
