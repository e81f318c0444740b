"""The twin's SimPy world: vehicles arriving, plugging in and leaving; connectors delivering power; the site
meter logging ground truth.

Theory of operation. ``TwinWorld`` builds from a ``Scenario`` and one ``random.Random``:

* ``vehicle`` (one process per vehicle): waits for its arrival, takes ``plug_in_delay`` to plug in at the
  first free connector it may use (waiting for one if all are taken), stays until its departure, unplugs.
* ``evse_delivery`` (one process per connector): integrates the present power up to now, then chooses the
  power for the next interval (min of vehicle acceptance, rating, the firmware's charging limit, zero unless
  the firmware energizes the connector) and sleeps until the next physics step, or until the battery is at
  its charge limit. A plug, an unplug or ``reevaluate`` interrupts the sleep so the change applies at once.
* ``site_meter`` (one process): at every physics step, integrates every connector up to the step boundary
  and logs the step's building load, EV load and import. The run ends when this process has logged the
  last step (``done``).

Randomness: two child generators are seeded from the run's generator at construction (vehicle sampling,
building-load noise), so adding a draw in one stream does not shift the other. Time: ``env.now`` seconds
since the scenario start is the only clock.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, cast

import simpy

from simulator.scenario.models import ChargerGroup, FleetBlock, Scenario
from simulator.twin.catalogue import CATALOGUE
from simulator.twin.curves import TaperCurve
from simulator.twin.evse import EvsePowerModel
from simulator.twin.interfaces import (
    AlwaysOn,
    ConnectorRef,
    MeterReading,
    StationHooks,
    VehicleInfo,
)
from simulator.twin.site_meter import BuildingLoad, MeterStep, SiteMeter
from simulator.twin.vehicle import Vehicle

__all__ = ["TwinWorld", "VehicleRecord"]

MIN_STAY_S = 60.0

ProcessGenerator = Generator[simpy.Event, object, None]


@dataclass(frozen=True)
class VehicleRecord:
    """Ground truth for one vehicle. Times are seconds after the start; ``departure_s`` is None if the
    vehicle was still on site at the end (then ``soc_at_departure`` is its SoC at the end)."""

    vehicle_id: str
    model: str
    group: str | None
    id_token: str | None
    arrival_s: float
    plug_in_s: float | None
    planned_departure_s: float
    departure_s: float | None
    connector: ConnectorRef | None
    soc_on_arrival: float
    soc_at_departure: float
    target_soc: float
    energy_received_kwh: float
    full_at_s: float | None

    @property
    def reached_target(self) -> bool:
        return self.soc_at_departure >= self.target_soc - 1e-9


@dataclass
class _Trip:
    """A vehicle's plan and what has happened to it so far."""

    vehicle: Vehicle
    group: str | None
    id_token: str | None
    arrival_s: float
    plug_in_delay_s: float
    planned_departure_s: float
    allowed: frozenset[str] | None
    assign: str
    soc_on_arrival: float
    plug_in_s: float | None = None
    departure_s: float | None = None
    connector: ConnectorRef | None = None
    full_at_s: float | None = None

    def info(self) -> VehicleInfo:
        v = self.vehicle
        return VehicleInfo(
            v.vehicle_id,
            v.model,
            self.id_token,
            self.group,
            v.battery_kwh,
            v.soc,
            v.target_soc,
            self.planned_departure_s,
        )

    def record(self) -> VehicleRecord:
        v = self.vehicle
        return VehicleRecord(
            vehicle_id=v.vehicle_id, model=v.model, group=self.group, id_token=self.id_token,
            arrival_s=self.arrival_s, plug_in_s=self.plug_in_s, planned_departure_s=self.planned_departure_s,
            departure_s=self.departure_s, connector=self.connector, soc_on_arrival=self.soc_on_arrival,
            soc_at_departure=v.soc, target_soc=v.target_soc, energy_received_kwh=v.energy_received_kwh,
            full_at_s=self.full_at_s,
        )  # fmt: skip


@dataclass
class _Connector:
    ref: ConnectorRef
    group: ChargerGroup
    evse: EvsePowerModel
    trip: _Trip | None = None
    last_s: float = 0.0
    process: simpy.Process | None = None
    wake_pending: bool = False
    suspended_notified: bool = False
    replan_again: bool = field(default=False)


