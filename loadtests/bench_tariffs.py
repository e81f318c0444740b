"""Price finished sessions with the tariff engine: sessions per second for a realistic time-of-use tariff.

    ./run python loadtests/bench_tariffs.py --sessions 100000
    ./run python loadtests/bench_tariffs.py --sessions 4000 --against 5882410   # ratio to an older engine, one run

Each session is 1-8 h in Europe/Amsterdam with a meter sample every 5 minutes, a parking tail, and a tariff
with a night rate, a grace period before a time fee, an idle fee and a flat fee (VAT 21 %).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from csms.tariffs.parse import parse_tariff
from csms.tariffs.pricing import price_session
from csms.tariffs.timeline import MeterSample, SessionTimeline, State, StateChange

TARIFF: dict[str, Any] = {
    "id": "tou",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.22", "vat": 21, "step_size": 1},
                {"type": "FLAT", "price": "0.50", "vat": 21, "step_size": 0},
            ],
            "restrictions": {"start_time": "23:00", "end_time": "07:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": "0.39", "vat": 21, "step_size": 1}]},
        {
            "price_components": [{"type": "TIME", "price": "1.20", "vat": 21, "step_size": 60}],
            "restrictions": {"min_duration": 3600},
        },
        {"price_components": [{"type": "PARKING_TIME", "price": "6.00", "vat": 21, "step_size": 300}]},
    ],
}


def make_sessions(count: int, seed: int = 1) -> list[SessionTimeline]:
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    sessions = []
    for _ in range(count):
        start = base + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        charging = rng.randrange(60, 480, 5)
        kw = rng.choice([3.7, 7.4, 11, 22])
        samples = tuple(
            MeterSample(start + timedelta(minutes=m), Decimal(int(kw * 1000 * m / 60)))
            for m in range(0, charging + 1, 5)
        )
        parked = start + timedelta(minutes=charging)
        stop = parked + timedelta(minutes=rng.randrange(0, 90))
        sessions.append(
            SessionTimeline(start, stop, "Europe/Amsterdam", samples, (StateChange(parked, State.PARKING),))
        )
    return sessions


def run(sessions: int) -> dict[str, float]:
    tariff = parse_tariff(TARIFF)
    timelines = make_sessions(sessions)
    began = time.process_time()
    total = sum((price_session([tariff], t).total_cost.incl_vat or Decimal(0) for t in timelines), Decimal(0))
    cpu = time.process_time() - began
    return {"sessions": sessions, "cpu_s": cpu, "sessions_per_s": sessions / cpu, "revenue_incl_vat": float(total)}


def _engine_at(revision: str) -> Any:
    """csms/tariffs/pricing.py as it was at ``revision`` (git), loaded beside today's."""
    source = subprocess.run(
        ["git", "show", f"{revision}:csms/tariffs/pricing.py"], check=True, capture_output=True, text=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location("pricing_at_" + revision, file.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _cdr_fields(cdr: Any) -> tuple[Any, ...]:
    return (
        cdr.total_energy, cdr.total_time, cdr.total_parking_time, cdr.total_cost, cdr.review_reasons,
        [(c.dimension.value, c.volume, c.billed_volume, c.excl_vat, c.incl_vat) for c in cdr.costs],
        [(p.start_date_time, p.tariff_id, p.state.value, [(d.value, v) for d, v in p.dimensions])
         for p in cdr.charging_periods],
    )  # fmt: skip


def against(sessions: int, revision: str) -> None:
    """Today's engine and the one at ``revision`` on the same sessions, back to back: CPU ratio and equality."""
    old = _engine_at(revision)
    tariff = parse_tariff(TARIFF)  # the model and parser are shared: only the pricing module is the old one
    timelines = make_sessions(sessions)
    began = time.process_time()
    before = [old.price_session([tariff], t) for t in timelines]
    middle = time.process_time()
    after = [price_session([tariff], t) for t in timelines]
    end = time.process_time()
    same = sum(_cdr_fields(a) == _cdr_fields(b) for a, b in zip(before, after, strict=True))
    print(
        f"{sessions:,} sessions: {revision} {middle - began:.2f} s CPU, now {end - middle:.2f} s CPU"
        f" ({(middle - began) / (end - middle):.2f}x); identical CDRs {same:,} of {sessions:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--against", metavar="GIT_REV", help="also price with the engine at this git revision")
    args = parser.parse_args()
    if args.against:
        against(args.sessions, args.against)
        return
    result = run(args.sessions)
    print(
        f"{result['sessions']:,} sessions priced in {result['cpu_s']:.1f} s CPU"
        f" ({result['sessions_per_s']:,.0f} sessions/s)"
    )


if __name__ == "__main__":
    main()
