"""Demand response: ``csms serve`` as an OpenADR 2.0b VEN (openleadr's client) of a utility's or aggregator's VTN.

The VEN registers, polls, and turns each event for one of its sites (the event's ``resource_id`` targets, else
every site it represents) into a time-bounded lower limit at the site's grid connection, which load management
plans with from the event's start to its end (:meth:`LoadManagement.curtail`):

* ``SIMPLE`` / ``level`` 1, 2, 3 → 75 %, 50 %, 25 % of the site's limit (0: no reduction);
* ``LOAD_DISPATCH`` / ``setpoint`` → that many kW; ``delta`` → the limit less that many kW;
* ``LOAD_CONTROL`` / ``x-loadControlCapacity`` → that fraction of the limit.

Each interval of an event is its own step. The VEN answers ``optIn``, or ``optOut`` when the operator's rule
(``openadr_opt_out = "when_departure_at_risk"``) allows it and a fleet vehicle at the site would miss its
departure under the lower limit. It reports the site's planned charging power back (``TELEMETRY_USAGE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csms.core.plugins.load_management import LoadManagement

log = logging.getLogger(__name__)

SIMPLE_LEVELS = {0: None, 1: 0.75, 2: 0.5, 3: 0.25}


@dataclass(frozen=True, slots=True)
class Step:
    """One interval of an event: the site limit [kW] (None: no reduction) from ``start`` to ``end``."""

    start: float
    end: float
    limit_kw: float | None


def steps(event: Mapping[str, Any], base_kw: float) -> list[Step]:
    """The limit steps of an event for a site whose normal limit is ``base_kw``."""
    active = event.get("active_period") or {}
    start = _when(active.get("dtstart"))
    out: list[Step] = []
    for signal in event.get("event_signals") or []:
        cursor = start
        for interval in signal.get("intervals") or []:
            begin = _when(interval.get("dtstart")) if interval.get("dtstart") else cursor
            length = _seconds(interval.get("duration")) or _seconds(active.get("duration"))
            end = begin + length
            out.append(Step(begin, end, _limit(signal, float(interval.get("signal_payload", 0.0)), base_kw)))
            cursor = end
    return out


def _limit(signal: Mapping[str, Any], value: float, base_kw: float) -> float | None:
    name, kind = str(signal.get("signal_name", "")).upper(), str(signal.get("signal_type", ""))
    if name == "SIMPLE":
        share = SIMPLE_LEVELS.get(round(value), 0.25)
        return None if share is None else base_kw * share
    if name == "LOAD_DISPATCH":
        return max(0.0, base_kw - value) if kind == "delta" else max(0.0, value)
    if name == "LOAD_CONTROL":
        return base_kw * min(1.0, max(0.0, value))
    raise ValueError(f"signal {name}/{kind} is not one the VEN acts on")


def _when(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise ValueError(f"not a time: {value!r}")


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else 0.0


def targeted_sites(event: Mapping[str, Any], sites: Sequence[str]) -> list[str]:
    """The sites an event is for: those its resource targets name, else all the VEN represents."""
    targets = event.get("targets_by_type") or {}
    named = [r for r in targets.get("resource_id", []) if r in sites]
    return named or list(sites)


#: (site, event start, event end, limit kW) -> True when a vehicle would miss its departure.
DepartureCheck = Callable[[str, float, float, float], Awaitable[bool]]


class Ven:
    """The VEN: the openleadr client, the event handler and the telemetry report."""

    def __init__(
        self,
        load_management: LoadManagement,
        *,
        vtn_url: str,
        ven_name: str,
        sites: Sequence[str],
        opt_out: str = "never",
        at_risk: DepartureCheck | None = None,
    ) -> None:
        from openleadr import OpenADRClient  # the client pulls aiohttp and apscheduler: only when configured

        self.load_management = load_management
        self.sites = list(sites)
        self.opt_out = opt_out
        self.at_risk = at_risk
        self.client = OpenADRClient(ven_name=ven_name, vtn_url=vtn_url, disable_signature=True, allow_jitter=False)
        self.client.add_handler("on_event", self.on_event)
        for site_id in self.sites:
            self.client.add_report(
                callback=lambda site_id=site_id: self.planned_kw(site_id),
                resource_id=site_id,
                measurement="power_real",
                sampling_rate=timedelta(seconds=10),
                unit="W",
            )
        #: event id -> (sites, opted in?) — what the VEN did with each event (the API shows it).
        self.events: dict[str, tuple[list[str], str]] = {}

    async def start(self) -> None:
        await self.client.run()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.stop()

    def planned_kw(self, site_id: str) -> float:
        """What load management plans the site's EVSEs to draw now [W]."""
        planner = self.load_management.manager.planners.get(site_id)
        if planner is None:
            return 0.0
        return float(sum(w for k, w in self.load_management.limits_now().items() if k in planner.site.index))

    async def on_event(self, event: Mapping[str, Any]) -> str:
        event_id = str((event.get("event_descriptor") or {}).get("event_id", "?"))
        status = str((event.get("event_descriptor") or {}).get("event_status", "far"))
        sites = targeted_sites(event, self.sites)
        if status == "cancelled":
            for site_id in sites:
                self._cancel(site_id, event_id)
            self.events[event_id] = (sites, "cancelled")
            return "optIn"
        try:
            plans = {site_id: steps(event, self.load_management.grid_limit_kw(site_id) or 0.0) for site_id in sites}
        except ValueError as exc:
            log.warning("OpenADR event %s refused: %s", event_id, exc)
            self.events[event_id] = (sites, f"optOut: {exc}")
            return "optOut"
        if self.opt_out == "when_departure_at_risk" and self.at_risk is not None:
            for site_id, plan in plans.items():
                tightest = [s for s in plan if s.limit_kw is not None]
                if tightest:
                    low = min(tightest, key=lambda s: s.limit_kw or 0.0)
                    if await self.at_risk(site_id, low.start, max(s.end for s in plan), low.limit_kw or 0.0):
                        log.info("OpenADR event %s: opting out, a departure at %s would be missed", event_id, site_id)
                        self.events[event_id] = (sites, "optOut: a departure would be missed")
                        return "optOut"
        for site_id, plan in plans.items():
            self._apply(site_id, event_id, plan)
        self.events[event_id] = (sites, "optIn")
        return "optIn"

    def _apply(self, site_id: str, event_id: str, plan: list[Step]) -> None:
        self._cancel(site_id, event_id)  # a modified event replaces what it said before
        for i, step in enumerate(plan):
            if step.limit_kw is not None:
                self.load_management.curtail(site_id, f"{event_id}#{i}", step.start, step.end, step.limit_kw)

    def _cancel(self, site_id: str, event_id: str) -> None:
        for c in self.load_management.curtailments(site_id):
            if c.event_id.startswith(f"{event_id}#"):
                self.load_management.curtail(site_id, c.event_id, c.start, c.end, None)


