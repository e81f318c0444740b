"""``csms serve``: the OCPP gateway and the HTTP API in one process and one asyncio loop, on one database.

The gateway and the API share the loop so API handlers can await the gateway's calls directly. Signals are
ours, not uvicorn's: SIGINT/SIGTERM set ``stop``, then, within ``shutdown_grace_s``: the gateway stops
accepting connections, a cluster node gives its leases back (the others take over at once), the API finishes
its requests, the gateway commits the batch in flight, answers it, closes every station's connection with
1001 (going away) so chargers reconnect elsewhere, commits what arrived meanwhile, and the engine is disposed.

The gateway listens before the HTTP API's modules are loaded (FastAPI, uvicorn and the pydantic schemas are
most of the start-up's import time, 10+ s on a loaded machine): after a restart the chargers reconnect while
the API is still loading, on a thread, and the API listens a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from csms.alerts import AlertEngine, AlertRules, RemediationPolicy
from csms.api.redaction import install_access_log_filter
from csms.core.plugins.alerts import AlertMonitor
from csms.core.plugins.aligned_metering import AlignedMetering
from csms.core.plugins.certificates import CertificateManager
from csms.core.plugins.costs import CostDisplay
from csms.core.plugins.fleet import FleetNeeds
from csms.core.plugins.load_management import LoadManagement
from csms.core.plugins.payments import HoldRelease
from csms.core.plugins.reservations import ReservationExpiry
from csms.gateway.frame_rate import FrameRate
from csms.gateway.lookups import ThreadedLookups
from csms.gateway.server import Gateway
from csms.pki.lookups import ContractProvider
from csms.reports.invoices import Party
from csms.runtime.openadr import VenRunner, VenSettings
from csms.runtime.webhooks import WebhookSender
from csms.services.config import CsmsConfig
from csms.services.payments import payment_providers
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory

if TYPE_CHECKING:
    import uvicorn

    from csms.ocpi.serve import OcpiRunner, OcpiServe
    from csms.runtime.cluster import Cluster
    from csms.runtime.metrics import Metrics
    from csms.runtime.probes import DatabaseProbes, Readiness

log = logging.getLogger(__name__)


def _load_api() -> None:
    """Import the HTTP API's modules (on a thread, while the gateway serves)."""
    import uvicorn  # noqa: F401

    import csms.api.app
    import csms.api.local_lists
    import csms.runtime.metrics
    import csms.runtime.probes  # noqa: F401


def _api_server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn without its own signal handling (it would re-raise the signal after shutdown)."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return _Server(config)


@dataclass(frozen=True, slots=True)
class Endpoints:
    ocpp_url: str
    api_url: str
    ocpp_port: int
    api_port: int
    #: The ``wss://`` listener (security profiles 2 and 3), when serving TLS.
    ocpp_tls_url: str | None = None
    ocpp_tls_port: int | None = None
    #: OCPI's versions URL, when serving OCPI.
    ocpi_url: str | None = None


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to its hard limit (every connected charger is one file
    descriptor; the usual soft default of 1024 caps a gateway near 1,000 chargers). Returns (soft, hard) in
    force afterwards. Raising the hard limit itself needs privileges: ``ulimit -Hn``, systemd
    ``LimitNOFILE=``, or Docker ``--ulimit nofile=N:N``."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft, hard


def prepare_database(url: str | None) -> Engine:
    """An engine on ``url`` (or $CHARGETWIN_DATABASE_URL, or the embedded SQLite file), migrated to head."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def _live_across_nodes(app: Any, cluster: Any) -> None:
    """In a cluster the console's live streams hear every node's stations: this node's changes are relayed to
    the others, theirs told to this node's streams."""
    if cluster is not None:
        app.state.live.relay = cluster.relay_live
        cluster.on_live = app.state.live.publish


