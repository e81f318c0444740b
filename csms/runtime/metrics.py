"""``GET /metrics``: the running CSMS in the Prometheus text format (``prometheus-client``).

Each server has a registry of its own (not the library's global one), so several servers in one process
(the tests) do not collide. The hot path does nothing for the metrics but bump integers that the parts
keep anyway: the host's :class:`~csms.core.traffic.Traffic`, the gateway's refusals, the webhook sender's
attempts, the planners' and the alert engine's state. :class:`_Snapshot` reads them when Prometheus
scrapes, on the event loop (the endpoint is ``async``), so it sees the loop's structures between two
callbacks. Histograms are observed as things happen: once per group commit (the host's
:class:`~csms.core.host.CommitObserver` hook) and once per tick of the event-loop lag probe.

The metric names are a contract with ``deploy/grafana/chargetwin.json`` (a test checks every name it uses)
and with the alerts operators write: see ``docs/operations.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from csms.gateway.server import Gateway

if TYPE_CHECKING:
    from csms.core.plugins.alerts import AlertMonitor
    from csms.core.plugins.load_management import LoadManagement
    from csms.runtime.webhooks import WebhookSender

PREFIX = "chargetwin_"
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The registry of one ``csms serve`` and the probes that feed its histograms."""

    def __init__(
        self,
        gateway: Gateway,
        engine: Engine,
        *,
        load_management: LoadManagement | None = None,
        monitor: AlertMonitor | None = None,
        sender: WebhookSender | None = None,
        lag_interval_s: float = 0.5,
    ) -> None:
        self.registry = CollectorRegistry()
        self.lag_interval_s = lag_interval_s
        self._lag_task: asyncio.Task[None] | None = None

        def histogram(name: str, text: str, buckets: Iterable[float]) -> Histogram:
            return Histogram(PREFIX + name, text, buckets=tuple(buckets), registry=self.registry)

        self.batch_stations = histogram(
            "commit_batch_stations", "Stations whose work one group commit stored.", BATCH_BUCKETS
        )
        self.batch_calls = histogram("commit_batch_calls", "Station calls one group commit answered.", BATCH_BUCKETS)
        self.commit_seconds = histogram(
            "commit_duration_seconds",
            "From a batch handed to the database thread to its answers released (queueing included).",
            SECONDS_BUCKETS,
        )
        self.loop_lag = histogram(
            "event_loop_lag_seconds", "How late the event loop ran a timer (sockets wait that long).", LAG_BUCKETS
        )
        self.snapshot = _Snapshot(gateway, engine, load_management, monitor, sender)
        self.registry.register(self.snapshot)
        gateway.host.commit_observer = self

    # ---- the host's commit observer ------------------------------------------------------------------------
    def batch_committed(self, stations: int, calls: int, seconds: float, failed: bool) -> None:
        if stations == 0:
            # A commit of stations' answers to the CSMS's calls alone (their ``last_seen_at``): no station's frames,
            # nothing a charger waits for. Observed, it was a batch of 0 stations and 0 calls in the batch sizes
            # and a latency no answer waited for.
            return
        self.batch_stations.observe(stations)
        self.batch_calls.observe(calls)
        self.commit_seconds.observe(max(0.0, seconds))
        if failed:
            self.snapshot.commit_failures += 1

    # ---- event-loop lag --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._lag_task = asyncio.create_task(self._watch_loop(), name="csms-loop-lag")

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.lag_interval_s)
            self.loop_lag.observe(max(0.0, loop.time() - asked - self.lag_interval_s))

    # ---- exposition ------------------------------------------------------------------------------------------
    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape's body and content type (the text format; OpenMetrics when the scraper asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def mount(app: FastAPI, metrics: Metrics) -> None:
    """``GET /metrics`` without authentication (see docs/operations.md, "Metrics")."""

    async def scrape(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)


