"""What the load generators' chargers share: the firmware's configuration keys by version and a synthetic
meter on the wall clock (Locust's gevent users and the asyncio fleet drive the same sans-IO firmware)."""

from __future__ import annotations

import random
import time

from csms.ocpp.versions import OCPP16, OCPP201

#: Configuration keys the load generators set, by wire name per version.
KEYS = {
    OCPP16: {"sample": "MeterValueSampleInterval", "backoff": "ReconnectBackOffWaitMinimum",
             "range": "ReconnectBackOffRandomRange", "repeat": "ReconnectBackOffRepeatTimes"},
    OCPP201: {"sample": "SampledDataCtrlr.TxUpdatedInterval", "backoff": "OCPPCommCtrlr.RetryBackOffWaitMinimum",
              "range": "OCPPCommCtrlr.RetryBackOffRandomRange", "repeat": "OCPPCommCtrlr.RetryBackOffRepeatTimes"},
}  # fmt: skip


class RampMeter:
    """A :class:`~simulator.station.charger.MeterSource`: power ramps up over ``ramp_s`` once a session
    starts, holds at ``max_w`` and drops to 0 at unplug; the energy register integrates it (wall clock)."""

    def __init__(self, max_w: float, ramp_s: float = 60.0) -> None:
        self.max_w, self.ramp_s = max_w, ramp_s
        self.energy = random.uniform(0, 1e6)
        self.session_start: float | None = None
        self._at = time.time()

    def _advance(self) -> float:
        now = time.time()
        power = self._power(now)
        self.energy += power * (now - self._at) / 3600.0
        self._at = now
        return now

    def _power(self, now: float) -> float:
        if self.session_start is None:
            return 0.0
        return self.max_w * min(1.0, (now - self.session_start) / self.ramp_s)

    def start(self) -> None:
        self._advance()
        self.session_start = time.time()

    def stop(self) -> None:
        self._advance()
        self.session_start = None

    def energy_wh(self, connector_id: int) -> float:
        self._advance()
        return round(self.energy, 1)

    def power_w(self, connector_id: int) -> float:
        return round(self._power(self._advance()), 1)

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        amps = round(self._power(time.time()) / (3 * 230.0), 2)
        return (amps, amps, amps)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None
