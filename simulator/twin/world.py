"""The twin's SimPy world: vehicles arriving, plugging in and leaving; connectors delivering power; the site
meter logging ground truth.

Theory of operation. ``TwinWorld`` builds from a ``TwinSpec`` (the harness maps a scenario onto it) and one
``random.Random``:

* a vehicle (``_vehicle_*``, one chain of timeouts per vehicle): waits for its arrival, takes
  ``plug_in_delay`` to plug in at the first free connector it may use (waiting for one if all are taken),
  stays until its departure, unplugs.
* a connector's delivery (``_deliver``, run by each of its wake-ups): integrates the present power up to now,
  then chooses the power for the next interval (min of vehicle acceptance, rating, the firmware's charging
  limit, zero unless the firmware energizes the connector) and sleeps until the next physics step, or until
  the battery is at its charge limit. A plug, an unplug or ``reevaluate`` wakes it so the change applies at once.

  Vehicles and connectors are callbacks on SimPy events rather than SimPy processes (a process is a generator
  frame, a ``Process`` event and, while idle, an event that never fires: ~0.9 kB a charger held all run). The
  events are the ones the processes made, created at the same moments: a start or a wake-up is an event due
  now ahead of the instant's other events (``_Now``, as SimPy schedules a process's start and an interrupt), so
  SimPy orders every event as it did.
* ``site_meter`` (one process): at every physics step, integrates every connector up to the step boundary
  and logs the step's building load, EV load and import. The run ends when this process has logged the
  last step (``done``).

Randomness: two child generators are seeded from the run's generator at construction (vehicle sampling by
``arrivals.plan_fleet`` and ``assign: random``, building-load noise), so adding a draw in one stream does not
shift the other. Time: ``env.now`` seconds
since the scenario start is the only clock.
"""

from __future__ import annotations

import functools
import math
import random
from array import array
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import cast

import simpy
from simpy.events import URGENT

from simulator.twin.arrivals import Arrival, plan_fleet
from simulator.twin.evse import EvsePowerModel
from simulator.twin.interfaces import (
    AlwaysOn,
    ConnectorRef,
    MeterReading,
    StationHooks,
    VehicleInfo,
)
from simulator.twin.records import SessionRecord, VehicleRecord
from simulator.twin.site_meter import BuildingLoad, MeterStep, SiteMeter
from simulator.twin.specs import StationSpec, TwinSpec
from simulator.twin.vehicle import Vehicle

__all__ = ["TwinWorld"]

ProcessGenerator = Generator[simpy.Event, object, None]


class _Now(simpy.Event):
    """An event due at the present instant, ahead of the instant's normal events: how SimPy starts a process
    (``Initialize``) and interrupts one (``Interruption``), here running ``callback``."""

    def __init__(self, env: simpy.Environment, callback: Callable[[simpy.Event], None]) -> None:
        self.env = env
        self.callbacks = [callback]
        self._ok = True
        self._value = None
        env.schedule(self, URGENT)


@dataclass(slots=True)
class _Trip:
    """A vehicle's plan and what has happened to it so far."""

    plan: Arrival
    plug_in_s: float | None = None
    departure_s: float | None = None
    connector: ConnectorRef | None = None
    full_at_s: float | None = None
    #: The plan's vehicle, kept as a field: read at every settle and re-plan of its connector.
    vehicle: Vehicle = field(init=False)

    def __post_init__(self) -> None:
        self.vehicle = self.plan.vehicle

    def info(self) -> VehicleInfo:
        plan, v = self.plan, self.plan.vehicle
        return VehicleInfo(
            v.vehicle_id,
            v.model,
            plan.id_token,
            plan.group,
            v.battery_kwh,
            v.soc,
            v.target_soc,
            plan.planned_departure_s,
            plan.plug_and_charge,
            plan.iso15118,
            v.max_ac_kw,
            v.max_dc_kw,
            plan.pays_by_card,
        )

    def record(self) -> VehicleRecord:
        plan, v = self.plan, self.plan.vehicle
        return VehicleRecord(
            vehicle_id=v.vehicle_id, model=v.model, group=plan.group, id_token=plan.id_token,
            arrival_s=plan.arrival_s, plug_in_s=self.plug_in_s, planned_departure_s=plan.planned_departure_s,
            departure_s=self.departure_s, connector=self.connector, soc_on_arrival=plan.soc_on_arrival,
            soc_at_departure=v.soc, target_soc=v.target_soc, energy_received_kwh=v.energy_received_kwh,
            full_at_s=self.full_at_s,
        )  # fmt: skip


