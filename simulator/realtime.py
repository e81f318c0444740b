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
* Operator actions: we cannot reach into another CSMS, so with ``--api-url``/``--api-key`` stations and tokens
  are provisioned and calls sent through our HTTP API (:class:`ApiOperator`); without, they are skipped with a
  warning (:class:`SkippingOperator`) and the operator provisions the CSMS beforehand.
* The report has the virtual run's shape (``mode: realtime``). Its CSMS side is our API's transactions
  (``csms_source: api``) or, against any CSMS, what the CSMS acknowledged to the chargers
  (``csms_source: acknowledgements``).

* With ``--api-url`` the report also has ``uptime`` and ``alerts``: our CSMS's own figures (``GET /uptime``,
  ``GET /alerts``) against the twin's truth, as in virtual time (:func:`csms_sections`); without, a note says
  why they are absent.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import simpy

from csms.alerts import engine as al
from csms.ocpp.versions import Version
from simulator import report
from simulator.faults import csms_faults
from simulator.fleet import Fleet, OperatorCall, Progress, operator_payload, station_passwords
from simulator.links.websocket import WebSocketLink
from simulator.outputs import write_outputs
from simulator.scenario.loader import ScenarioError, issue_at
from simulator.scenario.models import RemoteStart, RemoteStop, Scenario
from simulator.station.charger import Charger, Registration
from simulator.verify import faults as fv

log = logging.getLogger(__name__)

#: A charger waits this many *wall* seconds for a CALL's answer, whatever the speed.
CALL_TIMEOUT_WALL_S = 30.0
#: After the twin's end, wait at most this long for transaction messages still queued to be acknowledged.
DRAIN_WALL_S = 5.0
#: The stepper re-checks the clock at least this often (wall seconds).
MAX_SLEEP_S = 0.5
PAGE = 1000
#: API requests are tried this often, API_RETRY_S × attempt apart, when the CSMS answers 5xx or is unreachable.
API_ATTEMPTS, API_RETRY_S = 4, 0.1


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

    def start(self) -> None:
        """Virtual time 0 is now."""
        self.wall0 = self._monotonic()

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RealtimeOptions:
        return cls(
            csms_url=args.csms,
            speed=args.speed,
            password=args.password,
            api_url=args.api_url,
            api_key=args.api_key,
            seed=args.seed,
            scenario_file=str(args.scenario),
            reproducible=args.reproducible,
        )


