"""Locust: one user is one charger — a long-lived OCPP-J WebSocket driven by the twin's sans-IO firmware model.

    uv run python loadtests/provision.py --count 1000 --database-url sqlite:///chargetwin.db --out stations.csv
    uv run locust -f loadtests/locustfile.py --headless -u 1000 -r 100 -t 5m \\
        --host ws://127.0.0.1:9000/ocpp --stations-file stations.csv

Each user takes one station from the stations file (CSV ``station_id,password,ocpp_version``), connects to
``{host}/{station_id}`` with HTTP Basic (security profile 1) and the station's subprotocol, and hands the
socket to a :class:`~simulator.station.charger.Charger` (1.6J or 2.0.1, as the file says). The firmware does
what a real one does: boot, status notifications, heartbeats at the interval the CSMS grants, answers to every
CSMS call, reconnect with back-off, and — on a synthetic plug-in/unplug schedule — Authorize, the
transaction's start, meter values every ``--meter-interval`` and its end. The firmware's RPC endpoint keeps
exactly one CALL outstanding.

Latency: every CALL the charger sends is timed until its CALLRESULT/CALLERROR and reported through Locust's
request event (request type ``OCPP``, name = action), so the web UI, ``--csv`` files and charts show
BootNotification, Heartbeat, StatusNotification, Authorize, StartTransaction/StopTransaction (1.6),
TransactionEvent (2.0.1) and MeterValues separately. A CALLERROR, a timeout or a socket lost with a call in
flight is a failure. Connection set-up is reported as ``WS connect``.

Load shapes: ``LOADTEST_SHAPE=steady|bootstorm|wave|ramp`` selects a :mod:`loadshapes` class (then ``-u/-r/-t``
are ignored and the ``--shape-*`` options apply); without it Locust's own ``-u/-r/-t`` drive the run.

Distributed mode: run ``locust -f loadtests/locustfile.py --master --expect-workers W ...`` and W processes of
``locust -f loadtests/locustfile.py --worker``; worker ``i`` takes stations ``i, i+W, i+2W, ...`` of the file
(so ``--expect-workers`` must be the real number of workers). Custom options are sent from the master.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import itertools
import logging
import os
import random
import socket
import time
import weakref
from dataclasses import dataclass
from typing import Any

import gevent
import orjson
import websocket
from chargers import KEYS, RampMeter
from locust import User, events, task
from locust.runners import MasterRunner, WorkerRunner

from csms.ocpp.versions import OCPP16, VERSION_SUBPROTOCOL, Version, parse_version
from simulator.station.charger import Charger, Registration

log = logging.getLogger("chargetwin.locust")

BLACKOUT_MESSAGE = "chargetwin_blackout"


# ---- options ------------------------------------------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("chargetwin chargers")
    group.add_argument(
        "--stations-file",
        default="stations.csv",
        env_var="LOADTEST_STATIONS",
        help="CSV station_id,password,ocpp_version (loadtests/provision.py writes it)",
    )
    group.add_argument(
        "--heartbeat-interval",
        type=float,
        default=0,
        env_var="LOADTEST_HEARTBEAT_S",
        help="override the heartbeat interval the CSMS grants [s] (0: keep the CSMS's)",
    )
    group.add_argument(
        "--meter-interval",
        type=int,
        default=60,
        env_var="LOADTEST_METER_S",
        help="MeterValues period during a session [s] (default 60)",
    )
    group.add_argument(
        "--session-length",
        type=float,
        default=1800,
        env_var="LOADTEST_SESSION_S",
        help="mean plugged-in time of a session [s] (default 1800)",
    )
    group.add_argument(
        "--idle-length",
        type=float,
        default=1800,
        env_var="LOADTEST_IDLE_S",
        help="mean time between sessions [s] (default 1800; the first plug-in comes after "
        "a uniform wait in [0, 2×this])",
    )
    group.add_argument("--id-token", default="LOADTEST", env_var="LOADTEST_ID_TOKEN", help="token drivers present")
    group.add_argument(
        "--call-timeout",
        type=float,
        default=30,
        env_var="LOADTEST_CALL_TIMEOUT_S",
        help="a CALL without an answer after this is a failure [s]",
    )
    group.add_argument(
        "--backoff-min",
        type=int,
        default=10,
        env_var="LOADTEST_BACKOFF_S",
        help="reconnect back-off base [s] (firmware default 10, ±5 s jitter)",
    )
    group.add_argument(
        "--max-power-w",
        type=float,
        default=11000,
        env_var="LOADTEST_MAX_POWER_W",
        help="synthetic charging power after the ramp [W]",
    )
    group.add_argument(
        "--reset-stats-after",
        type=float,
        default=0,
        env_var="LOADTEST_RESET_STATS_AFTER",
        help="clear the statistics this many seconds after the start (measure the steady state only)",
    )
    group.add_argument("--shape-users", type=int, default=100, help="(LOADTEST_SHAPE) users at full load")
    group.add_argument("--shape-spawn-rate", type=float, default=20, help="(LOADTEST_SHAPE) users started per s")
    group.add_argument("--shape-duration", type=float, default=300, help="(LOADTEST_SHAPE) run time [s]")
    group.add_argument("--shape-step-users", type=int, default=500, help="(ramp) users added per step")
    group.add_argument("--shape-step-time", type=float, default=60, help="(ramp) seconds per step")
    group.add_argument("--shape-blackout-at", type=float, default=60, help="(wave) blackout starts [s]")
    group.add_argument("--shape-blackout-length", type=float, default=5, help="(wave) blackout lasts [s]")


# ---- stations -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Station:
    station_id: str
    password: str
    ocpp_version: Version


def read_stations(path: str) -> list[Station]:
    with open(path, newline="") as f:
        rows = [(n, r) for n, r in enumerate(csv.reader(f), 1) if r and not r[0].startswith("#")]
    if rows and rows[0][1][0] == "station_id":
        rows = rows[1:]
    stations = []
    for line, r in rows:
        try:
            version = parse_version(r[2]) if len(r) > 2 else OCPP16
        except ValueError as exc:
            raise ValueError(f"{path}:{line}: {exc}") from None
        stations.append(Station(r[0], r[1] if len(r) > 1 else "", version))
    return stations


_stations: list[Station] | None = None
_next_user = itertools.count()


def _take_station(environment: Any) -> Station:
    """This process's next station: worker i of W takes i, i+W, i+2W … (a local run takes them all)."""
    global _stations
    if _stations is None:
        _stations = read_stations(environment.parsed_options.stations_file)
    runner = environment.runner
    index, stride = 0, 1
    if isinstance(runner, WorkerRunner):
        index = max(0, runner.worker_index)
        stride = max(1, int(getattr(environment.parsed_options, "expect_workers", 1) or 1))
    n = index + stride * next(_next_user)
    if n >= len(_stations):
        raise RuntimeError(f"stations file has {len(_stations)} stations; user #{n} needs more (provision more)")
    return _stations[n]


