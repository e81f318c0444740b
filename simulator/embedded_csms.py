"""The CSMS process of a virtual-time run: the same :class:`~csms.core.host.CsmsHost` as ``csms serve``, on
SimPy's clock, on a database of its own.

This is a shell, like the asyncio gateway: it holds the scheduler and the process's life (a crash loses
everything in memory and writes nothing; a restart plans again from the store). Connections, frames, group
commit, load management and alerts are the host's and its plugins', unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import re
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from csms.alerts import AlertEngine, AlertRules, RemediationPolicy
from csms.alerts import engine as al
from csms.core.host import Connection, CsmsHost, Plugin, StationNotConnected, Transport
from csms.core.plugins.alerts import AlertMonitor
from csms.core.plugins.aligned_metering import AlignedMetering
from csms.core.plugins.certificates import CertificateManager
from csms.core.plugins.costs import CostDisplay
from csms.core.plugins.fleet import FleetNeeds
from csms.core.plugins.load_management import LoadManagement
from csms.core.plugins.local_lists import LocalListSync
from csms.core.plugins.payments import HoldRelease
from csms.core.plugins.reservations import ReservationExpiry
from csms.loadmgmt.planner import PlannerConfig
from csms.migration.bundle import export_database, open_bundle
from csms.migration.bundle_import import ImportReport, OnConflict, import_bundle
from csms.ocpp.convert import from_posix
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import Version
from csms.pki import authority
from csms.pki.lookups import Lookups
from csms.pki.tls import server_context
from csms.services import diagnostics
from csms.services.admission import PLAIN, Channel, channel_of_peer, record_bad_certificate
from csms.services.config import CsmsConfig
from csms.services.errors import DomainError
from csms.store import sqlite_schema
from csms.store.database import make_engine, make_session_factory
from csms.store.models import Base
from simulator.links.inprocess import SERVER_NAME, Refused
from simulator.links.offer import Offer
from simulator.links.tls import handshake_in_memory, without_wall_clock
from simulator.scheduler import SimPyScheduler
from simulator.station.transfers import Download, Transfer, TransferResult

#: The station-facing routes of ``csms/api/routes/diagnostics.py``, as the embedded CSMS serves them in-process.
_FIRMWARE_PATH = re.compile(r"^/api/v1/firmware/(?P<name>[^/]+)$")
_UPLOAD_PATH = re.compile(r"^/api/v1/uploads/diagnostics/(?P<token>[^/]+)$")


@dataclass(frozen=True)
class EmbeddedPki:
    """The embedded CSMS's station CA and wss:// endpoint, made as ``csms pki init`` makes them, at the run's
    start in virtual time: ``csms serve --pki`` in a virtual run."""

    station_ca: authority.StationCa
    #: The server side of the in-memory TLS handshakes (client certificates must chain to the station CA).
    server: ssl.SSLContext
    #: What stations install as their CSMSRootCertificate to verify the server.
    csms_root_pem: str
    url: str = f"wss://{SERVER_NAME}/ocpp"

    @classmethod
    def create(cls, now: float, *, organisation: str, certificate_days: int) -> EmbeddedPki:
        with tempfile.TemporaryDirectory(prefix="chargetwin-pki-") as folder:
            paths = authority.init(
                Path(folder) / "pki", from_posix(now), organisation=organisation, server_names=(SERVER_NAME,)
            )
            ca = authority.load(paths.directory, organisation=organisation, days=certificate_days)
            server = without_wall_clock(server_context(paths.server_cert, paths.server_key, paths.station_ca_cert))
            return cls(ca, server, paths.csms_root.read_text())


class EmbeddedCsms:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        config: CsmsConfig,
        scheduler: SimPyScheduler,
        *,
        alerts: tuple[AlertRules | None, RemediationPolicy | None] | None = None,
        load_management: bool = False,
        lookups: Lookups | None = None,
        pki: EmbeddedPki | None = None,
    ) -> None:
        self.session_factory = session_factory
        #: OCSP and the contract provider in virtual time (:mod:`simulator.pnc`); None: every lookup fails.
        self.lookups = lookups
        #: None: no wss:// and no station CA (SignCertificate is answered Rejected).
        self.pki = pki
        self.config = config if pki is None else dataclasses.replace(config, station_ca=pki.station_ca)
        self.scheduler = scheduler
        self._alerts = alerts
        self._load_enabled = load_management
        #: Every alert effect applied, by this process and the ones that crashed before it (reports, tests).
        self.alert_effects: list[al.Effect] = []
        self.crashes = 0
        self._totals = {"frames_in": 0, "frames_out": 0, "lm_sent": 0, "lm_failed": 0}
        #: The modelled HTTP transfers of firmware images and logs: a fixed latency plus size / throughput.
        self.transfer_latency_s = 0.2
        self.transfer_bytes_per_s = 1_000_000.0
        self.host: CsmsHost | None = None
        self.load: LoadManagement | None = None
        #: A fleet vehicle's records (plan, telematics) become its needs, as in ``csms serve`` (load management on).
        self.fleet_needs: FleetNeeds | None = None
        self.monitor: AlertMonitor | None = None
        #: Plugins a run adds (OCPI's pushes), made afresh for each process (a restart included).
        self.plugin_factories: list[Callable[[], Plugin]] = []
        self._start()

    @classmethod
    def create(
        cls,
        scheduler: SimPyScheduler,
        database_url: str = "sqlite://",
        config: CsmsConfig | None = None,
        **options: Any,
    ) -> EmbeddedCsms:
        """A CSMS on a fresh (default: in-memory SQLite) database, migrated like ``csms db upgrade`` (in memory:
        the schema the migrations build, replayed from its snapshot, :mod:`csms.store.sqlite_schema`)."""
        engine: Engine = make_engine(database_url)
        if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
            sqlite_schema.upgrade_empty(engine)
        else:
            from csms.store import migrate  # Alembic: only for a database of its own

            migrate.upgrade(engine)
        return cls(make_session_factory(engine), config or CsmsConfig(message_log_per_station=0), scheduler, **options)

    # ---- the process -------------------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self.host is not None

    def _start(self) -> None:
        host = CsmsHost(self.session_factory, self.config, self.scheduler, self.lookups)
        if self._alerts is not None:
            rules, remediation = self._alerts
            self.monitor = AlertMonitor(AlertEngine(rules, remediation), on_effects=self.alert_effects.extend)
            host.add_plugin(self.monitor)
            self.monitor.start()
        if self._load_enabled:
            self.load = LoadManagement()
            host.add_plugin(self.load)
            self.fleet_needs = FleetNeeds(self.load)
            host.add_plugin(self.fleet_needs)
        if self.pki is not None:  # without a CA no certificate is issued: nothing to deliver, renew or revoke
            host.add_plugin(CertificateManager())
        host.add_plugin(ReservationExpiry(sweep_every_s=None))  # the operator tells it of each reservation
        host.add_plugin(HoldRelease())  # card holds no session used (only with a card processor)
        host.add_plugin(CostDisplay())  # the running cost on the chargers' displays
        self.aligned_metering = AlignedMetering()  # a meter reading on each tariff's time-of-day boundary
        host.add_plugin(self.aligned_metering)
        self.local_lists = LocalListSync()  # stations' local lists follow the tokens, as in csms serve
        host.add_plugin(self.local_lists)
        for make in self.plugin_factories:
            host.add_plugin(make())
        self.host = host

    def add_plugin(self, make: Callable[[], Plugin]) -> None:
        """A plugin of this process and of every one after a restart."""
        self.plugin_factories.append(make)
        if self.host is not None:
            self.host.add_plugin(make())

    def install_site(self, site_id: str, config: PlannerConfig | None = None) -> None:
        """Plan a site the store holds (load management on)."""
        if self.load is not None:
            self.load.site_changed(site_id, config)

    def crash(self) -> list[str]:
        """The process dies: sessions, pending calls, the alert engine's and the load manager's memory are
        gone; nothing is written (a killed process writes nothing). Returns the station ids whose links must
        be dropped."""
        assert self.host is not None, "the CSMS is already down"
        dropped = list(self.host.connections)
        self._count(self.host)
        self.host.stop()
        self.host = self.load = self.monitor = self.fleet_needs = None
        self.crashes += 1
        return dropped

    def restart(self) -> None:
        """Start again on the same database: alerts reloaded from the store, and a new load manager that
        knows what the store does (sites, running transactions, recent meter readings) and nothing else."""
        self._start()
        if self.load is not None:
            self.load.start()

    def _count(self, host: CsmsHost) -> None:
        self._totals["frames_in"] += host.frames_in
        self._totals["frames_out"] += host.frames_out
        if self.load is not None:
            self._totals["lm_sent"] += self.load.sent
            self._totals["lm_failed"] += self.load.failed

    @property
    def frames_in(self) -> int:
        return self._totals["frames_in"] + (self.host.frames_in if self.host is not None else 0)

    @property
    def frames_out(self) -> int:
        return self._totals["frames_out"] + (self.host.frames_out if self.host is not None else 0)

    @property
    def lm_sent(self) -> int:
        return self._totals["lm_sent"] + (self.load.sent if self.load is not None else 0)

    @property
    def lm_failed(self) -> int:
        return self._totals["lm_failed"] + (self.load.failed if self.load is not None else 0)

    # ---- the link's side (a CsmsEndpoint) ----------------------------------------------------------------
    def connect(self, station_id: str, offered: Version | None, transport: Transport, credentials: Offer) -> Connection:
        """The handshake, as the gateway's: TLS when the charger offers it, then admission (provisioned, its
        password, its security profile met)."""
        if self.host is None:
            raise Refused("the CSMS is down")
        channel = PLAIN if credentials.tls is None else self._tls(credentials)
        admission = self.host.admit(station_id, credentials.authorization, offered, channel)
        if not admission.admitted:
            raise Refused(f"{station_id}: {admission.status} {admission.reason}")
        version: Version = admission.ocpp_version  # type: ignore[assignment]
        return self.host.connect(admission, version, transport)

    def _tls(self, credentials: Offer) -> Channel:
        assert credentials.tls is not None
        if self.pki is None:
            raise Refused("this CSMS serves no wss://")
        handshake = handshake_in_memory(credentials.tls, self.pki.server, credentials.server_name, self.scheduler.now())
        if handshake.server_refused is not None:
            with self.session_factory() as db:
                record_bad_certificate(db, handshake.server_refused, None, from_posix(self.scheduler.now()))
                db.commit()
            raise Refused(f"TLS: {handshake.server_refused}")
        if handshake.client_refused is not None:
            raise Refused(f"TLS: {handshake.client_refused}")
        return channel_of_peer(handshake.peercert, None)

    def receive(self, connection: Connection, frame: str) -> None:
        if self.host is not None:
            self.host.receive(connection, frame)

    def disconnect(self, connection: Connection, detail: str) -> None:
        if self.host is not None:
            self.host.disconnect(connection, detail)

    # ---- the operator's side -----------------------------------------------------------------------------
    def connected(self, station_id: str) -> bool:
        return self.host is not None and self.host.is_connected(station_id)

    def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        on_done: Callable[[PendingCall], None] | None = None,
    ) -> PendingCall:
        """An operator's call to a connected station (raises StationNotConnected when it is not);
        ``on_done(pending)`` once it completed."""
        if self.host is None:
            raise StationNotConnected(station_id)
        return self.host.call(station_id, action, payload, on_done=on_done)

    # ---- the operator's migration commands (csms export / csms import, on this process's database) ------------
    @property
    def engine(self) -> Engine:
        return self.session_factory.kw["bind"]

    def export_bundle(self) -> tuple[bytes, dict[str, int]]:
        """``csms export``: the bundle's bytes and its manifest's row count per table."""
        out = io.BytesIO()
        manifest = export_database(self.engine, out, from_posix(self.scheduler.now()))
        return out.getvalue(), {entry.table: entry.rows for entry in manifest.tables}

    def import_bundle(self, bundle: bytes, on_conflict: OnConflict = OnConflict.REFUSE) -> ImportReport:
        """``csms import``: one transaction; raises as the command refuses (checksums, conflicts)."""
        with self.engine.connect() as connection, open_bundle(io.BytesIO(bundle)) as opened:
            return import_bundle(connection, opened, on_conflict=on_conflict)

    def row_counts(self, tables: list[str]) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                name: connection.execute(select(func.count()).select_from(Base.metadata.tables[name])).scalar_one()
                for name in tables
            }

    # ---- station downloads and uploads (the API's token-guarded routes, in-process) ------------------------
    #: The base URL the embedded CSMS hands to stations for its firmware and upload routes.
    base_url = f"http://{SERVER_NAME}"

    def transfer(self, request: Transfer, done: Callable[[TransferResult], None]) -> None:
        """Carry out a charger's download or upload through the same services as ``GET /api/v1/firmware/…``
        and ``POST /api/v1/uploads/diagnostics/…``, ending after the modelled transfer time. A URL that is
        not this CSMS's, or a CSMS that is down, fails after the latency (as a refused connection would)."""
        url = urlsplit(request.url)
        if url.hostname != SERVER_NAME or self.host is None:
            self.scheduler.call_later(self.transfer_latency_s, lambda: done(_failed(request, "no such host")))
            return
        if isinstance(request, Download):
            result = self._download(request, url.path, parse_qs(url.query).get("token", [""])[0])
            delay = self.transfer_latency_s + len(result.content) / self.transfer_bytes_per_s
            self.scheduler.call_later(delay, lambda: done(result))
            return
        delay = self.transfer_latency_s + len(request.content) / self.transfer_bytes_per_s
        self.scheduler.call_later(delay, lambda: done(self._upload(request, url.path)))

    def _download(self, request: Download, path: str, token: str) -> TransferResult:
        match = _FIRMWARE_PATH.match(path)
        if match is None:
            return _failed(request, "HTTP 404")
        with self.session_factory() as db:
            try:
                content = diagnostics.firmware_for_token(db, match["name"], token, from_posix(self.scheduler.now()))
            except DomainError as exc:
                return _failed(request, f"HTTP {exc.status_code}: {exc.message}")
        return TransferResult(request.transfer_id, True, content)

    def _upload(self, request: Transfer, path: str) -> TransferResult:
        match = _UPLOAD_PATH.match(path)
        if match is None or self.host is None:
            return _failed(request, "HTTP 404" if match is None else "the CSMS is down")
        assert not isinstance(request, Download)
        with self.session_factory() as db:
            try:
                diagnostics.receive_upload(
                    db, match["token"], request.file_name, request.content_type, request.content,
                    from_posix(self.scheduler.now()), self.config.max_upload_bytes,
                )  # fmt: skip
            except DomainError as exc:
                return _failed(request, f"HTTP {exc.status_code}: {exc.message}")
            db.commit()
        return TransferResult(request.transfer_id, True)


def _failed(request: Transfer, detail: str) -> TransferResult:
    return TransferResult(request.transfer_id, False, detail=detail)
