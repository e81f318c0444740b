"""Bringing a station's local authorization list in step: the shell around :mod:`csms.services.local_lists`.

One sync reads the station's list limits when they are not known yet (1.6 GetConfiguration, 2.0.1
GetVariables), prepares the SendLocalList calls in one transaction, sends them one after the other (each
recorded with the station's answer before the next goes out), and stops at the first answer that is not
Accepted. A VersionMismatch is answered once with the Full list. Token changes start a sync of the stations
concerned in the background (:func:`sync_quietly`); a station that is not connected then stays marked out of
step until the next sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from csms.api.calls import call_station
from csms.domain import events as ev
from csms.gateway.server import Gateway
from csms.ocpp import local_list
from csms.ocpp.local_list import Changes, UpdateType
from csms.services import local_lists, stations
from csms.services.errors import Conflict, DomainError, Invalid

log = logging.getLogger(__name__)
T = TypeVar("T")


class ListSync:
    """Syncs for one gateway and database (the API holds one on ``app.state``)."""

    def __init__(self, session_factory: sessionmaker[Session], gateway: Gateway) -> None:
        self.session_factory, self.gateway = session_factory, gateway
        self._locks: dict[str, asyncio.Lock] = {}  # one sync at a time per station: versions stay in order

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
        async with self._locks.setdefault(station_id, asyncio.Lock()):
            await self._read_limits(station_id, timeout, force=read_limits)
            sent = await self._send(station_id, update_type, explicit, timeout)
            if sent and sent[-1]["status"] == "VersionMismatch":  # now marked needs_full: the whole list goes
                sent += await self._send(station_id, "Differential", explicit, timeout)
        row = await self._db(lambda db: local_lists.state(db, station_id))
        return {
            "station_id": station_id,
            "version": row.version,
            "status": sent[-1]["status"] if sent else "in step",
            "calls": sent,
        }

    async def _read_limits(self, station_id: str, timeout: float | None, *, force: bool) -> None:
        def known(db: Session) -> tuple[str, bool]:
            row = local_lists.state(db, station_id)
            return stations.get(db, station_id).ocpp_version, row.capabilities_read_at is not None

        version, read = await self._db(known)
        if read and not force:
            return
        action, payload = local_list.capability_request(version)
        outcome = await call_station(self.gateway, station_id, action, payload, timeout)
        if outcome["outcome"] == "timeout":
            return  # ask again next time
        found = (
            local_list.limits_from(version, outcome.get("payload") or {}) if outcome["outcome"] == "result" else None
        )
        await self._db(lambda db: local_lists.record_limits(db, station_id, found, _now()))

    async def _send(
        self, station_id: str, update_type: UpdateType, explicit: Changes | None, timeout: float | None
    ) -> list[dict[str, Any]]:
        prepared = await self._db(
            lambda db: local_lists.prepare(db, station_id, _now(), update_type=update_type, explicit=explicit)
        )
        if prepared.refused is not None:
            raise Invalid(prepared.refused)
        sent: list[dict[str, Any]] = []
        for index, message in enumerate(prepared.messages):
            action, payload = message.call(prepared.ocpp_version)
            outcome = await call_station(self.gateway, station_id, action, payload, timeout)
            status = _status(outcome)
            last = index == len(prepared.messages) - 1
            record = partial(local_lists.record_answer, station_id=station_id, message=message, status=status)
            await self._db(partial(record, now=_now(), last=last))
            sent.append(
                {
                    "update_type": message.update_type,
                    "version": message.version,
                    "entries": len(message.changes),
                    "status": status,
                    **outcome,
                }
            )
            if status != "Accepted":
                break
        return sent

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

    async def catch_up(self, station_id: str) -> None:
        """Sync a station whose list fell behind (token changes while it was away, or a lost list)."""
        if await self._db(lambda db: local_lists.behind(db, station_id)):
            await self.sync_quietly([station_id])

    async def sync_quietly(self, station_ids: list[str]) -> None:
        """Background syncs after a token change: a station not connected, or refusing, stays out of step."""
        for station_id in station_ids:
            try:
                await self.sync(station_id)
            except Conflict:
                continue  # not connected: synced when an operator or the next token change asks again
            except DomainError as exc:
                log.warning("local list of %s not synced: %s", station_id, exc)


class CatchUp:
    """A host plugin of the asyncio shell: a station whose list fell behind is synced once it is back (a
    reconnection of a registered station, or an accepted boot)."""

    def __init__(self, sync: ListSync) -> None:
        self.sync = sync
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, host: Any) -> None:
        pass

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def connected(self, station_id: str, version: str, registered: bool, now: float) -> None:
        if registered:
            self._start(station_id)

    def disconnected(self, station_id: str, now: float) -> None:
        pass

    def committed(self, station_id: str, reports: list[tuple[Any, Any]], now: float) -> None:
        if any(isinstance(decision, ev.BootDecision) and decision.status == "Accepted" for _, decision in reports):
            self._start(station_id)

    def _start(self, station_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.sync.catch_up(station_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def list_sync(request: Request) -> ListSync:
    """The app's :class:`ListSync` (made on first use)."""
    return app_list_sync(request.app)


def app_list_sync(app: Any) -> ListSync:
    """The :class:`ListSync` of an app (made on first use), also for the server that adds :class:`CatchUp`."""
    state = app.state
    if getattr(state, "list_sync", None) is None:
        state.list_sync = ListSync(state.session_factory, state.gateway)
    sync: ListSync = state.list_sync
    return sync


def _status(outcome: dict[str, Any]) -> str:
    if outcome["outcome"] == "result":
        return local_list.update_status(outcome.get("payload") or {}) or "no status"
    if outcome["outcome"] == "error":
        error = outcome.get("error") or {}
        return f"CALLERROR {error.get('code')}"
    return str(outcome["outcome"])


def _now() -> datetime:
    return datetime.now(UTC)