# ---- operators ------------------------------------------------------------------------------------------
class SkippingOperator:
    """Any CSMS: we cannot provision it or make it call a station, so the operator does that beforehand."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def _skip(self, what: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("%s skipped: no --api-url, provision and operate the CSMS yourself", what)

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        self._skip("provision_tokens")

    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None:
        self._skip(item.kind)

    async def finish(self) -> None:
        return None


class ApiOperator:
    """Our CSMS's HTTP API (``/api/v1``): actions run in timeline order on one worker task; HTTP failures are
    logged, never raised."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="api operator")
        self._remote_start_ids = 0

    async def _work(self) -> None:
        while (job := await self._queue.get()) is not None:
            try:
                await job()
            except httpx.HTTPError as exc:
                log.warning("operator action failed: %s", exc)

    async def finish(self) -> None:
        """Let the queued actions finish (bounded), then stop the worker."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(self._worker, timeout=10.0)
        except TimeoutError:
            log.warning("operator actions still running at the end were abandoned")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried a few times on a 5xx or a transport error (a busy CSMS database, a restart)."""
        for attempt in range(1, API_ATTEMPTS + 1):
            try:
                response = await self.client.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == API_ATTEMPTS:
                    raise
            else:
                if response.status_code < 500 or attempt == API_ATTEMPTS:
                    return response
            await asyncio.sleep(API_RETRY_S * attempt)
        raise AssertionError("unreachable")

    async def _post(self, path: str, body: dict[str, Any], *, conflict_ok: bool = False) -> httpx.Response:
        response = await self._request("POST", path, json=body)
        if response.status_code >= 400 and not (conflict_ok and response.status_code == 409):
            log.warning("POST %s: %s %s", path, response.status_code, response.text.strip()[:200])
        return response

    async def _get(self, path: str, **params: Any) -> Any:
        return (await self._request("GET", path, params=params)).raise_for_status().json()

    async def provision_stations(self, fleet: Fleet, default_password: str | None) -> None:
        passwords = station_passwords(fleet.scenario, default_password)
        for station_id, charger in fleet.chargers.items():
            body = {"id": station_id, "password": passwords[station_id], "ocpp_version": charger.version}
            await self._post("/stations", body, conflict_ok=True)

    def provision_tokens(self, tokens: list[str], group: str | None, now: float) -> None:
        async def job() -> None:
            for token in tokens:
                await self._post("/tokens", {"id_token": token, "group_id": group}, conflict_ok=True)

        self._queue.put_nowait(job)

    def call(self, station_id: str, version: Version, item: OperatorCall, now: float) -> None:
        self._remote_start_ids += isinstance(item, RemoteStart)
        call = None if isinstance(item, RemoteStop) else operator_payload(item, version, self._remote_start_ids)

        async def job() -> None:
            if isinstance(item, RemoteStop):
                await self._remote_stop(station_id, item)
            elif call is not None:
                response = await self._post(f"/stations/{station_id}/calls/{call[0]}", call[1])
                if response.status_code == 200 and response.json().get("outcome") != "result":
                    log.warning("%s %s: %s", station_id, call[0], response.json())

        self._queue.put_nowait(job)

    async def _remote_stop(self, station_id: str, item: RemoteStop) -> None:
        rows = await self._get("/transactions", station_id=station_id, status="active", limit=PAGE)
        active = [r for r in rows if r["evse_id"] == item.connector]
        if active:
            await self._post(f"/stations/{station_id}/remote-stop", {"transaction_id": active[-1]["id"]})

    async def transactions(self, station_ids: set[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = await self._get("/transactions", limit=PAGE, offset=len(rows))
            rows += page
            if len(page) < PAGE:
                return [r for r in rows if r["station_id"] in station_ids]

    async def uptime(self, start: datetime, end: datetime, station_ids: set[str]) -> list[dict[str, Any]]:
        """``GET /uptime`` over ``[start, end)`` (the CSMS's clock), our stations' ports."""
        rows = await self._get("/uptime", period_start=start.isoformat(), period_end=end.isoformat())
        return [r for r in rows if r["station_id"] in station_ids]

    async def alerts(self, station_ids: set[str], since: datetime) -> list[dict[str, Any]]:
        """Every alert the CSMS raised on our stations from ``since`` (its clock) on."""
        rows: list[dict[str, Any]] = []
        while True:
            page = await self._get("/alerts", limit=PAGE, offset=len(rows))
            rows += page
            if len(page) < PAGE:
                return [r for r in rows if r["station_id"] in station_ids and _utc(r["raised_at"]) >= since]

    async def booted(self, station_ids: set[str]) -> int:
        stations = await self._get("/stations")
        return sum(1 for s in stations if s["id"] in station_ids and s["registration_status"] == "Accepted")


def _utc(iso: str) -> datetime:
    value = datetime.fromisoformat(iso)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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


NO_API_NOTE = "uptime, alerts: not computed: without --api-url the CSMS's own uptime and alerts are out of reach"


def mixed_clocks_note(clock: CsmsClock) -> str:
    return (
        f"uptime, alerts: the CSMS's figures over the run's wall-clock window, alerts mapped to twin time "
        f"(x{clock.speed:g}); the CSMS stamps connections and alerts with its own clock but statuses and "
        "sessions with the chargers' (the scenario's start, --speed), so outages from statuses or sessions, "
        "and time-based alert rules, compare with the twin only at --speed 1 with a scenario starting now"
    )


async def csms_sections(
    operator: ApiOperator, fleet: Fleet, clock: CsmsClock, latency_s: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``uptime`` and ``alerts`` from our CSMS's own view (its API), against the twin's truth, as in virtual
    time. The CSMS measures over its wall-clock window of the run, the twin over its own period (the same
    stretch of the run: connectivity fractions agree at any speed)."""
    ours = set(fleet.chargers)
    duration = float(fleet.env.now)
    start, end = (datetime.fromtimestamp(w, UTC) for w in (clock.wall0, clock.to_wall(fleet.epoch + duration)))
    uptime = fleet.uptime_section(await operator.uptime(start, end, ours))
    raised = [
        al.RaiseAlert(
            r["rule"], r["station_id"], r["evse_id"], r["severity"], clock.to_twin(_utc(r["raised_at"]).timestamp())
        )
        for r in await operator.alerts(ours, start)
    ]
    return uptime, fleet.alerts_section(raised, latency_s)


# ---- the run --------------------------------------------------------------------------------------------
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
    if issues:
        raise ScenarioError(issues)


class RealtimeRun:
    def __init__(self, scenario: Scenario, options: RealtimeOptions, progress: Progress | None = None) -> None:
        self.scenario, self.options, self.progress = scenario, options, progress
        self.seed = scenario.seed if options.seed is None else options.seed
        self.env = simpy.Environment()
        self.epoch = scenario.start.timestamp()
        self.clock = RealtimeClock(self.env, self.epoch, options.speed, float(scenario.duration))
        self.fleet: Fleet | None = None
        self.truth = fv.FaultTruth()

    def _build_fleet(self) -> Fleet:
        passwords = station_passwords(self.scenario, self.options.password)

        def make_link(charger: Charger, _seed: int, on_change: Callable[[Charger], None]) -> WebSocketLink:
            return WebSocketLink(
                charger,
                self.clock,
                self.options.csms_url,
                password=passwords[charger.station_id],
                on_charger_change=on_change,
                on_link=self.truth.link,
            )

        return Fleet(
            self.scenario,
            self.seed,
            self.env,
            make_link,
            charger_options={"call_timeout_s": CALL_TIMEOUT_WALL_S * max(1.0, self.options.speed)},
            truth=self.truth,
        )

    async def run(self) -> report.RunRecord:
        started = time.monotonic()
        fleet = self.fleet = self._build_fleet()
        links: list[WebSocketLink] = list(fleet.links.values())  # type: ignore[arg-type]
        client = None
        if self.options.api_url:
            headers = {"Authorization": f"Bearer {self.options.api_key}"} if self.options.api_key else {}
            base = self.options.api_url.rstrip("/")
            base = base if base.endswith("/api/v1") else base + "/api/v1"
            client = httpx.AsyncClient(base_url=base, headers=headers, timeout=10.0)
        try:
            operator: ApiOperator | SkippingOperator
            ours = set(fleet.chargers)
            before: set[int] = set()
            if client is not None:
                operator = ApiOperator(client)
                await operator.provision_stations(fleet, self.options.password)
                before = {r["id"] for r in await operator.transactions(ours)}
            else:
                operator = SkippingOperator()
            self.clock.start()
            csms_clock = CsmsClock(time.time(), self.epoch, self.options.speed)
            done = fleet.start(operator, self.progress)
            try:
                await self.clock.run(done)
                if self.progress is not None:
                    self.progress(float(self.scenario.duration), float(self.scenario.duration))
                await self._drain(links)
                await operator.finish()
            finally:
                await asyncio.gather(*(link.stop() for link in links))
            uptime: dict[str, Any] | None
            alerts: dict[str, Any] | None
            if isinstance(operator, ApiOperator):
                rows = [r for r in await operator.transactions(ours) if r["id"] not in before]
                csms_txs = [
                    report.CsmsTransaction(
                        r["station_id"],
                        r["charger_transaction_id"],
                        r["energy_wh"] / 1000.0,
                        r["status"] == "completed",
                    )
                    for r in rows
                ]
                source, booted = "api", await operator.booted(ours)
                uptime, alerts = await csms_sections(operator, fleet, csms_clock, latency_s=0.0)
                notes = [] if csms_clock.agrees else [mixed_clocks_note(csms_clock)]
            else:
                csms_txs = fleet.acknowledged_transactions()
                source = "acknowledgements"
                booted = sum(1 for c in fleet.chargers.values() if c.registration is Registration.ACCEPTED)
                uptime = alerts = None
                notes = [NO_API_NOTE]
        finally:
            if client is not None:
                await client.aclose()
        return fleet.record(
            mode="realtime",
            scenario_file=self.options.scenario_file,
            wall_seconds=time.monotonic() - started,
            csms_transactions=csms_txs,
            csms_source=source,
            stations_booted=booted,
            frames={
                "charger_to_csms": sum(link.frames_sent for link in links),
                "csms_to_charger": sum(link.frames_received for link in links),
                "lost_in_network": 0,
            },
            uptime=uptime,
            alerts=alerts,
            notes=notes,
        )

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
    refuse_csms_faults(scenario, options.scenario_file)
    run = RealtimeRun(scenario, options, progress)
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
