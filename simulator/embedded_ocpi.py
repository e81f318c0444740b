"""OCPI roaming in a virtual-time run: the embedded CSMS serves the same OCPI 2.2.1 CPO API as ``csms serve``
(:func:`csms.ocpi.app.create_ocpi_app`, on a loopback port), its push outbox is sent by the same worker
(:class:`csms.ocpi.serve.PushWorker`) and queued by the same host plugin, and the twin's eMSP
(:class:`simulator.roaming.emsp.Emsp`, its own HTTP server on loopback) is the partner.

Virtual time and real HTTP in one run. The run is one asyncio loop on one thread: it steps SimPy one event at a
time (:meth:`Loopback.drive`), and whenever a step left real-time work — an eMSP action (register, pulls,
token pushes, START_SESSION), a round of the push outbox, a real-time authorisation request — the clock stands
still while that work runs over real sockets (:meth:`Loopback.settle`), until every command the CPO accepted is
either done or waiting for its station's answer, which comes through SimPy (:class:`EmbeddedStations`). So what
the OCPI side writes carries the virtual time (:class:`OcpiConfig` ``clock``), and nothing touches the CSMS's
database at once: the clock's thread waits while the servers work.

The CSMS side needs no twin logic: the embedded CSMS is a shell like ``csms serve``; this module is its OCPI
port (``pyproject.toml`` names the one import of a CSMS shell it needs).
"""

from __future__ import annotations

import asyncio
import collections
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import simpy
import uvicorn

from csms.core.host import CsmsHost
from csms.ocpi.app import PREFIX, create_ocpi_app
from csms.ocpi.deps import OcpiConfig
from csms.ocpi.locations import location_id_of
from csms.ocpi.serve import PUSH_RETRY, PushWorker, StatusPush
from csms.ocpi.sync import pull_tokens_due, queue_changes
from csms.ocpp.convert import from_posix
from csms.pki.lookups import Lookup, Lookups, RemoteAuthorization, Result
from csms.services import ocpi as store
from csms.services import stations as station_service
from simulator.embedded_csms import EmbeddedCsms
from simulator.fleet import Fleet, group_tokens, transaction_key
from simulator.roaming.emsp import Emsp, serving, token_header
from simulator.scenario.models import Roaming, Scenario
from simulator.scheduler import SimPyScheduler
from simulator.twin.interfaces import ConnectorRef, VehicleInfo
from simulator.verify import roaming as verify
from simulator.verify.billing import TariffPlan

Job = Callable[[], Awaitable[None]]
#: As ``csms serve``'s defaults (OcpiServe): how often changes are looked for, how often tokens are pulled.
SYNC_S, TOKEN_PULL_S = 60.0, 3600.0


class Loopback:
    """The real-time work of a virtual-time run, done while the clock stands still."""

    def __init__(self) -> None:
        self.jobs: collections.deque[Job] = collections.deque()
        #: Commands the CPO accepted whose station call has not been answered yet (they wait on SimPy).
        self.parked = 0
        #: The CPO's command tasks (``app.state.command_tasks``), once it has made any.
        self.tasks: Callable[[], set[asyncio.Task[Any]] | None] = lambda: None

    def add(self, job: Job) -> None:
        self.jobs.append(job)

    def _running(self) -> int:
        tasks = self.tasks()
        return 0 if not tasks else sum(1 for t in tasks if not t.done())

    def idle(self) -> bool:
        return not self.jobs and self._running() <= self.parked

    async def settle(self) -> None:
        """Run the queued jobs one by one; let the CPO's command tasks run until each waits for its station."""
        while True:
            if self._running() > self.parked:
                await asyncio.sleep(0.001)
                continue
            if not self.jobs:
                return
            await self.jobs.popleft()()

    async def drive(self, env: simpy.Environment, done: simpy.Event) -> None:
        """Step SimPy until ``done``, settling the real-time work after any step that left some."""
        while not done.processed:
            if not self.idle():
                await self.settle()
                continue
            try:
                env.step()
            except simpy.core.EmptySchedule:
                break
        await self.settle()


