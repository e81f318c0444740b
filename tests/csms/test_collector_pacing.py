"""The gateway's pacing of the garbage collector: long-lived objects are frozen out of full collections, and
cyclic garbage that was frozen is still reclaimed at the next sweep."""

from __future__ import annotations

import asyncio
import gc
import weakref

from csms.gateway.collector import CollectorPacing


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def test_frozen_cycles_are_reclaimed_at_the_sweep():
    pacing = CollectorPacing(freeze_every_s=0.05, sweep_every_s=0.5)
    pacing.start()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the cyclic collector can free it
        alive = weakref.ref(a)
        await asyncio.sleep(0.15)
        assert gc.get_freeze_count() > 0  # frozen out of the full collections
        del a, b
        gc.collect()
        assert alive() is not None  # frozen garbage waits for the sweep
        for _ in range(40):
            await asyncio.sleep(0.05)
            if pacing.sweeps:
                break
        assert pacing.sweeps >= 1
        gc.collect(0)
        assert alive() is None
    finally:
        pacing.stop()
    assert gc.get_freeze_count() == 0


def test_no_collection_while_held_and_the_state_restored_after():
    pacing = CollectorPacing()
    assert gc.isenabled()
    pacing.hold()
    try:
        assert not gc.isenabled()  # the gateway's stop allocates without starting full collections
        assert gc.get_freeze_count() > 0
    finally:
        pacing.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0
