"""``sim run --csms WS_URL --realtime``: the same fleet as in virtual time, against any OCPP CSMS, in step with
the wall clock.

* :class:`RealtimeClock` — virtual seconds = (wall − wall0) × speed. One task steps the SimPy environment:
  it sleeps until the wall time of the next SimPy event, then processes every event up to the wall clock's
  virtual time (never beyond it). Every input from the network (a frame, a timer) first ``sync()``s the twin
  to the wall clock, so a charger's ``now`` (epoch + ``env.now``) and the twin's meters always agree.
* One :class:`~simulator.links.websocket.WebSocketLink` per charger (:class:`~simulator.fleet.Fleet` builds
  the rest exactly as in virtual time, and injects the station faults alike). A fault done to the CSMS
  itself (``csms_crash``) cannot be injected into another process: such a scenario is refused before the
  run starts (:func:`refuse_csms_faults`).
* Operator actions (provision stations and tokens, remote start/stop, reset, availability, reservations,
  firmware roll-outs) go through an
  operator adapter (:mod:`simulator.operators`, ``--operator``: chargetwin's API, a hooks file, a person);
  what it cannot do, or without one, is skipped with a warning and done on the CSMS beforehand
  (:class:`OperatorActions`).
* The report has the virtual run's shape (``mode: realtime``). Every CSMS-side figure (transactions and their
  energy, stations booted, uptime, alerts) is read back through the operator where it can be
  (``csms_source`` names it: ``api``, ``hooks``); where it cannot, the figure is *not measured*, with the
  reason (:class:`CsmsReader`) — never a zero error. What the CSMS acknowledged to the chargers is reported
  beside it (``transactions.acknowledged``), labelled as that.

This module is a shell: it reads the wall clock (``time.monotonic`` to pace the twin; ``time.time`` once, to
map the CSMS's clock onto the twin's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import simpy

from csms.alerts import engine as al
from csms.ocpp import commands
from csms.ocpp.convert import from_posix
from csms.ocpp.versions import OCPP16, Version
from simulator import report
from simulator.faults import csms_faults
from simulator.fleet import (
    Fleet,
    OperatorCall,
    Progress,
    commission,
    operator_payload,
    security_calls,
    station_passwords,
)
from simulator.links.websocket import WebSocketLink
from simulator.operators import (
    Capability,
    ChargetwinOperator,
    FirmwareImage,
    FleetVehicle,
    Garage,
    Operator,
    OperatorError,
    make_operator,
)
from simulator.outputs import write_outputs
from simulator.realtime_migration import RealtimeMigration
from simulator.rollout import FirmwareSigner, roll_out
from simulator.scenario.loader import ScenarioError, ScenarioIssue, issue_at
from simulator.scenario.models import (
    DemandResponse,
    ExportImport,
    Onboard,
    RemoteStart,
    RemoteStop,
    Reserve,
    Scenario,
    SecurityAction,
    SetTariff,
    UpdateFirmware,
)
from simulator.station.charger import Charger, Registration
from simulator.verify import faults as fv
from simulator.verify.migration import Holder
from simulator.vtn import TwinVtn

log = logging.getLogger(__name__)

#: A charger waits this many *wall* seconds for a CALL's answer, whatever the speed.
CALL_TIMEOUT_WALL_S = 30.0
#: After the twin's end, wait at most this long for transaction messages still queued to be acknowledged (a CSMS
#: behind on a fast run catches up; the wait ends as soon as every queue is empty).
DRAIN_WALL_S = 30.0
#: The stepper re-checks the clock at least this often (wall seconds).
MAX_SLEEP_S = 0.5
#: After the twin's end, operator actions still queued get this long (wall seconds) to finish.
FINISH_WALL_S = 10.0
#: How often the run's VTN asks the CSMS's VEN to poll it (wall seconds).
VTN_POLL_S = 2.0


class RealtimeClock:
    """SimPy time bound to the wall clock: ``env.now`` never runs ahead of (wall − wall0) × speed."""

    def __init__(
        self,
        env: simpy.Environment,
        epoch: float,
        speed: float,
        end_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0 or not math.isfinite(speed):
            raise ValueError(f"--speed must be a positive number, got {speed}")
        self.env, self.epoch, self.speed, self.end_s, self._monotonic = env, epoch, speed, end_s, monotonic
        self.wall0 = monotonic()
        self.done: simpy.Event | None = None
        self._kick = asyncio.Event()

    def start(self, behind_s: float = 0.0) -> None:
        """Virtual time 0 is now, or ``behind_s`` wall seconds ago (the twin catches up at once)."""
        self.wall0 = self._monotonic() - behind_s

    def virtual_s(self) -> float:
        return min((self._monotonic() - self.wall0) * self.speed, self.end_s)

    def now(self) -> float:
        """The chargers' clock: POSIX seconds at the twin's present instant."""
        return self.epoch + self.env.now

    def wall_delay(self, when: float) -> float:
        """Wall seconds from now until the chargers' instant ``when``."""
        return (when - self.epoch) / self.speed - (self._monotonic() - self.wall0)

    def kick(self) -> None:
        self._kick.set()

    @property
    def finished(self) -> bool:
        return self.done is not None and self.done.processed

    def sync(self) -> float:
        """Process every SimPy event due by the wall clock and move ``env.now`` up to it; the chargers' now."""
        if not self.finished:
            target = self.virtual_s()
            while not self.finished and self.env.peek() <= target:
                self.env.step()
            if not self.finished and target > self.env.now:
                self.env.run(until=target)
        return self.now()

    async def run(self, done: simpy.Event) -> None:
        """Step the twin in step with the wall clock until ``done`` (the twin's last step) is processed."""
        self.done = done
        while not self.finished:
            self._kick.clear()
            self.sync()
            if self.finished:
                break
            delay = self.env.peek() / self.speed - (self._monotonic() - self.wall0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=min(max(delay, 0.0), MAX_SLEEP_S))