async def run_server(
    *,
    database_url: str | None,
    host: str = "127.0.0.1",
    ocpp_port: int = 9000,
    api_port: int = 8000,
    api_key: str | None = None,
    config: CsmsConfig | None = None,
    log_level: str = "info",
    logs_configured: bool = False,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Endpoints], None] | None = None,
    handle_signals: bool = True,
    alert_rules: AlertRules | None = None,
    remediation: RemediationPolicy | None = None,
    public_url: str | None = None,
    payment_webhook_secret: str | None = None,
    seller: Party | None = None,
    openadr: VenSettings | None = None,
    broker_url: str | None = None,
    node_id: str | None = None,
    registry_ttl_s: int = 15,
    lease_ttl_s: float = 10.0,
    shutdown_grace_s: float = 10.0,
    exit_watchdog: bool = False,
    tls_context: ssl.SSLContext | None = None,
    tls_port: int = 9443,
    contract_provider: ContractProvider | None = None,
    frame_rate: FrameRate | None = FrameRate(),
    accept_paths: Sequence[str] = (),
    ocpi: OcpiServe | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM when ``handle_signals``).

    ``alert_rules``/``remediation`` configure the alert engine (remediation is off unless given);
    ``public_url`` is the API's base URL as stations reach it (diagnostics upload and firmware URLs), by
    default the URL the API request came in on.

    With ``broker_url`` (redis://…) this process is node ``node_id`` of a cluster (:mod:`csms.runtime.cluster`):
    API calls reach stations connected to any node. Without it, nothing changes.

    With ``tls_context`` (:func:`csms.gateway.tls.server_context`) the gateway also serves ``wss://`` on
    ``tls_port``; the plain listener stays for profile-1 stations.

    ``contract_provider`` answers Get15118EVCertificate (Plug & Charge); without it they are answered Failed.
    ``frame_rate``: frames per second and burst each connection may send (None: unlimited).
    ``accept_paths``: URL path prefixes stations may connect at besides ``/ocpp/`` (forwarding after a migration).
    ``ocpi``: serve OCPI 2.2.1 as a CPO on its own port (:mod:`csms.ocpi`).
    ``logs_configured``: the caller set up logging (:func:`csms.runtime.logs.configure`).

    ``lease_ttl_s``: how long a dead node's leases (site load managers, alert engine) outlive it.
    ``shutdown_grace_s``: the bound on a graceful stop; with ``exit_watchdog`` (the CLI) the process ends
    itself a little after it even if something hangs.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    engine = await asyncio.to_thread(prepare_database, database_url)
    session_factory = make_session_factory(engine)
    config = config or CsmsConfig()
    lookups = ThreadedLookups(config.lookup_timeout_s, contract_provider)
    gateway = Gateway(session_factory, config, lookups=lookups, frame_rate=frame_rate, accept_paths=accept_paths)
    # Uptime and alerts: the monitor follows the stations; alerts reach webhooks through the sender.
    sender = WebhookSender(session_factory)
    monitor = AlertMonitor(AlertEngine(alert_rules, remediation), on_stored=sender.wake)
    # Load management: plans every site with a strategy (sites created or changed later through the API
    # are (re)installed by the sites routes).
    load_management = LoadManagement()
    installed: list[signal.Signals] = []
    cluster: Cluster | None = None
    ocpi_runner: OcpiRunner | None = None
    ven = VenRunner(openadr)
    deadline: float | None = None
    metrics: Metrics | None = None
    database: DatabaseProbes | None = None
    try:
        gateway.add_plugin(monitor)
        gateway.add_plugin(load_management)
        fleet_needs = FleetNeeds(load_management)  # a fleet vehicle's schedule becomes its charging needs
        gateway.add_plugin(fleet_needs)
        gateway.add_plugin(CertificateManager())
        gateway.add_plugin(ReservationExpiry())
        gateway.add_plugin(CostDisplay())  # the running cost on chargers' displays
        gateway.add_plugin(AlignedMetering())  # a meter reading on each tariff's time-of-day boundary
        gateway.add_plugin(HoldRelease())  # card holds no session used
        monitor.start()
        load_management.start()
        await gateway.scheduler.idle()  # both planned from the store before the first station connects
        sender.start()
        # Demand response, once the sites are planned; in a cluster on the node holding the ``openadr`` lease.
        ven.start(load_management, session_factory, clustered=bool(broker_url))
        if broker_url:
            from csms.runtime.cluster import Cluster

            cluster = Cluster(
                gateway,
                broker_url,
                node_id,
                ttl_s=registry_ttl_s,
                lease_ttl_s=lease_ttl_s,
                load_management=load_management,
                monitor=monitor,
                ven=ven,
            )
            await cluster.start()
        await gateway.start(host, ocpp_port)
        if tls_context is not None:
            await gateway.start_tls(host, tls_port, tls_context)
        await asyncio.to_thread(_load_api)  # chargers are served meanwhile
        import uvicorn

        from csms.api.app import create_app, prepare_routes
        from csms.api.local_lists import app_list_sync
        from csms.runtime import metrics as metrics_
        from csms.runtime import probes

        metrics = metrics_.Metrics(gateway, engine, load_management=load_management, monitor=monitor, sender=sender)
        database = probes.DatabaseProbes(engine)
        readiness = _readiness(database, gateway, cluster)
        app = create_app(session_factory, gateway, api_key)
        _live_across_nodes(app, cluster)
        app_list_sync(app)  # its host plugin keeps local lists in step, also those that fell behind
        app.state.public_url = public_url
        app.state.payment_providers = payment_providers(payment_webhook_secret, config.card_processor)
        app.state.seller = seller
        app.state.monitor = monitor
        app.state.load_management = load_management
        app.state.fleet = fleet_needs
        app.state.webhook_sender = sender
        app.state.readiness = readiness  # a part started later may add its check
        metrics_.mount(app, metrics)
        probes.mount(app, readiness)
        await asyncio.to_thread(prepare_routes, app)  # chargers are served meanwhile
        metrics.start()
        # Bind here, so a busy port is an OSError for the caller (uvicorn would call sys.exit).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        api_socket = socket.create_server((host, api_port), family=family)
        # With logs_configured, uvicorn adds no handlers: its lines go through the caller's.
        log_config = None if logs_configured else uvicorn.config.LOGGING_CONFIG
        server = _api_server(
            uvicorn.Config(
                app,
                host=host,
                port=api_port,
                log_level=log_level,
                lifespan="off",
                log_config=log_config,
                timeout_graceful_shutdown=max(1, int(shutdown_grace_s / 2)),
            )
        )
        install_access_log_filter()  # upload/download tokens and API keys in URLs never reach the access log
        api_task = asyncio.create_task(server.serve(sockets=[api_socket]), name="csms-api")
        while not server.started:
            if api_task.done():
                await api_task  # raises what stopped it
                raise OSError(f"the API server did not start on {host}:{api_port}")
            await asyncio.sleep(0.02)
        ocpi_runner = await _start_ocpi(ocpi, session_factory, gateway, host, log_level, log_config)
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
        bound_api_port = api_socket.getsockname()[1]
        endpoints = Endpoints(
            ocpp_url=f"ws://{host}:{gateway.port}/ocpp/{{station_id}}",
            api_url=f"http://{host}:{bound_api_port}/api/v1",
            ocpp_port=gateway.port,
            api_port=bound_api_port,
            ocpp_tls_url=None if gateway.tls_port is None else f"wss://{host}:{gateway.tls_port}/ocpp/{{station_id}}",
            ocpp_tls_port=gateway.tls_port,
            ocpi_url=getattr(ocpi_runner, "url", None),
        )
        if on_ready is not None:
            on_ready(endpoints)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({stopped, api_task}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        deadline = loop.time() + shutdown_grace_s
        await _begin_stop(gateway, cluster, shutdown_grace_s, exit_watchdog)
        app.state.live.close()  # the console's live streams end, so the API server's stop waits for none
        server.should_exit = True
        await api_task
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if cluster is not None:
            await cluster.stop()
        await ven.stop()
        await _stop_ocpi(ocpi_runner)
        await _stop_probes(metrics, database)
        remaining = max(0.5, deadline - loop.time()) if deadline is not None else 10.0
        await gateway.stop(close_timeout_s=remaining)  # commits what it gathered, then stops the plugins
        await sender.stop()
        engine.dispose()


def _readiness(database: DatabaseProbes, gateway: Gateway, cluster: Cluster | None) -> Readiness:
    from csms.runtime import probes

    readiness = probes.Readiness()
    probes.standard_checks(readiness, database, gateway)
    if cluster is not None:
        probes.cluster_check(readiness, gateway)
    return readiness


async def _stop_probes(metrics: Metrics | None, database: DatabaseProbes | None) -> None:
    """The metrics' loop-lag task and the probes' thread (None: the stop came before the API was loaded)."""
    if metrics is not None:
        await metrics.stop()
    if database is not None:
        database.shutdown()


async def _start_ocpi(
    ocpi: OcpiServe | None, session_factory: Any, gateway: Gateway, host: str, log_level: str, log_config: Any
) -> OcpiRunner | None:
    """OCPI's own server, push worker and status plugin, when asked for."""
    if ocpi is None:
        return None
    from csms.ocpi.serve import OcpiRunner

    runner = OcpiRunner(ocpi, session_factory, gateway)
    await runner.start(host, log_level, log_config)
    return runner


async def _stop_ocpi(runner: OcpiRunner | None) -> None:
    if runner is not None:
        await runner.stop()


async def _begin_stop(gateway: Gateway, cluster: Cluster | None, grace_s: float, watchdog: bool) -> None:
    """The first steps of a graceful stop: no new connections, and the leases go to the other nodes."""
    if watchdog:
        _exit_after(grace_s + 3.0)
    log.info("stopping: no new connections, leases released, draining within %g s", grace_s)
    gateway.stop_reading()
    if cluster is not None:
        await cluster.release_leases()


def _exit_after(seconds: float) -> None:
    """End the process ``seconds`` from now whatever still runs: the bound a graceful stop promises."""

    def watchdog() -> None:
        log.error("graceful stop exceeded its bound: exiting")
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, watchdog)
    timer.daemon = True
    timer.start()