class EmbeddedStations:
    """The OCPI commands' door to the embedded CSMS's stations: the call goes out through the host at the
    current virtual time; its answer (through SimPy) resolves the command's wait."""

    def __init__(self, csms: EmbeddedCsms, loopback: Loopback) -> None:
        self.csms, self.loopback = csms, loopback

    @property
    def host(self) -> CsmsHost:
        assert self.csms.host is not None, "the CSMS is down"
        return self.csms.host

    def is_connected(self, station_id: str) -> bool:
        return self.csms.connected(station_id)

    async def route_call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def answered(pending: Any) -> None:
            self.loopback.parked -= 1
            if not future.done():
                future.set_result(pending.as_dict())

        self.loopback.parked += 1
        try:
            self.host.call(station_id, action, payload, timeout_s, on_done=answered)
        except Exception:
            self.loopback.parked -= 1
            raise
        return await future


class OcpiLookups:
    """The embedded CSMS's lookups: an OCPI real-time authorisation is a real POST to the eMSP (made while the
    clock stands still), its answer handed back after ``latency_s``; any other lookup goes to ``other``."""

    def __init__(self, scheduler: SimPyScheduler, loopback: Loopback, other: Lookups | None, latency_s: float = 0.2):
        self.scheduler, self.loopback, self.other, self.latency_s = scheduler, loopback, other, latency_s
        self.made = 0

    def run(self, lookup: Lookup, then: Callable[[Result], None]) -> None:
        if not isinstance(lookup, RemoteAuthorization):
            if self.other is not None:
                self.other.run(lookup, then)
            else:
                self.scheduler.call_later(self.latency_s, lambda: then(None))
            return
        self.made += 1

        async def post() -> None:
            result: Result = None
            try:
                async with httpx.AsyncClient(timeout=10) as client:
                    answer = await client.post(lookup.url, json=lookup.body, headers=token_header(lookup.token))
                body = answer.json()
                data = body.get("data") if isinstance(body, dict) and body.get("status_code") == 1000 else None
                result = data if isinstance(data, dict) else None
            except (httpx.HTTPError, ValueError):
                result = None
            self.scheduler.call_later(self.latency_s, lambda: then(result))

        self.loopback.add(post)


class VirtualPushWorker(PushWorker):
    """The CSMS's push worker on the virtual clock: a round is queued when something is queued (``wake``) and at
    the outbox's next retry time, and runs while the clock stands still."""

    def __init__(self, csms: EmbeddedCsms, loopback: Loopback, scheduler: SimPyScheduler, roaming: Roaming, seed: int):
        us = OcpiConfig(roaming.country_code, roaming.party_id).us
        super().__init__(csms.session_factory, schedule=PUSH_RETRY, rng=random.Random(seed), clock=scheduler.now,
                         us=us)  # fmt: skip
        self.loopback, self.scheduler, self.csms = loopback, scheduler, csms
        self._queued = False
        self._timer_at: float | None = None
        #: Rounds run (the report shows them beside the attempts).
        self.rounds = 0

    def wake(self) -> None:
        if not self._queued:
            self._queued = True
            self.loopback.add(self._round)

    async def _round(self) -> None:
        self.rounds += 1
        self._queued = False
        await self.deliver_due()
        with self.csms.session_factory() as db:
            upcoming = store.next_push_at(db)
        if upcoming is None:
            return
        # A hair after the push is due, so the round's "due by now" holds despite float rounding of the clock.
        at = max(upcoming.timestamp() + 0.001, self.scheduler.now())
        if self._timer_at is None or at < self._timer_at:
            self._timer_at = at
            self.scheduler.call_at(at, lambda: self._due(at))

    def _due(self, at: float) -> None:
        if self._timer_at != at:  # superseded by an earlier one, which ran its round
            return
        self._timer_at = None
        self.wake()


