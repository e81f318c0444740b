"""The API's side of local authorization lists: awaits the syncs of the host plugin
:class:`csms.core.plugins.local_lists.LocalListSync` (which both shells share) and reads or writes the
store around them. Token changes start syncs of the stations concerned in the background
(:meth:`ListSync.sync_quietly`). In a cluster, a call to a station held by another node goes through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from csms.api.calls import call_station
from csms.core.plugins.local_lists import LocalListSync
from csms.gateway.server import Gateway, StationNotConnected
from csms.ocpp import local_list
from csms.ocpp.local_list import Changes, UpdateType
from csms.services import local_lists, stations

log = logging.getLogger(__name__)
T = TypeVar("T")


class ListSync:
    """Syncs for one gateway and database (the API holds one on ``app.state``)."""

    def __init__(self, session_factory: sessionmaker[Session], gateway: Gateway) -> None:
        self.session_factory, self.gateway = session_factory, gateway
        found = next((p for p in gateway.host.plugins if isinstance(p, LocalListSync)), None)
        if found is None:
            found = LocalListSync(send=_routed(gateway))
            gateway.add_plugin(found)
        self.plugin = found
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.session_factory() as db, db.begin():
                return work(db)

        return await run_in_threadpool(run)

    async def select_group(self, station_id: str, group: str | None) -> None:
        await self._db(lambda db: local_lists.select_group(db, station_id, group, _now()))

    async def sync(
        self,
        station_id: str,
        *,
        update_type: UpdateType = "Differential",
        explicit: Changes | None = None,
        timeout: float | None = None,
        read_limits: bool = False,
    ) -> dict[str, Any]:
        """Send the station what its list lacks (or ``explicit`` changes); returns the calls and their answers.

        Raises:
            NotFound: no such station.  Conflict: not connected.  Invalid: the list is too large for it.
        """
        future: asyncio.Future[dict[str, Any] | Exception] = asyncio.get_running_loop().create_future()

        def finished(result: dict[str, Any] | Exception) -> None:
            if not future.done():
                future.set_result(result)

        self.plugin.sync(
            station_id, finished, update_type=update_type, explicit=explicit, timeout=timeout, read_limits=read_limits
        )
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def version(self, station_id: str, timeout: float | None) -> dict[str, Any]:
        """Ask the station its list version (GetLocalListVersion) and keep what it said."""
        version = await self._db(lambda db: stations.get(db, station_id).ocpp_version)
        outcome = await call_station(self.gateway, station_id, "GetLocalListVersion", {}, timeout)
        reported = local_list.reported_version(version, outcome.get("payload") or {})
        if outcome["outcome"] != "result":
            return {"station_id": station_id, "reported_version": None, "call": outcome}
        row = await self._db(lambda db: local_lists.record_reported_version(db, station_id, reported))
        return {
            "station_id": station_id,
            "reported_version": reported,
            "version": row.version,
            "in_step": reported == row.version,
            "call": outcome,
        }

    async def sync_quietly(self, station_ids: list[str]) -> None:
        """Background syncs after a token change: a station not connected, or refusing, stays out of step."""
        self.plugin.tokens_changed(station_ids)


def _routed(gateway: Gateway) -> Any:
    """The plugin's way to a station: this node's host, or the cluster node that holds the station."""
    tasks: set[asyncio.Task[None]] = set()

    def send(
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None,
        answered: Callable[[dict[str, Any]], None],
    ) -> None:
        if gateway.cluster is None or station_id in gateway.links:
            gateway.host.call(station_id, action, payload, timeout, on_done=lambda pending: answered(pending.as_dict()))
            return
        assert gateway.cluster is not None

        async def remote() -> None:
            try:
                answered(await gateway.cluster.call(station_id, action, payload, timeout))
            except StationNotConnected:
                answered({"action": action, "outcome": "not connected"})

        task = asyncio.get_running_loop().create_task(remote())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return send


def list_sync(request: Request) -> ListSync:
    """The app's :class:`ListSync` (made on first use)."""
    return app_list_sync(request.app)


def app_list_sync(app: Any) -> ListSync:
    """The :class:`ListSync` of an app (made on first use, which adds the plugin to the gateway's host: the
    server makes it at start, so lists that fell behind are caught up from the first connection)."""
    state = app.state
    if getattr(state, "list_sync", None) is None:
        state.list_sync = ListSync(state.session_factory, state.gateway)
    sync: ListSync = state.list_sync
    return sync


def _now() -> datetime:
    return datetime.now(UTC)
