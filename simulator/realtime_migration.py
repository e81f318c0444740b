"""A platform migration in real time: two ``csms serve`` processes, the old A (the run's ``--csms`` and
``--api-url``) and the new B (``--new-csms`` and ``--new-api-url``), the fleet on real WebSockets. The
virtual run's counterpart is :mod:`simulator.embedded_migration`; both keep their record in a
:class:`~simulator.verify.migration.MigrationLog`, so the report's ``migration`` section is the same.

The operator's steps, each through the door a real operator uses (chargetwin's API on both CSMSs):

* at the run's start, in advance as an operator plans it: A declares each station's planned outage excluded
  from uptime (``POST /api/v1/exclusions``, ``scheduled_maintenance``, from the planned cut-over, or for a
  re-point wave's station its wave, to the end of the station's wave window; the rows travel to B in the
  bundle, with their ids).
* ``export_import``: A's host name leads nowhere (its OCPP endpoint switched off: the chargers' connections
  close and new attempts fail, as in any outage; the chargers keep charging and queue what they have to say), except for
  the chargers of ``mode: repoint`` waves, which A keeps serving until their wave. Once A's API shows the
  others gone, A is exported (``GET /api/v1/export``, what ``csms export`` writes) and the bundle imported
  into B (``POST /api/v1/import``, ``csms import``, conflicts refused). B's own export right after the
  import says how many rows it holds per table: the data check.
* ``repoint`` (a wave), ``mode: forward``, the host cut-over: the wave's chargers' old host name now leads to
  B (:meth:`simulator.links.websocket.WebSocketLink.cut_over`; B serves A's path, or takes it as an alias
  with ``--accept-path``). Their next attempt reaches B with the same password; the sessions running on
  them are continued there on the imported transactions, and what they queued is delivered.
* ``repoint``, ``mode: repoint``: each charger is re-pointed through A's API
  (``POST /api/v1/stations/{id}/repoint``, ``csms migrate repoint``) to B's URL; it reboots
  and dials the URL it was given. One that A reports not moved (a vendor without a known URL key, one that
  ignores it, a session that kept it from rebooting) is moved by the host cut-over instead.

A station's first connection to B ends its excluded window on both CSMSs (``POST /api/v1/exclusions/{id}/end``):
the switch is excluded only for as long as it really took. The link says whether it got there by the URL it
was given (``repoint``) or by a cut-over; the report's ``migration`` section says it per station and wave.

The steps run on the operator's worker, in timeline order with the scenario's other operator actions, so a
wave waits for the import before it lets a charger onto B, and an action after a wave goes to B
(:meth:`RealtimeMigration.operator_for`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import zipfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from simulator.links.websocket import WebSocketLink
from simulator.operators import ChargetwinOperator, OperatorError
from simulator.scenario.models import ExportImport, MigrationAction, Repoint, Scenario
from simulator.verify.migration import MigrationLog

log = logging.getLogger(__name__)

#: After the cut-over, wait at most this long (wall seconds) for A to record every station gone.
GONE_WALL_S = 10.0
#: A re-point's deadline (A's watch, wall seconds): half the wave's window at the run's speed, at least this.
REPOINT_MIN_WALL_S = 2.0
#: At the run's end, how long the calls still running may take.
FINISH_WALL_S = 10.0
#: How often A is asked whether a re-point is decided.
REPOINT_POLL_WALL_S = 0.2
NOTE = "planned platform migration: from the switch to the station's arrival on the new CSMS"

Job = Callable[[], Awaitable[None]]


def manifest_rows(bundle: bytes) -> dict[str, int]:
    """Rows per table, as a bundle's manifest states them (docs/design/migration.md, Layout).

    Raises:
        OperatorError: not a chargetwin bundle.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise OperatorError(f"the export is not a bundle: {exc}") from None
    if manifest.get("format") != "chargetwin-bundle":
        raise OperatorError(f"the export is not a chargetwin bundle (format {manifest.get('format')!r})")
    return {entry["table"]: int(entry["rows"]) for entry in manifest["tables"]}


