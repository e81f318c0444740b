"""A virtual-time run paces the garbage collector only while it runs: whatever runs after it in the same
process (a test suite, a notebook) gets its own thresholds back, also when the run fails."""

from __future__ import annotations

import gc

import pytest

from simulator.collector import YOUNG_THRESHOLD, paced_collector


def test_thresholds_are_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with paced_collector():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold() == before


def test_thresholds_are_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), paced_collector():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before
