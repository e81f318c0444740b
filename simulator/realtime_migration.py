"""A platform migration in real time: two ``csms serve`` processes, the old A (the run's ``--csms`` and
``--api-url``) and the new B (``--new-csms`` and ``--new-api-url``), the fleet on real WebSockets. The
virtual run's counterpart is :mod:`simulator.embedded_migration`; both keep their record in a
:class:`~simulator.verify.migration.MigrationLog`, so the report's ``migration`` section is the same.

The operator's steps, each through the door a real operator uses (chargetwin's API on both CSMSs):

* ``export_import``: A's host name leads nowhere from now on (its OCPP endpoint switched off: the chargers'
  connections close and new attempts fail, as in any outage; the chargers keep charging and queue what they
  have to say). Once A's API shows every station gone, A is exported (``GET /api/v1/export``, what
  ``csms export`` writes) and the bundle imported into B (``POST /api/v1/import``, ``csms import``, conflicts
  refused). B's own export right after the import says how many rows it holds per table: the data check.
* ``repoint`` (a wave, the host cut-over): the wave's chargers' old host name now leads to B
  (:meth:`simulator.links.websocket.WebSocketLink.cut_over`; B serves A's path, or takes it as an alias
  with ``--accept-path``). Their next attempt reaches B with the same password; the sessions running on
  them are continued there on the imported transactions, and what they queued is delivered.

The steps run on the operator's worker, in timeline order with the scenario's other operator actions, so a
wave waits for the import before it lets a charger onto B, and an action after a wave goes to B
(:meth:`RealtimeMigration.operator_for`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from simulator.links.websocket import WebSocketLink
from simulator.operators import ChargetwinOperator, OperatorError
from simulator.scenario.models import ExportImport, MigrationAction, Repoint, Scenario
from simulator.verify.migration import MigrationLog

log = logging.getLogger(__name__)

#: After the cut-over, wait at most this long (wall seconds) for A to record every station gone.
GONE_WALL_S = 10.0

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
    chargers dial A (``old_url``) and reach B (``new_url``) after their wave."""

    def __init__(
        self,
        scenario: Scenario,
        old: ChargetwinOperator,
        new: ChargetwinOperator,
        old_url: str,
        new_url: str,
        links: dict[str, WebSocketLink],
        enqueue: Callable[[Job], None],
        now_s: Callable[[], float],
    ) -> None:
        super().__init__(scenario)
        self.old, self.new, self.links, self.enqueue, self.now_s = old, new, links, enqueue, now_s
        self.old_host, self.new_host = urlsplit(old_url).netloc, urlsplit(new_url).netloc
        self.epoch = scenario.start.timestamp()

    def operator_for(self, station_id: str) -> ChargetwinOperator | None:
        """The CSMS holding the station: A until the cut-over, none until its wave, B after it."""
        holder = self.holder(station_id)
        return None if holder is None else self.old if holder == "old" else self.new

    # ---- the operator's steps (called from the twin's timeline) --------------------------------------------
    def execute(self, item: MigrationAction) -> None:
        if isinstance(item, ExportImport):
            self.cut_over(self.now_s())
            for link in self.links.values():
                link.cut_over(self.old_host, None)
            self.enqueue(self._export_import)
        else:
            wave = item
            self.enqueue(lambda: self._let_onto_new(wave))

    async def _export_import(self) -> None:
        await self._wait_gone()
        bundle = await self.old.export_bundle()
        self.exported = manifest_rows(bundle)
        await self.new.import_bundle(bundle)
        # what B holds now, table by table, before any charger reaches it
        self.imported = manifest_rows(await self.new.export_bundle())
        self.imported_s = self.now_s()
        log.info("migration: %d rows exported from A and imported into B", sum(self.exported.values()))

    async def _wait_gone(self) -> None:
        """A writes a station's disconnection when it notices it: the export must come after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GONE_WALL_S
        ours = set(self.links)
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

    async def _running(self, stations: list[str]) -> list[str]:
        """The transactions B imported as still running on these stations (charger's ids)."""
        rows = await self.new.transactions(stations, datetime.fromtimestamp(0, UTC))
        return sorted(f"{r.station_id}/{r.transaction_id}" for r in rows if r.stopped_at is None)

    # ---- the chargers' side ---------------------------------------------------------------------------------
    def linked(self, station_id: str, up: bool, now: float) -> None:
        """A charger's connection opened (``up``) or dropped at the chargers' ``now``: after its wave, an
        opening is its arrival on B."""
        if up and self.holder(station_id) == "new":
            self.arrived(station_id, now - self.epoch)