class EmbeddedRoaming:
    """The embedded CSMS's OCPI port and the twin's eMSP, for a scenario with ``roaming``."""

    def __init__(self, scenario: Scenario, scheduler: SimPyScheduler, loopback: Loopback, seed: int) -> None:
        assert scenario.roaming is not None
        self.scenario, self.settings, self.scheduler, self.loopback = scenario, scenario.roaming, scheduler, loopback
        self.seed = seed
        self._sock = socket.create_server(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.config = OcpiConfig(
            self.settings.country_code,
            self.settings.party_id,
            business_name="chargetwin operator (twin)",
            base_url=f"http://127.0.0.1:{port}{PREFIX}",
            clock=lambda: from_posix(scheduler.now()),
        )
        clock: Callable[[], datetime] = lambda: from_posix(scheduler.now())  # noqa: E731 - the eMSP's clock
        self.emsp = Emsp(self.settings.emsp_country_code, self.settings.emsp_party_id, name="Twin eMSP", clock=clock)
        self.starts: list[verify.Start] = []
        self.pulled: dict[str, int] = {"locations": 0, "tariffs": 0}
        self.errors: list[str] = []
        #: Each roaming token → (start, whitelist).
        self.drivers: dict[str, tuple[str, str]] = {}
        self.csms: EmbeddedCsms | None = None
        self.worker: VirtualPushWorker | None = None

    def lookups(self, other: Lookups | None) -> OcpiLookups:
        """The embedded CSMS's lookups (real-time authorisation reaches the eMSP)."""
        return OcpiLookups(self.scheduler, self.loopback, other)

    def attach(self, csms: EmbeddedCsms, fleet: Fleet) -> None:
        """Serve OCPI for ``csms``, add its push plugin, and let the roaming drivers' app start their sessions."""
        self.csms, self.fleet = csms, fleet
        for drivers in self.settings.drivers:
            for token in group_tokens(self.scenario, drivers.vehicles):
                self.drivers[token] = (drivers.start, drivers.whitelist)
        self.worker = VirtualPushWorker(csms, self.loopback, self.scheduler, self.settings, self.seed)
        worker, config = self.worker, self.config
        csms.add_plugin(lambda: StatusPush(config, worker, progress_s=300.0))
        self.app = create_ocpi_app(csms.session_factory, EmbeddedStations(csms, self.loopback), config)
        self.app.state.push_worker = worker
        state = self.app.state._state
        self.loopback.tasks = lambda: state.get("command_tasks")
        fleet.hooks.driver_app = self._app_start

    def start(self, env: simpy.Environment) -> None:
        """The eMSP's day: registration (after the run's first actions), its down windows."""
        env.process(self._registration(env))
        env.process(self._sync(env))
        for window in self.settings.emsp_down:
            env.process(self._down(env, self.scenario.seconds(window.at), window.duration))

    # ---- the eMSP's actions --------------------------------------------------------------------------------
    def _registration(self, env: simpy.Environment) -> simpy.events.ProcessGenerator:
        at = 0.0 if self.settings.register_at is None else self.scenario.seconds(self.settings.register_at)
        yield env.timeout(at)
        assert self.csms is not None
        now = from_posix(self.scheduler.now())
        with self.csms.session_factory() as db, db.begin():
            _, token_a = store.add_party(db, self.settings.emsp_country_code, self.settings.emsp_party_id, now,
                                         name="Twin eMSP")  # fmt: skip
            details = self.settings.location.model_dump() | {"publish": True}
            for location_id in sorted({location_id_of(s) for s in station_service.list_stations(db)}):
                store.set_location(db, location_id, {**details, "name": location_id}, now)
        assert token_a is not None
        emsp, cards = self.emsp, [(uid, w) for uid, (start, w) in self.drivers.items() if start == "card"]

        async def register() -> None:
            try:
                await emsp.register(self.config.versions_url, token_a)
                self.pulled["locations"] = len(await emsp.pull("locations"))
                self.pulled["tariffs"] = len(await emsp.pull("tariffs"))
                for uid, whitelist in cards:
                    await emsp.push_token(emsp.our_token(uid, whitelist))
            except Exception as exc:  # the report says what went wrong; the checks then fail
                self.errors.append(f"registration: {type(exc).__name__}: {exc}")

        self.loopback.add(register)

    def _sync(self, env: simpy.Environment) -> simpy.events.ProcessGenerator:
        """As ``csms serve``'s sync loop, on the virtual clock: changed locations and tariffs queued for the
        parties every ``SYNC_S``, their tokens pulled when an hour old."""
        while True:
            yield env.timeout(SYNC_S)
            self.loopback.add(self._sync_round)

    async def _sync_round(self) -> None:
        assert self.csms is not None and self.worker is not None
        now = from_posix(self.scheduler.now())
        with self.csms.session_factory() as db, db.begin():
            queued = queue_changes(db, self.config, now)
        if queued:
            self.worker.wake()
        async with httpx.AsyncClient(timeout=10) as client:
            problems = await pull_tokens_due(self.csms.session_factory, client, self.config.us, now, TOKEN_PULL_S)
        self.errors += [f"token pull: {p}" for p in problems]

    def _down(self, env: simpy.Environment, at_s: float, duration_s: float) -> simpy.events.ProcessGenerator:
        yield env.timeout(max(0.0, at_s - env.now))
        self.emsp.down = True
        yield env.timeout(duration_s)
        self.emsp.down = False

    def _app_start(self, connector: ConnectorRef, vehicle: VehicleInfo, now: float) -> bool:
        uid = vehicle.id_token
        if uid is None or self.drivers.get(uid, ("card", ""))[0] != "app":
            return False
        reference = f"S{len(self.starts) + 1}"
        station = connector.station_id
        assert self.csms is not None
        with self.csms.session_factory() as db:
            location = location_id_of(station_service.get(db, station))
        body = {"token": self.emsp.our_token(uid, self.drivers[uid][1]), "location_id": location,
                "evse_uid": f"{station}*{connector.connector_id}"}  # fmt: skip
        at_s = now - self.scenario.start.timestamp()

        async def start_session() -> None:
            try:
                answer = await self.emsp.command("START_SESSION", body, reference)
                result = str(answer.get("result"))
            except httpx.HTTPError as exc:
                result = f"{type(exc).__name__}"
            self.starts.append(verify.Start(reference, uid, station, connector.connector_id, at_s, result))

        self.loopback.add(start_session)
        return True

    # ---- the run ---------------------------------------------------------------------------------------------
    def run(self, env: simpy.Environment, done: simpy.Event) -> None:
        """Drive the run to ``done`` with both servers up on loopback."""
        asyncio.run(self._serve(env, done))

    async def _serve(self, env: simpy.Environment, done: simpy.Event) -> None:
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[self._sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with serving(self.emsp):
                await self.loopback.drive(env, done)
        finally:
            server.should_exit = True
            await task
            assert self.worker is not None
            await self.worker.close()
            self.worker._db.shutdown(wait=True)

    def section(self, keys: dict[str, tuple[str, str]], plan: TariffPlan, zone: str) -> dict[str, Any]:
        """The report's ``roaming`` section."""
        truth = [
            verify.TruthSession(charger.station_id, tx.connector_id, transaction_key(tx), tx.id_token,
                                tx.started_at - self.scenario.start.timestamp(), tx.ended_at is not None,
                                ((tx.meter_stop_wh if tx.meter_stop_wh is not None else
                                  charger.meter.energy_wh(tx.connector_id)) - tx.meter_start_wh) / 1000.0)
            for charger in self.fleet.chargers.values() for tx in charger.history
        ]  # fmt: skip
        view = verify.EmspView(
            sessions=self.emsp.sessions(),
            cdrs=self.emsp.cdrs(),
            authorized={uid for uid, _ in self.emsp.authorize_requests},
            results=self.emsp.command_results(),
            starts=list(self.starts),
            refused_while_down=self.emsp.refused_while_down,
            push_attempts={} if self.worker is None else {**self.worker.attempts, "rounds": self.worker.rounds},
            locations=self.pulled["locations"],
            tariffs=self.pulled["tariffs"],
            pushed={m: sum(1 for r in self.emsp.pushes(m) if r[0] == "PUT") for m in ("locations", "tariffs")},
            token_pulls=len(self.emsp.token_since),
        )
        out = verify.section(truth, self.drivers, view, keys, self.fleet.truth_timelines(), plan, zone)
        out["errors"] = list(self.errors)
        return out
