"""The charger firmware's own cost per periodic meter sample, without SimPy, the link or a CSMS.

One 1.6 charger (the Locust worker's and the twin's firmware) is booted and put in a transaction, then woken at
each of its deadlines: the sample's MeterValues is built, validated and written, answered at once with an
empty CALLRESULT, and the charger asked for its next deadline as the link asks after every input. A heartbeat
falls every 300 s, one wake in five. On a shared machine the figure moves with the load: compare trees back to
back (``--repeat`` runs alternate nothing; run the script once per tree, ABBA).

    uv run python loadtests/bench_firmware_sample.py [--wakes 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from csms.ocpp.versions import OCPP16
from simulator.station import Charger
from simulator.station.draws import SeededDraws

T0 = 1.77e9 + 0.15
ANSWERS = {
    "BootNotification": {"status": "Accepted", "currentTime": "2026-01-01T00:00:00.000Z", "interval": 300},
    "StartTransaction": {"transactionId": 7, "idTagInfo": {"status": "Accepted"}},
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
}


class SteadyMeter:
    """A 22-kW AC session in mid-charge, the register moving on."""

    def __init__(self) -> None:
        self.register_wh = 12_345.678

    def energy_wh(self, connector_id: int) -> float:
        self.register_wh += 0.25
        return self.register_wh

    def power_w(self, connector_id: int) -> float:
        return 11_040.0

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return (16.0, 16.0, 16.0)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None


def _answer_calls(charger: Charger, at: float) -> None:
    """Answer what the charger sent (its CALLs, at once), as often as answering makes it send more."""
    for _ in range(10):
        calls = [orjson.loads(frame) for frame in charger.frames_to_send()]
        calls = [c for c in calls if c[0] == 2]
        if not calls:
            return
        for _type, unique_id, action, _payload in calls:
            charger.receive_frame(orjson.dumps([3, unique_id, ANSWERS.get(action, {})]).decode(), at)
            charger.next_deadline()


def charging_charger() -> Charger:
    charger = Charger("CP1", OCPP16, meter=SteadyMeter(), rng=SeededDraws(1), heartbeat="periodic")  # a wake in five
    charger.connected(T0)
    _answer_calls(charger, T0 + 0.1)
    charger.plug_in(1, "TAG1", T0 + 1.0)
    _answer_calls(charger, T0 + 1.1)
    if not charger.transactions:
        raise RuntimeError("the charger did not start its transaction")
    return charger


def wake(charger: Charger, wakes: int) -> None:
    for _ in range(wakes):
        now = charger.next_deadline()
        assert now is not None
        charger.handle_timer(now)
        charger.next_deadline()
        _answer_calls(charger, now + 0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wakes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    charger = charging_charger()
    wake(charger, 100)  # warm up
    best = float("inf")
    for _ in range(args.repeat):
        started = time.process_time()
        wake(charger, args.wakes)
        best = min(best, (time.process_time() - started) / args.wakes)
    print(f"firmware CPU per wake (sample or heartbeat, answered)   {best * 1e6:.1f} us (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
