"""The gateway's pacing of the cyclic garbage collector (csms/gateway/collector.py): what was alive when the
gateway started is out of the collector's sight while it serves, young collections are rarer, and both are
undone when it stops (a test process that started a gateway collects as before)."""

from __future__ import annotations

import gc

from csms.gateway.collector import YOUNG_THRESHOLD, CollectorPacing
from csms.services.config import CsmsConfig
from tests.csms.test_gateway import running


async def test_start_freezes_what_is_alive_and_stop_restores(sqlite_factory) -> None:
    thresholds = gc.get_threshold()
    survivor = [object() for _ in range(10)]  # a container alive before the start: frozen with the rest
    async with running(sqlite_factory, CsmsConfig()) as gateway:
        assert gateway.collector.young_threshold == YOUNG_THRESHOLD
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
        assert gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects())  # frozen objects are not walked
    assert gc.get_threshold() == thresholds
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