@dataclass(frozen=True)
class RealtimeOptions:
    csms_url: str
    speed: float = 1.0
    password: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    seed: int | None = None
    scenario_file: str = ""
    reproducible: bool = False
    #: ``--operator``: chargetwin, a hooks file or manual; by default chargetwin when there is an API URL
    operator: str | None = None
    #: ``--csms-root``: the CSMS's root certificate (PEM text): what install_certificate actions install, and
    #: what chargers that start on security profile 2 trust.
    csms_root_pem: str | None = None
    #: ``--csms-tls-url``: where chargers on profile 2 or 3 connect (wss://), unless the CSMS sent them another.
    tls_url: str | None = None
    #: ``--new-csms`` / ``--new-api-url`` / ``--new-api-key``: a platform migration's new CSMS (chargetwin), B.
    new_csms_url: str | None = None
    new_api_url: str | None = None
    new_api_key: str | None = None
    #: ``--start now``: the chargers' clock starts at the wall clock (the scenario's timeline kept: an event two
    #: hours into the scenario comes two hours into the run); otherwise at the scenario's ``start``.
    start_now: bool = False
    #: ``--vtn HOST:PORT``: host the utility's OpenADR VTN there (:mod:`simulator.vtn`): demand-response actions
    #: reach the CSMS's VEN through it.
    vtn: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RealtimeOptions:
        root = getattr(args, "csms_root", None)
        try:
            pem = None if root is None else Path(root).read_text()
        except OSError as exc:
            raise OSError(f"--csms-root {root}: {exc.strerror or exc}") from None
        return cls(
            csms_url=args.csms,
            speed=args.speed,
            password=args.password,
            api_url=args.api_url,
            api_key=args.api_key,
            seed=args.seed,
            scenario_file=str(args.scenario),
            reproducible=args.reproducible,
            operator=args.operator or ("chargetwin" if args.api_url else None),
            csms_root_pem=pem,
            tls_url=getattr(args, "csms_tls_url", None),
            new_csms_url=getattr(args, "new_csms", None),
            new_api_url=getattr(args, "new_api_url", None),
            new_api_key=getattr(args, "new_api_key", None) or args.api_key,
            start_now=getattr(args, "start", "scenario") == "now",
            vtn=getattr(args, "vtn", None),
        )