@dataclass(eq=False, slots=True)
class _Connector:
    ref: ConnectorRef
    index: int  # position in the world's connector order (the site meter sums in this order)
    station: StationSpec
    evse: EvsePowerModel
    trip: _Trip | None = None
    last_s: float = 0.0
    #: Runs the next delivery step (``TwinWorld._step`` bound to this connector): None until the world starts.
    step: Callable[[simpy.Event], None] | None = None
    #: The timeout its delivery sleeps on (None: not delivering; only a wake-up runs it then).
    sleep: simpy.Timeout | None = None
    running: bool = False  # its delivery step runs now (a wake-up from inside asks for one more re-plan)
    wake_pending: bool = False
    suspended_notified: bool = False
    replan_again: bool = False
    reading: MeterReading | None = None  # the last reading, while nothing has changed at its instant
    #: (t_s, energy register Wh, power W from then on), a row each time the power changed: the truth of what
    #: the connector delivered when (between rows the register rises in a straight line). Flat, three doubles a
    #: row (24 bytes instead of a 136-byte tuple of floats): it grows all run long, for every connector.
    power_log: array[float] = field(default_factory=lambda: array("d"))


class TwinWorld:
    """The physics of one run.

    Args:
        spec: the site, its stations and the fleets (``simulator.scenario.to_twin.twin_spec`` maps a scenario).
        rng: the run's only random generator.
        hooks: the charger firmware; ``AlwaysOn`` (energize whenever plugged) if omitted.
        env: a SimPy environment to share with the firmware and links; a new one if omitted.
        step_s: physics step; the spec's ``step_s`` if omitted.
    """

    def __init__(
        self,
        spec: TwinSpec,
        rng: random.Random,
        *,
        hooks: StationHooks | None = None,
        env: simpy.Environment | None = None,
        step_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.env = env if env is not None else simpy.Environment()
        self.hooks: StationHooks = hooks if hooks is not None else AlwaysOn()
        self.step_s = float(step_s if step_s is not None else spec.step_s)
        if self.step_s <= 0:
            raise ValueError("step_s must be positive")
        self.end_s = float(spec.duration_s)
        self._vehicle_rng = random.Random(rng.getrandbits(64))
        self._noise_rng = random.Random(rng.getrandbits(64))
        site = spec.site
        self.building_load = BuildingLoad(site.building_load_points, site.building_noise_kw)
        self.site = SiteMeter(site.grid_limit_kw, site.phase_limits_a)
        self.voltage = site.voltage
        #: The building load of the present step (what a meter at the grid connection reads now, less EVs).
        self.building_kw_now = 0.0
        self._start_utc = spec.start.astimezone(UTC)
        self._connectors: dict[ConnectorRef, _Connector] = {}
        for station in spec.stations:
            for n in range(1, station.connectors + 1):
                ref = ConnectorRef(station.station_id, n)
                evse = EvsePowerModel(station.max_kw, station.current, station.phases, station.voltage, spec.efficiency)
                self._connectors[ref] = _Connector(ref, len(self._connectors), station, evse)
        #: Connectors that delivered power at some time in the present step (the site meter's work list).
        self._delivering: set[_Connector] = set()
        self._trips: list[_Trip] = [
            _Trip(plan) for fleet in spec.fleets for plan in plan_fleet(fleet, self._vehicle_rng, self.end_s)
        ]
        self._waiting: list[tuple[_Trip, simpy.Event]] = []
        self._started = False
        self._done: simpy.Process | None = None

    # -- public ---------------------------------------------------------------------------------------
    @property
    def connectors(self) -> tuple[ConnectorRef, ...]:
        return tuple(self._connectors)

    def evse(self, ref: ConnectorRef) -> EvsePowerModel:
        """The power model of one connector (read it, do not drive it)."""
        return self._connectors[ref].evse

    def start(self) -> simpy.Process:
        """Start every process (once) and return ``done``, the process that ends with the last step."""
        if not self._started:
            self._started = True
            for conn in self._connectors.values():
                conn.step = functools.partial(self._step, conn)
                _Now(self.env, conn.step)
            for trip in self._trips:
                _Now(self.env, functools.partial(self._vehicle_start, trip))
            self._done = self.env.process(self.site_meter())
        assert self._done is not None
        return self._done

    @property
    def done(self) -> simpy.Process:
        return self.start()

    def run(self) -> None:
        """Run the scenario to its end (the last meter step is logged)."""
        self.env.run(until=self.start())

    def meter(self, ref: ConnectorRef) -> MeterReading:
        """Present electrical state of a connector, energy integrated up to ``env.now``."""
        conn = self._connectors[ref]
        reading = conn.reading
        now = self.env.now
        if reading is not None and reading.now_s == now:
            return reading  # a firmware sample reads several quantities at one instant
        self._settle(conn)
        evse = conn.evse
        trip = conn.trip
        reading = conn.reading = MeterReading(
            now, evse.energy_register_wh, evse.power_w, evse.voltage_v, evse.current_a,
            evse.phase_currents_a, evse.active_phases,
            trip.vehicle.soc if trip is not None and evse.current == "DC" else None, trip is not None,
        )  # fmt: skip
        return reading

    def ref(self, station_id: str, connector_id: int) -> ConnectorRef:
        """The world's own key of a connector: a lookup by the very key object skips comparing its fields."""
        return self._connectors[ConnectorRef(station_id, connector_id)].ref

    def power_log(self, ref: ConnectorRef) -> list[tuple[float, float, float]]:
        """The connector's delivery as the physics ran it: (t_s, energy register Wh, power W from then on), a row
        each time its power changed; between two rows the register rises in a straight line."""
        log = self._connectors[ref].power_log
        return list(zip(log[0::3], log[1::3], log[2::3], strict=True))

    def power_w(self, ref: ConnectorRef) -> float:
        """The connector's power now (``meter(ref).power_w`` without the rest of the reading)."""
        conn = self._connectors[ref]
        self._settle(conn)
        return conn.evse.power_w

    def may_deliver(self) -> set[ConnectorRef]:
        """The connectors that delivered power at some time in the present step; every other one is at 0 W."""
        return {conn.ref for conn in self._delivering}

    def reevaluate(self, ref: ConnectorRef) -> None:
        """Apply a change of ``is_energizing``/``charging_limit`` now rather than at the next step."""
        self._wake(self._connectors[ref])

    def arrivals(self) -> list[Arrival]:
        """Every vehicle's planned visit (arrival, departure, SoC on arrival), in fleet order."""
        return [trip.plan for trip in self._trips]

    def vehicle_records(self) -> list[VehicleRecord]:
        """Ground truth per vehicle (those still on site are integrated up to now)."""
        for conn in self._connectors.values():
            self._settle(conn)
        return [trip.record() for trip in self._trips]

    def session_records(self) -> list[tuple[SessionRecord, float]]:
        """Every plugged-in stay as an offline-optimum session with the energy it received towards its
        target (kWh)."""
        self.vehicle_records()  # integrate up to now
        out = []
        for trip in self._trips:
            if trip.plug_in_s is None or trip.connector is None:
                continue
            v, conn = trip.vehicle, self._connectors[trip.connector]
            evse = conn.evse
            if evse.current == "AC":
                used = min(evse.phases, v.ac_phases)
                max_kw = min(v.max_ac_kw, v.max_dc_kw, evse.rating_kw * used / evse.phases)
                phases = conn.station.site_phases[:used]
            else:
                max_kw = min(v.max_dc_kw, evse.rating_kw)
                phases = (0, 1, 2)
            needed = max(0.0, (min(v.target_soc, v.charge_limit_soc) - trip.plan.soc_on_arrival) * v.battery_kwh)
            end = trip.departure_s if trip.departure_s is not None else self.env.now
            record = SessionRecord(
                v.vehicle_id, trip.plug_in_s, max(end, trip.plug_in_s), needed, max_kw, phases, self.voltage
            )
            out.append((record, min(v.energy_received_kwh, needed)))
        return out

    def plugged_socs(self) -> dict[str, float]:
        """State of charge of every plugged vehicle, integrated up to now (for plots)."""
        out: dict[str, float] = {}
        for conn in self._connectors.values():
            if conn.trip is not None:
                self._settle(conn)
                out[conn.trip.vehicle.vehicle_id] = conn.trip.vehicle.soc
        return out

    @property
    def ground_truth(self) -> tuple[MeterStep, ...]:
        return self.site.log

    # -- processes ------------------------------------------------------------------------------------
    # A vehicle: arrival, plug-in delay, a free connector (or a wait for one until its departure), departure.
    def _vehicle_start(self, trip: _Trip, _event: simpy.Event) -> None:
        self.env.timeout(trip.plan.arrival_s).callbacks.append(functools.partial(self._vehicle_arrived, trip))

    def _vehicle_arrived(self, trip: _Trip, _event: simpy.Event) -> None:
        env, plan = self.env, trip.plan
        delay = env.timeout(min(plan.plug_in_delay_s, max(plan.planned_departure_s - env.now, 0.0)))
        delay.callbacks.append(functools.partial(self._vehicle_at_connectors, trip))

    def _vehicle_at_connectors(self, trip: _Trip, _event: simpy.Event) -> None:
        env, plan = self.env, trip.plan
        conn = self._free_connector(trip)
        if conn is None:
            granted = env.event()
            self._waiting.append((trip, granted))
            wait = granted | env.timeout(max(plan.planned_departure_s - env.now, 0.0))
            wait.callbacks.append(functools.partial(self._vehicle_waited, trip, granted))
            return
        self._vehicle_plugs(trip, conn)

    def _vehicle_waited(self, trip: _Trip, granted: simpy.Event, _event: simpy.Event) -> None:
        if not granted.triggered:
            self._waiting.remove((trip, granted))
            trip.departure_s = self.env.now
            return
        self._vehicle_plugs(trip, cast(_Connector, granted.value))  # what connector_available/_unplug grant

    def _vehicle_plugs(self, trip: _Trip, conn: _Connector) -> None:
        env = self.env
        self._plug(conn, trip)
        stay = env.timeout(max(trip.plan.planned_departure_s - env.now, 0.0))
        stay.callbacks.append(functools.partial(self._vehicle_leaves, trip, conn))

    def _vehicle_leaves(self, trip: _Trip, conn: _Connector, _event: simpy.Event) -> None:
        self._unplug(conn)
        trip.departure_s = self.env.now

    # A connector: each wake-up (its start, the end of its sleep, a plug, an unplug, ``reevaluate``) runs one step.
    def _step(self, conn: _Connector, event: simpy.Event) -> None:
        sleep = conn.sleep
        if sleep is not None and event is not sleep:  # woken early: the sleep's timeout no longer runs it
            assert conn.step is not None and sleep.callbacks is not None
            sleep.callbacks.remove(conn.step)
        conn.sleep = None
        conn.running = True
        try:
            self._deliver(conn)
        finally:
            conn.running = False

    def _deliver(self, conn: _Connector) -> None:
        """Delivering, the connector re-plans at every physics step (the vehicle's acceptance follows its
        SoC) and when the battery is full. Not delivering, nothing can change its power but an event the
        firmware or a driver reports (``reevaluate``, plug, unplug, which wake it), so it sleeps until then."""
        env = self.env
        conn.wake_pending = False
        self._settle(conn)
        self._replan(conn)
        self._log_power(conn)
        until_full_s = conn.evse.seconds_until_full()  # None when not delivering
        if until_full_s is not None:
            assert conn.step is not None
            self._delivering.add(conn)
            sleep = conn.sleep = env.timeout(min(self._next_tick(env.now) - env.now, until_full_s))
            sleep.callbacks.append(conn.step)

    def site_meter(self) -> ProcessGenerator:
        env = self.env
        t_s = env.now
        total_wh = self._total_register_wh()
        registers = {ref: conn.evse.energy_register_wh for ref, conn in self._connectors.items()}
        while t_s < self.end_s:
            building_kw = self.building_load.sample_kw(self._hour_of_day(t_s), self._noise_rng)
            self.building_kw_now = building_kw
            t_next = min(self._next_tick(t_s), self.end_s)
            yield env.timeout(t_next - env.now)
            # Only connectors that delivered in this step have moved their registers; the others are skipped.
            delivered = sorted(self._delivering, key=lambda c: c.index)
            for conn in delivered:
                self._settle(conn)
            self._delivering = {conn for conn in delivered if conn.evse.power_w > 0}
            new_total_wh = self._total_register_wh()
            duration_s = t_next - t_s
            hours = duration_s / 3600.0
            ev_kw = (new_total_wh - total_wh) / 1000.0 / hours
            # Per phase: the building balanced over three phases, each connector's step energy on the site
            # phases it is wired to (the first ones its vehicle uses; DC balanced over three).
            phase_a = [building_kw * 1000.0 / (3 * self.voltage)] * 3
            for conn in delivered:
                ref = conn.ref
                now_wh = conn.evse.energy_register_wh
                kw = (now_wh - registers[ref]) / 1000.0 / hours
                registers[ref] = now_wh
                if kw <= 0:
                    continue
                wired = conn.station.site_phases
                used = wired if conn.evse.current == "DC" else wired[: conn.evse.active_phases]
                for p in used:
                    phase_a[p] += kw * 1000.0 / (len(used) * self.voltage)
            self.site.record(t_s, duration_s, building_kw, ev_kw, (phase_a[0], phase_a[1], phase_a[2]))
            t_s, total_wh = t_next, new_total_wh

    # -- internals ------------------------------------------------------------------------------------
    def _next_tick(self, t_s: float) -> float:
        return (math.floor(t_s / self.step_s + 1e-9) + 1) * self.step_s

    def _hour_of_day(self, t_s: float) -> float:
        local = (self._start_utc + timedelta(seconds=t_s)).astimezone(self.spec.start.tzinfo)
        return local.hour + local.minute / 60.0 + (local.second + local.microsecond / 1e6) / 3600.0

    def _total_register_wh(self) -> float:
        return sum(conn.evse.energy_register_wh for conn in self._connectors.values())

    def _usable(self, conn: _Connector, trip: _Trip) -> bool:
        return (
            conn.trip is None
            and (trip.plan.allowed is None or conn.ref.station_id in trip.plan.allowed)
            # Drivers do not plug into a charger that shows it is out of service.
            and self.hooks.is_available(conn.ref)
        )

    def connector_available(self, ref: ConnectorRef) -> None:
        """The firmware reports a connector back in service: hand it to the longest-waiting vehicle."""
        conn = self._connectors[ref]
        if conn.trip is not None:
            return
        for i, (waiting, granted) in enumerate(self._waiting):
            if self._usable(conn, waiting):
                del self._waiting[i]
                granted.succeed(conn)
                return

    def _free_connector(self, trip: _Trip) -> _Connector | None:
        free = [c for c in self._connectors.values() if self._usable(c, trip)]
        if not free:
            return None
        return free[0] if trip.plan.assign == "first_free" else self._vehicle_rng.choice(free)

    def _plug(self, conn: _Connector, trip: _Trip) -> None:
        self._settle(conn)
        conn.trip, conn.reading = trip, None
        conn.suspended_notified = False
        trip.plug_in_s, trip.connector = self.env.now, conn.ref
        if trip.full_at_s is None and trip.vehicle.is_full:
            trip.full_at_s = self.env.now
        self.hooks.on_plug_in(conn.ref, trip.info(), self.env.now)
        self._wake(conn)

    def _unplug(self, conn: _Connector) -> None:
        self._settle(conn)
        trip = conn.trip
        assert trip is not None
        conn.evse.set_power(None)
        self._log_power(conn)
        conn.trip, conn.reading = None, None
        self.hooks.on_unplug(conn.ref, trip.info(), self.env.now)
        self._wake(conn)
        for i, (waiting, granted) in enumerate(self._waiting):
            if self._usable(conn, waiting):
                del self._waiting[i]
                granted.succeed(conn)
                break

    def _settle(self, conn: _Connector) -> None:
        now = self.env.now
        dt_s = now - conn.last_s
        conn.last_s = now
        if dt_s > 0 and conn.evse.power_w > 0:  # at 0 W nothing moves
            conn.evse.run_for(dt_s)
            # A battery fills only here (or is full when it plugs in: ``_plug``).
            trip = conn.trip
            if trip is not None and trip.full_at_s is None and trip.vehicle.is_full:
                trip.full_at_s = now

    def _log_power(self, conn: _Connector) -> None:
        power_w = conn.evse.power_w
        log = conn.power_log
        if not log or log[-1] != power_w:
            log.extend((self.env.now, conn.evse.energy_register_wh, power_w))

    def _replan(self, conn: _Connector) -> None:
        conn.reading = None
        for _ in range(3):  # the firmware may ask to reevaluate from inside a hook; honour it promptly
            conn.replan_again = False
            trip, now = conn.trip, self.env.now
            if trip is None or not self.hooks.is_energizing(conn.ref):
                conn.evse.set_power(None)
                return
            limit = self.hooks.charging_limit(conn.ref, now)
            conn.evse.set_power(
                trip.vehicle,
                limit_w=limit.limit_w if limit else None,
                limit_a=limit.limit_a if limit else None,
            )
            if trip.vehicle.acceptance_kw(conn.evse.current) <= 0 and not conn.suspended_notified:
                conn.suspended_notified = True
                self.hooks.on_ev_suspended(conn.ref, now)
            if not conn.replan_again:
                return

    def _wake(self, conn: _Connector) -> None:
        if conn.step is None:  # the world has not started
            return
        if conn.running:
            conn.replan_again = True
        elif not conn.wake_pending:
            conn.wake_pending = True
            _Now(self.env, conn.step)
