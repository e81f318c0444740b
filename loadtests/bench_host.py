"""The CSMS's own cost per OCPP message, without sockets: frames straight into the sans-IO host.

Stations (¾ OCPP 1.6, ¼ 2.0.1, as the twin's depot) boot, start a transaction and then send MeterValues
(1.6) or TransactionEvent Updated with meter values (2.0.1) — the "meter" mix of ``bench_gateway.py``.
``--batch`` stations send at the same instant, so a group commit holds that many calls: 1 is virtual time
at its worst (every frame its own transaction), the gateway under load batches tens to hundreds.

What is timed is the host's work per message: schema validation, the session, the services, the database
transaction and the answer frame. The CPU figure is the process's own (``time.process_time``), so it is
steady on a shared machine; compare runs made back to back.

    uv run python loadtests/bench_host.py --stations 200 --messages 50 --batch 1
    uv run python loadtests/bench_host.py --stations 200 --messages 50 --batch 100 [--database-url URL]
    uv run python loadtests/bench_host.py ... --profile       # cProfile, own time by layer
    uv run python loadtests/bench_host.py ... --tariff        # every station priced: 2.0.1 answers carry totalCost
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import itertools
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from csms.core.host import CsmsHost
from csms.ocpp.versions import OCPP16, OCPP201, Version
from csms.services import stations, tariffs
from csms.services.config import CsmsConfig
from csms.store import migrate
from csms.store.database import make_engine, make_session_factory

EPOCH = datetime(2026, 1, 5, 18, 0, tzinfo=UTC).timestamp()
#: The issue's tariff (0.30/kWh + 2.00/h after a 60-minute grace + 1.00 flat, VAT 20 %), with ``--tariff``.
TARIFF: dict[str, Any] = {
    "id": "BENCH",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": "1.00", "vat": "20", "step_size": 1}]},
        {"price_components": [{"type": "ENERGY", "price": "0.30", "vat": "20", "step_size": 1}]},
        {
            "price_components": [{"type": "TIME", "price": "2.00", "vat": "20", "step_size": 60}],
            "restrictions": {"min_duration": 3600},
        },
    ],
}


class InlineScheduler:
    """Time moves only when the bench says; database work runs inline, callbacks in order."""

    def __init__(self) -> None:
        self._now = EPOCH
        self._due: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, fn: Callable[[], None]) -> list[Any]:
        entry: list[Any] = [fn]
        if when <= self._now:
            self._due.append(lambda: entry[0] and entry[0]())
        return entry

    def cancel(self, handle: list[Any]) -> None:
        handle[0] = None

    def run_db(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        then(work())

    def run(self, advance_s: float) -> None:
        while self._due:
            due, self._due = self._due, []
            for fn in due:
                fn()
        self._now += advance_s


class Sink:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def send(self, frames: list[str]) -> None:
        self.frames.extend(frames)

    def close(self, reason: str) -> None:
        pass


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _meter_16(t: float, tx_id: int, wh: float) -> dict[str, Any]:
    sampled = [
        {"value": f"{wh:.1f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
    ]
    sampled += [{"value": "31.3", "measurand": "Current.Import", "phase": p, "unit": "A"} for p in ("L1", "L2", "L3")]
    return {"connectorId": 1, "transactionId": tx_id, "meterValue": [{"timestamp": _iso(t), "sampledValue": sampled}]}


def _meter_201(t: float, seq: int, wh: float) -> dict[str, Any]:
    sampled = [
        {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
        {"value": 50000.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
    ]
    sampled += [{"value": 72.0, "measurand": "Current.Import", "phase": p} for p in ("L1", "L2", "L3")]
    return {
        "eventType": "Updated",
        "timestamp": _iso(t),
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "tx-1"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": _iso(t), "sampledValue": sampled}],
    }


class Station:
    def __init__(self, host: CsmsHost, station_id: str, version: Version) -> None:
        self.station_id, self.version, self.host = station_id, version, host
        self.sink = Sink()
        self.connection = host.connect(host.admit(station_id, None, version), version, self.sink)
        self.ids = itertools.count(1)
        self.tx_id = 0
        self.seq = 0

    def call(self, action: str, payload: dict[str, Any]) -> None:
        self.host.receive(self.connection, orjson.dumps([2, str(next(self.ids)), action, payload]).decode())

    def answers(self) -> list[Any]:
        out, self.sink.frames = [orjson.loads(f) for f in self.sink.frames], []
        return out

    def boot(self) -> None:
        if self.version == OCPP16:
            self.call("BootNotification", {"chargePointVendor": "bench", "chargePointModel": "host"})
        else:
            self.call(
                "BootNotification", {"reason": "PowerUp", "chargingStation": {"vendorName": "bench", "model": "host"}}
            )

    def start(self, t: float) -> None:
        if self.version == OCPP16:
            self.call("StartTransaction", {"connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": _iso(t)})
        else:
            self.seq = 0
            started = {"eventType": "Started", "timestamp": _iso(t), "triggerReason": "CablePluggedIn", "seqNo": 0}
            self.call("TransactionEvent", started | {"transactionInfo": {"transactionId": "tx-1"}, "evse": {"id": 1}})

    def started(self) -> None:
        for answer in self.answers():
            if self.version == OCPP16 and answer[0] == 3 and "transactionId" in answer[2]:
                self.tx_id = answer[2]["transactionId"]

    def meter(self, t: float, n: int) -> None:
        if self.version == OCPP16:
            self.call("MeterValues", _meter_16(t, self.tx_id, 120.0 * n))
        else:
            self.seq += 1
            self.call("TransactionEvent", _meter_201(t, self.seq, 800.0 * n))


def _version(i: int) -> Version:
    return OCPP201 if i % 4 == 3 else OCPP16


def _charging_fleet(
    args: argparse.Namespace, engine: Any, scheduler: InlineScheduler
) -> tuple[CsmsHost, list[Station]]:
    """Stations provisioned, connected, booted, each with a running transaction."""
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory.begin() as db:
        for i in range(args.stations):
            stations.provision(db, f"B-{i:05d}", ocpp_version=_version(i), password=None, now=datetime.now(UTC))
        if args.tariff:
            at = datetime.fromtimestamp(EPOCH - 86400, UTC)
            tariffs.put(db, "BENCH", TARIFF, at)
            for i in range(args.stations):
                tariffs.set_station_default(db, f"B-{i:05d}", "BENCH", at)
    host = CsmsHost(factory, CsmsConfig(message_log_per_station=args.message_log), scheduler)
    fleet = [Station(host, f"B-{i:05d}", _version(i)) for i in range(args.stations)]
    for station in fleet:
        station.boot()
    scheduler.run(1.0)
    for station in fleet:
        station.answers()
        station.start(scheduler.now())
    scheduler.run(1.0)
    for station in fleet:
        station.started()
    return host, fleet


def run(args: argparse.Namespace) -> dict[str, float]:
    url = args.database_url or "sqlite:///" + str(Path(tempfile.mkdtemp()) / "bench.db")
    engine = make_engine(url)
    scheduler = InlineScheduler()
    host, fleet = _charging_fleet(args, engine, scheduler)
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    sent = 0
    for n in range(1, args.messages + 1):
        sent += _round(args, fleet, scheduler, n)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if profiler:
        _print_layers(profiler)
    engine.dispose()
    return {"messages": sent, "cpu_us": cpu / sent * 1e6, "wall_s": wall, "batches": host.processor.batches}


def _round(args: argparse.Namespace, fleet: list[Station], scheduler: InlineScheduler, n: int) -> int:
    """Every station's n-th meter message, ``--batch`` stations per group commit; the messages sent."""
    for group in range(0, len(fleet), args.batch):
        for station in fleet[group : group + args.batch]:
            station.meter(scheduler.now(), n)
        scheduler.run(0.01)
        for station in fleet[group : group + args.batch]:
            for answer in station.answers():
                if answer[0] != 3:
                    raise SystemExit(f"{station.station_id}: unexpected answer {answer}")
    if args.tariff:  # a minute between a station's samples, as chargers send them (priced energy, not a jump)
        scheduler.run(60.0)
    return len(fleet)


def _print_layers(profiler: cProfile.Profile) -> None:
    stats = pstats.Stats(profiler)
    layers: collections.Counter[str] = collections.Counter()
    for (path, _line, _fn), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in path:
            layers[path.split("site-packages/")[1].split("/")[0]] += own
        elif "/csms/" in path:
            layers["csms/" + path.split("/csms/")[1].split("/")[0]] += own
        else:
            layers["python runtime" if path.startswith("~") or "/lib/python" in path else path] += own
    total = sum(layers.values())
    for layer, own in layers.most_common(14):
        print(f"  {100 * own / total:5.1f} %  {layer}")
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=50, help="meter messages per station")
    parser.add_argument("--batch", type=int, default=1, help="stations per group commit")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--message-log", type=int, default=0, help="message log rows kept per station (0: off)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tariff", action="store_true", help="price every session (2.0.1 answers carry totalCost)")
    args = parser.parse_args()
    result = run(args)
    print(
        f"stations={args.stations} batch={args.batch} messages={result['messages']:.0f} "
        f"batches={result['batches']:.0f} wall={result['wall_s']:.2f}s cpu_per_msg={result['cpu_us']:.0f}us"
    )


if __name__ == "__main__":
    main()
