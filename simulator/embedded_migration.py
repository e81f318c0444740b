"""A platform migration in a virtual run: the old CSMS the fleet starts on, the new one it moves to, and the
network between the chargers and both.

The operator's steps are the scenario's actions, each through the door a real operator uses:

* ``export_import``: the old CSMS stops serving OCPP (its connections close, new ones are refused), its
  database is exported (``csms export``) and imported into the new CSMS (``csms import``), and the new CSMS
  declares each station's planned outage, from now to the end of its wave's window, excluded from uptime;
* ``repoint`` (a wave): the wave's chargers reach the new CSMS from now on (the host cut-over: their old host
  name leads there). Their next connection attempt lands on it; the queued messages follow, and a session
  that ran all along is continued on the imported transaction. On arrival the excluded window is ended: the
  switch counts as excluded only for as long as it really took.

Between the cut-over and its wave a charger reaches nothing: it keeps charging and queues its messages, as
in any outage. The report's ``migration`` section says per wave what moved, how long it took and which
sessions were carried over, per station how long it was away, and whether the data arrived whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csms.core.host import Connection, Transport
from csms.domain.transaction import TransactionStatus
from csms.ocpp.convert import from_posix
from csms.ocpp.versions import Version
from csms.services import transactions as tx_service
from csms.services import uptime as uptime_service
from csms.uptime.model import SCHEDULED_MAINTENANCE
from simulator.embedded_csms import EmbeddedCsms
from simulator.links.inprocess import InProcessLink, Refused
from simulator.links.offer import Offer
from simulator.scenario.loader import ScenarioError, issue_at
from simulator.scenario.models import ExportImport, MigrationAction, Repoint, Scenario
from simulator.station.transfers import Transfer, TransferResult
from simulator.verify.migration import MigrationLog


def refuse_repoint_mode(scenario: Scenario, scenario_file: str) -> None:
    """Raises ScenarioError for each ``repoint`` wave of ``mode: repoint``: the embedded CSMSs re-point no
    charger (the re-point through the old CSMS's API runs in real time, :mod:`simulator.realtime_migration`).

    Raises:
        ScenarioError: file, line and field of each such wave.
    """
    issues = [
        issue_at(scenario_file, ("actions", i, "mode"), "a repoint wave of mode repoint runs in real time only "
                 "(sim run --realtime --csms … --new-csms …); in virtual time use mode forward (the host cut-over)")
        for i, action in enumerate(scenario.actions)
        if isinstance(action, Repoint) and action.mode == "repoint"
    ]  # fmt: skip
    if issues:
        raise ScenarioError(issues)


class StationRoute:
    """Where one charger's dial leads (a :class:`~simulator.links.inprocess.CsmsEndpoint`): the old CSMS until
    the cut-over, nowhere until its wave, the new CSMS after it."""

    def __init__(self, migration: PlatformMigration, station_id: str) -> None:
        self.migration, self.station_id = migration, station_id
        self._served_by: dict[int, EmbeddedCsms] = {}

    def _target(self) -> EmbeddedCsms:
        target = self.migration.target_of(self.station_id)
        if target is None:
            raise Refused("the old CSMS no longer serves OCPP and this station's wave has not come")
        return target

    def connect(self, station_id: str, offered: Version | None, transport: Transport, credentials: Offer) -> Connection:
        target = self._target()
        connection = target.connect(station_id, offered, transport, credentials)
        self._served_by[id(connection)] = target
        if target is self.migration.new:
            self.migration.arrived_now(station_id)
        return connection

    def receive(self, connection: Connection, frame: str) -> None:
        target = self._served_by.get(id(connection))
        if target is not None:
            target.receive(connection, frame)

    def disconnect(self, connection: Connection, detail: str) -> None:
        target = self._served_by.pop(id(connection), None)
        if target is not None:
            target.disconnect(connection, detail)

    def transfer(self, request: Transfer, done: Callable[[TransferResult], None]) -> None:
        target = self.migration.target_of(self.station_id) or self.migration.old
        target.transfer(request, done)


class PlatformMigration(MigrationLog):
    """The old CSMS ``old`` (the run's), the new ``new``, the scenario's migration actions and their record."""

    def __init__(self, scenario: Scenario, old: EmbeddedCsms, new: EmbeddedCsms, links: dict[str, InProcessLink]):
        super().__init__(scenario)
        self.old, self.new, self.links = old, new, links
        self.epoch = scenario.start.timestamp()
        self._exclusions: dict[str, int] = {}

    def route(self, station_id: str) -> StationRoute:
        return StationRoute(self, station_id)

    def target_of(self, station_id: str) -> EmbeddedCsms | None:
        holder = self.holder(station_id)
        return None if holder is None else self.old if holder == "old" else self.new

    def _now_s(self) -> float:
        return self.new.scheduler.now() - self.epoch

    # ---- the operator's steps --------------------------------------------------------------------------
    def execute(self, item: MigrationAction) -> None:
        if isinstance(item, ExportImport):
            self.export_import()
        else:
            self.repoint(item)

    def export_import(self) -> None:
        """The cut-over: the old CSMS stops serving, its data moves, the planned outages are declared."""
        self.cut_over(self._now_s())
        for station_id in self.old.crash():  # the OCPP endpoint is switched off: its memory goes with it
            self.links[station_id].drop()
        bundle, self.exported = self.old.export_bundle()
        self.new.import_bundle(bundle)
        # every table the bundle carries, counted on the new CSMS before anything else writes to it
        self.imported = self.new.row_counts(list(self.exported))
        self.imported_s = self.cutover_s
        self._declare_outages()

    def _declare_outages(self) -> None:
        assert self.cutover_s is not None
        now = from_posix(self.epoch + self.cutover_s)
        with self.new.session_factory() as db:
            for station_id, wave in sorted(self.wave_of.items()):
                end = from_posix(self.epoch + self.scenario.seconds(wave.at) + wave.window)
                row = uptime_service.create_exclusion(
                    db, station_id, evse_id=None, start=now, end=end, cause=SCHEDULED_MAINTENANCE, now=now,
                    note="planned platform migration: from the cut-over to the station's arrival on the new CSMS",
                    declared_by="migration",
                )  # fmt: skip
                self._exclusions[station_id] = row.id
            db.commit()

    def repoint(self, item: Repoint) -> None:
        self.wave(item, self._now_s(), self._running(self.scenario.resolve_chargers(item.charger)))

    def _running(self, stations: list[str]) -> list[str]:
        wanted = set(stations)
        with self.new.session_factory() as db:
            return sorted(
                f"{tx.station_id}/{tx.charger_tx_id}"
                for tx in tx_service.listed(db)
                if tx.station_id in wanted and tx.status == TransactionStatus.ACTIVE
            )

    def arrived_now(self, station_id: str) -> None:
        """The station's first connection to the new CSMS: its planned outage ends now."""
        if not self.arrived(station_id, self._now_s()):
            return
        exclusion = self._exclusions.get(station_id)
        if exclusion is not None:
            with self.new.session_factory() as db:
                uptime_service.end_exclusion(db, exclusion, from_posix(self.new.scheduler.now()))
                db.commit()

    def report(self) -> dict[str, Any]:
        return self.section(self._now_s())
