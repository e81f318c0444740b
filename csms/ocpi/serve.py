"""OCPI in ``csms serve``: the OCPI API on its own port, the host plugin that queues a push when an EVSE's status
changes, and the worker that sends queued pushes (retried with back-off, :class:`RetrySchedule`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from csms.alerts.webhooks import RetrySchedule
from csms.domain import events as ev
from csms.gateway.outbox import OutboxWorker
from csms.ocpi import client as peer
from csms.ocpi.app import PREFIX, create_ocpi_app
from csms.ocpi.cdrs import queue_cdrs
from csms.ocpi.deps import OcpiConfig
from csms.ocpi.envelope import Us
from csms.ocpi.locations import queue_status
from csms.ocpi.sessions import queue_progress, queue_sessions
from csms.ocpi.sync import pull_tokens_due, queue_changes
from csms.ocpp.convert import from_posix
from csms.services import ocpi as store

if TYPE_CHECKING:
    from csms.core.host import CsmsHost, Reports
    from csms.gateway.server import Gateway
    from csms.ocpp.versions import Version

log = logging.getLogger(__name__)


#: 2 s doubling to 10 min, 12 attempts (about an hour), then abandoned.
PUSH_RETRY = RetrySchedule(base_s=2.0, cap_s=600.0, max_attempts=12)


@dataclass(frozen=True, slots=True)
class OcpiServe:
    """What ``csms serve`` needs to serve OCPI: the CPO's identity (``config.base_url`` empty: derived from the
    listening address) and the port (0: any free one)."""

    config: OcpiConfig
    port: int = 0
    #: The push worker's back-off and how often it looks for due pushes without being woken, seconds.
    retry: RetrySchedule = PUSH_RETRY
    poll_s: float = 5.0
    #: A running session's kWh are PATCHed to its eMSP at most this often, seconds.
    session_progress_s: float = 300.0
    #: How often changed locations and tariffs are looked for (and PUT to the parties), seconds.
    sync_s: float = 60.0
    #: A party's tokens sender is pulled this often (``date_from`` the last pull), seconds.
    token_pull_s: float = 3600.0


class PushWorker(OutboxWorker):
    """Sends the outbox (:class:`csms.store.models.OcpiPush`) with the party's token; at-least-once."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        schedule: RetrySchedule | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        poll_s: float = 5.0,
        timeout_s: float = 10.0,
        us: Us | None = None,
    ) -> None:
        """``us``: this CPO on the routing headers of what it sends."""
        super().__init__(session_factory, name="csms-ocpi-push", poll_s=poll_s)
        self.us = us
        self.schedule = schedule or RetrySchedule(base_s=2.0, cap_s=600.0, max_attempts=12)
        self.rng = rng or random.Random()
        self.clock = clock
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self.attempts: dict[str, int] = {"delivered": 0, "failed": 0, "abandoned": 0}

    async def close(self) -> None:
        await self._client.aclose()

    async def deliver_due(self) -> int:
        now = from_posix(self.clock())
        due = await self._in_db(lambda db: store.due_pushes(db, now))
        for item in due:  # in order: a later status of an EVSE must not overtake an earlier one
            await self._attempt(item)
        return len(due)

    async def _attempt(self, item: dict[str, Any]) -> None:
        status: int | None = None
        error: str | None = None
        if item["token"] is None:
            error = "the party is unregistered"
        else:
            try:
                response = await self._client.request(
                    item["method"],
                    item["url"],
                    json=None if item["method"] == "DELETE" else item["body"],
                    headers=peer.auth(item["token"], self.us, (item["country_code"], item["party_id"])),
                )
                status = response.status_code
                if not response.is_success:
                    error = response.text[:200]
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        delivered = error is None
        attempt = item["attempts"] + 1
        delay = None if delivered or item["token"] is None else self.schedule.delay_after(attempt, self.rng)
        self.attempts["delivered" if delivered else "failed" if delay is not None else "abandoned"] += 1
        if not delivered:
            log.info("OCPI push %s attempt %d failed: %s", item["id"], attempt, error)
        at = from_posix(self.clock())
        await self._in_db(
            lambda db: store.record_push(
                db, item["id"], at=at, status=status, error=error, delivered=delivered, retry_after_s=delay
            )
        )


