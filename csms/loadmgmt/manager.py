"""Load management of every managed site, fed with what the CSMS handles: sans-IO.

Theory of operation
-------------------
The shell (the asyncio gateway, or the simulator's embedded CSMS) owns the sockets, the store and the
clock. It reads each managed site's set-up from the store (:func:`read_setup`, on a worker thread when it
must not block) and :meth:`LoadManager.install`\\ s it; then it tells the manager what happened and sends
the :class:`~csms.loadmgmt.planner.Command` list each call returns:

* ``connected`` / ``disconnected`` (a station's link, after an Accepted boot when it boots);
* ``committed(station_id, reports, now)``: the domain events of a committed batch with their decisions
  (status, transactions, meter values, charging needs), mapped onto planner facts;
* ``site_reading``: a reading of a site's grid meter from the API (the meter station's readings arrive as
  its EVSE-0 MeterValues in ``committed``);
* ``call_result`` for every command (``Accepted``/``Rejected`` from the answer's ``status``, ``error`` for a
  CALLERROR, ``timeout``);
* one timer at :meth:`next_deadline`, then :meth:`handle_timer`.

The manager remembers what it learnt about stations and sessions independently of the planners, so a
site that is re-installed (its set-up changed) starts from what is known now.

A process that starts (or restarts after a crash) knows nothing in memory: :func:`read_memory` reads what
the store has — every site, the running transactions and plugged ports, the site meter's recent readings —
and :meth:`LoadManager.resume` plans from it. Stations are offline until they connect again: planned at
their fallback, except running sessions, which may still apply a leased profile of the process before and
are reserved at their rating until that lease is over. What they and the schedule report from then on
refines the plan as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from csms.domain import events as ev
from csms.loadmgmt import topology as topo
from csms.loadmgmt.compliance import Compliance
from csms.loadmgmt.planner import Command, Planner, PlannerConfig
from csms.loadmgmt.profiles import profile_id_of
from csms.loadmgmt.state import Tariff

#: Connector states with a vehicle plugged in (1.6 and 2.0.1).
PLUGGED = frozenset({"Preparing", "Occupied", "Charging", "SuspendedEV", "SuspendedEVSE"})
#: States that end a session (the vehicle left, or the connector cannot charge).
ENDED = frozenset({"Available", "Finishing", "Unavailable", "Reserved"})


@dataclass(frozen=True)
class SiteSetup:
    """What the manager needs to know about one site (from the store, or built by the simulator)."""

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


def read_setup(db: Session, site_id: str, config: PlannerConfig | None = None) -> SiteSetup:
    """A site's set-up from the store (raises ``NotFound``/``Invalid`` like :func:`sites.topology`)."""
    from csms.services import sites
    from csms.store.models import Station

    row = sites.get(db, site_id)
    tree = sites.topology(db, site_id)
    ids = sorted({e.station_id for e in tree.evses})
    versions = {s.id: s.ocpp_version for s in db.scalars(select(Station).where(Station.id.in_(ids)))} if ids else {}
    base = config or PlannerConfig()
    return SiteSetup(
        site_id=row.id,
        topology=tree,
        strategy=row.strategy,
        interval_s=row.interval_s,
        meter_station_id=row.meter_station_id,
        meter_includes_ev=bool(row.meter_includes_ev),
        versions=versions,
        config=replace(base, interval_s=row.interval_s),
    )


def read_all(db: Session, config: PlannerConfig | None = None) -> list[SiteSetup]:
    """Every site in the store (managed or not: a site with strategy ``none`` plans nothing)."""
    from csms.services import sites

    return [read_setup(db, row.id, config) for row in sites.list_sites(db)]


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
class Memory:
    """What a starting process reads from the store (:func:`read_memory`)."""

    setups: list[SiteSetup]
    sessions: list[StoredSession]
    readings: list[StoredReading]