@dataclass(frozen=True, slots=True)
class VenSettings:
    vtn_url: str
    ven_name: str = "chargetwin"
    sites: tuple[str, ...] = ()  # empty: every site load management plans
    opt_out: str = "never"  # or "when_departure_at_risk"


def make_ven(settings: VenSettings, load_management: LoadManagement, session_factory: Any) -> Ven:
    """The VEN of ``csms serve``: its opt-out rule reads the fleet's departures from the database."""
    from csms.services.fleet_board import departure_at_risk

    async def at_risk(site_id: str, start: float, end: float, limit_kw: float) -> bool:
        def read() -> bool:
            with session_factory() as db:
                return departure_at_risk(db, site_id, _utc(start), _utc(end), limit_kw, datetime.now(UTC))

        return await asyncio.to_thread(read)

    sites = settings.sites or tuple(sorted(load_management.manager.planners))
    return Ven(load_management, vtn_url=settings.vtn_url, ven_name=settings.ven_name, sites=sites,
               opt_out=settings.opt_out, at_risk=at_risk)  # fmt: skip


def _utc(posix: float) -> datetime:
    return datetime.fromtimestamp(posix, UTC)


class VenRunner:
    """The VEN of a ``csms serve`` process, if one is configured: started once the sites are planned."""

    def __init__(self, settings: VenSettings | None) -> None:
        self.settings = settings
        self.ven: Ven | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, load_management: LoadManagement, session_factory: Any) -> None:
        if self.settings is not None:
            self.ven = make_ven(self.settings, load_management, session_factory)
            self._task = asyncio.create_task(self.ven.start(), name="openadr-ven")

    async def stop(self) -> None:
        if self.ven is not None:
            await self.ven.stop()
        if self._task is not None:
            self._task.cancel()
