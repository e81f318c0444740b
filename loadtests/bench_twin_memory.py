"""Memory of the twin: bytes per virtual charger, idle and charging, measured with tracemalloc.

    uv run python loadtests/bench_twin_memory.py [--sizes 10 50]

Two settings, each measured in a fresh process for two fleet sizes; the figure per charger is the slope
between them, so what every run holds once (imports, the SQLite schema, the site) drops out:

* **virtual time** — depot-night scaled to N chargers (``bench_twin.scaled_scenario``) with every vehicle
  arriving between 17:05 and 17:10, run on the embedded CSMS. *Idle* is taken at 17:04 (booted, heartbeats
  running, nothing plugged), *charging* at 17:15 (every charger in a transaction, meter values flowing). Only
  the twin's allocations count: each live allocation is charged to the innermost frame of our code that
  made it; the embedded CSMS's (``csms/core``, services, store, plug-ins, ``simulator/embedded_*``) are
  left out, the protocol library (``csms/ocpp``) counts for whichever side called it.
* **Locust worker** — N ``ChargerUser`` objects built by the locustfile's own ``on_start`` (firmware,
  synthetic meter, generator, bookkeeping), their chargers driven through boot and status notifications by
  scripted CSMS answers (*idle*), then plugged in with a started transaction and a first meter value
  (*charging*). The WebSocket and the gevent greenlet Locust adds per user are not included.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.station.charger import Charger

ROOT = Path(__file__).resolve().parents[1]
IDLE_S, CHARGING_S = 240.0, 900.0  # 17:04 and 17:15 after the 17:00 start
FRAMES = 40  # deep enough to reach our code from an allocation inside the libraries it calls
#: Our code that is the embedded CSMS's, not the twin's (an allocation made there is the CSMS's).
CSMS_CODE = (
    "csms/core/",
    "csms/services/",
    "csms/store/",
    "csms/alerts/",
    "csms/loadmgmt/",
    "csms/uptime/",
    "simulator/embedded_",
    "simulator/loadmgmt.py",
)
OURS = ("/simulator/", "/csms/", "/loadtests/")


def side(traceback: tracemalloc.Traceback) -> str:
    """``twin``, ``csms`` or ``other`` by the innermost frame of our code (protocol code does not decide)."""
    for frame in reversed(traceback):  # tracemalloc lists the oldest frame first
        name = frame.filename.replace("\\", "/")
        if not any(part in name for part in OURS) or "/csms/ocpp/" in name or "/csms/domain/" in name:
            continue
        return "csms" if any(part in name for part in CSMS_CODE) else "twin"
    return "other"


def twin_bytes() -> dict[str, int]:
    gc.collect()
    totals = {"twin": 0, "csms": 0, "other": 0}
    for trace in tracemalloc.take_snapshot().traces:
        totals[side(trace.traceback)] += trace.size
    return totals


# ---- virtual time -----------------------------------------------------------------------------------------
def measure_virtual(chargers: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_twin import scaled_scenario

    from simulator.runner import VirtualRun
    from simulator.scenario.units import parse_time_point

    tracemalloc.start(FRAMES)
    scenario = scaled_scenario(chargers, 0.5)
    block = scenario.vehicles[0]
    window = (parse_time_point("17:05"), parse_time_point("17:10"))
    arrival = block.arrival.model_copy(update={"between": window})
    scenario = scenario.model_copy(update={"vehicles": [block.model_copy(update={"arrival": arrival})]})
    run = VirtualRun(scenario, scenario_file="memory")
    run.wiring.start()
    run.fleet.start(run.operator, None, crash_csms=run.wiring.crash)
    run.env.run(until=IDLE_S)
    idle = twin_bytes()
    run.env.run(until=CHARGING_S)
    charging = twin_bytes()
    running = sum(len(c.transactions) for c in run.fleet.chargers.values())
    return {"idle": idle, "charging": charging, "transactions": running}


# ---- a Locust worker ----------------------------------------------------------------------------------------
def _answer(version: str, action: str, payload: dict[str, Any], tx_ids: list[int]) -> dict[str, Any]:
    """A schema-valid CALLRESULT payload for what a charger sends (the scripted CSMS)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    accepted = {"status": "Accepted"}
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": now, "interval": 300}
    if action == "Heartbeat":
        return {"currentTime": now}
    if action == "Authorize":
        return {"idTagInfo": accepted} if version == "1.6" else {"idTokenInfo": accepted}
    if action == "StartTransaction":
        tx_ids.append(len(tx_ids) + 1)
        return {"transactionId": tx_ids[-1], "idTagInfo": accepted}
    if action == "StopTransaction":
        return {"idTagInfo": accepted}
    return {}  # StatusNotification, MeterValues, TransactionEvent, NotifyEvent, …


