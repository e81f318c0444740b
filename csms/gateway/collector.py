"""Keep the cyclic garbage collector's full collections short while tens of thousands of connections are held.

Every held connection is a few dozen long-lived objects (its protocol and parser, the host's connection, session
and RPC endpoint, the plugins' per-station state): at 10,000 connections over 600,000 objects that CPython's full
(generation 2) collection walks every time the survivors of the hot path have grown the oldest generation by a
quarter — every 15–30 s under load, stopping the event loop for 0.5–2.5 s on a loaded 2-core machine (measured
with ``gc.callbacks``; it was the p99 of every action while connections were held).

So every ``freeze_every_s`` whatever is alive moves to the permanent generation (:func:`gc.freeze`; a young
collection first, so that fresh cyclic garbage is not frozen): later full collections walk only what was
allocated since. Once every ``sweep_every_s`` everything is thawed and collected once, so cyclic garbage that
was frozen (a closed connection's protocol and its parser, a session's timer closure) is reclaimed: one long
pause per sweep instead of one per 20 s. Objects without reference cycles are freed by reference counting,
frozen or not.

The first freeze is at :meth:`CollectorPacing.start`, not a minute later: the ~140,000 objects of the imported
modules would otherwise be walked by every full collection of the first minute (3–4 in a 10-s benchmark run,
0.3 s of CPU, ~30 µs per message; issue 13). And the young generation is collected every ``young_threshold``
allocations rather than CPython's 700: a group commit keeps the objects of some hundred frames alive across
young collections, which then walked and promoted them again and again (~10 µs per message at 700).

When the gateway stops (:meth:`CollectorPacing.hold`), no collection runs at all until it has: closing 10,000
connections allocates enough to start full collections, and with everything thawed each walked all the
connections' objects again — three took 4.9 of a 12.5-s stop (``loadtests/bench_stop.py``, issue 13). The
garbage of the stop is collected afterwards, or never when the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


#: Allocations between two young collections while the gateway runs (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


class CollectorPacing:
    def __init__(
        self, freeze_every_s: float = 60.0, sweep_every_s: float = 900.0, young_threshold: int = YOUNG_THRESHOLD
    ) -> None:
        self.freeze_every_s = freeze_every_s
        self.sweep_every_s = sweep_every_s
        self.young_threshold = young_threshold
        self.sweeps = 0
        self._task: asyncio.Task[None] | None = None
        self._thresholds: tuple[int, int, int] | None = None
        self._enabled_before_hold: bool | None = None

    def start(self) -> None:
        self._thresholds = gc.get_threshold()
        gc.set_threshold(self.young_threshold, *self._thresholds[1:])
        gc.collect(1)
        gc.freeze()
        self._task = asyncio.create_task(self._run(), name="csms-gc-pacing")

    def hold(self) -> None:
        """No collection from now until :meth:`stop` (the gateway stops): what is alive is frozen, automatic
        collection is off."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._enabled_before_hold is None:
            self._enabled_before_hold = gc.isenabled()
            gc.disable()
            gc.freeze()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        gc.unfreeze()
        if self._enabled_before_hold is not None:
            if self._enabled_before_hold:
                gc.enable()
            self._enabled_before_hold = None

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.sweep_every_s
        while True:
            await asyncio.sleep(self.freeze_every_s)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.sweep_every_s
                started = time.perf_counter()
                gc.unfreeze()
                found = gc.collect()
                self.sweeps += 1
                log.info("full collection: %d unreachable objects in %.2f s", found, time.perf_counter() - started)
            else:
                gc.collect(1)
            gc.freeze()