class _Snapshot(Collector):
    """Gauges and counters read from the parts' own state at scrape time."""

    def __init__(
        self,
        gateway: Gateway,
        engine: Engine,
        load_management: LoadManagement | None,
        monitor: AlertMonitor | None,
        sender: WebhookSender | None,
    ) -> None:
        self.gateway = gateway
        self.engine = engine
        self.load_management = load_management
        self.monitor = monitor
        self.sender = sender
        self.commit_failures = 0

    def collect(self) -> Iterator[Metric]:
        yield from self._stations()
        yield from self._traffic()
        yield from self._commits()
        yield from self._load_management()
        yield from self._alerts()
        yield from self._webhooks()
        yield from self._pool()

    def _stations(self) -> Iterator[Metric]:
        host = self.gateway.host
        by_kind = Counter((c.version, str(c.security_profile or "")) for c in host.connections.values())
        connected = GaugeMetricFamily(
            PREFIX + "stations_connected",
            "Stations connected to this node, by OCPP version and security profile.",
            labels=["ocpp_version", "security_profile"],
        )
        for (version, profile), count in sorted(by_kind.items()):
            connected.add_metric([version, profile], count)
        yield connected
        outstanding = queued = 0
        for connection in host.connections.values():
            rpc = connection.session.rpc
            outstanding += rpc.outstanding is not None
            queued += rpc.queued
        pending = GaugeMetricFamily(
            PREFIX + "pending_calls",
            "CSMS-initiated calls waiting for their answer (outstanding) or their turn (queued).",
            labels=["state"],
        )
        pending.add_metric(["outstanding"], outstanding)
        pending.add_metric(["queued"], queued)
        yield pending
        yield _counter(
            "handshake_refusals",
            "WebSocket handshakes refused, by reason (the security event's type).",
            ["reason"],
            [((reason,), n) for reason, n in self.gateway.refusals.items()],
        )
        yield _counter("frame_rate_pauses", "Connections paused for their frame rate.", [], [((), self.gateway.pauses)])
        yield _counter("flooders_closed", "Connections closed for flooding.", [], [((), self.gateway.flooders_closed)])

    def _traffic(self) -> Iterator[Metric]:
        traffic = self.gateway.host.traffic
        yield _counter(
            "ocpp_frames",
            "OCPP-J frames, by direction, action and message type (CALL, CALLRESULT, CALLERROR, malformed).",
            ["direction", "action", "type"],
            traffic.frames.items(),
        )
        yield _counter(
            "ocpp_callerrors",
            "CALLERROR frames, by direction and error code.",
            ["direction", "code"],
            traffic.errors.items(),
        )

    def _commits(self) -> Iterator[Metric]:
        processor = self.gateway.host.processor
        yield _counter(
            "commit_retries",
            "Group commits run again with a savepoint per call because one call failed.",
            [],
            [((), processor.retries)],
        )
        failures = [((), self.commit_failures)]
        yield _counter(
            "commit_failures", "Group commits that failed (their calls answered InternalError).", [], failures
        )

    def _load_management(self) -> Iterator[Metric]:
        plans: dict[tuple[str, ...], int] = {}
        violations: dict[tuple[str, ...], int] = {}
        sent = failed = 0
        if self.load_management is not None:
            manager = self.load_management.manager
            sent, failed = self.load_management.sent, self.load_management.failed
            for site_id, planner in manager.planners.items():
                plans[(site_id,)] = planner.plans
            for site_id, compliance in manager.compliance.items():
                for (reason,), n in Counter((why,) for _, why, _ in compliance.history).items():
                    violations[(site_id, reason)] = n
        yield _counter(
            "loadmgmt_plans", "Site plans computed (restarts when a site's set-up changes).", ["site"], plans.items()
        )
        yield _counter(
            "loadmgmt_violations",
            "Stations flagged for not following their plan: rejected a profile, or drew over their allocation.",
            ["site", "reason"],
            violations.items(),
        )
        yield _counter("loadmgmt_profiles_sent", "Charging profiles sent by load management.", [], [((), sent)])
        yield _counter(
            "loadmgmt_profiles_failed", "Charging profiles refused or not answered by stations.", [], [((), failed)]
        )

    def _alerts(self) -> Iterator[Metric]:
        open_ = GaugeMetricFamily(PREFIX + "alerts_open", "Alerts open, by kind.", labels=["kind"])
        if self.monitor is not None:
            for kind, n in sorted(Counter(key[0] for key in self.monitor.engine.open).items()):
                open_.add_metric([kind], n)
        yield open_

    def _webhooks(self) -> Iterator[Metric]:
        attempts = [] if self.sender is None else [((k,), n) for k, n in self.sender.attempts.items()]
        yield _counter(
            "webhook_attempts",
            "Webhook delivery attempts: delivered, failed (retried later), abandoned (no retry left).",
            ["outcome"],
            attempts,
        )

    def _pool(self) -> Iterator[Metric]:
        pool: Any = self.engine.pool
        connections = GaugeMetricFamily(
            PREFIX + "db_pool_connections", "Database connections of this node's pool, by state.", labels=["state"]
        )
        size = GaugeMetricFamily(PREFIX + "db_pool_size", "Connections the pool keeps (overflow comes on top).")
        with contextlib.suppress(AttributeError, NotImplementedError):  # pools without a fixed size
            connections.add_metric(["checked_out"], pool.checkedout())
            connections.add_metric(["idle"], pool.checkedin())
            connections.add_metric(["overflow"], max(0, pool.overflow()))
            size.add_metric([], pool.size())
        yield connections
        yield size


def _counter(
    name: str, text: str, labels: list[str], values: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, text, labels=labels)
    for key, value in sorted(values):
        family.add_metric(list(key), value)
    return family
