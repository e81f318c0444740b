"""The re-planning loop of one site, sans-IO.

Theory of operation
-------------------
The shell (the CSMS's asyncio gateway, or the simulator's SimPy loop) tells the planner what happened,
with ``now`` in POSIX seconds, and sends the :class:`Command` list each call returns:

* facts that change the plan re-plan at once: a station coming online or going offline, plug-in,
  transaction start/stop, a vehicle's charging needs, a fault, a site meter reading, a failed profile —
  except within a :class:`Deferral` scope (the manager's, around the facts reported together: a group commit's
  reports, a restart's replay), where the planner only records that it is *due*, and the scope's owner plans
  each due planner once at its end;
* facts that only refine it are recorded for the next plan: an EVSE's measured current and energy;
* :meth:`next_deadline` is the next periodic re-plan (every ``interval_s`` after the last one) or profile
  retry; the shell arms one timer for it and calls :meth:`handle_timer` then.

A re-plan builds a :class:`SiteState` (building load estimate, sessions, EVSEs it cannot steer), runs the
site's strategy, turns the allocation into profile specs for every online EVSE, and returns only what the
:class:`ProfileTracker` says changed. Each command's outcome comes back through :meth:`call_result`.

Who is planned at a fixed current (``reserved``), counted against the tree and never steered:

* every EVSE of a station that is offline or has never connected, at its fallback limit — or higher, at
  what our last profile still lets it draw (it applies it without us) until that profile's lease is over
  (its second period takes it to the fallback by itself, see :mod:`.profiles`) or, for a TxProfile, until
  its transaction ends;
* every EVSE of an *unmanaged* station (:mod:`.compliance`: it Rejected or CALLERRORed a profile, or drew
  more than its allocation for minutes), at its worst case: ``max(rating, measured draw)``. Not the
  measured draw alone: it is the vehicle's draw of the moment, and a car that wakes, a battery that leaves
  its taper or the next car plugged in takes the EVSE up to its rating with no profile to stop it. The
  measured draw counts only when it is above the rating the site was told (a wrong rating);
* an EVSE whose profile was not answered (timeout), at the larger of its fallback and the last limit it
  accepted (it may still be applying that one);
* an EVSE measured drawing more than every allocation it had in the charger's reaction time (the
  compliance grace) — *held*, at its measured draw, from the plan after that sample on. Its excess is load
  on the site now, whether the firmware is slow, broken or not yet judged (:mod:`.compliance` flags it only
  after minutes of it), so the others give way at once instead of the safety margin absorbing it. A held
  EVSE keeps the allocation it was given (a compliant charger is still on its way to it; the compliance
  check keeps comparing against it) and is released once a sample shows it at or below it. The reaction
  window keeps compliant chargers that are still ramping down from being counted twice.

Not reserved, but counted above its allocation: an EVSE whose allocation drops, until it has once been
seen following a reduction (:attr:`.Compliance.followed`), is counted at what it had in the reaction window
(at most its measured draw): the strategy runs again with it fixed there, so what it frees goes to the
others only once it may have come down (:meth:`Planner.ramping_a`).

Reserved EVSEs of online stations are still sent profiles at their fallback: a station that rejected one
profile for a passing reason shows it is compliant again by accepting the next one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from csms.loadmgmt import strategies
from csms.loadmgmt.compliance import OVERDRAW, REJECTED, Compliance
from csms.loadmgmt.forecast import BuildingForecast
from csms.loadmgmt.iso15118 import EvLimits, capped
from csms.loadmgmt.profiles import (
    ProfileSpec,
    ProfileTracker,
    Purpose,
    charging_profile,
    profile_id_of,
    transaction_of,
)
from csms.loadmgmt.revision import Revision
from csms.loadmgmt.state import Allocation, ExpectedVehicle, SessionState, SiteState, Tariff
from csms.loadmgmt.strategies._core import EPS, build_problem
from csms.loadmgmt.topology import Evse, EvseKey, Site, phase_use
from csms.ocpp import commands
from csms.ocpp.versions import OCPP16

#: A utility's demand charge is on the peak average import over windows this long (s).
DEMAND_WINDOW_S = 900.0

#: Events that re-plan at once (``on_event``); others are refused.
REPLAN_EVENTS = frozenset(
    {"plug_in", "stop", "meter", "fault", "online", "offline", "needs", "rejected", "overdraw", "interval", "curtail"}
)


class Deferral:
    """Re-plans held back while a scope is open: a planner asked to re-plan (:meth:`Planner.on_event`) records that it
    is due instead, and the scope's owner (:class:`csms.loadmgmt.manager.LoadManager`, around the facts reported
    together) plans each due planner once when it is over. One re-plan computes what the several would have ended
    with: each reads the planner's whole state at ``now``. Shared by the manager and its planners."""

    __slots__ = ("depth", "due")

    def __init__(self) -> None:
        #: Scopes open (nested ones wait for the outermost).
        self.depth = 0
        #: Planners due a re-plan, in the order they became due, with when they did.
        self.due: dict[Planner, float] = {}

    def mark(self, planner: Planner, now: float) -> None:
        """``planner`` is due a re-plan (from ``now``, unless it already was): :meth:`Planner.next_deadline` says so."""
        if planner not in self.due:
            self.due[planner] = now
            planner.revision.bump()

    def forget(self, planner: Planner) -> None:
        """``planner`` is no longer due: it has just planned, or its site is gone (a plan it was due is not sent)."""
        self.due.pop(planner, None)


class Command(NamedTuple):
    """A call to send: ``(station_id, action, payload)``."""

    station_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class PlannerConfig:
    interval_s: float = 60.0
    #: A vehicle must have had its limit this long before its measured draw is trusted as its acceptance.
    settle_s: float = 120.0
    #: Headroom left above a vehicle's measured draw (A per phase).
    accept_margin_a: float = 1.0
    #: A site reading older than this is stale: plan with the highest reading of the last ``meter_window_s``.
    stale_after_s: float = 300.0
    meter_window_s: float = 3600.0
    #: Building load assumed before any reading (A per phase).
    assumed_building_load_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: The first step is planned with the building's learnt profile (:mod:`csms.loadmgmt.forecast`) up to this far
    #: ahead, where it is higher than the latest reading: a plan holds until the next one and its profiles take a
    #: while to arrive, so the step it has seen at that time of day before is met before it comes. None: the
    #: latest reading is taken to persist (and the strategies hold it over their horizon).
    building_lookahead_s: float | None = 120.0
    deadband_a: float = 0.5
    retry_after_s: float = 300.0
    send_station_max: bool = True
    #: A profile carrying an allocation says: this until ``profile_lease_s``, the fallback after (renewed at
    #: half of it). None: no lease (an offline station keeps its last allocation for as long as it is away).
    profile_lease_s: float | None = 600.0
    #: Minimum on and off time: a session paused or resumed by choice keeps that state this long (contactors, and
    #: vehicles that stop accepting charge after repeated pauses; see ``SiteState.dwell_s``). 0: none.
    min_dwell_s: float = 900.0


