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
from dataclasses import dataclass, field
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
from simulator.scenario.models import ExportImport, MigrationAction, Repoint, Scenario
from simulator.station.transfers import Transfer, TransferResult

#: The tables whose row counts must be equal in the bundle and on the new CSMS right after the import: the
#: operator's users (API keys), tokens, stations and the session history.
PRESERVED = ("stations", "connectors", "id_tokens", "api_keys", "transactions", "meter_samples", "status_history")


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
            self.migration.arrived(station_id)
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


@dataclass
class Wave:
    at_s: float
    charger: str
    stations: list[str]
    window_s: float
    #: Transactions running on these stations when the old CSMS stopped (charger's id), imported as running.
    carried: list[str] = field(default_factory=list)


class PlatformMigration:
    """The old CSMS ``old`` (the run's), the new ``new``, the scenario's migration actions and their record."""

    def __init__(self, scenario: Scenario, old: EmbeddedCsms, new: EmbeddedCsms, links: dict[str, InProcessLink]):
        self.scenario, self.old, self.new, self.links = scenario, old, new, links
        self.epoch = scenario.start.timestamp()
        self.cutover_s: float | None = None
        self.waves: list[Wave] = []
        self._moved: set[str] = set()
        #: When each station first connected to the new CSMS (scenario seconds).
        self.arrivals: dict[str, float] = {}
        self._exclusions: dict[str, int] = {}
        self.exported: dict[str, int] = {}
        self.imported: dict[str, int] = {}
        self._wave_of = self._planned_waves()

    def _planned_waves(self) -> dict[str, Repoint]:
        planned: dict[str, Repoint] = {}
        for action in self.scenario.actions:
            if isinstance(action, Repoint):
                for station_id in self.scenario.resolve_chargers(action.charger):
                    planned.setdefault(station_id, action)
        return planned

    def route(self, station_id: str) -> StationRoute:
        return StationRoute(self, station_id)

    def target_of(self, station_id: str) -> EmbeddedCsms | None:
        if self.cutover_s is None:
            return self.old
        return self.new if station_id in self._moved else None

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
        self.cutover_s = self._now_s()
        for station_id in self.old.crash():  # the OCPP endpoint is switched off: its memory goes with it
            self.links[station_id].drop()
        bundle, self.exported = self.old.export_bundle()
        self.new.import_bundle(bundle)
        self.imported = self.new.row_counts([t for t in PRESERVED if t in self.exported])
        self._declare_outages()

    def _declare_outages(self) -> None:
        assert self.cutover_s is not None
        now = from_posix(self.epoch + self.cutover_s)
        with self.new.session_factory() as db:
            for station_id, wave in sorted(self._wave_of.items()):
                end = from_posix(self.epoch + self.scenario.seconds(wave.at) + wave.window)
                row = uptime_service.create_exclusion(
                    db, station_id, evse_id=None, start=now, end=end, cause=SCHEDULED_MAINTENANCE, now=now,
                    note="planned platform migration: from the cut-over to the station's arrival on the new CSMS",
                    declared_by="migration",
                )  # fmt: skip
                self._exclusions[station_id] = row.id
            db.commit()

    def repoint(self, item: Repoint) -> None:
        stations = self.scenario.resolve_chargers(item.charger)
        wave = Wave(self._now_s(), item.charger, stations, item.window, self._running(stations))
        self.waves.append(wave)
        self._moved.update(stations)

    def _running(self, stations: list[str]) -> list[str]:
        wanted = set(stations)
        with self.new.session_factory() as db:
            return sorted(
                f"{tx.station_id}/{tx.charger_tx_id}"
                for tx in tx_service.listed(db)
                if tx.station_id in wanted and tx.status == TransactionStatus.ACTIVE
            )

    def arrived(self, station_id: str) -> None:
        """The station's first connection to the new CSMS: its planned outage ends now."""
        if station_id in self.arrivals:
            return
        self.arrivals[station_id] = self._now_s()
        exclusion = self._exclusions.get(station_id)
        if exclusion is not None:
            with self.new.session_factory() as db:
                uptime_service.end_exclusion(db, exclusion, from_posix(self.new.scheduler.now()))
                db.commit()

    # ---- the report --------------------------------------------------------------------------------------
    def section(self) -> dict[str, Any]:
        stations = self._stations()
        data = {t: {"exported": self.exported.get(t, 0), "imported": self.imported.get(t, 0)} for t in self.imported}
        return {
            "cutover_s": self.cutover_s,
            "waves": [self._wave(w) for w in self.waves],
            "stations": stations,
            "stations_total": len(self.scenario.station_ids()),
            "stations_on_new": len(self.arrivals),
            "stations_not_migrated": sorted(set(self.scenario.station_ids()) - set(self.arrivals)),
            "downtime_beyond_window": sorted(s for s, row in stations.items() if not row["within_window"]),
            "data": data,
            "data_mismatches": sorted(t for t, counts in data.items() if counts["exported"] != counts["imported"]),
        }

    def _wave(self, wave: Wave) -> dict[str, Any]:
        arrivals = [self.arrivals[s] for s in wave.stations if s in self.arrivals]
        return {
            "at_s": wave.at_s,
            "charger": wave.charger,
            "stations": len(wave.stations),
            "moved": len(arrivals),
            "time_taken_s": round(max(arrivals) - wave.at_s, 1) if arrivals else None,
            "sessions_carried_over": len(wave.carried),
            "carried": wave.carried,
        }

    def _stations(self) -> dict[str, dict[str, Any]]:
        """Per station: how long it was away (cut-over to arrival, or to the run's end) and its window."""
        if self.cutover_s is None:
            return {}
        end_s = self._now_s()
        out = {}
        for station_id in self.scenario.station_ids():
            wave = self._wave_of.get(station_id)
            window_end = None if wave is None else self.scenario.seconds(wave.at) + wave.window
            arrival = self.arrivals.get(station_id)
            away = (arrival if arrival is not None else end_s) - self.cutover_s
            allowed = None if window_end is None else window_end - self.cutover_s
            out[station_id] = {
                "away_s": round(away, 1),
                "window_s": None if allowed is None else round(allowed, 1),
                "within_window": arrival is not None and allowed is not None and away <= allowed,
            }
        return out
