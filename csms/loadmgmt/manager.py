"""Load management of every managed site, fed with what the CSMS handles: sans-IO.

Theory of operation
-------------------
The shell (the asyncio gateway, or the simulator's embedded CSMS) owns the sockets, the store and the
clock. It reads each managed site's set-up from the store (:func:`csms.services.load_memory.read_setup`,
on a worker thread when it must not block) and :meth:`LoadManager.install`\\ s it; then it tells the
manager what happened and sends the :class:`~csms.loadmgmt.planner.Command` list each call returns:

* ``connected`` / ``disconnected`` (a station's link, after an Accepted boot when it boots);
* ``committed(station_id, reports, now)``: the domain events of a committed batch with their decisions
  (port states, transactions, meter readings (:mod:`csms.domain.meter`), charging needs), mapped onto
  planner facts; with ``plan=False`` the re-plans they ask for wait for :meth:`plan_due`, which the shell
  calls at the end of its group commit (every station's reports of one commit are planned together);
* ``site_reading``: a reading of a site's grid meter from the API (the meter station's readings arrive as
  its EVSE-0 MeterValues in ``committed``);
* ``call_result`` for every command (``Accepted``/``Rejected`` from the answer's ``status``, ``error`` for a
  CALLERROR, ``timeout``);
* one timer at :meth:`next_deadline`, then :meth:`handle_timer`.

Facts reported together are planned together (:meth:`together`, the one place for that rule): a planner asked
to re-plan several times by one call — a commit's reports, a site (re)installed with its stations and sessions, a
restart's replay, a cluster's catch-up, every station of a shutdown — plans once at its end (a site's re-plan at
200 EVSEs costs milliseconds, and a thousand stations reconnecting after a restart must not re-plan their site
once each). Calls with one fact (a site reading, needs from the API, a curtailment, a profile's answer, a timer)
still plan at once.

The manager remembers what it learnt about stations and sessions independently of the planners, so a
site that is re-installed (its set-up changed) starts from what is known now.

A process that starts (or restarts after a crash) knows nothing in memory:
:func:`csms.services.load_memory.read_memory` reads what the store has — every site, the running
transactions and plugged ports, the site meter's recent readings — and :meth:`LoadManager.resume` plans
from it. Stations are offline until they connect again: planned at their fallback, except running
sessions, which may still apply a leased profile of the process before and are reserved at their rating
until that lease is over. What they and the schedule report from then on refines the plan as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from csms.domain import events as ev
from csms.domain import meter
from csms.loadmgmt import topology as topo
from csms.loadmgmt.compliance import Compliance
from csms.loadmgmt.forecast import BuildingForecast
from csms.loadmgmt.iso15118 import PHASES, EvLimits, unplanned_profile
from csms.loadmgmt.planner import Command, Curtailment, Deferral, Planner, PlannerConfig
from csms.loadmgmt.profiles import charging_profile, profile_id_of
from csms.loadmgmt.revision import Revision
from csms.loadmgmt.state import ExpectedVehicle, Tariff
from csms.ocpp import commands
from csms.ocpp.versions import OCPP16


@dataclass(frozen=True)
class SiteSetup:
    """What the manager needs to know about one site (read from the store by
    :func:`csms.services.load_memory.read_setup`, or built by hand)."""

    site_id: str
    topology: topo.Site
    strategy: str = "none"
    interval_s: float = 60.0
    meter_station_id: str | None = None
    meter_includes_ev: bool = False
    #: OCPP version of each station of the site.
    versions: Mapping[str, str] = field(default_factory=dict)
    config: PlannerConfig | None = None
    tariff: Tariff | None = None


@dataclass(frozen=True)
class StoredSession:
    """A session the store knows: a running transaction, or a port whose last status says plugged."""

    key: topo.EvseKey
    plugged_at: float
    transaction_id: str | None = None
    group: str | None = None
    meter_start_wh: float | None = None
    energy_wh: float | None = None
    faulted: bool = False


@dataclass(frozen=True)
class StoredReading:
    site_id: str
    at: float
    power_w: float | None
    currents_a: tuple[float | None, float | None, float | None]
    includes_ev: bool


@dataclass(frozen=True)
class StoredCurtailment:
    """A demand-response limit the store keeps for a site (one step of an event the VEN accepted)."""

    site_id: str
    event_id: str
    start: float
    end: float
    limit_kw: float


@dataclass(frozen=True)
class Memory:
    """What a starting process reads from the store (:func:`csms.services.load_memory.read_memory`)."""

    setups: list[SiteSetup]
    sessions: list[StoredSession]
    readings: list[StoredReading]
    #: Demand-response limits not over yet (a process that starts, or a node taking a site over, obeys them).
    curtailments: list[StoredCurtailment] = field(default_factory=list)
    #: per site: the building forecast as it was stored (:meth:`BuildingForecast.record`)
    forecasts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class _Known:
    """A session as the manager knows it, kept across planner rebuilds."""

    plugged_at: float
    group: str | None = None
    transaction_id: str | None = None
    energy_needed_wh: float | None = None
    departure: float | None = None
    meter_start_wh: float | None = None
    faulted: bool = False


@dataclass(frozen=True)
class _Needs:
    """Charging needs told before the charger reported the plug-in they belong to."""

    energy_needed_wh: float | None
    departure: float | None
    at: float


#: Needs held for a plug-in the charger has not reported yet are dropped after this long (s).
PENDING_NEEDS_S = 900.0


class LoadManager:
    """One :class:`Planner` per managed site, fed from station facts."""

    def __init__(self) -> None:
        self.setups: dict[str, SiteSetup] = {}
        self.planners: dict[str, Planner] = {}
        self._site_of: dict[str, str] = {}  # station id → site id (its EVSEs)
        self._meter_of: dict[str, str] = {}  # meter station id → site id
        self._online: dict[str, str] = {}  # station id → OCPP version
        self._versions: dict[str, str] = {}  # every connected station's version
        self._sessions: dict[topo.EvseKey, _Known] = {}
        self._pending_needs: dict[topo.EvseKey, _Needs] = {}
        self._tx: dict[tuple[str, str], int] = {}  # (station, transaction id) → EVSE
        self._groups: dict[str, str] = {}  # id token → its group (from authorization decisions)
        self._dc: set[topo.EvseKey] = set()
        self._ev: dict[topo.EvseKey, EvLimits] = {}  # ISO 15118 EVs: what they said they take
        #: Demand-response steps cancelled here (site, event id) → until when a stored copy must not revive them.
        self._lifted: dict[tuple[str, str], float] = {}
        #: per site: the vehicles on their way (fleet records), by vehicle id; kept when a planner is rebuilt
        self._expected: dict[str, dict[str, ExpectedVehicle]] = {}
        #: Profiles refused or not answered by the chargers (answers made moot meanwhile not counted).
        self.failed_profiles = 0
        #: per site: stations it cannot steer and why, kept when the site's planner is rebuilt
        self.compliance: dict[str, Compliance] = {}
        #: per site: the building's load learnt by time of day, kept when the site's planner is rebuilt and
        #: stored by the shell when it changed (:meth:`forecasts_to_store`)
        self.forecasts: dict[str, BuildingForecast] = {}
        self._stored_versions: dict[str, int] = {}
        #: What :meth:`next_deadline` and :meth:`forecasts_to_store` are computed from changed when this moved
        #: (shared with every planner and its tracker).
        self.revision = Revision()
        #: The re-plans held back while facts reported together are told (:meth:`together`; shared with every planner).
        self.deferral = Deferral()
        #: What each kind of committed report does here, by its class (the report kinds are final classes; a kind
        #: not listed means nothing to load management).
        self._handlers: dict[type, Callable[[str, Any, Any, float], list[Command]]] = {
            ev.AuthorizationRequested: self._authorized,
            ev.BootReported: self._booted,
            ev.StatusReported: self._status_reported,
            ev.TransactionStarted: self._started,
            ev.TransactionUpdated: self._updated,
            ev.TransactionEnded: self._ended,
            ev.MeterValuesReported: self._meter_values,
            ev.ChargingNeedsReported: self._needs_reported,
            ev.EvScheduleReported: self._schedule_reported,
        }

    # ---- sites ----------------------------------------------------------------------------------------
    def _recall_forecasts(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        """The stored building forecasts, unless this process learnt more of a site's than was stored (a cluster
        node taking back a site another node planned meanwhile takes that node's, which is newer)."""
        for site_id, record in records.items():
            stored = BuildingForecast.from_record(dict(record))
            known = self.forecasts.get(site_id)
            if known is None or stored.closed_through > known.closed_through:
                self.forecasts[site_id] = stored
                self._stored_versions[site_id] = stored.version
                self.revision.bump()

    def forecasts_to_store(self) -> dict[str, dict[str, Any]]:
        """The building forecasts of the sites planned here that learnt a slot since they were last handed out
        (:meth:`BuildingForecast.record`): what the shell stores (a slot is 15 minutes: a write per site at most
        that often)."""
        out: dict[str, dict[str, Any]] = {}
        for site_id in self.planners:
            forecast = self.forecasts.get(site_id)
            if forecast is not None and forecast.version != self._stored_versions.get(site_id, 0):
                self._stored_versions[site_id] = forecast.version
                out[site_id] = forecast.record()
        return out

    def install(self, setup: SiteSetup, now: float) -> list[Command]:
        """Create or replace a site's planner; replays what is known about its stations and sessions (and keeps
        the demand-response limits the site is under)."""
        before = self.planners.get(setup.site_id)
        kept = dict(before.curtailments) if before is not None else {}
        self.remove(setup.site_id)
        self.setups[setup.site_id] = setup
        for e in setup.topology.evses:
            self._site_of[e.station_id] = setup.site_id
            if e.dc:
                self._dc.add(e.key)
        if setup.meter_station_id is not None:
            self._meter_of[setup.meter_station_id] = setup.site_id
        if setup.strategy == "none":
            return []
        planner = Planner(
            setup.topology,
            setup.strategy,
            config=setup.config or PlannerConfig(interval_s=setup.interval_s),
            tariff=setup.tariff,
            versions=dict(setup.versions),
            compliance=self.compliance.setdefault(setup.site_id, Compliance()),
            revision=self.revision,
            deferral=self.deferral,
        )
        planner.forecast = self.forecasts.setdefault(setup.site_id, BuildingForecast())
        self.planners[setup.site_id] = planner
        self.revision.bump()
        planner.curtailments.update(kept)
        planner.expected.update(self._expected.get(setup.site_id, {}))
        return self.together(now, partial(self._replay, planner, setup, now))

    def _replay(self, planner: Planner, setup: SiteSetup, now: float) -> list[Command]:
        """What is known of a new planner's stations and sessions, told to it; it is due one plan."""
        out: list[Command] = []
        stations = {e.station_id for e in setup.topology.evses}
        for station_id in sorted(stations & set(self._online)):
            out += planner.station_online(station_id, now, self._online[station_id])
        planner.ev_limits.update({k: v for k, v in self._ev.items() if k in setup.topology.index})
        for key, known in sorted(self._sessions.items()):
            if key in setup.topology.index:
                out += planner.plug_in(
                    key,
                    now,
                    group=known.group,
                    energy_needed_wh=known.energy_needed_wh,
                    departure=known.departure,
                    transaction_id=known.transaction_id,
                )
                if known.faulted:
                    out += planner.fault(key, now)
        self.deferral.mark(planner, now)  # planned even with nothing online or plugged in
        return out

    def resume(self, memory: Memory, now: float, elsewhere: Mapping[str, bool] | None = None) -> list[Command]:
        """Start from what the store remembers (a process that starts or restarts). Readings re-plan at
        their own time only to fill the building-load estimate; the stations are all offline here, so
        nothing is sent until they connect.

        ``elsewhere`` (a cluster node taking a site over) says for stations not connected here whether
        another node holds their socket: those are online, planned with everyone else from the first plan
        on, rather than reserved at their rating as a restarted process must treat stations it cannot see.
        """
        return self.together(now, partial(self._resume, memory, now, elsewhere or {}))

    def _resume(self, memory: Memory, now: float, elsewhere: Mapping[str, bool]) -> list[Command]:
        self._recall_forecasts(memory.forecasts)
        for stored in memory.sessions:
            self._sessions[stored.key] = _Known(
                plugged_at=stored.plugged_at,
                group=stored.group,
                transaction_id=stored.transaction_id,
                meter_start_wh=stored.meter_start_wh,
                faulted=stored.faulted,
            )
            if stored.transaction_id is not None:
                self._tx[(stored.key[0], stored.transaction_id)] = stored.key[1]
        out: list[Command] = []
        for setup in memory.setups:
            out += self.install(setup, now)
        for stored in memory.sessions:
            planner = self.planner_of(stored.key[0])
            if planner is not None and stored.energy_wh is not None:
                planner.evse_meter(stored.key, now, energy_wh=stored.energy_wh)
        for r in memory.readings:
            currents = None if None in r.currents_a else r.currents_a
            at, incl = min(r.at, now), r.includes_ev
            self.site_reading(r.site_id, at, power_w=r.power_w, currents_a=currents, includes_ev=incl, replan=False)
        out += self._online_elsewhere(memory.setups, elsewhere, now)
        self._resume_curtailments(memory, now)
        for setup in memory.setups:  # only the sites handed in: a node taking over one site leaves the others be
            resumed = self.planners.get(setup.site_id)
            if resumed is not None:
                resumed.resumed(now)  # before its plan (at the end of :meth:`together`)
                self.deferral.mark(resumed, now)
        return out

    def _resume_curtailments(self, memory: Memory, now: float) -> None:
        """The stored demand-response limits of the sites handed in (planned with at the resumed plan)."""
        sites = {setup.site_id for setup in memory.setups}
        for c in memory.curtailments:
            planner = self.planners.get(c.site_id)
            if planner is not None and c.site_id in sites and c.end > now:
                planner.curtailments[c.event_id] = Curtailment(c.event_id, c.start, c.end, max(0.0, c.limit_kw))
                self.revision.bump()

    def _online_elsewhere(self, setups: list[SiteSetup], elsewhere: Mapping[str, bool], now: float) -> list[Command]:
        out: list[Command] = []
        for setup in setups:
            for station_id in sorted({e.station_id for e in setup.topology.evses}):
                if elsewhere.get(station_id) and station_id not in self._online:
                    out += self.connected(station_id, setup.versions.get(station_id, OCPP16), now)
        return out

    def sync(self, memory: Memory, elsewhere: Mapping[str, bool], now: float) -> list[Command]:
        """Catch up with the stations connected to *other* nodes of a cluster: ``memory`` is what the store
        has of the sites handed in (their committed reports), ``elsewhere`` says for each station of those
        sites that is not connected to this process whether another node holds its socket. Stations of this
        process are told through :meth:`connected`, :meth:`committed` … and are left alone here."""
        return self.together(now, partial(self._sync, memory, elsewhere, now))

    def _sync(self, memory: Memory, elsewhere: Mapping[str, bool], now: float) -> list[Command]:
        out: list[Command] = []
        for setup in memory.setups:
            if setup.site_id not in self.planners:
                continue
            for station_id in sorted({e.station_id for e in setup.topology.evses} & set(elsewhere)):
                if elsewhere[station_id] and station_id not in self._online:
                    self._versions[station_id] = setup.versions.get(station_id, OCPP16)
                    out += self.connected(station_id, self._versions[station_id], now)
                elif not elsewhere[station_id] and station_id in self._online:
                    out += self.disconnected(station_id, now)
        stored = {s.key: s for s in memory.sessions if s.key[0] in elsewhere}
        for key in [k for k in self._sessions if k[0] in elsewhere and k not in stored]:
            out += self._stop(key, now)
        for session in sorted(stored.values(), key=lambda s: s.key):
            out += self._sync_session(session, now)
        return out

    def stored_curtailments(self, stored: Iterable[StoredCurtailment], now: float) -> list[Command]:
        """Take in the stored demand-response limits of the sites planned here that a planner does not have yet
        (the VEN runs on another node of a cluster and its word was missed). Only additions: a read that started
        before a limit was stored and arrives after it was delivered must not lift it, nor revive one cancelled
        here since; a cancellation is delivered, or the limit ends at its end."""
        return self.together(now, partial(self._stored_curtailments, stored, now))

    def _stored_curtailments(self, stored: Iterable[StoredCurtailment], now: float) -> list[Command]:
        out: list[Command] = []
        for c in stored:
            planner = self.planners.get(c.site_id)
            if planner is None or c.end <= now or (c.site_id, c.event_id) in self._lifted:
                continue
            wanted = Curtailment(c.event_id, c.start, c.end, max(0.0, c.limit_kw))
            if planner.curtailments.get(c.event_id) != wanted:
                out += planner.curtail(c.event_id, c.start, c.end, c.limit_kw, now)
        return out

    def _sync_session(self, stored: StoredSession, now: float) -> list[Command]:
        key, planner = stored.key, self.planner_of(stored.key[0])
        known = self._sessions.get(key)
        out: list[Command] = []
        if known is None or (stored.transaction_id is not None and known.transaction_id != stored.transaction_id):
            if known is None:
                known = self._sessions[key] = _Known(plugged_at=stored.plugged_at, meter_start_wh=stored.meter_start_wh)
            known.transaction_id, known.group = stored.transaction_id, stored.group or known.group
            if stored.transaction_id is not None:
                self._tx[(key[0], stored.transaction_id)] = key[1]
            out += self._plug_in(planner, key, known, now)
        if planner is not None and stored.faulted != known.faulted:
            known.faulted = stored.faulted
            out += planner.fault(key, now, active=stored.faulted)
        if planner is not None and stored.energy_wh is not None:
            out += planner.evse_meter(key, now, energy_wh=stored.energy_wh)
        return out

    def remove(self, site_id: str) -> None:
        removed = self.planners.pop(site_id, None)
        if removed is not None:
            self.deferral.forget(removed)
        self.revision.bump()
        old = self.setups.pop(site_id, None)
        if old is None:
            return
        for station_id in [s for s, site in self._site_of.items() if site == site_id]:
            del self._site_of[station_id]
        for station_id in [s for s, site in self._meter_of.items() if site == site_id]:
            del self._meter_of[station_id]

    def site_of(self, station_id: str) -> str | None:
        return self._site_of.get(station_id)

    def planner_of(self, station_id: str) -> Planner | None:
        site = self._site_of.get(station_id)
        return None if site is None else self.planners.get(site)

    # ---- connections ------------------------------------------------------------------------------------
    def connected(self, station_id: str, version: str, now: float, *, registered: bool = True) -> list[Command]:
        """A station connected. Not ``registered`` (its boot is not Accepted yet): it goes online at its
        Accepted BootNotification."""
        self._versions[station_id] = version
        if not registered:
            return []
        self._online[station_id] = version
        planner = self.planner_of(station_id)
        return [] if planner is None else planner.station_online(station_id, now, version)

    def disconnected(self, station_id: str, now: float) -> list[Command]:
        if self._online.pop(station_id, None) is None:
            return []
        planner = self.planner_of(station_id)
        return [] if planner is None else planner.station_offline(station_id, now)

    # ---- committed reports ------------------------------------------------------------------------------
    def committed(
        self,
        station_id: str,
        reports: Iterable[tuple[ev.StationReport, ev.Decision]],
        now: float,
        *,
        plan: bool = True,
    ) -> list[Command]:
        """A station's committed reports: each planner they ask to re-plan plans once, at the end (``plan`` False:
        at the next :meth:`plan_due`, the end of the shell's group commit, with the other stations' reports)."""
        return self.together(now, partial(self._committed, station_id, reports, now), plan=plan)

    def _committed(
        self, station_id: str, reports: Iterable[tuple[ev.StationReport, ev.Decision]], now: float
    ) -> list[Command]:
        out: list[Command] = []
        handlers = self._handlers
        for report, decision in reports:
            handler = handlers.get(type(report))  # (the kinds are distinct final classes: one lookup each)
            if handler is not None:
                out += handler(station_id, report, decision, now)
        return out

    def together(self, now: float, step: Callable[[], list[Command]], *, plan: bool = True) -> list[Command]:
        """``step``'s commands, the planners it asks to re-plan planned once each at its end (:class:`.Deferral`): the
        facts told together are planned together. Within an outer call (or ``plan`` False) they wait, due, for the
        outermost call's end (:meth:`plan_due`)."""
        deferral = self.deferral
        deferral.depth += 1
        try:
            out = step()
        finally:
            deferral.depth -= 1
        if plan and not deferral.depth:
            out += self.plan_due(now)
        return self._latest(out)

    def plan_due(self, now: float) -> list[Command]:
        """Plan each planner left due (:meth:`together`), once, in the order they became due."""
        deferral = self.deferral
        if deferral.depth or not deferral.due:
            return []
        out: list[Command] = []
        while deferral.due:
            out += next(iter(deferral.due)).replan(now)  # (the plan takes it off the list)
        return self._latest(out)

    def _report(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        """One committed report: what its kind's handler returns (most kinds mean nothing to load management)."""
        handler = self._handlers.get(type(report))
        return [] if handler is None else handler(station_id, report, decision, now)

    def _authorized(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        if isinstance(decision, ev.AuthorizationInfo) and decision.group_id:
            self._groups[report.id_token] = decision.group_id
        return []

    def _booted(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        if isinstance(decision, ev.BootDecision) and decision.status == "Accepted":
            version = self._versions.get(station_id)
            if version is not None:  # (re)booted: online now, and any profiles it had are gone
                return self.connected(station_id, version, now)
        return []

    def _status_reported(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        return self._status(station_id, report, now)

    def _updated(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        evse = report.evse_id or self._tx.get((station_id, report.charger_tx_id))
        return self._samples(station_id, evse, report.samples, now) if evse else []

    def _ended(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        evse = report.evse_id or self._tx.pop((station_id, report.charger_tx_id), None)
        self._tx.pop((station_id, report.charger_tx_id), None)
        return self._stop((station_id, evse), now) if evse else []

    def _meter_values(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        if report.evse_id == 0:
            site = self._meter_of.get(station_id)
            return self._station_meter(site, report.samples, now) if site is not None else []
        return self._samples(station_id, report.evse_id, report.samples, now)

    def _needs_reported(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        return self._iso15118_needs(station_id, report, now) if report.evse_id > 0 else []

    def _schedule_reported(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        if isinstance(decision, ev.EvChargingAnswer) and decision.status == "Rejected" and report.evse_id > 0:
            return self._renegotiate((station_id, report.evse_id), now)
        return []

    def _iso15118_needs(self, station_id: str, report: ev.ChargingNeedsReported, now: float) -> list[Command]:
        """The EV's own needs: its limits cap its TxProfile, which it gets now (see :mod:`.iso15118`)."""
        key = (station_id, report.evse_id)
        transfer = report.data.get("chargingNeeds", {}).get("requestedEnergyTransfer", "")
        self._ev[key] = EvLimits(
            report.ev_max_current_a, report.ev_max_power_w, report.max_schedule_tuples, PHASES.get(transfer)
        )
        planner = self.planner_of(station_id)
        if planner is not None:
            planner.ev_limits[key] = self._ev[key]
        departure = report.departure.timestamp() if report.departure is not None else None
        out = self.ev_needs(key, now, energy_needed_wh=report.energy_needed_wh, departure=departure)
        return out + self._renegotiate(key, now)

    def _renegotiate(self, key: topo.EvseKey, now: float) -> list[Command]:
        """A TxProfile for the 15118 EV on ``key``: from the site's plan, else at what the EV takes."""
        known, planner = self._sessions.get(key), self.planner_of(key[0])
        if known is None or known.transaction_id is None or key not in self._ev:
            return []  # no transaction yet: its start sends the profile
        if planner is not None and key in planner.site.index:
            return planner.renegotiate(key, now)
        version = self._versions.get(key[0], OCPP16)
        spec = unplanned_profile(key[0], key[1], known.transaction_id, self._ev[key])
        if spec is None or version == OCPP16:
            return []
        return [Command(key[0], *commands.set_charging_profile(version, charging_profile(spec, now)))]

    def _status(self, station_id: str, report: ev.StatusReported, now: float) -> list[Command]:
        if report.evse_id <= 0:
            return []
        key = (station_id, report.evse_id)
        known = self._sessions.get(key)
        planner = self.planner_of(station_id)
        if report.state is ev.PortState.FAULTED:
            if known is not None and not known.faulted:
                known.faulted = True
                return planner.fault(key, now) if planner else []
            return []
        out: list[Command] = []
        if known is not None and known.faulted:
            known.faulted = False
            out += planner.fault(key, now, active=False) if planner else []
        if report.state.plugged and known is None:
            known = self._open(key, now)
            out += self._plug_in(planner, key, known, now)
        elif not report.state.plugged:  # the vehicle left, or the port cannot charge
            out += self._stop(key, now)
        return out

    def _started(self, station_id: str, report: ev.TransactionStarted, decision: Any, now: float) -> list[Command]:
        if report.evse_id <= 0:
            return []
        key = (station_id, report.evse_id)
        if report.charger_tx_id is not None:
            tx_id = report.charger_tx_id
        elif isinstance(decision, ev.TransactionAck):
            tx_id = str(decision.transaction_id)
        else:
            return []
        group = None
        if isinstance(decision, ev.TransactionAck) and decision.authorization is not None:
            group = decision.authorization.group_id
        if group is None and report.id_token:
            group = self._groups.get(report.id_token)
        known = self._sessions.get(key) or self._open(key, now)
        known.transaction_id, known.group = tx_id, group or known.group
        if report.meter_start_wh is not None and known.meter_start_wh is None:
            known.meter_start_wh = report.meter_start_wh
        self._tx[(station_id, tx_id)] = report.evse_id
        planner = self.planner_of(station_id)
        out = self._plug_in(planner, key, known, now)
        return out if planner is not None else out + self._renegotiate(key, now)  # needs told before the start

    def _open(self, key: topo.EvseKey, now: float) -> _Known:
        """The charger reported a new session: it takes the needs told for this EVSE just before."""
        known = self._sessions[key] = _Known(plugged_at=now)
        needs = self._pending_needs.pop(key, None)
        if needs is not None and now - needs.at <= PENDING_NEEDS_S:
            known.energy_needed_wh, known.departure = needs.energy_needed_wh, needs.departure
        return known

    @staticmethod
    def _plug_in(planner: Planner | None, key: topo.EvseKey, known: _Known, now: float) -> list[Command]:
        if planner is None:
            return []
        return planner.plug_in(
            key,
            now,
            group=known.group,
            energy_needed_wh=known.energy_needed_wh,
            departure=known.departure,
            transaction_id=known.transaction_id,
        )

    def _stop(self, key: topo.EvseKey, now: float) -> list[Command]:
        if self._sessions.pop(key, None) is None:
            return []  # the EV's limits, told before its plug-in was reported, stay for that session
        self._ev.pop(key, None)
        planner = self.planner_of(key[0])
        return planner.stop(key, now) if planner else []

    def _samples(self, station_id: str, evse_id: int, samples: Iterable[ev.Sample], now: float) -> list[Command]:
        key = (station_id, evse_id)
        known = self._sessions.get(key)
        planner = self.planner_of(station_id)
        if known is None or planner is None or key not in planner.site.index:
            return []
        found = meter.readings(samples)
        if not found:
            return []
        # One reading (a periodic sample) is its own latest: the merge over a backlog only for several.
        reading = found[0] if len(found) == 1 else meter.latest(samples)
        assert reading is not None
        register, power_w, currents = reading.energy_wh, reading.power_w, reading.line_currents_a
        energy_wh = None
        if register is not None:
            if known.meter_start_wh is None:
                known.meter_start_wh = register
            energy_wh = max(0.0, register - known.meter_start_wh)
        evse = planner.site.evse(key)
        current_a: float | None = None
        phases: int | None = None
        if evse.dc:
            if power_w is not None:
                current_a = power_w / (3 * evse.voltage)
        elif currents:
            current_a = max(currents)
            drawing = sum(1 for c in currents if c > 1.0)
            phases = drawing or None
        elif power_w is not None:
            current_a = power_w / (len(evse.phases) * evse.voltage)
        return planner.evse_meter(key, now, current_a=current_a, energy_wh=energy_wh, phases_in_use=phases)

    def ev_needs(
        self, key: topo.EvseKey, now: float, *, energy_needed_wh: float | None, departure: float | None
    ) -> list[Command]:
        """Charging needs from the charger (NotifyEVChargingNeeds), a fleet schedule or an app.

        A schedule or an app can be faster than the charger: needs for an EVSE without a reported session
        wait for its plug-in (a status the charger sent before the plug, arriving after the needs, must not
        end the session they belong to)."""
        known = self._sessions.get(key)
        if known is None:
            self._pending_needs[key] = _Needs(energy_needed_wh, departure, now)
            return []
        known.energy_needed_wh = energy_needed_wh if energy_needed_wh is not None else known.energy_needed_wh
        known.departure = departure if departure is not None else known.departure
        planner = self.planner_of(key[0])
        if planner is None:
            return []
        return planner.ev_needs(key, now, energy_needed_wh=known.energy_needed_wh, departure=known.departure)

    def expect(self, site_id: str, vehicle_id: str, vehicle: ExpectedVehicle | None) -> None:
        """A vehicle scheduled to depart from ``site_id`` that is not plugged in yet, with its expected need
        (None: it is no longer on its way — it plugged in, or its plan no longer leaves from here). Recorded
        for the site's next plan (no re-plan: it refines the night's outlook, nothing changes at once)."""
        site = self._expected.setdefault(site_id, {})
        if vehicle is None:
            site.pop(vehicle_id, None)
        else:
            site[vehicle_id] = vehicle
        planner = self.planners.get(site_id)
        if planner is not None:
            planner.expect(vehicle_id, vehicle)

    def forget_expected(self, vehicle_id: str) -> None:
        """The vehicle is on its way to no site (it plugged in somewhere)."""
        for site_id in [s for s, vehicles in self._expected.items() if vehicle_id in vehicles]:
            self.expect(site_id, vehicle_id, None)

    def curtail(
        self, site_id: str, event_id: str, start: float, end: float, limit_kw: float | None, now: float
    ) -> list[Command]:
        """A demand-response event for a site planned here (``limit_kw`` None: cancelled); unknown site: []."""
        planner = self.planners.get(site_id)
        if planner is None:
            return []
        self._lifted = {k: until for k, until in self._lifted.items() if until > now}
        if limit_kw is None:
            self._lifted[(site_id, event_id)] = max(end, now + 3600.0)  # a stale read must not bring it back
        else:
            self._lifted.pop((site_id, event_id), None)
        return self._latest(planner.curtail(event_id, start, end, limit_kw, now))

    # ---- site meter -------------------------------------------------------------------------------------
    def _station_meter(self, site_id: str, samples: Iterable[ev.Sample], now: float) -> list[Command]:
        out: list[Command] = []
        for reading in meter.grid_readings(samples):
            out += self.site_reading(site_id, now, power_w=reading.power_w, currents_a=reading.currents_a)
        return out

    def site_reading(
        self,
        site_id: str,
        now: float,
        *,
        power_w: float | None = None,
        currents_a: list[float | None] | tuple[float | None, ...] | None = None,
        includes_ev: bool | None = None,
        replan: bool = True,
    ) -> list[Command]:
        """A reading of the site's grid meter (the building load, or all of it when ``includes_ev``)."""
        planner = self.planners.get(site_id)
        setup = self.setups.get(site_id)
        if planner is None or setup is None:
            return []
        phases = None
        if currents_a is not None and all(c is not None for c in currents_a):
            phases = (float(currents_a[0]), float(currents_a[1]), float(currents_a[2]))  # type: ignore[arg-type]
        if phases is None and power_w is None:
            return []
        incl = setup.meter_includes_ev if includes_ev is None else includes_ev
        return planner.site_meter(now, phases_a=phases, power_w=power_w, includes_ev=incl, replan=replan)

    # ---- calls and time ---------------------------------------------------------------------------------
    def call_result(self, command: Command, status: str, now: float) -> list[Command]:
        planner = self.planner_of(command.station_id)
        if planner is None:
            return []
        before = planner.failed_profiles
        out = planner.call_result(command, status, now)
        self.failed_profiles += planner.failed_profiles - before
        return out

    def _latest(self, commands: list[Command]) -> list[Command]:
        """Several re-plans in one step may send one profile slot more than once: keep the last of each
        (the tracker expects the answer for the last one it was given)."""
        if len(commands) < 2:
            return commands
        last: dict[tuple[str, int, int], int] = {}
        for i, c in enumerate(commands):
            planner = self.planner_of(c.station_id)
            version = planner.version_of(c.station_id) if planner is not None else OCPP16
            last[(c.station_id, *profile_id_of(version, c.payload))] = i
        keep = set(last.values())
        return [c for i, c in enumerate(commands) if i in keep]

    def summary(self, site_id: str, now: float) -> dict[str, Any]:
        """What load management could not steer at a site: profiles rejected, stations flagged unmanaged
        (why, when), minutes each station was planned at its fallback because it was offline."""
        return self.compliance.get(site_id, Compliance()).summary(now)

    def next_deadline(self) -> float | None:
        best = None
        for planner in self.planners.values():
            d = planner.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, now: float) -> list[Command]:
        out: list[Command] = []
        for planner in self.planners.values():
            out += planner.handle_timer(now)
        return out


def call_status(outcome: str, payload: Mapping[str, Any] | None) -> str:
    """A completed call as the planner wants it: the answer's ``status``, ``error`` or ``timeout``."""
    if outcome == "result":
        return str((payload or {}).get("status", "Rejected"))
    return "timeout" if outcome in ("timeout", "cancelled") else "error"
