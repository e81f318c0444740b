"""Write ``scenarios/acn-depot-200.csv``: 200 workplace charging sessions in the shape of Caltech ACN-Data.

The sessions are SYNTHETIC. ACN-Data (https://ev.caltech.edu/dataset) cannot be downloaded here (no internet
at build or run time), so this script draws one weekday at a 200-space workplace garage from a fixed seed,
shaped after the published statistics of the Caltech site (Lee, Li and Low, "ACN-Data: Analysis and
Applications of an Open EV Charging Dataset", e-Energy 2019): arrivals mostly between 7 and 10 am with a
thinner tail through the afternoon, stays of about 4-10 hours, a median kWhDelivered of about 8 kWh and a
pilot limit of 6.6-7 kW (single-phase AC). Every session is feasible at its own rate (the energy fits in
85 % of its stay at full power) and leaves before the scenario ends.

Run from the repository root (the output is committed; rerunning writes the same file)::

    python3 scenarios/tools/make_acn_sessions.py
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

SEED = 2019
SESSIONS = 200
PREFIX = "CA"  # station ids CA-1 … CA-200 (the Caltech garage's spaces are named CA-<n>)
START = datetime(2019, 5, 6, 6, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # a Monday, 06:00 local
LAST_DEPARTURE_H = 17.5  # hours after START: everyone has left by 23:30
OUT = Path(__file__).resolve().parents[1] / "acn-depot-200.csv"

HEADER = """\
# 200 SYNTHETIC workplace charging sessions in the shape of Caltech ACN-Data (connectionTime,
# disconnectTime, kWhDelivered, stationID), one weekday from 06:00 America/Los_Angeles. Not real ACN-Data:
# drawn by scenarios/tools/make_acn_sessions.py (seed 2019) from the published statistics of the Caltech
# site (arrivals mostly 7-10 am, stays ~4-10 h, median kWhDelivered ~8 kWh, 6.6-7 kW single-phase AC).
# max_kw is the session's pilot limit (not an ACN-Data field).
"""


def _arrival_h(rng: random.Random) -> float:
    """Hours after 06:00: the morning peak, or now and then someone coming later in the day."""
    if rng.random() < 0.82:
        return min(max(rng.gauss(2.5, 0.8), 0.75), 5.0)  # 08:30 ± 48 min, within 06:45-11:00
    return rng.uniform(5.0, 11.0)  # 11:00-17:00


def _stay_h(rng: random.Random, arrival_h: float) -> float:
    stay = min(max(rng.lognormvariate(math.log(7.0), 0.3), 2.0), 11.0)  # median 7 h, mostly 4.5-10 h
    return min(stay, LAST_DEPARTURE_H - arrival_h)


def _energy_kwh(rng: random.Random, stay_h: float, max_kw: float) -> float:
    energy = min(max(rng.lognormvariate(math.log(8.0), 0.55), 1.0), 40.0)  # median 8 kWh
    return min(energy, 0.85 * max_kw * stay_h)


def _stamp(hours: float) -> str:
    return (START + timedelta(seconds=round(hours * 3600 / 60) * 60)).isoformat()


def main() -> None:
    rng = random.Random(SEED)
    lines = ["sessionID,stationID,connectionTime,disconnectTime,kWhDelivered,max_kw"]
    for n in range(1, SESSIONS + 1):
        arrival_h = _arrival_h(rng)
        max_kw = 6.6 if rng.random() < 0.7 else 7.0
        stay_h = _stay_h(rng, arrival_h)
        energy = _energy_kwh(rng, stay_h, max_kw)
        lines.append(
            f"synth-{n:03d},{PREFIX}-{n},{_stamp(arrival_h)},{_stamp(arrival_h + stay_h)},{energy:.3f},{max_kw:g}"
        )
    OUT.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({SESSIONS} sessions)")


if __name__ == "__main__":
    main()