class TwinWorld:
    """The physics of one scenario run.

    Args:
        scenario: the validated scenario.
        rng: the run's only random generator.
        hooks: the charger firmware; ``AlwaysOn`` (energize whenever plugged) if omitted.
        env: a SimPy environment to share with the firmware and links; a new one if omitted.
        step_s: physics step; the scenario's ``twin.step`` (default 60 s) if omitted.
    """

    def __init__(
        self,
        scenario: Scenario,
        rng: random.Random,
        *,
        hooks: StationHooks | None = None,
        env: simpy.Environment | None = None,
        step_s: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.env = env if env is not None else simpy.Environment()
        self.hooks: StationHooks = hooks if hooks is not None else AlwaysOn()
        self.step_s = float(step_s if step_s is not None else scenario.twin.step)
        if self.step_s <= 0:
            raise ValueError("step_s must be positive")
        self.end_s = float(scenario.duration)
        self._vehicle_rng = random.Random(rng.getrandbits(64))
        self._noise_rng = random.Random(rng.getrandbits(64))
        spec = scenario.site.building_load
        self.building_load = BuildingLoad(spec.points(), spec.noise_kw)
        self.site = SiteMeter(scenario.site.grid_limit_kw, scenario.site.phase_limits_a)
        self.voltage = scenario.site.voltage
        #: The building load of the present step (what a meter at the grid connection reads now, less EVs).
        self.building_kw_now = 0.0
        self._connectors: dict[ConnectorRef, _Connector] = {}
        self._site_phases: dict[ConnectorRef, tuple[int, ...]] = {}
        for group in scenario.chargers:
            for station_id in group.station_ids:
                for n in range(1, group.connectors + 1):
                    ref = ConnectorRef(station_id, n)
                    evse = EvsePowerModel(
                        group.max_kw,
                        group.current or "AC",
                        group.phases or 3,
                        group.voltage or 230.0,
                        scenario.twin.efficiency,
                    )
                    self._connectors[ref] = _Connector(ref, group, evse)
                    self._site_phases[ref] = group.site_phases(group.station_ids.index(station_id))
        self._trips: list[_Trip] = [trip for block in scenario.vehicles for trip in self._plan_block(block)]
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
                conn.process = self.env.process(self.evse_delivery(conn))
            for trip in self._trips:
                self.env.process(self.vehicle(trip))
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
        self._settle(conn)
        evse = conn.evse
        return MeterReading(
            now_s=self.env.now, energy_register_wh=evse.energy_register_wh, power_w=evse.power_w,
            voltage_v=evse.voltage_v, current_a=evse.current_a, phase_currents_a=evse.phase_currents_a,
            active_phases=evse.active_phases, soc=conn.trip.vehicle.soc
            if conn.trip is not None and evse.current == "DC" else None,
            vehicle_plugged=conn.trip is not None,
        )  # fmt: skip

    def reevaluate(self, ref: ConnectorRef) -> None:
        """Apply a change of ``is_energizing``/``charging_limit`` now rather than at the next step."""
        self._wake(self._connectors[ref])

    def vehicle_records(self) -> list[VehicleRecord]:
        """Ground truth per vehicle (those still on site are integrated up to now)."""
        for conn in self._connectors.values():
            self._settle(conn)
        return [trip.record() for trip in self._trips]

    def session_records(self) -> list[tuple[Any, float]]:
        """Every plugged-in stay as an offline-optimum session (``simulator.verify.optimum.SessionRecord``)
        with the energy it received towards its target (kWh)."""
        from simulator.verify.optimum import SessionRecord

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
                phases = self._site_phases[trip.connector][:used]
            else:
                max_kw = min(v.max_dc_kw, evse.rating_kw)
                phases = (0, 1, 2)
            needed = max(0.0, (min(v.target_soc, v.charge_limit_soc) - trip.soc_on_arrival) * v.battery_kwh)
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
    def vehicle(self, trip: _Trip) -> ProcessGenerator:
        env = self.env
        yield env.timeout(trip.arrival_s)
        yield env.timeout(min(trip.plug_in_delay_s, max(trip.planned_departure_s - env.now, 0.0)))
        conn = self._free_connector(trip)
        if conn is None:
            granted = env.event()
            self._waiting.append((trip, granted))
            yield granted | env.timeout(max(trip.planned_departure_s - env.now, 0.0))
            if not granted.triggered:
                self._waiting.remove((trip, granted))
                trip.departure_s = env.now
                return
            conn = cast(_Connector, granted.value)  # the connector that _release handed over
        self._plug(conn, trip)
        yield env.timeout(max(trip.planned_departure_s - env.now, 0.0))
        self._unplug(conn)
        trip.departure_s = env.now

    def evse_delivery(self, conn: _Connector) -> ProcessGenerator:
        env = self.env
        while True:
            conn.wake_pending = False
            self._settle(conn)
            self._replan(conn)
            wait_s = self._next_tick(env.now) - env.now
            until_full_s = conn.evse.seconds_until_full()
            if until_full_s is not None:
                wait_s = min(wait_s, until_full_s)
            with contextlib.suppress(simpy.Interrupt):  # an interrupt means: re-evaluate now
                yield env.timeout(wait_s)

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
            for conn in self._connectors.values():
                self._settle(conn)
            new_total_wh = self._total_register_wh()
            duration_s = t_next - t_s
            hours = duration_s / 3600.0
            ev_kw = (new_total_wh - total_wh) / 1000.0 / hours
            # Per phase: the building balanced over three phases, each connector's step energy on the site
            # phases it is wired to (the first ones its vehicle uses; DC balanced over three).
            phase_a = [building_kw * 1000.0 / (3 * self.voltage)] * 3
            for ref, conn in self._connectors.items():
                now_wh = conn.evse.energy_register_wh
                kw = (now_wh - registers[ref]) / 1000.0 / hours
                registers[ref] = now_wh
                if kw <= 0:
                    continue
                wired = self._site_phases[ref]
                used = wired if conn.evse.current == "DC" else wired[: conn.evse.active_phases]
                for p in used:
                    phase_a[p] += kw * 1000.0 / (len(used) * self.voltage)
            self.site.record(t_s, duration_s, building_kw, ev_kw, (phase_a[0], phase_a[1], phase_a[2]))
            t_s, total_wh = t_next, new_total_wh

    # -- internals ------------------------------------------------------------------------------------
    def _plan_block(self, block: FleetBlock) -> list[_Trip]:
        rng, start = self._vehicle_rng, self.scenario.start
        names, weights = list(block.model), list(block.model.values())
        allowed = None
        if block.assign_to is not None:
            allowed = frozenset(sid for ref in block.assign_to for sid in self.scenario.resolve_chargers(ref))
        curve = TaperCurve(tuple(block.curve)) if block.curve is not None else None
        trips = []
        for n in range(1, block.count + 1):
            spec = CATALOGUE[rng.choices(names, weights)[0]]
            arrival_s = min(max(round(block.arrival.sample_s(start, rng)), 0.0), self.end_s)
            soc = min(block.soc_on_arrival.sample(rng), block.charge_limit_soc)
            departure_s = float(round(block.departure.sample_s(start, rng)))
            departure_s = max(departure_s, arrival_s + block.plug_in_delay + MIN_STAY_S)
            vehicle = Vehicle(
                vehicle_id=f"{block.name}-{n}", battery_kwh=block.battery_kwh or spec.battery_kwh, soc=soc,
                target_soc=block.resolved_target_soc,
                max_ac_kw=spec.max_ac_kw if block.max_ac_kw is None else block.max_ac_kw,
                max_dc_kw=spec.max_dc_kw if block.max_dc_kw is None else block.max_dc_kw,
                curve=curve or spec.curve, ac_phases=block.ac_phases or spec.ac_phases,
                pack_voltage_v=spec.pack_voltage_v, charge_limit_soc=block.charge_limit_soc, model=spec.name,
            )  # fmt: skip
            trips.append(
                _Trip(
                    vehicle,
                    block.group,
                    block.token(n),
                    arrival_s,
                    block.plug_in_delay,
                    departure_s,
                    allowed,
                    block.assign,
                    soc,
                )
            )
        return trips

    def _next_tick(self, t_s: float) -> float:
        return (math.floor(t_s / self.step_s + 1e-9) + 1) * self.step_s

    def _hour_of_day(self, t_s: float) -> float:
        local = self.scenario.datetime_at(t_s)
        return local.hour + local.minute / 60.0 + (local.second + local.microsecond / 1e6) / 3600.0

    def _total_register_wh(self) -> float:
        return sum(conn.evse.energy_register_wh for conn in self._connectors.values())

    def _usable(self, conn: _Connector, trip: _Trip) -> bool:
        return (
            conn.trip is None
            and (trip.allowed is None or conn.ref.station_id in trip.allowed)
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
        return free[0] if trip.assign == "first_free" else self._vehicle_rng.choice(free)

    def _plug(self, conn: _Connector, trip: _Trip) -> None:
        self._settle(conn)
        conn.trip = trip
        conn.suspended_notified = False
        trip.plug_in_s, trip.connector = self.env.now, conn.ref
        self.hooks.on_plug_in(conn.ref, trip.info(), self.env.now)
        self._wake(conn)

    def _unplug(self, conn: _Connector) -> None:
        self._settle(conn)
        trip = conn.trip
        assert trip is not None
        conn.evse.set_power(None)
        conn.trip = None
        self.hooks.on_unplug(conn.ref, trip.info(), self.env.now)
        self._wake(conn)
        for i, (waiting, granted) in enumerate(self._waiting):
            if self._usable(conn, waiting):
                del self._waiting[i]
                granted.succeed(conn)
                break

    def _settle(self, conn: _Connector) -> None:
        dt_s = self.env.now - conn.last_s
        if dt_s > 0:
            conn.evse.advance(dt_s)
        conn.last_s = self.env.now
        trip = conn.trip
        if trip is not None and trip.full_at_s is None and trip.vehicle.is_full:
            trip.full_at_s = self.env.now

    def _replan(self, conn: _Connector) -> None:
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
        process = conn.process
        if process is None or not process.is_alive:
            return
        if process is self.env.active_process:
            conn.replan_again = True
        elif not conn.wake_pending:
            conn.wake_pending = True
            process.interrupt("reevaluate")