def read_memory(db: Session, now: float, config: PlannerConfig | None = None) -> Memory:
    """Sites, sessions of their EVSEs (1.6: our transaction id; 2.0.1: the charger's) and each site's meter
    readings of the last ``meter_window_s``."""
    from csms.store.models import Connector, IdToken, SiteMeterReading, Station, Transaction

    setups = read_all(db, config)
    managed = {e.key for setup in setups for e in setup.topology.evses}
    versions: dict[str, str] = {sid: v for sid, v in db.execute(select(Station.id, Station.ocpp_version))}
    groups: dict[str, str | None] = {t: g for t, g in db.execute(select(IdToken.id_token, IdToken.group_id))}
    statuses = {
        (c.station_id, c.evse_id): c
        for c in db.scalars(select(Connector).where(Connector.evse_id > 0).order_by(Connector.connector_id))
    }
    sessions: dict[topo.EvseKey, StoredSession] = {}
    for tx in db.scalars(select(Transaction).where(Transaction.status == "active").order_by(Transaction.id)):
        key = (tx.station_id, tx.evse_id or 0)
        if key not in managed:
            continue
        tx_id = str(tx.id) if versions.get(tx.station_id) == "1.6" else tx.charger_tx_id
        energy = None
        if tx.last_meter_wh is not None and tx.meter_start_wh is not None:
            energy = max(0.0, tx.last_meter_wh - tx.meter_start_wh)
        port = statuses.get(key)
        sessions[key] = StoredSession(
            key,
            tx.started_at.timestamp() if tx.started_at is not None else now,
            tx_id,
            groups.get(tx.id_token) if tx.id_token else None,
            tx.meter_start_wh,
            energy,
            port is not None and port.status == "Faulted",
        )
    for key, port in statuses.items():
        if key in managed and key not in sessions and port.status in PLUGGED:
            sessions[key] = StoredSession(key, port.status_at.timestamp() if port.status_at is not None else now)
    window = (config or PlannerConfig()).meter_window_s
    since = datetime.fromtimestamp(now - window, tz=UTC)
    readings = [
        StoredReading(
            r.site_id,
            r.timestamp.timestamp(),
            r.power_w,
            (r.current_l1_a, r.current_l2_a, r.current_l3_a),
            bool(r.includes_ev),
        )
        for r in db.scalars(
            select(SiteMeterReading)
            .where(SiteMeterReading.timestamp >= since)
            .order_by(SiteMeterReading.timestamp, SiteMeterReading.id)
        )
    ]
    return Memory(setups, sorted(sessions.values(), key=lambda s: s.key), readings)


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
        #: Profiles refused or not answered by the chargers (answers made moot meanwhile not counted).
        self.failed_profiles = 0
        #: per site: stations it cannot steer and why, kept when the site's planner is rebuilt
        self.compliance: dict[str, Compliance] = {}

    # ---- sites ----------------------------------------------------------------------------------------
    def install(self, setup: SiteSetup, now: float) -> list[Command]:
        """Create or replace a site's planner; replays what is known about its stations and sessions."""
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
        )
        self.planners[setup.site_id] = planner
        out: list[Command] = []
        stations = {e.station_id for e in setup.topology.evses}
        for station_id in sorted(stations & set(self._online)):
            out += planner.station_online(station_id, now, self._online[station_id])
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
        if not out:
            out = planner.replan(now)
        return self._latest(out)

    def resume(self, memory: Memory, now: float) -> list[Command]:
        """Start from what the store remembers (a process that starts or restarts). Readings re-plan at
        their own time only to fill the building-load estimate; the stations are all offline here, so
        nothing is sent until they connect."""
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
        for planner in self.planners.values():
            planner.resumed(now)
            out += planner.replan(now)
        return self._latest(out)

    def remove(self, site_id: str) -> None:
        self.planners.pop(site_id, None)
        old = self.setups.pop(site_id, None)
        if old is None:
            return
        for station_id in [s for s, site in self._site_of.items() if site == site_id]:
            del self._site_of[station_id]
        for station_id in [s for s, site in self._meter_of.items() if site == site_id]:
            del self._meter_of[station_id]

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
        self, station_id: str, reports: Iterable[tuple[ev.StationReport, ev.Decision]], now: float
    ) -> list[Command]:
        out: list[Command] = []
        for report, decision in reports:
            out += self._report(station_id, report, decision, now)
        return self._latest(out)

    def _report(self, station_id: str, report: Any, decision: Any, now: float) -> list[Command]:
        if (
            isinstance(decision, ev.AuthorizationInfo)
            and isinstance(report, ev.AuthorizationRequested)
            and decision.group_id
        ):
            self._groups[report.id_token] = decision.group_id
        if isinstance(report, ev.BootReported):
            if isinstance(decision, ev.BootDecision) and decision.status == "Accepted":
                version = self._versions.get(station_id)
                if version is not None:  # (re)booted: online now, and any profiles it had are gone
                    return self.connected(station_id, version, now)
            return []
        if isinstance(report, ev.StatusReported):
            return self._status(station_id, report, now)
        if isinstance(report, ev.TransactionStarted):
            return self._started(station_id, report, decision, now)
        if isinstance(report, ev.TransactionUpdated):
            evse = report.evse_id or self._tx.get((station_id, report.charger_tx_id))
            return self._samples(station_id, evse, report.samples, now) if evse else []
        if isinstance(report, ev.TransactionEnded):
            evse = report.evse_id or self._tx.pop((station_id, report.charger_tx_id), None)
            self._tx.pop((station_id, report.charger_tx_id), None)
            return self._stop((station_id, evse), now) if evse else []
        if isinstance(report, ev.MeterValuesReported):
            if report.evse_id == 0:
                site = self._meter_of.get(station_id)
                return self._station_meter(site, report.samples, now) if site is not None else []
            return self._samples(station_id, report.evse_id, report.samples, now)
        if isinstance(report, ev.StationNotice) and report.kind == "ev_charging_needs":
            return self._needs(station_id, report.data, now)
        return []

    def _status(self, station_id: str, report: ev.StatusReported, now: float) -> list[Command]:
        if report.evse_id <= 0:
            return []
        key = (station_id, report.evse_id)
        known = self._sessions.get(key)
        planner = self.planner_of(station_id)
        if report.status == "Faulted":
            if known is not None and not known.faulted:
                known.faulted = True
                return planner.fault(key, now) if planner else []
            return []
        out: list[Command] = []
        if known is not None and known.faulted:
            known.faulted = False
            out += planner.fault(key, now, active=False) if planner else []
        if report.status in PLUGGED and known is None:
            known = self._open(key, now)
            out += self._plug_in(planner, key, known, now)
        elif report.status in ENDED:
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
        return self._plug_in(self.planner_of(station_id), key, known, now)

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
            return []
        planner = self.planner_of(key[0])
        return planner.stop(key, now) if planner else []

    def _samples(self, station_id: str, evse_id: int, samples: Iterable[ev.Sample], now: float) -> list[Command]:
        key = (station_id, evse_id)
        known = self._sessions.get(key)
        planner = self.planner_of(station_id)
        if known is None or planner is None or key not in planner.site.index:
            return []
        currents: list[float] = []
        power_w: float | None = None
        register: float | None = None
        for s in samples:
            if s.location not in (None, "Outlet"):
                continue
            if s.measurand == "Current.Import" and s.phase in _PHASES:
                currents.append(s.value)
            elif s.measurand == "Power.Active.Import" and s.phase is None:
                power_w = s.value * 1000.0 if s.unit == "kW" else s.value
            elif s.measurand == "Energy.Active.Import.Register" and s.phase is None:
                register = s.value * 1000.0 if s.unit == "kWh" else s.value
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

    def _needs(self, station_id: str, data: Mapping[str, Any], now: float) -> list[Command]:
        from csms.ocpp.convert import parse_time

        evse_id = data.get("evseId")
        needs = data.get("chargingNeeds") or {}
        if not evse_id:
            return []
        energy = None
        for part in ("acChargingParameters", "dcChargingParameters"):
            if isinstance(needs.get(part), dict) and needs[part].get("energyAmount") is not None:
                energy = float(needs[part]["energyAmount"])
        departure_dt: datetime | None = parse_time(needs.get("departureTime"))
        departure = departure_dt.timestamp() if departure_dt is not None else None
        return self.ev_needs((station_id, int(evse_id)), now, energy_needed_wh=energy, departure=departure)

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

    # ---- site meter -------------------------------------------------------------------------------------
    def _station_meter(self, site_id: str, samples: Iterable[ev.Sample], now: float) -> list[Command]:
        from csms.services.sites import parse_meter_samples

        out: list[Command] = []
        for _, power_w, currents in parse_meter_samples(samples):
            out += self.site_reading(site_id, now, power_w=power_w, currents_a=currents)
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
            version = planner.version_of(c.station_id) if planner is not None else "1.6"
            last[(c.station_id, *profile_id_of(version, c.payload))] = i
        keep = set(last.values())
        return [c for i, c in enumerate(commands) if i in keep]

    def summary(self, site_id: str, now: float) -> dict[str, Any]:
        """What load management could not steer at a site: profiles rejected, stations flagged unmanaged
        (why, when), minutes each station was planned at its fallback because it was offline."""
        return self.compliance.get(site_id, Compliance()).summary(now)

    def next_deadline(self) -> float | None:
        times = [d for p in self.planners.values() if (d := p.next_deadline()) is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Command]:
        out: list[Command] = []
        for planner in self.planners.values():
            out += planner.handle_timer(now)
        return out


_PHASES = frozenset({"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"})


def call_status(outcome: str, payload: Mapping[str, Any] | None) -> str:
    """A completed call as the planner wants it: the answer's ``status``, ``error`` or ``timeout``."""
    if outcome == "result":
        return str((payload or {}).get("status", "Rejected"))
    return "timeout" if outcome in ("timeout", "cancelled") else "error"