@dataclass
class _Session:
    key: EvseKey
    plugged_at: float
    group: str | None = None
    transaction_id: str | None = None
    energy_needed_wh: float | None = None
    departure: float | None = None
    energy_wh: float = 0.0
    measured_a: float | None = None
    phases_in_use: int | None = None
    accept_cap_a: float | None = None
    allocated_a: float = 0.0
    limit_since: float = 0.0
    #: When a plan last paused or resumed it (None: not yet).
    switched_at: float | None = None
    faulted: bool = False
    #: (since, per-phase A) of each allocation sent lately; +inf at first: what it draws before our first one
    #: (an earlier TxDefaultProfile, a station cap) is not ours to hold against it.
    limits: list[tuple[float, float]] = field(default_factory=list)
    #: :meth:`told_a`'s last answer and what it was asked ((now, window_s)); dropped by :meth:`allocate`, which alone
    #: changes ``limits`` (a re-plan asks it twice per session at one ``now``: held, then ramping).
    _told: tuple[float, float, float] | None = field(default=None, init=False, repr=False, compare=False)
    #: :meth:`view` and what it shows, kept while that is unchanged (between two plans most sessions are).
    _view: tuple[tuple[Any, ...], SessionState] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.limits:
            self.limits.append((self.plugged_at, math.inf))

    def view(self) -> SessionState:
        """What a strategy sees of it (a new :class:`SessionState` only when something it shows changed)."""
        shown = (
            self.faulted,
            self.plugged_at,
            self.phases_in_use,
            self.measured_a,
            self.accept_cap_a,
            self.energy_wh,
            self.energy_needed_wh,
            self.departure,
            self.group,
            self.transaction_id,
            self.allocated_a,
            self.switched_at,
        )
        view = self._view
        if view is not None and view[0] == shown:
            return view[1]
        state = SessionState(
            key=self.key,
            plugged=not self.faulted,
            plugged_at=self.plugged_at,
            phases_in_use=self.phases_in_use,
            measured_a=self.measured_a,
            accept_cap_a=self.accept_cap_a,
            energy_wh=self.energy_wh,
            energy_needed_wh=self.energy_needed_wh,
            departure=self.departure,
            group=self.group,
            transaction_id=self.transaction_id,
            allocated_a=self.allocated_a,
            switched_at=self.switched_at,
        )
        self._view = (shown, state)
        return state

    def told_a(self, now: float, window_s: float) -> float:
        """The largest allocation in force at some time in ``[now - window_s, now]``: what a compliant
        charger may still be drawing."""
        told_before = self._told
        if told_before is not None and told_before[0] == now and told_before[1] == window_s:
            return told_before[2]
        start = now - window_s
        in_force = None  # the last one set by the window's start
        told = -math.inf
        for since, a in self.limits:
            if since <= start:
                in_force = a
            elif a > told:
                told = a
        told = told if in_force is None else max(in_force, told)
        self._told = (now, window_s, told)
        return told

    def allocate(self, amps: float, now: float, window_s: float, deadband_a: float) -> None:
        if abs(amps - self.limits[-1][1]) <= deadband_a:
            return
        self._told = None
        self.limits.append((now, amps))
        start = now - window_s
        while len(self.limits) > 1 and self.limits[1][0] <= start:
            del self.limits[0]


#: What :meth:`Planner._spec` makes a profile of besides the EVSE and purpose: amps, transaction, phases in use, lease.
_SpecArgs = tuple[float, str | None, int | None, float | None]


@dataclass(frozen=True, slots=True)
class Curtailment:
    """A demand-response event at the site's grid connection."""

    event_id: str
    start: float
    end: float
    limit_kw: float


