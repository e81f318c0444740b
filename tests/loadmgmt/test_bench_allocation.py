"""Allocation time per re-plan for 10, 100 and 1,000 EVSEs, per strategy (pytest-benchmark).

The suite runs with ``--benchmark-disable``, so each runs once as a test (and checks the result is safe);
``pytest tests/loadmgmt/test_bench_allocation.py --benchmark-enable`` measures. Compare ratios between
sizes and strategies; absolute times depend on the machine and are never gated on.
``loadtests/bench_allocation.py`` prints the same as a table.
"""

from __future__ import annotations

import random

import pytest

from csms.loadmgmt.examples import depot
from csms.loadmgmt.strategies import STRATEGIES
from tests.loadmgmt._sites import violations

NOW = 1_800_000_000.0


@pytest.mark.benchmark(group="allocation")
@pytest.mark.parametrize("size", [10, 100, 1000])
@pytest.mark.parametrize("name", [n for n, fn in STRATEGIES.items() if fn is not None])
def test_allocation_time(benchmark, name, size):
    state = depot(size, random.Random(size))
    strategy = STRATEGIES[name]
    allocation = benchmark(strategy, state, NOW)
    assert violations(state, allocation) == []
    assert len(allocation.limits_a) == len(state.sessions)
