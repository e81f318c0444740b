"""Price finished sessions with the tariff engine: sessions per second for a realistic time-of-use tariff.

    ./run python loadtests/bench_tariffs.py --sessions 100000

Each session is 1-8 h in Europe/Amsterdam with a meter sample every 5 minutes, a parking tail, and a tariff
with a night rate, a grace period before a time fee, an idle fee and a flat fee (VAT 21 %).
"""

from __future__ import annotations

import argparse
import random
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    result = run(parser.parse_args().sessions)
    print(
        f"{result['sessions']:,} sessions priced in {result['cpu_s']:.1f} s CPU"
        f" ({result['sessions_per_s']:,.0f} sessions/s)"
    )


if __name__ == "__main__":
    main()