class StatusPush:
    """Host plugin: an EVSE status a station reported, a roaming driver's session starting or ending, and its
    kWh at most every ``progress_s`` while it runs, once committed, are queued for the parties."""

    def __init__(self, config: OcpiConfig, worker: PushWorker, progress_s: float = 300.0) -> None:
        self.config, self.worker, self.progress_s = config, worker, progress_s
        self._host: CsmsHost | None = None
        #: (station, charger's transaction id) → when its kWh were last queued (this node's own throttle).
        self._progress: dict[tuple[str, str], float] = {}

    def attach(self, host: CsmsHost) -> None:
        self._host = host

    def stop(self) -> None:
        self._host = None

    def connected(self, station_id: str, version: Version, registered: bool, now: float) -> None:
        pass

    def disconnected(self, station_ids: Sequence[str], now: float) -> None:
        pass

    def committed(self, station_id: str, reports: Reports, now: float) -> None:
        host = self._host
        evses = {r.evse_id for r, _ in reports if isinstance(r, ev.StatusReported) and r.evse_id > 0}
        started = {d.transaction_id for r, d in reports if isinstance(r, ev.TransactionStarted) and isinstance(
            d, ev.TransactionAck) and d.transaction_id}  # fmt: skip
        named = {r.charger_tx_id for r, _ in reports if isinstance(r, ev.TransactionEnded | ev.TransactionStarted)
                 and r.charger_tx_id}  # fmt: skip
        progress = self._due_progress(station_id, reports, now)
        ended = {r.charger_tx_id for r, _ in reports if isinstance(r, ev.TransactionEnded) and r.charger_tx_id}
        # a report that rebuilt the CDR of a session that had ended: a CDR already sent is corrected
        ended |= {r.charger_tx_id for r, d in reports if getattr(d, "cdr_rebuilt", False)
                  and isinstance(r, ev.TransactionUpdated | ev.MeterValuesReported) and r.charger_tx_id}  # fmt: skip
        if host is None or not (evses or started or named or progress or ended):
            return
        factory, config, at = host.session_factory, self.config, from_posix(now)

        def queue() -> int:
            with factory() as db, db.begin():
                queued = queue_status(db, config, station_id, evses, at)
                queued += queue_progress(db, config, station_id, progress - named, at)
                queued += queue_cdrs(db, config, station_id, ended, at)
                return queued + queue_sessions(db, config, station_id, started, {c for c in named if c}, at)

        host.scheduler.run_db(queue, lambda queued: self.worker.wake() if queued else None)

    def _due_progress(self, station_id: str, reports: Reports, now: float) -> set[str]:
        """Running transactions whose meter moved and whose kWh were not queued within ``progress_s``."""
        due = set()
        for report, _ in reports:
            tx = getattr(report, "charger_tx_id", None)
            if isinstance(report, ev.TransactionEnded) and tx:
                self._progress.pop((station_id, tx), None)
            elif isinstance(report, ev.MeterValuesReported | ev.TransactionUpdated) and tx:
                last = self._progress.get((station_id, tx))
                if last is None or now - last >= self.progress_s:
                    self._progress[(station_id, tx)] = now
                    due.add(tx)
        return due


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``csms serve`` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class OcpiRunner:
    """The OCPI API's server, the push worker and the plugin, started and stopped with ``csms serve``."""

    def __init__(self, serve: OcpiServe, session_factory: sessionmaker[Session], gateway: Gateway) -> None:
        self.serve, self.session_factory, self.gateway = serve, session_factory, gateway
        self.worker = PushWorker(session_factory, schedule=serve.retry, poll_s=serve.poll_s, us=serve.config.us)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.url: str | None = None

    async def start(self, host: str, log_level: str, log_config: Any) -> str:
        """Listen (OSError when the port is taken); returns the versions URL."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, self.serve.port), family=family)
        port = sock.getsockname()[1]
        config = self.serve.config
        if not config.base_url:
            config = replace(config, base_url=f"http://{host}:{port}{PREFIX}")
        config = replace(config, pricing=self.gateway.config)
        self.gateway.add_plugin(StatusPush(config, self.worker, self.serve.session_progress_s))
        self.worker.start()
        app = create_ocpi_app(self.session_factory, self.gateway, config)
        app.state.push_worker = self.worker
        self._server = _Server(
            uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off", log_config=log_config)
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="csms-ocpi")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"the OCPI server did not start on {host}:{port}")
            await asyncio.sleep(0.02)
        self.url = config.versions_url
        self._sync_task = asyncio.create_task(self._sync(config), name="csms-ocpi-sync")
        return self.url

    async def _sync(self, config: OcpiConfig) -> None:
        """Every ``sync_s``: changed locations and tariffs queued for the parties, and their tokens pulled when
        due (:mod:`csms.ocpi.sync`)."""
        async with httpx.AsyncClient(timeout=15.0) as client:
            while True:
                try:
                    await self._sync_round(config, client, from_posix(time.time()))
                except Exception:
                    log.exception("OCPI sync round failed")
                await asyncio.sleep(self.serve.sync_s)

    async def _sync_round(self, config: OcpiConfig, client: httpx.AsyncClient, now: datetime) -> None:
        if await self.worker._in_db(lambda db: queue_changes(db, config, now)):
            self.worker.wake()
        for problem in await pull_tokens_due(self.session_factory, client, config.us, now, self.serve.token_pull_s):
            log.warning("OCPI token pull: %s", problem)

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.worker.stop()