# ---- operators ------------------------------------------------------------------------------------------
class OperatorActions:
    """The scenario's operator actions (the fleet's ``Operator``) done through an operator adapter
    (:mod:`simulator.operators`), in timeline order on one worker task. What the adapter cannot do, or there is
    no adapter, is skipped with one warning per kind (the person running the CSMS does it beforehand); a
    failure is logged, never raised. A remote stop names the transaction running on the port as the charger
    knows it (1.6: the id the CSMS assigned; 2.0.1: the charger's own), as the CSMS's operator would."""

    def __init__(
        self, operator: Operator | None, chargers: dict[str, Charger], options: RealtimeOptions | None = None
    ) -> None:
        self.operator, self.chargers = operator, chargers
        self.options = options
        #: A platform migration: the CSMS holding each station, and the record of what went where.
        self.migration: RealtimeMigration | None = None
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="operator actions")
        self._remote_start_ids = 0
        self._warned: set[str] = set()
        #: The run's firmware manufacturer (signed roll-outs).
        self.signer = FirmwareSigner()
        #: The CSMS's clock against the twin's (set when the run starts): fleet plans are told on it.
        self.clock: CsmsClock | None = None
        #: The scenario's garage (``csms.property``), which ``onboard`` makes a property of the CSMS.
        self.garage: Garage | None = None
        #: The run's VTN (``--vtn``), which carries the scenario's demand-response events to the CSMS.
        self.vtn: TwinVtn | None = None

    def _skip(self, what: str) -> bool:
        """True (and one warning per ``what``) when nobody can carry out ``what`` on this CSMS."""
        if self.operator is None:
            why = "no --operator (and no --api-url): provision and operate the CSMS yourself"
        else:
            capability: Capability = {  # type: ignore[assignment]
                "provision_tokens": "provision_token",
                "reserve": "reserve",
                "update_firmware": "update_firmware",
                "fleet": "fleet",
                "onboard": "onboard",
            }.get(what, "send_call")
            why = self.operator.cannot(capability, None if capability != "send_call" else what) or ""
        if why and what not in self._warned:
            self._warned.add(what)
            log.warning("%s skipped: %s", what, why)
        return bool(why)

    async def _work(self) -> None:
        while (job := await self._queue.get()) is not None:
            try:
                await job()
            except OperatorError as exc:
                log.warning("operator action failed: %s", exc)

    def enqueue(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` on the worker, after the actions queued before it (a migration's steps)."""
        self._queue.put_nowait(job)

    async def finish(self) -> None:
        """Let the queued actions finish (bounded), then stop the worker."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(self._worker, timeout=FINISH_WALL_S)
        except TimeoutError:
            log.warning("operator actions still running at the end were abandoned")

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        migration = self.migration
        operator = self.operator if migration is None or migration.cutover_s is None else migration.new
        if self._skip("provision_tokens") or operator is None:
            return

        async def job() -> None:
            for token in tokens:  # one refused token does not keep the others out
                try:
                    await operator.provision_token(token, group=group)
                except OperatorError as exc:
                    log.warning("provisioning token %s failed: %s", token, exc)

        self._queue.put_nowait(job)

    def set_tariff(self, item: SetTariff, stations: list[str], now: float) -> None:
        """Through chargetwin's API (of the CSMS that serves now: a migration's new one after the cut-over);
        another CSMS's tariffs are out of the operator adapters' reach."""
        migration = self.migration
        operator = self.operator if migration is None or migration.cutover_s is None else migration.new
        if not isinstance(operator, ChargetwinOperator):
            if "set_tariff" not in self._warned:
                self._warned.add("set_tariff")
                log.warning("set_tariff skipped: only chargetwin's API (--operator chargetwin) sets tariffs")
            return
        holder: Holder | None = None if migration is None else ("old" if migration.cutover_s is None else "new")

        async def job() -> None:
            try:
                await operator.set_tariff(item.tariff, item.ocpi(), stations, item.group)
            except OperatorError as exc:
                self._record(now, item.kind, item.tariff, holder, f"failed: {exc}", station=False)
                raise
            self._record(now, item.kind, item.tariff, holder, "set", station=False)

        self._queue.put_nowait(job)

    def onboard(self, tokens: list[str], item: Onboard, now: float) -> None:
        """Through the operator's property API (chargetwin: the property on the CSMS's site holding the chargers,
        a unit per resident, an invitation per driver redeemed with their own card), as in virtual time."""
        operator, garage = self.operator, self.garage
        if self._skip("onboard") or operator is None or garage is None:
            return

        async def job() -> None:
            try:
                await operator.onboard(garage, item.role, tokens, item.pass_days)
            except OperatorError as exc:
                log.warning("onboarding the %ss failed: %s", item.role, exc)

        self._queue.put_nowait(job)

    def register_vehicles(self, vehicles: list[FleetVehicle], now: float) -> None:
        """Through the operator's fleet API (chargetwin: ``POST /fleet/vehicles``, ``PUT …/plan``), on the CSMS's
        clock: each departure is the wall time at which the twin's departure comes (:meth:`CsmsClock.to_wall`), in
        the vehicle's zone, so the CSMS plans for it whatever the scenario's start and ``--speed``; a vehicle
        without a depot gets the CSMS's site holding its chargers (the adapter looks it up)."""
        operator = self.operator
        if self._skip("fleet") or operator is None:
            return
        clock = self.clock
        if clock is not None:
            vehicles = [on_csms_clock(v, now, clock) for v in vehicles]

        async def job() -> None:
            for vehicle in vehicles:  # one refused vehicle does not keep the others out
                try:
                    await operator.register_vehicle(vehicle)
                except OperatorError as exc:
                    log.warning("registering vehicle %s failed: %s", vehicle.vehicle_id, exc)

        self._queue.put_nowait(job)

    def telematics(self, vehicle_id: str, soc_pct: float, now: float) -> None:
        """Posted through the operator's fleet API, read at the CSMS's wall clock."""
        operator = self.operator
        if self._skip("fleet") or operator is None:
            return

        async def job() -> None:
            await operator.record_soc(vehicle_id, soc_pct, datetime.now(UTC))

        self._queue.put_nowait(job)

    def demand_response(self, item: DemandResponse, now: float) -> None:
        """A real-time CSMS hears demand response from its VTN (openadr_vtn_url): with ``--vtn`` the run's own,
        which published the scenario's events when the run started (:meth:`RealtimeRun._publish_events`)."""
        if self.vtn is None and "demand_response" not in self._warned:
            self._warned.add("demand_response")
            log.warning("demand_response skipped: a real-time CSMS receives events from its OpenADR VTN; host one "
                        "with --vtn HOST:PORT and start the CSMS with it (csms serve --openadr-vtn-url)")  # fmt: skip

    def _operator_for(self, station_id: str, kind: str, now: float) -> tuple[Operator | None, Holder | None]:
        """The operator of the CSMS holding the station (a migration's new CSMS after the station's wave), and
        which one that is (``old``/``new``; None without a migration)."""
        if self.migration is None:
            return self.operator, None
        holder = self.migration.holder(station_id)
        if holder is None:
            at_s = now - self.migration.epoch
            self.migration.operator_action(at_s, kind, station_id, None, "not sent: no CSMS serves it until its wave")
            log.warning("%s on %s skipped: no CSMS serves it between the cut-over and its wave", kind, station_id)
        return self.migration.operator_for(station_id), holder

    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None:
        self._remote_start_ids += isinstance(item, RemoteStart)
        operator, holder = self._operator_for(station_id, item.kind, now)
        if operator is None:
            if holder is not None or self.migration is None:
                self._skip(item.kind)
            return
        if isinstance(item, SecurityAction):
            self._security(operator, station_id, version, item)
        elif isinstance(item, Reserve):
            self._reserve(operator, station_id, item)
        elif isinstance(item, UpdateFirmware):
            self._update_firmware(operator, station_id, roll_out(item, self.signer, now), now)
        else:
            self._send(operator, holder, station_id, version, item, now)
            return
        self._record(now, item.kind, station_id, holder, "sent")  # several calls, followed by their own logs

    def _send(
        self,
        operator: Operator,
        holder: Holder | None,
        station_id: str,
        version: Version,
        item: OperatorCall,
        now: float,
    ) -> None:
        """A remote start or stop, reset or availability change: one raw call through the operator."""
        if isinstance(item, RemoteStop):
            call = self._remote_stop(station_id, version, item)
        else:
            call = operator_payload(item, version, self._remote_start_ids)
        if call is None or self._skip(call[0]):
            return
        action, payload = call

        async def job() -> None:
            try:
                outcome = await operator.send_call(station_id, action, payload, timeout_s=CALL_TIMEOUT_WALL_S)
            except OperatorError as exc:
                self._record(now, item.kind, station_id, holder, f"failed: {exc}")
                raise
            if outcome.response is None and outcome.detail not in ("", "result"):
                log.warning("%s %s: %s", station_id, action, outcome.detail)
            answer = outcome.response.get("status", "answered") if outcome.response is not None else outcome.detail
            self._record(now, item.kind, station_id, holder, f"{action}: {answer}")

        self._queue.put_nowait(job)

    def _record(
        self, now: float, kind: str, target: str, holder: Holder | None, outcome: str, *, station: bool = True
    ) -> None:
        if self.migration is not None:
            at_s = now - self.migration.epoch
            self.migration.operator_action(at_s, kind, target, holder, outcome, station=station)

    def _reserve(self, operator: Operator, station_id: str, item: Reserve) -> None:
        """``valid_for`` is scenario time: the CSMS's wall clock runs ``speed`` times slower."""
        if self._skip(item.kind):
            return
        speed = self.options.speed if self.options is not None else 1.0
        valid_for_s = item.valid_for / speed

        async def job() -> None:
            outcome = await operator.reserve(
                station_id,
                item.id_token,
                connector=item.connector,
                valid_for_s=valid_for_s,
                timeout_s=CALL_TIMEOUT_WALL_S,
            )
            if outcome.detail != "active":
                log.warning("reserve on %s: %s", station_id, outcome.detail)

        self._queue.put_nowait(job)

    def _update_firmware(self, operator: Operator, station_id: str, firmware: FirmwareImage, now: float) -> None:
        """The image stored through the operator, then UpdateFirmware with the chargers' now as its retrieve
        time (the CSMS's own now is another clock unless the scenario starts now at speed 1)."""
        if self._skip("update_firmware"):
            return

        async def job() -> None:
            outcome = await operator.update_firmware(
                station_id, firmware, retrieve_at=from_posix(now), timeout_s=CALL_TIMEOUT_WALL_S
            )
            if outcome.response is None or outcome.detail not in ("Accepted", "AcceptedCanceled"):
                log.warning("update_firmware on %s: %s", station_id, outcome.response or outcome.detail)

        self._queue.put_nowait(job)

    def _security(self, operator: Operator, station_id: str, version: Version, item: SecurityAction) -> None:
        """The action's calls one after another, each once the one before was accepted (the CSMS vets and
        adopts a password or profile change it relays, as chargetwin's raw-call endpoint does)."""
        options = self.options
        assert options is not None and options.csms_root_pem is not None and options.tls_url is not None, (
            "checked before the run (refuse_unreachable)"
        )  # fmt: skip
        calls = security_calls(item, version, options.csms_root_pem, options.tls_url)
        if self._skip(calls[0][0]):
            return

        async def job() -> None:
            for action, payload in calls:
                outcome = await operator.send_call(station_id, action, payload, timeout_s=CALL_TIMEOUT_WALL_S)
                if outcome.response is None or not commands.accepted(outcome.response):
                    log.warning("%s %s (%s): %s", station_id, action, item.kind, outcome.response or outcome.detail)
                    return

        self._queue.put_nowait(job)

    def _remote_stop(self, station_id: str, version: Version, item: RemoteStop) -> tuple[str, dict[str, Any]] | None:
        tx = self.chargers[station_id].transactions.get(item.connector)
        if tx is None or tx.transaction_id is None:
            log.warning("remote_stop on %s/%s skipped: no transaction known there", station_id, item.connector)
            return None
        numeric = int(tx.transaction_id) if version == OCPP16 else 0
        return commands.remote_stop(version, numeric, str(tx.transaction_id))


def garage_of(scenario: Scenario, stations: tuple[str, ...]) -> Garage | None:
    """The scenario's site as a multifamily property (its ``csms.property`` terms; None without them)."""
    terms = scenario.csms.property
    if terms is None:
        return None
    return Garage("garage", scenario.site.name or scenario.name, stations, scenario.timezone or "UTC",
                  {k: str(v) for k, v in terms.model_dump().items()})  # fmt: skip


def on_csms_clock(vehicle: FleetVehicle, now: float, clock: CsmsClock) -> FleetVehicle:
    """The vehicle's weekly plan with each departure moved to the CSMS's clock: the twin's next departure at each
    planned local time (from the twin's ``now``), mapped to wall time, as its weekday and local time."""
    zone = ZoneInfo(vehicle.tz)
    twin_now = datetime.fromtimestamp(now, zone)
    coming: list[tuple[datetime, float]] = []
    for weekday, at, soc in vehicle.departures:
        hour, minute = (int(part) for part in at.split(":"))
        days = (weekday - twin_now.weekday()) % 7
        leaves = (twin_now + timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        coming.append((leaves + timedelta(days=7) if leaves <= twin_now else leaves, soc))
    moved: dict[int, tuple[int, str, float]] = {}
    for leaves, soc in sorted(coming):  # faster than real time a week is hours: the nearest departures first
        wall = datetime.fromtimestamp(clock.to_wall(leaves.timestamp()), zone)
        moved.setdefault(wall.weekday(), (wall.weekday(), wall.strftime("%H:%M"), soc))
    return replace(vehicle, departures=tuple(sorted(moved.values())))


@dataclass(frozen=True)
class CsmsClock:
    """Maps the CSMS's clock onto the chargers' (the twin's): its wall time ``wall0`` is the twin's ``epoch``,
    and the twin runs ``speed`` times faster."""

    wall0: float
    epoch: float
    speed: float

    def to_twin(self, wall: float) -> float:
        return self.epoch + (wall - self.wall0) * self.speed

    def to_wall(self, twin: float) -> float:
        return self.wall0 + (twin - self.epoch) / self.speed

    @property
    def agrees(self) -> bool:
        """The chargers' clocks are the CSMS's (within a minute): speed 1 and a scenario that starts now."""
        return self.speed == 1 and abs(self.epoch - self.wall0) < 60.0


NO_OPERATOR = "no operator can read this CSMS's transactions"


def mixed_clocks_note(clock: CsmsClock) -> str:
    return (
        f"uptime, alerts: the CSMS's figures over the run's wall-clock window, alerts mapped to twin time "
        f"(x{clock.speed:g}); the CSMS stamps connections and alerts with its own clock but statuses and "
        "sessions with the chargers' (the scenario's start, --speed), so outages from statuses or sessions, "
        "and time-based alert rules, compare with the twin only at --speed 1 with a scenario starting now"
    )


@dataclass
class CsmsSide:
    """What the report sets beside the twin's truth, read back from the CSMS where an operator can."""

    transactions: list[report.CsmsTransaction]
    source: str | None
    booted: int
    uptime: dict[str, Any] | None = None
    alerts: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    not_measured: dict[str, str] = field(default_factory=dict)


class CsmsReader:
    """Reads the CSMS's records through the operator: what it lacks is *not measured*, with the reason."""

    def __init__(self, operator: Operator | None, fleet: Fleet) -> None:
        self.operator, self.fleet = operator, fleet
        self.stations = list(fleet.chargers)
        self.since = datetime.fromtimestamp(fleet.epoch, UTC)
        self._before: set[tuple[str, str, datetime | None]] = set()

    def cannot(self, capability: Capability, missing: str) -> str | None:
        return missing if self.operator is None else self.operator.cannot(capability)

    async def remember_existing(self) -> None:
        """Transactions stored before the run (an earlier run of the same scenario) are not this run's."""
        if self.operator is not None and self.cannot("read_transactions", NO_OPERATOR) is None:
            try:
                rows = await self.operator.transactions(self.stations, self.since)
            except OperatorError as exc:
                log.warning("reading the CSMS's transactions before the run failed: %s", exc)
                return
            self._before = {(r.station_id, r.transaction_id, r.started_at) for r in rows}

    async def transactions(self, side: CsmsSide) -> None:
        why = self.cannot("read_transactions", NO_OPERATOR)
        if self.operator is not None and why is None:
            try:
                rows = await self.operator.transactions(self.stations, self.since)
            except OperatorError as exc:
                why = f"reading the CSMS's transactions failed: {exc}"
            else:
                side.source = self.operator.name
                side.transactions = [
                    report.CsmsTransaction(
                        r.station_id,
                        r.transaction_id,
                        None if r.energy_wh is None else r.energy_wh / 1000.0,
                        r.stopped_at is not None,
                    )
                    for r in rows
                    if (r.station_id, r.transaction_id, r.started_at) not in self._before
                ]
        if why is not None:
            side.not_measured["transactions"] = why

    async def booted(self, side: CsmsSide) -> None:
        """Stations the CSMS has Accepted, as it stores them; else as it answered the chargers' boots."""
        why = self.cannot("read_station", "no operator can read this CSMS's stations")
        registrations: list[str | None] = []
        if self.operator is not None and why is None:
            try:
                registrations = [(await self.operator.station(sid)).registration for sid in self.stations]
            except OperatorError as exc:
                why = f"reading the CSMS's stations failed: {exc}"
        if why is None and all(r is not None for r in registrations):
            side.booted = sum(1 for r in registrations if r == "Accepted")
            return
        side.notes.append(
            "stations.booted: the chargers whose last BootNotification the CSMS answered Accepted ("
            + (why or "the CSMS's stations do not say how their boot was answered")
            + ")"
        )

    async def uptime_and_alerts(self, side: CsmsSide, clock: CsmsClock) -> None:
        """``uptime`` and ``alerts`` from the CSMS's own view against the twin's truth, as in virtual time. The
        CSMS measures over its wall-clock window of the run, the twin over its own period (the same stretch
        of the run: connectivity fractions agree at any speed)."""
        duration = float(self.fleet.env.now)
        start, end = (datetime.fromtimestamp(w, UTC) for w in (clock.wall0, clock.to_wall(self.fleet.epoch + duration)))
        why = self.cannot("read_uptime", "no operator can read this CSMS's uptime")
        if self.operator is not None and why is None:
            try:
                figures = await self.operator.uptime(self.stations, start, end)
                side.uptime = self.fleet.uptime_section(figures["ports"])
            except OperatorError as exc:
                why = f"reading the CSMS's uptime failed: {exc}"
        if why is not None:
            side.not_measured["uptime"] = why
        if isinstance(self.operator, ChargetwinOperator):
            try:
                rows = await self.operator.alerts(self.stations, start)
            except OperatorError as exc:
                side.not_measured["alerts"] = f"reading the CSMS's alerts failed: {exc}"
            else:
                raised = [
                    al.RaiseAlert(r["rule"], r["station_id"], r["evse_id"], r["severity"], clock.to_twin(_ts(r)))
                    for r in rows
                ]
                side.alerts = self.fleet.alerts_section(raised, latency_s=0.0)
        else:
            side.not_measured["alerts"] = "only chargetwin's API (--operator chargetwin) lists the alerts a CSMS raised"
        if (side.uptime or side.alerts) and not clock.agrees:
            side.notes.append(mixed_clocks_note(clock))

    async def read(self, clock: CsmsClock) -> CsmsSide:
        booted = sum(1 for c in self.fleet.chargers.values() if c.registration is Registration.ACCEPTED)
        side = CsmsSide([], None, booted)
        await self.transactions(side)
        await self.booted(side)
        await self.uptime_and_alerts(side, clock)
        for section, why in side.not_measured.items():
            side.notes.append(f"{section}: not measured ({why})")
        return side


def _ts(alert: dict[str, Any]) -> float:
    value = datetime.fromisoformat(alert["raised_at"])
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


# ---- the run --------------------------------------------------------------------------------------------
def refuse_unreachable(scenario: Scenario, options: RealtimeOptions) -> None:
    """Raises ScenarioError for what this run cannot do to another process: faults done to the CSMS, and
    security steps without the CSMS's root certificate and wss:// URL.

    Raises:
        ScenarioError: file, line and field of each, and why.
    """
    issues: list[ScenarioIssue] = []
    try:
        refuse_csms_faults(scenario, options.scenario_file)
    except ScenarioError as exc:
        issues += exc.issues
    issues += _migration_issues(scenario, options)
    needs = {"--csms-root FILE": options.csms_root_pem is None, "--csms-tls-url wss://…": options.tls_url is None}
    missing = " and ".join(flag for flag, absent in needs.items() if absent)
    if missing:
        for i, action in enumerate(scenario.actions):
            if isinstance(action, SecurityAction):
                why = f"{action.kind} in real time needs {missing} (the CSMS's root certificate and wss:// URL)"
                issues.append(issue_at(options.scenario_file, ("actions", i, "kind"), why))
        for i, group in enumerate(scenario.chargers):
            if group.security_profile >= 2:
                why = f"security profile {group.security_profile} in real time needs {missing}"
                issues.append(issue_at(options.scenario_file, ("chargers", i, "security_profile"), why))
    if issues:
        raise ScenarioError(issues)


def _migration_issues(scenario: Scenario, options: RealtimeOptions) -> list[ScenarioIssue]:
    """A platform migration in real time needs both CSMSs to be chargetwin with their APIs."""
    needs = [
        flag
        for flag, absent in (
            ("--new-csms WS_URL", options.new_csms_url is None),
            ("--new-api-url URL", options.new_api_url is None),
            ("--api-url URL (chargetwin's API of the old CSMS)", options.api_url is None),
            ("--operator chargetwin", options.operator not in (None, "chargetwin")),
        )
        if absent
    ]
    why = (
        f"export_import in real time needs {' and '.join(needs)}: the run exports the old CSMS and imports into "
        "the new one through chargetwin's API"
    )
    return [
        issue_at(options.scenario_file, ("actions", i, "kind"), why)
        for i, action in enumerate(scenario.actions)
        if isinstance(action, ExportImport) and needs
    ]


def refuse_csms_faults(scenario: Scenario, scenario_file: str) -> None:
    """Raises ScenarioError naming each fault done to the CSMS within the run: another process is out of reach.

    Raises:
        ScenarioError: file, line and field of each such fault, its kind, time and why.
    """
    issues = []
    for i, fault in csms_faults(scenario):
        at_s = scenario.seconds(fault.at)
        if at_s > scenario.duration:
            continue  # after the end: never injected
        at = (scenario.start.astimezone(UTC) + timedelta(seconds=at_s)).astimezone(scenario.start.tzinfo)
        when = f"{at.isoformat()} (+{at_s / 3600:g} h)"
        why = (
            f"{fault.kind} at {when} cannot be injected in real time: the CSMS is another process, which the "
            "simulator can neither kill nor restart (only the embedded CSMS of a virtual run can); run the "
            "scenario in virtual time, or without this fault"
        )
        issues.append(issue_at(scenario_file, ("faults", i, "kind"), why))
    if scenario.roaming is not None:
        why = (
            "roaming runs the twin's eMSP against the embedded CSMS's OCPI port (virtual time); against a CSMS in "
            "real time, register an eMSP with its OCPI API yourself (docs/ocpi.md)"
        )
        issues.append(issue_at(scenario_file, ("roaming",), why))
    if issues:
        raise ScenarioError(issues)


class RealtimeRun:
    def __init__(
        self,
        scenario: Scenario,
        options: RealtimeOptions,
        progress: Progress | None = None,
        operator: Operator | None = None,
        new_operator: Operator | None = None,
    ) -> None:
        self.scenario, self.options, self.progress, self.operator = scenario, options, progress, operator
        #: A platform migration's new CSMS (``--new-api-url``): what the run reads back at the end.
        self.new_operator = new_operator
        self.migration: RealtimeMigration | None = None
        self.seed = scenario.seed if options.seed is None else options.seed
        self.env = simpy.Environment()
        #: ``--start now``: the chargers' clock is the wall clock from when the run was set up (its first seconds,
        #: provisioning the CSMS, are caught up at once when the twin starts): the CSMS's clock and theirs agree
        #: at ``--speed 1``, so its charging profiles and a demand-response event's times mean the same to both.
        self.epoch = time.time() if options.start_now else scenario.start.timestamp()
        self.clock = RealtimeClock(self.env, self.epoch, options.speed, float(scenario.duration))
        self.fleet: Fleet | None = None
        self.truth = fv.FaultTruth()
        self.vtn = None if options.vtn is None else TwinVtn.parse(options.vtn, poll_s=VTN_POLL_S)

    def _build_fleet(self) -> Fleet:
        passwords = station_passwords(self.scenario, self.options.password)

        def make_link(charger: Charger, _seed: int, on_change: Callable[[Charger], None]) -> WebSocketLink:
            return WebSocketLink(
                charger,
                self.clock,
                self.options.csms_url,
                password=passwords[charger.station_id],
                on_charger_change=on_change,
                on_link=self._on_link,
                tls_url=self.options.tls_url,
            )

        fleet = Fleet(
            self.scenario,
            self.seed,
            self.env,
            make_link,
            charger_options={"call_timeout_s": CALL_TIMEOUT_WALL_S * max(1.0, self.options.speed)},
            truth=self.truth,
            epoch=self.epoch,
        )
        commission(fleet.chargers.values(), self.scenario, self.options.csms_root_pem)
        return fleet

    def _on_link(self, station_id: str, up: bool, now: float) -> None:
        self.truth.link(station_id, up, now)
        if self.migration is not None:
            self.migration.linked(station_id, up, now)

    def _migration(self, fleet: Fleet, actions: OperatorActions) -> RealtimeMigration | None:
        """A scenario with ``export_import``: A is the run's CSMS, B the ``--new-*`` one (checked before)."""
        if not self.scenario.migrates:
            return None
        old, new, options = self.operator, self.new_operator, self.options
        assert isinstance(old, ChargetwinOperator) and isinstance(new, ChargetwinOperator), "refuse_unreachable"
        assert options.new_csms_url is not None, "refuse_unreachable"
        links: dict[str, WebSocketLink] = dict(fleet.links)  # type: ignore[arg-type]
        migration = RealtimeMigration(
            self.scenario, old, new, (options.csms_url, options.new_csms_url), links, actions.enqueue,
            lambda: float(self.env.now), options.speed,
        )  # fmt: skip
        actions.migration = migration
        return migration

    async def _provision_stations(self, fleet: Fleet) -> None:
        operator = self.operator
        why = "no --operator (and no --api-url)" if operator is None else operator.cannot("provision_station")
        if operator is None or why is not None:
            log.warning("provisioning the stations skipped: %s", why)
            return
        passwords = station_passwords(self.scenario, self.options.password)
        for station_id, charger in fleet.chargers.items():
            try:
                await operator.provision_station(station_id, charger.version, passwords[station_id])
            except OperatorError as exc:
                log.warning("provisioning station %s failed: %s", station_id, exc)

    async def run(self) -> report.RunRecord:
        started = time.monotonic()
        fleet = self.fleet = self._build_fleet()
        links: list[WebSocketLink] = list(fleet.links.values())  # type: ignore[arg-type]
        reader = CsmsReader(self.operator, fleet)
        try:
            if self.vtn is not None:  # first: the CSMS's VEN registers while the run provisions
                await self.vtn.start()
            await self._provision_stations(fleet)
            await reader.remember_existing()
            actions = OperatorActions(self.operator, fleet.chargers, self.options)
            actions.garage = garage_of(self.scenario, tuple(sorted(fleet.chargers)))
            migration = self.migration = self._migration(fleet, actions)
            actions.vtn = self.vtn
            csms_clock = actions.clock = self._start_clock()
            self._publish_events(csms_clock)
            done = fleet.start(actions, self.progress, migrate=None if migration is None else migration.execute)
            if migration is not None:
                migration.begin()
            try:
                await self.clock.run(done)
                if self.progress is not None:
                    self.progress(float(self.scenario.duration), float(self.scenario.duration))
                await self._drain(links)
                await actions.finish()
                if migration is not None:
                    await migration.finish()
            finally:
                await asyncio.gather(*(link.stop() for link in links))
            if migration is not None:  # B holds the whole history now, A's part included
                reader.operator = self.new_operator
            side = await reader.read(csms_clock)
        finally:
            for operator in (self.operator, self.new_operator):
                if operator is not None:
                    await operator.close()
            if self.vtn is not None:
                await self.vtn.stop()
        side.notes += [] if self.vtn is None else self.vtn.notes()
        record = fleet.record(
            mode="realtime",
            scenario_file=self.options.scenario_file,
            wall_seconds=time.monotonic() - started,
            csms_transactions=side.transactions,
            csms_source=side.source or "",
            stations_booted=side.booted,
            frames={
                "charger_to_csms": sum(link.frames_sent for link in links),
                "csms_to_charger": sum(link.frames_received for link in links),
                "lost_in_network": 0,
            },
            uptime=side.uptime,
            alerts=side.alerts,
            notes=side.notes,
            migration=None if migration is None else migration.section(float(self.env.now)),
        )
        record.csms_source = side.source
        record.not_measured = side.not_measured
        record.acknowledged_transactions = fleet.acknowledged_transactions()
        return record

    def _start_clock(self) -> CsmsClock:
        """The twin's clock starts, and the CSMS's clock against it: ``--start now`` puts the twin's 0 at the wall
        time the run was set up (its first seconds caught up at once), otherwise now is the scenario's start."""
        if self.options.start_now:
            self.clock.start(time.time() - self.epoch)
            return CsmsClock(self.epoch, self.epoch, self.options.speed)
        self.clock.start()
        return CsmsClock(time.time(), self.epoch, self.options.speed)

    def _publish_events(self, clock: CsmsClock) -> None:
        """Every demand-response event of the scenario, on the run's VTN: from the wall instant the twin reaches
        its ``at`` for its ``duration`` (wall seconds: ``duration / speed``)."""
        events = [(at_s, item) for at_s, item in self.scenario.timeline() if isinstance(item, DemandResponse)]
        if self.vtn is None or not events:
            return
        if not clock.agrees:
            log.warning(
                "demand response at --speed %g on the scenario's date: the CSMS stamps its charging profiles with its "
                "own clock, the chargers read them with the scenario's; run with --start now --speed 1 for the "
                "profiles, and so the event's limit, to hold when the CSMS means them", self.options.speed,
            )  # fmt: skip
        for at_s, item in events:
            start = clock.to_wall(self.epoch + at_s)
            self.vtn.publish(start, item.duration / self.options.speed, item.limit_kw)

    async def _drain(self, links: list[WebSocketLink]) -> None:
        """Give transaction messages still queued on connected chargers a moment to be acknowledged."""
        deadline = time.monotonic() + DRAIN_WALL_S
        while time.monotonic() < deadline:
            if all(not link.connected or len(link.charger.queue) == 0 for link in links):
                return
            await asyncio.sleep(0.05)
        log.warning("transaction messages still unacknowledged at the end of the run")


def run_realtime(scenario: Scenario, args: argparse.Namespace, out: Path, progress: Progress | None) -> dict[str, Any]:
    """``sim run --realtime``: run, then write ``report.json`` and the plots like a virtual run."""
    options = RealtimeOptions.from_args(args)
    refuse_unreachable(scenario, options)
    operator = None if options.operator is None else make_operator(options.operator, options.api_url, options.api_key)
    new_operator = None
    if scenario.migrates and options.new_api_url is not None:
        new_operator = make_operator("chargetwin", options.new_api_url, options.new_api_key)
    run = RealtimeRun(scenario, options, progress, operator, new_operator)
    record = asyncio.run(run.run())
    assert run.fleet is not None
    return write_outputs(
        record,
        out,
        reproducible=options.reproducible,
        sampler=run.fleet.sampler,
        step_s=run.fleet.world.step_s,
        scenario=scenario,
    )