def _converse(charger: Charger, now: float, tx_ids: list[int]) -> None:
    """Answer every CALL the charger sends until it has nothing more to say."""
    import orjson

    for _ in range(100):
        frames = charger.frames_to_send()
        if not frames:
            return
        for frame in frames:
            message = orjson.loads(frame)
            if message[0] != 2:
                continue
            result = _answer(charger.version, message[2], message[3], tx_ids)
            charger.receive_frame(orjson.dumps([3, message[1], result]).decode(), now)
    raise RuntimeError("the charger keeps talking")


def measure_locust(chargers: int) -> dict[str, Any]:
    import argparse as ap
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from locust.env import Environment
    from locustfile import ChargerUser

    stations = Path(tempfile.mkdtemp()) / "stations.csv"
    stations.write_text(
        "station_id,password,ocpp_version\n"
        + "".join(f"MEM-{n:05d},pw,{'2.0.1' if n % 4 == 0 else '1.6'}\n" for n in range(chargers))
    )
    options = ap.Namespace(
        stations_file=str(stations), heartbeat_interval=0, meter_interval=60, session_length=1800,
        idle_length=1800, id_token="LOADTEST", call_timeout=30, backoff_min=10, max_power_w=11000,
        reset_stats_after=0,
    )  # fmt: skip
    environment = Environment(user_classes=[ChargerUser], host="ws://127.0.0.1:9000/ocpp", parsed_options=options)
    ChargerUser.host = environment.host
    tracemalloc.start(FRAMES)
    users: list[ChargerUser] = []
    firmware: list[Charger] = []
    tx_ids: list[int] = []
    now = time.time()
    for _ in range(chargers):
        user = ChargerUser(environment)
        user.on_start()
        assert user.charger is not None
        user.charger.connected(now)
        _converse(user.charger, now, tx_ids)
        users.append(user)
        firmware.append(user.charger)
    idle = twin_bytes()
    for user, charger in zip(users, firmware, strict=True):
        charger.plug_in(1, "LOADTEST", now)
        user.meter.start()
        _converse(charger, now, tx_ids)
        charger.handle_timer(now + 60.0)
        _converse(charger, now + 60.0, tx_ids)
    charging = twin_bytes()
    running = sum(len(charger.transactions) for charger in firmware)
    return {"idle": idle, "charging": charging, "transactions": running}


# ---- the driver ---------------------------------------------------------------------------------------------
def measure(setting: str, chargers: int) -> dict[str, Any]:
    """One measurement in a fresh process (so the two settings and sizes do not share allocations)."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", setting, "--chargers", str(chargers)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10, 50], metavar=("SMALL", "LARGE"))
    parser.add_argument("--measure", choices=["virtual", "locust"], help=argparse.SUPPRESS)
    parser.add_argument("--chargers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        result = measure_virtual(args.chargers) if args.measure == "virtual" else measure_locust(args.chargers)
        print(json.dumps(result))
        return 0
    small, large = args.sizes
    print(f"bytes per charger (slope between {small} and {large} chargers; tracemalloc, live allocations)")
    print(f"{'setting':<16}{'idle':>10}{'charging':>10}   transactions running at the charging snapshot")
    for setting in ("virtual", "locust"):
        a, b = measure(setting, small), measure(setting, large)
        idle = (b["idle"]["twin"] - a["idle"]["twin"]) / (large - small)
        charging = (b["charging"]["twin"] - a["charging"]["twin"]) / (large - small)
        running = f"{a['transactions']} of {small}, {b['transactions']} of {large}"
        print(f"{setting:<16}{idle:>10,.0f}{charging:>10,.0f}   {running}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