# ---- blackouts (the reconnect-wave shape) -------------------------------------------------------------------
_blackout_until = 0.0
_live_users: weakref.WeakSet[ChargerUser] = weakref.WeakSet()


def start_blackout(environment: Any, length_s: float) -> None:
    """Every charger loses its network for ``length_s``: sockets drop now, connection attempts fail until
    then, and each charger comes back on its own back-off — the reconnect wave. Called on the master (it
    tells the workers) or in a local run."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message(BLACKOUT_MESSAGE, {"length_s": length_s})
    else:
        _on_blackout(environment, length_s)


def _on_blackout(environment: Any, length_s: float) -> None:
    global _blackout_until
    _blackout_until = time.time() + length_s
    log.info("blackout for %.1f s: dropping %d sockets", length_s, len(_live_users))
    for user in list(_live_users):
        user.drop_socket()


@events.test_start.add_listener
def _schedule_reset(environment: Any, **_kw: Any) -> None:
    delay = getattr(environment.parsed_options, "reset_stats_after", 0) or 0
    if delay > 0 and not isinstance(environment.runner, WorkerRunner):

        def reset() -> None:
            gevent.sleep(delay)
            log.info("statistics cleared after %.0f s (--reset-stats-after)", delay)
            environment.runner.stats.reset_all()

        gevent.spawn(reset)


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(
            BLACKOUT_MESSAGE, lambda msg, **_: _on_blackout(environment, msg.data["length_s"])
        )


# ---- the user -----------------------------------------------------------------------------------------------
class OcppCallError(Exception):
    pass


class ChargerUser(User):
    """One charging station. Its only task runs the firmware until Locust stops the user."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.options = environment.parsed_options
        self.ws: websocket.WebSocket | None = None
        self.outstanding: dict[str, tuple[str, float]] = {}  # message id -> (action, sent at)
        self.charger: Charger | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def on_start(self) -> None:
        self.station = _take_station(self.environment)
        version = self.station.ocpp_version
        keys = KEYS[version]
        self.rng = random.Random()
        self.meter = RampMeter(self.options.max_power_w)
        self.charger = Charger(
            self.station.station_id,
            version,
            meter=self.meter,
            rng=self.rng,
            config={
                keys["sample"]: str(self.options.meter_interval),
                keys["backoff"]: str(self.options.backoff_min),
                keys["range"]: str(max(1, self.options.backoff_min // 2)),
            },
            call_timeout_s=self.options.call_timeout,
            heartbeat="periodic",  # the realistic mix: a Heartbeat every 300 s whatever else is sent
        )
        now = time.time()
        self.plug_at: float | None = now + self.rng.uniform(0, 2 * self.options.idle_length)
        self.unplug_at: float | None = None
        self.auth = "Basic " + base64.b64encode(f"{self.station.station_id}:{self.station.password}".encode()).decode()
        if not self.host:
            raise ValueError("no host: give the CSMS's ws://…/ocpp URL with --host")
        self.url = f"{self.host.rstrip('/')}/{self.station.station_id}"
        _live_users.add(self)

    def on_stop(self) -> None:
        _live_users.discard(self)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close(timeout=1)
            self.ws = None

    @task
    def firmware(self) -> None:
        while True:
            self.step()

    # ---- one turn of the shell -------------------------------------------------------------------------------
    def step(self) -> None:
        charger = self.charger
        assert charger is not None
        now = time.time()
        if self.ws is None and charger.wants_connection(now):
            self.connect(now)
        deadline = charger.next_deadline()
        if deadline is not None and now >= deadline:
            charger.handle_timer(now)
        self.behave(now)
        self.flush()
        self.expire(now)
        wake = min(
            (
                t
                for t in (charger.next_deadline(), self.plug_at, self.unplug_at, self._oldest_expiry())
                if t is not None
            ),
            default=now + 60,
        )
        timeout = max(0.0, wake - time.time())
        if self.ws is None:
            gevent.sleep(min(timeout, 60))
            return
        if timeout <= 0:
            return
        self.ws.settimeout(min(timeout, 60))
        try:
            frame = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketException, OSError) as exc:
            self.lost(f"{type(exc).__name__}: {exc}")
            return
        if not frame:
            return
        received = time.time()
        self.observe(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"), received)
        charger.receive_frame(frame, received)

    def connect(self, now: float) -> None:
        charger = self.charger
        assert charger is not None
        if now < _blackout_until:
            charger.connection_failed(now)
            return
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(
                self.url,
                subprotocols=[VERSION_SUBPROTOCOL[charger.version]],
                header=[f"Authorization: {self.auth}"],
                timeout=30,
                enable_multithread=False,
                skip_utf8_validation=True,
            )
        except Exception as exc:
            self.ws = None
            self._fire("WS", "connect", started, 0, exc)
            charger.connection_failed(time.time())
            return
        self._fire("WS", "connect", started, 0, None)
        charger.connected(time.time())

    def drop_socket(self) -> None:
        """Lose the network (blackout): the socket dies without a close handshake."""
        if self.ws is not None and self.ws.sock is not None:
            with contextlib.suppress(OSError):
                self.ws.sock.shutdown(socket.SHUT_RDWR)

    def lost(self, reason: str) -> None:
        now = time.time()
        try:
            if self.ws is not None:
                self.ws.shutdown()
        except Exception:
            pass
        self.ws = None
        for action, sent in self.outstanding.values():
            self._fire("OCPP", action, sent, 0, ConnectionError(f"connection lost: {reason}"), perf=False)
        self.outstanding.clear()
        assert self.charger is not None
        self.charger.disconnected(now)

    def flush(self) -> None:
        charger = self.charger
        assert charger is not None
        for frame in charger.frames_to_send():
            if self.ws is None:
                break
            sent = time.time()
            if frame.startswith("[2"):
                message = orjson.loads(frame)
                self.outstanding[message[1]] = (message[2], sent)
            try:
                self.ws.send(frame)
            except (websocket.WebSocketException, OSError) as exc:
                self.lost(f"{type(exc).__name__}: {exc}")
                return
        if charger.close_requested() and self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close(timeout=1)
            self.ws = None
            self.outstanding.clear()

    def observe(self, frame: str, received: float) -> None:
        """Time our CALL that this CALLRESULT/CALLERROR answers."""
        if frame.startswith("[2"):
            return
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return
        entry = self.outstanding.pop(message[1], None)
        if entry is None:
            return
        action, sent = entry
        error = None if message[0] == 3 else OcppCallError(f"{message[2]}: {message[3]}")
        self._fire("OCPP", action, sent, len(frame), error, perf=False, now=received)

    def expire(self, now: float) -> None:
        for message_id, (action, sent) in list(self.outstanding.items()):
            if now - sent >= self.options.call_timeout:
                del self.outstanding[message_id]
                self._fire("OCPP", action, sent, 0, TimeoutError("no answer"), perf=False, now=now)

    def _oldest_expiry(self) -> float | None:
        if not self.outstanding:
            return None
        return min(sent for _, sent in self.outstanding.values()) + self.options.call_timeout

    def _fire(
        self,
        kind: str,
        name: str,
        started: float,
        length: int,
        exc: Exception | None,
        *,
        perf: bool = True,
        now: float | None = None,
    ) -> None:
        end = time.perf_counter() if perf else (now if now is not None else time.time())
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(end - started) * 1000.0,
            response_length=length,
            exception=exc,
            context={"station": self.station.station_id},
        )

    # ---- the driver's behaviour ------------------------------------------------------------------------------
    def behave(self, now: float) -> None:
        """Plug in with a token at ``plug_at``; unplug after an exponential session length; repeat."""
        charger = self.charger
        assert charger is not None
        override = self.options.heartbeat_interval
        if (
            override
            and charger.registration is Registration.ACCEPTED
            and charger.config.integer("heartbeat_interval") != int(override)
        ):
            charger.config.set_setting("heartbeat_interval", str(int(override)))
            charger.setting_changed("heartbeat_interval", now)
        if self.plug_at is not None and now >= self.plug_at:
            if not charger.online:
                self.plug_at = now + 5.0
                return
            self.plug_at = None
            charger.plug_in(1, self.options.id_token, now)
            self.meter.start()
            self.unplug_at = now + self.rng.expovariate(1.0 / max(1.0, self.options.session_length))
        elif self.unplug_at is not None and now >= self.unplug_at:
            self.unplug_at = None
            self.meter.stop()
            charger.unplug(1, now)
            self.plug_at = now + self.rng.expovariate(1.0 / max(1.0, self.options.idle_length))


# ---- a load shape, when asked for ---------------------------------------------------------------------------
_shape_name = os.environ.get("LOADTEST_SHAPE", "").strip().lower()
if _shape_name:
    from loadshapes import SHAPES

    if _shape_name not in SHAPES:
        raise SystemExit(f"LOADTEST_SHAPE must be one of {', '.join(SHAPES)}, got {_shape_name!r}")
    SelectedShape = SHAPES[_shape_name]
    SelectedShape.start_blackout = staticmethod(start_blackout)  # type: ignore[attr-defined]

__all__ = ["ChargerUser", "read_stations", "start_blackout"]
