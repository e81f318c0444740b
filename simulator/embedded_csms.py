"""The CSMS process of a virtual-time run: the same :class:`~csms.core.host.CsmsHost` as ``csms serve``, on
SimPy's clock, on a database of its own.

This is a shell, like the asyncio gateway: it holds the scheduler and the process's life (a crash loses
everything in memory and writes nothing; a restart plans again from the store). Connections, frames, group
commit, load management and alerts are the host's and its plugins', unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from csms.alerts import AlertEngine, AlertRules, RemediationPolicy
from csms.alerts import engine as al
from csms.core.host import Connection, CsmsHost, StationNotConnected, Transport
from csms.core.plugins.alerts import AlertMonitor
from csms.core.plugins.load_management import LoadManagement
from csms.loadmgmt.planner import PlannerConfig
from csms.ocpp.rpc import PendingCall
from csms.ocpp.versions import Version
from csms.pki.lookups import Lookups
from csms.services.config import CsmsConfig
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory
from simulator.links.inprocess import Refused
from simulator.scheduler import SimPyScheduler


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
    ) -> None:
        self.session_factory = session_factory
        #: OCSP and the contract provider in virtual time (:mod:`simulator.pnc`); None: every lookup fails.
        self.lookups = lookups
        self.config = config
        self.scheduler = scheduler
        self._alerts = alerts
        self._load_enabled = load_management
        #: Every alert effect applied, by this process and the ones that crashed before it (reports, tests).
        self.alert_effects: list[al.Effect] = []
        self.crashes = 0
        self._totals = {"frames_in": 0, "frames_out": 0, "lm_sent": 0, "lm_failed": 0}
        self.host: CsmsHost | None = None
        self.load: LoadManagement | None = None
        self.monitor: AlertMonitor | None = None
        self._start()

    @classmethod
    def create(
        cls,
        scheduler: SimPyScheduler,
        database_url: str = "sqlite://",
        config: CsmsConfig | None = None,
        **options: Any,
    ) -> EmbeddedCsms:
        """A CSMS on a fresh (default: in-memory SQLite) database, migrated like ``csms db upgrade``."""
        engine: Engine = make_engine(database_url)
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
        self.host = host

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
        self.host = self.load = self.monitor = None
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
    def connect(self, station_id: str, offered: Version | None, transport: Transport) -> Connection:
        """The handshake: the station must be provisioned (or auto-registration on)."""
        if self.host is None:
            raise Refused("the CSMS is down")
        admission = self.host.admit(station_id, None, offered)
        if not admission.admitted:
            raise Refused(f"{station_id}: {admission.status} {admission.reason}")
        version: Version = admission.ocpp_version  # type: ignore[assignment]
        return self.host.connect(admission, version, transport)

    def receive(self, connection: Connection, frame: str) -> None:
        if self.host is not None:
            self.host.receive(connection, frame)

    def disconnect(self, connection: Connection, detail: str) -> None:
        if self.host is not None:
            self.host.disconnect(connection, detail)

    # ---- the operator's side -----------------------------------------------------------------------------
    def connected(self, station_id: str) -> bool:
        return self.host is not None and self.host.is_connected(station_id)

    def call(self, station_id: str, action: str, payload: dict[str, Any]) -> PendingCall:
        """An operator's call to a connected station (raises StationNotConnected when it is not)."""
        if self.host is None:
            raise StationNotConnected(station_id)
        return self.host.call(station_id, action, payload)
