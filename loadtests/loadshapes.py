"""Load shapes for ``loadtests/locustfile.py``, chosen with ``LOADTEST_SHAPE`` (Locust then ignores -u/-r/-t).

Parameters come from the locustfile's ``--shape-*`` options (on the master in distributed mode):

* ``steady``     ramp to ``--shape-users`` at ``--shape-spawn-rate``/s, hold until ``--shape-duration``.
* ``bootstorm``  all ``--shape-users`` chargers start at once (spawn rate = users): a depot after a power cut.
* ``wave``       steady fleet; at ``--shape-blackout-at`` every socket drops and the network stays down for
                 ``--shape-blackout-length``; chargers come back on their own reconnect back-off.
* ``ramp``       ``--shape-step-users`` more chargers every ``--shape-step-time`` up to ``--shape-users``,
                 to find the knee (watch p99 per step in the CSV history, ``--csv-full-history``).
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape
from locust.env import Environment


class _Shape(LoadTestShape):
    abstract = True

    @property
    def environment(self) -> Environment:
        if self.runner is None:
            raise RuntimeError("a load shape runs inside a locust runner")
        return self.runner.environment

    @property
    def opts(self) -> Any:
        return self.environment.parsed_options

    def _limit(self) -> bool:
        return self.get_run_time() >= self.opts.shape_duration


class SteadyShape(_Shape):
    def tick(self) -> tuple[int, float] | None:
        if self._limit():
            return None
        return self.opts.shape_users, self.opts.shape_spawn_rate


class BootStormShape(_Shape):
    def tick(self) -> tuple[int, float] | None:
        if self._limit():
            return None
        return self.opts.shape_users, float(self.opts.shape_users)


class ReconnectWaveShape(_Shape):
    _fired = False
    #: set by the locustfile: ``start_blackout(environment, length_s)``
    start_blackout: Any = None

    def tick(self) -> tuple[int, float] | None:
        if self._limit():
            return None
        if not self._fired and self.get_run_time() >= self.opts.shape_blackout_at:
            self._fired = True
            type(self).start_blackout(self.environment, self.opts.shape_blackout_length)
        return self.opts.shape_users, self.opts.shape_spawn_rate


class RampShape(_Shape):
    def tick(self) -> tuple[int, float] | None:
        if self._limit():
            return None
        step = int(self.get_run_time() // self.opts.shape_step_time) + 1
        users = min(self.opts.shape_users, step * self.opts.shape_step_users)
        return users, self.opts.shape_spawn_rate


SHAPES: dict[str, type[LoadTestShape]] = {
    "steady": SteadyShape,
    "bootstorm": BootStormShape,
    "wave": ReconnectWaveShape,
    "ramp": RampShape,
}