class Planner:
    """Load management of one site: feed it facts, send what it returns.

    Args:
        site: the electrical tree.
        strategy: a name in :data:`csms.loadmgmt.strategies.STRATEGIES` (``none``: never sends anything).
        versions: the OCPP version of each station (default 1.6); may also be given at
            :meth:`station_online`.
    """

    def __init__(
        self,
        site: Site,
        strategy: str = "equal_share",
        *,
        config: PlannerConfig | None = None,
        tariff: Tariff | None = None,
        versions: Mapping[str, str] | None = None,
        compliance: Compliance | None = None,
        revision: Revision | None = None,
        deferral: Deferral | None = None,
    ) -> None:
        self.site = site
        #: Where re-plans wait while their owner's scope is open (None: every re-plan is made at once).
        self.deferral = deferral
        #: Bumped whenever :meth:`next_deadline`'s inputs or the forecast change (shared with the manager).
        self.revision = revision if revision is not None else Revision()
        self.compliance = compliance if compliance is not None else Compliance()
        self.strategy_name = strategy
        self._strategy = strategies.get(strategy)
        self.config = config or PlannerConfig()
        self.tariff = tariff
        self.tracker = ProfileTracker(
            deadband_a=self.config.deadband_a, retry_after_s=self.config.retry_after_s, revision=self.revision
        )
        self._versions: dict[str, str] = dict(versions or {})
        #: :meth:`_bindable`'s answers, per running session's transaction (all dropped when a version changes).
        self._bindable_known: dict[tuple[str, str], bool] = {}
        self._online: set[str] = set()
        self._station_caps: dict[str, ProfileSpec | None] = {}
        #: Per profile slot, the last spec :meth:`_spec` made and what it was made from (an EVSE's site is frozen).
        self._specs: dict[tuple[str, int, str], tuple[_SpecArgs, ProfileSpec]] = {}
        #: Each EVSE of the site in its order, with its key, its TxDefaultProfile's and TxProfile's slots in
        #: :attr:`_specs` (the purpose as a plain str: a str enum member hashes through a slower slot) and whether it
        #: is its station's first (where :meth:`_desired` puts the station's cap): every re-plan walks them all, and
        #: most of what it asks of each is the same as at the last one.
        default, tx = str(Purpose.TX_DEFAULT.value), str(Purpose.TX.value)
        first = {e.station_id: e.key for e in reversed(site.evses)}
        self._evse_slots: tuple[tuple[Evse, EvseKey, tuple[str, int, str], tuple[str, int, str], bool], ...] = tuple(
            (e, key, (e.station_id, e.evse_id, default), (e.station_id, e.evse_id, tx), first[e.station_id] == key)
            for e, key in zip(site.evses, site.index, strict=True)
        )
        #: The site's stations (when all are online and none is flagged, every EVSE is steered).
        self._station_ids = frozenset(e.station_id for e in site.evses)
        self._sessions: dict[EvseKey, _Session] = {}
        self._readings: list[tuple[float, tuple[float, float, float]]] = []
        #: The building's load by time of day, learnt from the readings.
        self.forecast = BuildingForecast()
        self._last_plan: float | None = None
        self.last_allocation: Allocation | None = None
        #: EVSEs held at their measured draw in the last plan (see the module's docstring), per-phase A.
        self.held: dict[EvseKey, float] = {}
        #: The billing period's peak planned import, as its 15-minute average (the demand charge's measure).
        self.peak_w = 0.0
        self._planned: list[tuple[float, float]] = []  # (since, planned import W) within the demand window
        self.plans = 0
        #: Profiles the chargers refused or did not answer (moot answers not counted).
        self.failed_profiles = 0
        #: What ISO 15118 EVs said they take (their TxProfiles are capped to it, :mod:`.iso15118`).
        self.ev_limits: dict[EvseKey, EvLimits] = {}
        #: Stations that may still apply profiles of a process that ran before us (:meth:`resumed`), until when.
        self._inherited: set[str] = set()
        self._inherited_until = float("-inf")
        #: Demand-response events: the grid connection's limit lowered for a while (:meth:`curtail`).
        self.curtailments: dict[str, Curtailment] = {}
        self._curtailed: tuple[float, Site] | None = None
        #: Vehicles scheduled to depart from the site that are not plugged in yet (:meth:`expect`), by id.
        self.expected: dict[str, ExpectedVehicle] = {}
        #: EVSEs whose small decrease the last plan held (:meth:`_hold_small_decreases`): the spec they keep.
        self.band_held: dict[EvseKey, ProfileSpec] = {}

    # ---- facts ---------------------------------------------------------------------------------------
    def station_online(self, station_id: str, now: float, version: str | None = None) -> list[Command]:
        """Connected (or booted): its profiles may be gone, so everything is sent again."""
        if version is not None and self._versions.get(station_id) != version:
            self._versions[station_id] = version
            self._bindable_known.clear()
        self._online.add(station_id)
        self._inherited.discard(station_id)
        self.compliance.online(station_id, now)
        self.tracker.forget(station_id)
        return self.on_event("online", now)

    def resumed(self, now: float) -> None:
        """This planner takes over from a process that ran before (a restart): the stations, offline until
        they connect to us, may still apply the leased profiles it sent, which we never saw. Their running
        sessions are reserved at the EVSE's rating until those leases are over (for good without a lease)
        or the station connects and gets ours."""
        self._inherited = {e.station_id for e in self.site.evses} - self._online
        lease = self.config.profile_lease_s
        self._inherited_until = now + lease if lease is not None else float("inf")

    def version_of(self, station_id: str) -> str:
        return self._versions.get(station_id, OCPP16)

    def station_offline(self, station_id: str, now: float) -> list[Command]:
        if station_id in self._online:
            self.compliance.offline(station_id, now)
        self._online.discard(station_id)
        return self.on_event("offline", now)

    def plug_in(
        self,
        key: EvseKey,
        now: float,
        *,
        group: str | None = None,
        energy_needed_wh: float | None = None,
        departure: float | None = None,
        transaction_id: str | None = None,
    ) -> list[Command]:
        s = self._sessions.get(key)
        if s is None:
            s = self._sessions[key] = _Session(key, plugged_at=now, limit_since=now)
        s.group = group if group is not None else s.group
        s.energy_needed_wh = energy_needed_wh if energy_needed_wh is not None else s.energy_needed_wh
        s.departure = departure if departure is not None else s.departure
        if transaction_id is not None and s.transaction_id not in (None, transaction_id):
            self.tracker.forget(key[0], key[1], Purpose.TX)  # the old transaction's profile ended with it
            self._bindable_known.pop((key[0], s.transaction_id or ""), None)
        s.transaction_id = transaction_id if transaction_id is not None else s.transaction_id
        return self.on_event("plug_in", now)

    def transaction_started(
        self, key: EvseKey, transaction_id: str, now: float, *, group: str | None = None
    ) -> list[Command]:
        return self.plug_in(key, now, transaction_id=transaction_id, group=group)

    def ev_needs(
        self, key: EvseKey, now: float, *, energy_needed_wh: float | None, departure: float | None
    ) -> list[Command]:
        """Fleet schedule, driver/app input or 2.0.1 NotifyEVChargingNeeds."""
        s = self._sessions.get(key)
        if s is None:
            return self.plug_in(key, now, energy_needed_wh=energy_needed_wh, departure=departure)
        s.energy_needed_wh, s.departure = energy_needed_wh, departure
        return self.on_event("needs", now)

    def expect(self, vehicle_id: str, vehicle: ExpectedVehicle | None) -> None:
        """A vehicle on its way to the site (its energy need and departure from the fleet's records), or no
        longer (None: it plugged in, or has no departure from here). It only refines the next plan."""
        if vehicle is None:
            self.expected.pop(vehicle_id, None)
        else:
            self.expected[vehicle_id] = vehicle

    def renegotiate(self, key: EvseKey, now: float) -> list[Command]:
        """An ISO 15118 EV waits for a TxProfile (its new needs, or its schedule was rejected): re-plan and send
        its TxProfile even if the limit did not change."""
        self.tracker.forget(key[0], key[1], Purpose.TX)
        return self.on_event("needs", now)

    def stop(self, key: EvseKey, now: float) -> list[Command]:
        """Transaction ended or vehicle unplugged: the charger drops the TxProfile by itself."""
        s = self._sessions.pop(key, None)
        if s is None:
            return []
        self._bindable_known.pop((key[0], s.transaction_id or ""), None)
        self.ev_limits.pop(key, None)
        self.tracker.forget(key[0], key[1], Purpose.TX)
        return self.on_event("stop", now)

    def fault(self, key: EvseKey, now: float, *, active: bool = True) -> list[Command]:
        s = self._sessions.get(key)
        if s is not None:
            s.faulted = active
        return self.on_event("fault", now)

    def evse_meter(
        self,
        key: EvseKey,
        now: float,
        *,
        current_a: float | None = None,
        energy_wh: float | None = None,
        phases_in_use: int | None = None,
    ) -> list[Command]:
        """An EVSE's measured current (highest phase) and energy since plug-in: used at the next plan, except
        when it shows the EVSE drawing more than its allocation for minutes (then it is unmanaged, re-plan)."""
        s = self._sessions.get(key)
        if s is None:
            return []
        if energy_wh is not None:
            s.energy_wh = energy_wh
        if phases_in_use is not None:
            s.phases_in_use = phases_in_use
        if current_a is None:
            return []
        before, s.measured_a = s.measured_a, current_a
        self._followed(s, before, now)
        steered = key in self.held or (self.last_allocation is not None and key in self.last_allocation.limits_a)
        if (
            steered
            and self._strategy is not None
            and self.compliance.meter(
                key, now, measured_a=current_a, allocated_a=s.allocated_a, limit_since=s.limit_since
            )
        ):
            return self.on_event("overdraw", now)
        margin = self.config.accept_margin_a
        if s.accept_cap_a is not None and current_a >= s.accept_cap_a - margin / 2:
            s.accept_cap_a = None  # the vehicle pushes against its cap: it wants more
        elif now - s.limit_since >= self.config.settle_s and s.allocated_a > 0 and current_a < s.allocated_a - margin:
            # Never below the EVSE's minimum: a vehicle capped under it would be paused for good and could
            # never show that it wants more.
            floor = self.site.evse(key).min_current_a if key in self.site.index else 0.0
            cap = max(current_a + margin, floor)
            # At the cap already (the EVSE's minimum, for a vehicle that draws nothing: full but still plugged in), the
            # cap is kept all the same: dropped, the next plan that has room raises the limit again, and the cap comes
            # back two minutes later — a profile up and one down every few minutes until the vehicle leaves.
            if cap <= s.allocated_a:
                s.accept_cap_a = cap
        if steered and self._strategy is not None and key not in self.held and self._overdrawing(s, now):
            return self.on_event("overdraw", now)  # its excess is on the site now: the others give way
        return []

    def site_meter(
        self,
        now: float,
        *,
        phases_a: tuple[float, float, float] | None = None,
        power_w: float | None = None,
        includes_ev: bool = False,
        replan: bool = True,
    ) -> list[Command]:
        """A reading of the grid connection: per-phase currents or a total power (spread over 3 phases).
        ``includes_ev``: the meter sees the EVs too; their measured currents are subtracted. ``replan``
        False only records it (a starting process reading the store's recent readings)."""
        if phases_a is None:
            if power_w is None:
                raise ValueError("a site reading needs phases_a or power_w")
            each = power_w / (3 * self.site.root.voltage)
            phases_a = (each, each, each)
        load = np.asarray(phases_a, dtype=float)
        if includes_ev:
            for s in self._sessions.values():
                if s.measured_a and s.key in self.site.index:
                    load -= s.measured_a * phase_use(self.site.evse(s.key), s.phases_in_use)
        load = np.maximum(load, 0.0)
        self._readings.append((now, (float(load[0]), float(load[1]), float(load[2]))))
        self.forecast.observe(now, self._readings[-1][1])
        self.revision.bump()
        cutoff = now - self.config.meter_window_s
        self._readings = [r for r in self._readings if r[0] >= cutoff]
        return self.on_event("meter", now) if replan else []

    def call_result(self, command: Command, status: str, now: float) -> list[Command]:
        """The outcome of a command: the charger's ``Accepted``/``Rejected``, ``error`` (CALLERROR) or
        ``timeout``. A failure re-plans at once with that EVSE reserved (a Rejected or CALLERROR also makes
        the station unmanaged, see :mod:`.compliance`). An answer for a profile that no longer matters (the
        tracker's moot answer: a TxProfile whose transaction the CSMS saw end meanwhile) changes nothing: it
        is neither a failure nor held against the firmware."""
        evse_id, profile_id = profile_id_of(self.version_of(command.station_id), command.payload)
        tx = transaction_of(command.payload)
        if not self.tracker.on_response(command.station_id, evse_id, profile_id, status, now, tx):
            return []  # moot: its transaction ended meanwhile, the charger was right to refuse it
        if status != "Accepted":
            self.failed_profiles += 1
        changed = self.compliance.answer(command.station_id, status, now)
        return [] if status == "Accepted" and not changed else self.on_event("rejected", now)

    # ---- time ----------------------------------------------------------------------------------------
    def on_event(self, kind: str, now: float) -> list[Command]:
        """Re-plan because of ``kind`` (one of :data:`REPLAN_EVENTS`); within an open :class:`Deferral` scope only
        recorded as due (the scope's owner plans it at its end, and nothing is returned here)."""
        if kind not in REPLAN_EVENTS:
            raise ValueError(f"unknown event {kind!r}; expected one of {', '.join(sorted(REPLAN_EVENTS))}")
        deferral = self.deferral
        if deferral is not None and deferral.depth:
            deferral.mark(self, now)
            return []
        return self.replan(now)

    def curtail(self, event_id: str, start: float, end: float, limit_kw: float | None, now: float) -> list[Command]:
        """A demand-response event: from ``start`` to ``end`` the grid connection may draw at most ``limit_kw``
        (building included). ``limit_kw`` None cancels the event. The plan changes at its start and its end."""
        if limit_kw is None:
            self.curtailments.pop(event_id, None)
        else:
            self.curtailments[event_id] = Curtailment(event_id, start, end, max(0.0, limit_kw))
        self.curtailments = {k: c for k, c in self.curtailments.items() if c.end > now}
        self.revision.bump()
        return self.on_event("curtail", now)

    def curtailed_kw(self, now: float) -> float | None:
        """The lowest demand-response limit in force at ``now`` (None: none)."""
        limits = [c.limit_kw for c in self.curtailments.values() if c.start <= now < c.end]
        return min(limits) if limits else None

    def _site_at(self, now: float) -> Site:
        limit = self.curtailed_kw(now)
        if limit is None:
            return self.site
        root = self.site.root
        if root.limit_kw is not None and root.limit_kw <= limit:
            return self.site
        if self._curtailed is None or self._curtailed[0] != limit:
            self._curtailed = (limit, replace(self.site, root=replace(root, limit_kw=limit)))
        return self._curtailed[1]

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` wants to run next (None: nothing scheduled)."""
        if self._strategy is None:
            return None
        # A re-plan left due (its scope's owner plans it at the scope's end; this is the fallback).
        due = None if self.deferral is None else self.deferral.due.get(self)
        if due is not None:
            return due
        # Asked after every committed report: the earliest of the candidates without building a list of them.
        last = self._last_plan
        best = None if last is None else last + self.config.interval_s
        for c in self.curtailments.values():  # the plan changes when an event starts and when it ends
            for t in (c.start, c.end):
                if (last is None or t > last) and (best is None or t < best):
                    best = t
        retry = self.tracker.retry_deadline()
        if retry is not None and (best is None or retry < best):
            best = retry
        return best

    def handle_timer(self, now: float) -> list[Command]:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        return self.on_event("interval", now)

    # ---- planning ------------------------------------------------------------------------------------
    def building_load_a(self, now: float) -> tuple[float, float, float]:
        """The latest reading when fresh; else the highest of the window (conservative); else the assumption —
        raised, phase by phase, to the learnt profile's highest over the next ``building_lookahead_s``."""
        now_a = self._building_now_a(now)
        lookahead = self.config.building_lookahead_s
        ahead = None if lookahead is None else self.forecast.highest_a(now, now + lookahead)
        if ahead is None:
            return now_a
        return (max(now_a[0], ahead[0]), max(now_a[1], ahead[1]), max(now_a[2], ahead[2]))

    def building_billed_w(self, now: float) -> float | None:
        """The building's mean load (W) over the demand window ending ``now``, from the readings, when the latest is
        fresh (None otherwise, or without a demand charge): what a demand charge's level is kept against
        (``SiteState.building_billed_w``)."""
        if self.tariff is None or self.tariff.demand_charge_per_kw <= 0 or not self._readings:
            return None
        if now - self._readings[-1][0] > self.config.stale_after_s:
            return None
        start = now - DEMAND_WINDOW_S
        window = [sum(r) for t, r in self._readings if t > start]
        return sum(window) / len(window) * self.site.root.voltage

    def _building_now_a(self, now: float) -> tuple[float, float, float]:
        if not self._readings:
            return self.config.assumed_building_load_a
        t, latest = self._readings[-1]
        if now - t <= self.config.stale_after_s:
            return latest
        peak = np.max(np.array([r for _, r in self._readings]), axis=0)
        return (float(peak[0]), float(peak[1]), float(peak[2]))

    def reserved_a(self, now: float | None = None) -> dict[EvseKey, float]:
        """EVSEs planned at a fixed per-phase current (see the module's docstring), at ``now`` (default: the
        last plan)."""
        if now is None:
            now = self._last_plan if self._last_plan is not None else 0.0
        out = self._not_steered_a(now)
        return {**self.held_a(now, not_steered=out), **out}

    def _not_steered_a(self, now: float) -> dict[EvseKey, float]:
        out: dict[EvseKey, float] = {}
        bounds: dict[str, dict[int, float]] = {}
        online, flagged = self._online, self.compliance.flagged
        every_evse = self._evse_slots if flagged or not self._station_ids <= online else ()
        for e, key, _, _, _ in every_evse:
            if e.station_id not in online:
                if e.station_id not in bounds:
                    bounds[e.station_id] = self.tracker.applied_bounds(e.station_id, now)
                applied = bounds[e.station_id].get(e.evse_id, 0.0)
                applied = applied / (3 * e.voltage) if e.dc else applied
                if e.station_id in self._inherited and key in self._sessions and now < self._inherited_until:
                    applied = e.rating_a()  # a profile of the process before us, which we never saw
                out[key] = max(e.fallback_current_a, applied)
            elif e.station_id in flagged and self._unmanaged(key):  # (not flagged: steered)
                out[key] = self.worst_case_a(e)
        for spec, accepted in self.tracker.unresponsive():
            key = (spec.station_id, spec.evse_id)
            if key not in self.site.index:
                continue
            e = self.site.evse(key)
            amps = accepted if spec.unit == "A" else (accepted or 0.0) / (3 * e.voltage)
            out[key] = max(out.get(key, 0.0), e.fallback_current_a, amps or 0.0)
        return out

    def _followed(self, s: _Session, before: float | None, now: float) -> None:
        """A sample showing the EVSE come down to an allocation reduced lately: it follows profiles."""
        bound = s.allocated_a + self.compliance.overdraw_margin_a
        if (
            before is not None
            and before > bound >= float(s.measured_a or 0.0)
            and s.told_a(now, self.compliance.overdraw_grace_s) > bound
        ):
            self.compliance.followed.add(s.key)

    def ramping_a(self, allocation: Allocation, now: float) -> dict[EvseKey, float]:
        """EVSEs not yet seen following a reduction whose allocation is below what they had in the reaction
        window (and were measured drawing): at what they may still draw."""
        out: dict[EvseKey, float] = {}
        window, margin = self.compliance.overdraw_grace_s, self.compliance.overdraw_margin_a
        for key, new in allocation.limits_a.items():
            s = self._sessions.get(key)
            if s is None or key in self.compliance.followed:
                continue
            recent = s.told_a(now, window)
            if not math.isfinite(recent):
                continue  # nothing of ours yet: it has nothing to come down from
            drawing = recent if s.measured_a is None else min(recent, s.measured_a)
            if drawing > new + margin:
                out[key] = drawing
        return out

    def held_a(self, now: float, not_steered: Mapping[EvseKey, float] | None = None) -> dict[EvseKey, float]:
        """EVSEs we steer, measured above every allocation of the reaction window: at their measured draw."""
        fixed = self._not_steered_a(now) if not_steered is None else not_steered
        index, overdrawing = self.site.index, self._overdrawing
        return {
            key: float(s.measured_a or 0.0)
            for key, s in self._sessions.items()
            if key in index and key not in fixed and overdrawing(s, now)
        }

    def _overdrawing(self, s: _Session, now: float) -> bool:
        if s.measured_a is None or s.faulted:
            return False
        told = s.told_a(now, self.compliance.overdraw_grace_s)
        return s.measured_a > told + self.compliance.overdraw_margin_a

    def _unmanaged(self, key: EvseKey) -> bool:
        """Flagged for overdraw, or for a rejection that still stands (a slot of the station failing)."""
        reason = self.compliance.unmanaged(key)
        return reason == OVERDRAW or (reason == REJECTED and self.tracker.failing(key[0]))

    def worst_case_a(self, e: Evse) -> float:
        """What an EVSE no profile holds back may draw per phase: its rating, or more if it was measured so."""
        session = self._sessions.get(e.key)
        measured = session.measured_a if session is not None and session.measured_a is not None else 0.0
        return max(e.rating_a(), measured)

    def state(self, now: float, reserved_a: dict[EvseKey, float] | None = None) -> SiteState:
        """What the strategy plans with at ``now`` (``reserved_a``: :meth:`reserved_a` at ``now``, when the caller has
        it already)."""
        index = self.site.index
        sessions = {key: s.view() for key, s in self._sessions.items() if key in index}
        return SiteState(
            site=self._site_at(now),
            building_load_a=self.building_load_a(now),
            sessions=sessions,
            reserved_a=self.reserved_a(now) if reserved_a is None else reserved_a,
            tariff=self.tariff,
            peak_w=self.peak_w,
            expected=tuple(v for _, v in sorted(self.expected.items()) if v.departure > now),
            building_forecast=None if self.config.building_lookahead_s is None else self.forecast,
            dwell_s=self.config.min_dwell_s,
            building_billed_w=self.building_billed_w(now),
        )

    def replan(self, now: float) -> list[Command]:
        if self.deferral is not None:
            self.deferral.forget(self)  # (a plan made now is the one it was due)
        if self._strategy is None:
            return []
        not_steered = self._not_steered_a(now)
        self.held = self.held_a(now, not_steered=not_steered)
        state = self.state(now, reserved_a={**self.held, **not_steered})
        allocation = self._strategy(state, now)
        ramping = self.ramping_a(allocation, now)
        planned = state  # what the last strategy call planned (its problem is the one the holds are checked on)
        if ramping:
            # What they free goes to the others once they are seen to follow it (or the reaction time is over).
            # Under a demand charge a heuristic strategy gives the others never more than the plan without them: their
            # old draw must not lift the level the others are planned to (`optimal`'s LP plans its own peak).
            # Lowering a limit keeps every limit of the tree; each side is 0 or at least the EVSE's minimum.
            planned = replace(state, reserved_a={**state.reserved_a, **ramping})
            rest = self._strategy(planned, now)
            demand = (
                self.tariff is not None and self.tariff.demand_charge_per_kw > 0 and self.strategy_name != "optimal"
            )
            lower = {k: demand and allocation.limits_a.get(k, a) < a for k, a in rest.limits_a.items()}
            pick = {k: allocation if lower[k] or k in ramping else rest for k in rest.limits_a}
            pick |= {k: allocation for k in ramping}
            allocation = replace(
                rest,
                limits_a={k: alloc.limits_a[k] for k, alloc in pick.items()},
                power_w={k: alloc.power_w[k] for k, alloc in pick.items()},
            )
        allocation = self._hold_small_decreases(allocation, planned, ramping, now)
        self.last_allocation = allocation
        self._last_plan = now
        self.revision.bump()
        self.plans += 1
        # With a demand charge the vehicles are planned under the level against the building's mean (SiteState's
        # ``building_billed_w``), and so is the billing period's peak: a minute's noise neither moves them nor, by
        # ratcheting the peak they are then planned up to, lifts the level for the rest of the period.
        planned_w = allocation.total_w() + state.building_level_w
        self.peak_w = max(self.peak_w, self._demand_w(now, planned_w))
        held, limits_a, reserved_a = self.held, allocation.limits_a, state.reserved_a
        window_s, deadband_a = self.compliance.overdraw_grace_s, self.config.deadband_a
        for key, s in self._sessions.items():
            if key in held:
                continue  # keeps the allocation it is (perhaps slowly) going to
            amps = limits_a.get(key, 0.0)
            # What it may draw: its allocation, or what it is reserved at when it is not steered.
            told = limits_a.get(key, reserved_a.get(key, 0.0))
            s.allocate(told, now, window_s, deadband_a)
            if abs(amps - s.allocated_a) > deadband_a:
                s.limit_since = now
                if s.accept_cap_a is not None and amps < s.accept_cap_a:
                    s.accept_cap_a = None
            if key not in limits_a:
                s.switched_at = None  # not steered (reserved, faulted): whatever it does next is not a dwell of ours
            elif (amps > 0) != (s.allocated_a > 0):
                # A switch while a predecessor's stations are still reserved at their rating (a restart, a site lease
                # taken over: we never saw their profiles) is forced by those reservations, not chosen: no dwell.
                s.switched_at = now if now >= self._inherited_until else None
            s.allocated_a = amps
        return self._commands(self._desired(allocation, state), now)

    def _hold_small_decreases(
        self, allocation: Allocation, planned: SiteState, ramping: Mapping[EvseKey, float], now: float
    ) -> Allocation:
        """The allocation with the EVSEs whose change is within the deadband *held* at the limit their charger was
        sent (no profile sent; :meth:`.ProfileTracker.holds`). A small increase is held always (the tracker would not
        send it; the charger stays below it). A small decrease (not a pause) is held only while every hard limit of
        the tree — the rows of :func:`.build_problem`: each node's phase and kW limits, a demand-response curtailment
        included — and, under a demand charge, the billing period's peak still hold with every held EVSE at its sent
        limit; where a row would not, the decreases on it are sent, the largest first, until it does — over the demand
        charge's level, one EVSE is sent a limit that much lower instead (:func:`_fit_holds`).
        A held EVSE's allocation *is* its sent limit from here on (compliance, ramping, the report, the planned
        import, the next plan's dwell): nothing is planned on headroom the charger is still using."""
        self.band_held = {}
        tracker, limits = self.tracker, allocation.limits_a
        if tracker.deadband_a < 0 or tracker.deadband_w < 0:
            return allocation
        candidates = self._band_candidates(limits, ramping, now)
        if not candidates:
            return allocation
        problem = build_problem(planned, now)  # (the strategy's: ``planned`` has the ramping EVSEs reserved)
        col = {k: i for i, k in enumerate(problem.keys)}
        x = np.array([limits.get(k, 0.0) for k in problem.keys])
        lift = np.zeros(problem.n)
        for key, (sent_a, _) in candidates.items():
            if key in col:
                lift[col[key]] = sent_a - limits[key]
        A, b = problem.A, problem.b
        level_row = -1  # the demand charge's level, when there is one
        if self.tariff is not None and self.tariff.demand_charge_per_kw > 0:
            level_row = len(b)
            # The demand charge's level counts as hard here: a hold may spend headroom under the billing period's
            # peak, never raise it (nor, where the plan is above it already, add to it).
            A = np.vstack([A, problem.watts_per_a.reshape(1, -1) / 1000.0])
            b = np.append(b, (self.peak_w - problem.billed_fixed_w) / 1000.0)
        # How low the level's excess may take a held EVSE: its minimum current, and at most the deadband below its
        # allocation (the next plan's way back up to it is then held, not sent). No level: nothing is trimmed.
        lowest = problem.floor
        if level_row >= 0:
            keys, watts_per_a = problem.keys, problem.watts_per_a.tolist()
            deadband = np.array([self._deadband_a(k, w) for k, w in zip(keys, watts_per_a, strict=True)])
            lowest = np.maximum(lowest, x - deadband)
        trimmed = _fit_holds(A, b, x, lift, lowest, level_row)
        changed = {k: float(x[col[k]] + lift[col[k]]) for k in candidates if k in col and trimmed[col[k]]}
        held = {k: c for k, c in candidates.items() if k in col and lift[col[k]] != 0 and not trimmed[col[k]]}
        if not held and not changed:
            return allocation
        self.band_held = {k: spec for k, (_, spec) in held.items()}
        power = dict(allocation.power_w)
        for key, (sent_a, _) in held.items():
            power[key] = float(sent_a * problem.watts_per_a[col[key]])
        for key, amps in changed.items():
            power[key] = float(amps * problem.watts_per_a[col[key]])
        held_a = {k: a for k, (a, _) in held.items()}
        return replace(allocation, limits_a={**limits, **held_a, **changed}, power_w=power)

    def _deadband_a(self, key: EvseKey, watts_per_a: float) -> float:
        """The tracker's deadband for ``key`` in A per phase (a DC EVSE's is in W)."""
        tracker = self.tracker
        return tracker.deadband_w / watts_per_a if self.site.evse(key).dc else tracker.deadband_a

    def _band_candidates(
        self, limits: Mapping[EvseKey, float], ramping: Mapping[EvseKey, float], now: float
    ) -> dict[EvseKey, tuple[float, ProfileSpec]]:
        """The steered EVSEs whose allocation is a small change from the spec carrying their limit that may be held
        (:meth:`.ProfileTracker.holds`), with that spec's limit in A per phase. Not one overdrawing (:attr:`held`),
        ramping, ISO 15118 capped, or whose next spec would differ in more than its limit."""
        tracker, online, sessions, held = self.tracker, self._online, self._sessions, self.held
        index, evse_slots, ev_limits = self.site.index, self._evse_slots, self.ev_limits
        out: dict[EvseKey, tuple[float, ProfileSpec]] = {}
        for key, amps in limits.items():
            s = sessions.get(key)
            if amps <= 0 or s is None or key in ramping or key in held or key in ev_limits:
                continue
            j = index.get(key)
            if j is None or key[0] not in online:
                continue
            e, _, default_slot, tx_slot, _ = evse_slots[j]
            tx = s.transaction_id
            bindable = tx is not None and self._bindable(key[0], tx)
            sent = tracker.sent_in(tx_slot if bindable else default_slot)
            if sent is None or sent.transaction_id != (tx if bindable else None):
                continue
            same_shape = sent.unit == "W" if e.dc else sent.number_phases == e.phases_used(s.phases_in_use)
            if same_shape and tracker.holds(sent, e.power_w(amps) if e.dc else amps, now):
                out[key] = (sent.limit / e.power_w(1.0) if e.dc else sent.limit, sent)
        return out

    def _demand_w(self, now: float, planned_w: float) -> float:
        """The planned import averaged over the demand window ending one interval after ``now`` (each plan holds
        until the next; this one for an interval): what a utility's demand meter would read if the plans held.
        The peak is kept on that average, so a minute's noise (the building's) does not raise it for the night."""
        self._planned.append((now, planned_w))
        end = now + self.config.interval_s
        start = end - DEMAND_WINDOW_S
        while len(self._planned) > 1 and self._planned[1][0] <= start:
            del self._planned[0]
        energy = 0.0
        for (t, w), nxt in zip(self._planned, [*(p[0] for p in self._planned[1:]), end], strict=True):
            energy += w * max(0.0, nxt - max(t, start))
        span = end - max(self._planned[0][0], start)
        return energy / span if span > 0 else planned_w

    def _desired(self, allocation: Allocation, state: SiteState) -> list[ProfileSpec]:
        out: list[ProfileSpec] = []
        send_station_max, limits_a, reserved_a = self.config.send_station_max, allocation.limits_a, state.reserved_a
        online, held, sessions, caps, spec_of = self._online, self.held, self._sessions, self._station_caps, self._spec
        # (an enum member is looked up through the enum class: once per plan, not per EVSE)
        band, tx_default, tx_purpose = self.band_held, Purpose.TX_DEFAULT, Purpose.TX
        for e, key, default_slot, tx_slot, station_first in self._evse_slots:
            station_id = e.station_id
            if station_id not in online:
                continue
            if send_station_max and station_first:
                cap = caps[station_id] if station_id in caps else self.station_cap(station_id)
                if cap is not None:
                    out.append(cap)
            session = sessions.get(key)
            amps = limits_a.get(key)
            if key in held and session is not None:
                continue  # held: it keeps the allocation, and so the profile, it was given (module docstring)
            if key in reserved_a:  # not steered: the fallback, which is all it may draw once compliant
                out.append(spec_of(e, tx_default, default_slot, e.fallback_current_a, None))
                tx = session.transaction_id if session is not None else None
                if tx is not None and self._bindable(station_id, tx):
                    out.append(spec_of(e, tx_purpose, tx_slot, e.fallback_current_a, tx))
            elif session is None or amps is None:
                out.append(spec_of(e, tx_default, default_slot, e.fallback_current_a, None))
            elif session.transaction_id is not None and self._bindable(station_id, session.transaction_id):
                out.append(spec_of(e, tx_default, default_slot, e.fallback_current_a, None))
                # A small decrease held (:meth:`_hold_small_decreases`): the spec sent (never ISO 15118 capped).
                tx_spec = band.get(key) or spec_of(
                    e, tx_purpose, tx_slot, amps, session.transaction_id, session.phases_in_use
                )
                ev = self.ev_limits.get(key)
                out.append(tx_spec if ev is None else capped(tx_spec, ev))
            else:
                out.append(band.get(key) or spec_of(e, tx_default, default_slot, amps, None, session.phases_in_use))
        return out

    def _bindable(self, station_id: str, transaction_id: str) -> bool:
        """A TxProfile can name this transaction (1.6 transaction ids are integers); otherwise the EVSE's
        TxDefaultProfile carries the limit. Kept per (station, transaction) until a station's version changes (a plan
        asks it up to twice per session)."""
        known = self._bindable_known.get((station_id, transaction_id))
        if known is None:
            known = self._bindable_known[station_id, transaction_id] = (
                self.version_of(station_id) != OCPP16 or transaction_id.lstrip("-").isdigit()
            )
        return known

    def _spec(
        self,
        e: Evse,
        purpose: Purpose,
        slot: tuple[str, int, str],
        amps: float,
        tx: str | None,
        phases_in_use: int | None = None,
    ) -> ProfileSpec:
        """A profile at ``amps``, leased when that is not the fallback (see :mod:`.profiles`); ``slot``: the EVSE's
        for ``purpose`` in :attr:`_evse_slots`."""
        lease = self.config.profile_lease_s
        given = (amps, tx, phases_in_use, lease)
        last = self._specs.get(slot)
        if last is not None and last[0] == given:
            return last[1]  # the same as the last plan's: the same (frozen) spec, which the tracker finds unchanged
        if e.dc:
            fallback_w = e.power_w(e.fallback_current_a)
            spec = ProfileSpec(e.station_id, e.evse_id, purpose, e.power_w(amps), "W", None, tx, fallback_w, lease)
        else:
            phases = e.phases_used(phases_in_use)
            spec = ProfileSpec(e.station_id, e.evse_id, purpose, amps, "A", phases, tx, e.fallback_current_a, lease)
        self._specs[slot] = (given, spec)
        return spec

    def station_cap(self, station_id: str) -> ProfileSpec | None:
        """The station-wide cap: the tightest per-phase limit of the nodes above the station, when it is
        below what the station's EVSEs could draw together. None when it would not bind.

        Kept per station: it depends only on the (frozen) site, and every re-plan asks it for every station."""
        if station_id not in self._station_caps:
            self._station_caps[station_id] = self._station_cap(station_id)
        return self._station_caps[station_id]

    def _station_cap(self, station_id: str) -> ProfileSpec | None:
        site, tree = self.site, self.site.compiled
        cols = [j for j, e in enumerate(site.evses) if e.station_id == station_id]
        evses = [site.evses[j] for j in cols]
        above = tree.member[:, cols].any(axis=1)
        limit = float(np.min(tree.phase_limit_a[above] - tree.margin_a[above, None])) if above.any() else np.inf
        if evses[0].dc or not np.isfinite(limit):
            return None
        per_phase = np.zeros(3)
        for e in evses:
            per_phase += e.rating_a() * phase_use(e, None)
        if limit >= float(per_phase.max()):
            return None
        return ProfileSpec(station_id, 0, Purpose.STATION_MAX, max(limit, 0.0), "A", 3)

    def _commands(self, desired: list[ProfileSpec], now: float) -> list[Command]:
        out = []
        for spec in self.tracker.changes(desired, now):
            version = self.version_of(spec.station_id)
            action, payload = commands.set_charging_profile(version, charging_profile(spec, now))
            out.append(Command(spec.station_id, action, payload))
        return out


def _fit_holds(
    A: np.ndarray, b: np.ndarray, x: np.ndarray, lift: np.ndarray, lowest: np.ndarray, level_row: int
) -> np.ndarray:
    """Bring the rows ``A (x + lift) <= b`` back under their limit (a row already over, overloaded, must not get
    worse) by changing ``lift`` in place, the held EVSEs' sent limits above their allocation ``x``; returns which
    EVSEs were *trimmed*: sent a limit ``x + lift`` of their own, neither held nor their allocation.

    Over the demand charge's level (row ``level_row``; -1: none) the excess is taken from the held decreases with the
    largest limits, one at a time, each sent a limit lower than its sent one, down to ``lowest`` (one profile each);
    when none is left, and on the tree's rows, the hold that adds most to the row is dropped (its decrease sent as
    planned). Dropping every small decrease on the level sent one to each EVSE at the level whenever the building's
    mean rose a little. Not on the tree's rows: there it would change which minute a profile falls in for no gain,
    and multifamily-peak's CDRs are checked to the cent."""
    base = A @ x
    trimmed = np.zeros(len(x), dtype=bool)
    while True:
        over = base + A @ lift - np.maximum(b, base)
        worst = int(np.argmax(over)) if len(over) else -1
        if worst < 0 or over[worst] <= EPS:
            return trimmed
        on_row = np.flatnonzero((A[worst] > 0) & (lift > 0) & ~trimmed) if worst == level_row else np.empty(0, int)
        if len(on_row):
            i = int(on_row[np.argmax((x + lift)[on_row])])
            lowered = max(x[i] + lift[i] - over[worst] / A[worst, i], lowest[i])
            if lowered < x[i] + lift[i] - EPS and lowered > 0:
                lift[i] = lowered - x[i]
                trimmed[i] = True
                continue
        i = int(np.argmax(A[worst] * lift))  # drop the hold (a decrease) that adds most to the worst row
        lift[i] = 0.0
        trimmed[i] = False