class RealtimeMigration(MigrationLog):
    """The old CSMS ``old`` and the new ``new`` (chargetwin's API of each), the chargers' links, and where the
    chargers dial A (``old_url``) and reach B (``new_url``: also the URL a re-point gives them)."""

    def __init__(
        self,
        scenario: Scenario,
        old: ChargetwinOperator,
        new: ChargetwinOperator,
        urls: tuple[str, str],
        links: dict[str, WebSocketLink],
        enqueue: Callable[[Job], None],
        now_s: Callable[[], float],
        speed: float,
    ) -> None:
        super().__init__(scenario)
        self.old, self.new, self.links, self.enqueue, self.now_s = old, new, links, enqueue, now_s
        self.new_url, self.speed = urls[1], speed
        self.old_host, self.new_host = urlsplit(urls[0]).netloc, urlsplit(urls[1]).netloc
        self.epoch = scenario.start.timestamp()
        #: Each station's excluded window on each CSMS (the bundle keeps A's ids on B).
        self.exclusions: dict[str, list[tuple[ChargetwinOperator, int]]] = {}
        #: What A's re-point said of each station of a ``mode: repoint`` wave (``moved``, ``not_moved``, ...).
        self.repointed: dict[str, str] = {}
        self._watches: set[asyncio.Task[None]] = set()
        self._declaring: asyncio.Task[None] | None = None

    def operator_for(self, station_id: str) -> ChargetwinOperator | None:
        """The CSMS holding the station: A until the cut-over (or its re-point wave), none until its wave, B after."""
        holder = self.holder(station_id)
        return None if holder is None else self.old if holder == "old" else self.new

    def _wall(self, at_s: float) -> datetime:
        """Scenario second ``at_s`` on the CSMSs' clock (the wall's)."""
        return datetime.fromtimestamp(time.time() + (at_s - self.now_s()) / self.speed, UTC)

    def _window_end_s(self, station_id: str) -> float:
        wave = self.wave_of[station_id]
        return self.scenario.seconds(wave.at) + wave.window

    # ---- the operator's steps (called from the twin's timeline) --------------------------------------------
    def execute(self, item: MigrationAction) -> None:
        if isinstance(item, ExportImport):
            self.enqueue(self._export_import)
        elif item.mode == "repoint":
            wave = item
            self.enqueue(lambda: self._repoint(wave))
        else:
            wave = item
            self.enqueue(lambda: self._let_onto_new(wave))

    def begin(self) -> None:
        """At the run's start (the twin's clock running): the planned outages are declared on A, beside the
        operator's other steps; the cut-over waits for them."""
        self._declaring = asyncio.create_task(self._declare_planned(), name="declare planned outages")
        self._watches.add(self._declaring)
        self._declaring.add_done_callback(self._watches.discard)

    async def _declare_planned(self) -> None:
        """Each station's planned outage on A, declared in advance: from the planned cut-over (a re-point
        wave's station: from its wave) to the end of its wave's window. A's rows travel to B in the bundle."""
        cutover_s = next(self.scenario.seconds(a.at) for a in self.scenario.actions if isinstance(a, ExportImport))
        for station_id, wave in sorted(self.wave_of.items()):  # one after another: SQLite takes one writer
            start_s = self.scenario.seconds(wave.at) if station_id in self.stay_on_old else cutover_s
            start, end = self._wall(start_s), self._wall(self._window_end_s(station_id))
            try:
                if start <= datetime.now(UTC):
                    raise OperatorError("its start had passed before it could be declared")
                ident = await self.old.declare_exclusion(station_id, start, end, NOTE)
            except OperatorError as exc:
                log.warning("migration: the planned outage of %s was not declared: %s", station_id, exc)
                continue
            self.exclusions[station_id] = [(self.old, ident)]

    async def _export_import(self) -> None:
        cut = [s for s in self.links if s not in self.stay_on_old]
        if self._declaring is not None:
            await self._declaring
        self.cut_over(self.now_s())
        for station_id in cut:
            self.links[station_id].cut_over(self.old_host, None)
        await self._wait_gone(set(cut))
        bundle = await self.old.export_bundle()
        self.exported = manifest_rows(bundle)
        await self.new.import_bundle(bundle)
        for windows in self.exclusions.values():  # the bundle kept A's ids: the same windows are B's now
            windows += [(self.new, i) for _, i in list(windows)]
        # what B holds now, table by table, before any charger reaches it
        self.imported = manifest_rows(await self.new.export_bundle())
        self.imported_s = self.now_s()
        log.info("migration: %d rows exported from A and imported into B", sum(self.exported.values()))

    async def _wait_gone(self, ours: set[str]) -> None:
        """A writes a station's disconnection when it notices it: the export must come after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GONE_WALL_S
        while still := ours & await self.old.connected_stations():
            if loop.time() > deadline:
                log.warning("migration: A still shows %s connected; exporting anyway", ", ".join(sorted(still)))
                return
            await asyncio.sleep(0.05)

    async def _let_onto_new(self, item: Repoint) -> None:
        stations = self.scenario.resolve_chargers(item.charger)
        carried = await self._running(stations)
        self.wave(item, self.now_s(), carried)
        for station_id in stations:
            self.links[station_id].cut_over(self.old_host, self.new_host)

    async def _repoint(self, item: Repoint) -> None:
        """A re-point wave: the planned outage declared on both CSMSs, then each station re-pointed through A's
        API; one A reports not moved goes by the host cut-over."""
        stations = self.scenario.resolve_chargers(item.charger)
        self.wave(item, self.now_s(), await self._running(stations))
        within_s = max(REPOINT_MIN_WALL_S, item.window / self.speed / 2)
        # A watches each station until it is decided: the operator's other steps do not wait for that
        task = asyncio.create_task(self._repoint_all(stations, within_s), name=f"repoint {item.charger}")
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    async def _repoint_all(self, stations: list[str], within_s: float) -> None:
        await asyncio.gather(*(self._repoint_one(s, within_s) for s in stations))

    async def finish(self) -> None:
        """At the run's end: the calls still running (a window's end, a re-point's watch) get a few seconds,
        then are given up."""
        if self._watches:
            await asyncio.wait(list(self._watches), timeout=FINISH_WALL_S)
        for task in list(self._watches):
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)

    async def _repoint_one(self, station_id: str, within_s: float) -> None:
        try:
            record = await self.old.repoint(station_id, self.new_url, within_s)
            while record["status"] == "pending":
                await asyncio.sleep(REPOINT_POLL_WALL_S)
                record = await self.old.repoint_status(station_id)
            status, detail = str(record["status"]), str(record["detail"])
        except OperatorError as exc:
            status, detail = "refused", str(exc)
        self.repointed[station_id] = status
        if status != "moved":
            log.info(
                "migration: %s not re-pointed (%s: %s); moving it by the host cut-over", station_id, status, detail
            )
            self.links[station_id].cut_over(self.old_host, self.new_host)

    async def _running(self, stations: list[str]) -> list[str]:
        """The transactions B imported as still running on these stations (charger's ids)."""
        rows = await self.new.transactions(stations, datetime.fromtimestamp(0, UTC))
        return sorted(f"{r.station_id}/{r.transaction_id}" for r in rows if r.stopped_at is None)

    # ---- the chargers' side ---------------------------------------------------------------------------------
    def linked(self, station_id: str, up: bool, now: float) -> None:
        """A charger's connection opened (``up``) or dropped at the chargers' ``now``: an opening that reached
        B is its arrival there (by the URL it was given, or by a cut-over); the first one ends its planned
        outage on both CSMSs."""
        link = self.links.get(station_id)
        if not up or link is None or link.reached != self.new_host or self.holder(station_id) != "new":
            return
        if not self.arrived(station_id, now - self.epoch, "cut_over" if link.via_cut_over else "repoint"):
            return
        end = datetime.now(UTC)
        for csms, ident in self.exclusions.get(station_id, []):
            # beside the operator's worker: the next waves and actions do not wait for these calls
            task = asyncio.create_task(self._end(csms, ident, end), name=f"end exclusion {ident}")
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)

    @staticmethod
    async def _end(csms: ChargetwinOperator, ident: int, end: datetime) -> None:
        try:
            await csms.end_exclusion(ident, end)
        except OperatorError as exc:
            log.warning("migration: excluded window %d not ended: %s", ident, exc)

    def section(self, end_s: float) -> dict[str, Any]:
        out = super().section(end_s)
        for station_id, row in out["stations"].items():
            row["repoint"] = self.repointed.get(station_id)
        return out
