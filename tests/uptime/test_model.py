"""The NEVI formula, outage causes, exclusions at exact minute boundaries, clipping, monthly recomputation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.events import PortState
from csms.uptime import (
    Attempt,
    Availability,
    Connectivity,
    ExclusionPolicy,
    ExclusionWindow,
    Period,
    PortHistory,
    StatusPoint,
    monthly_uptime,
    nevi_uptime_pct,
    outages,
    period_minutes,
    trailing_twelve_months,
    uptime,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = Period(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))


def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2025, 3, 1, hh, mm, ss, tzinfo=UTC)


def online_port(*statuses: StatusPoint, **kw) -> PortHistory:
    return PortHistory(
        T0, statuses=[StatusPoint(T0, PortState.AVAILABLE), *statuses], connectivity=[Connectivity(T0, True)], **kw
    )


# ---- the formula -------------------------------------------------------------------------------------------
def test_worked_example():
    assert round(nevi_uptime_pct(20_000, 4_832), 3) == 97.114
    assert nevi_uptime_pct(20_000, 4_832) == pytest.approx((525_600 - 15_168) / 525_600 * 100)


def test_formula_edges():
    assert nevi_uptime_pct(0, 0) == 100.0
    assert nevi_uptime_pct(525_600, 0) == 0.0
    assert nevi_uptime_pct(525_600, 525_600) == 100.0
    with pytest.raises(ValueError):
        nevi_uptime_pct(10, 11)
    with pytest.raises(ValueError):
        nevi_uptime_pct(0, 0, 0)


def test_worked_example_from_a_history():
    """20,000 outage minutes, 4,832 of them in declared maintenance, over twelve months -> 97.114 %."""
    year = Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    fault = datetime(2025, 6, 1, tzinfo=UTC)
    history = PortHistory(
        year.start,
        statuses=[
            StatusPoint(year.start, PortState.AVAILABLE),
            StatusPoint(fault, PortState.FAULTED),
            StatusPoint(fault + timedelta(minutes=20_000), PortState.AVAILABLE),
        ],
        connectivity=[Connectivity(year.start, True)],
    )
    window = ExclusionWindow(
        fault, fault + timedelta(minutes=4_832), "scheduled_maintenance", declared_at=fault - timedelta(days=7)
    )
    result = uptime(history, year, [window])
    assert result.basis_minutes == 525_600
    assert result.outage_minutes == 20_000
    assert result.excluded_minutes == 4_832
    assert round(result.uptime_pct, 3) == 97.114
    assert [(o.minutes, o.excluded) for o in result.outages] == [(4_832, True), (15_168, False)]


def test_period_minutes():
    assert period_minutes(Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))) == 525_600
    assert period_minutes(DAY) == 1_440
    week = Period(DAY.start, DAY.start + timedelta(days=7))
    assert period_minutes(week) == 10_080


def test_short_period_scales_the_basis():
    result = uptime(
        online_port(StatusPoint(at(10), PortState.FAULTED), StatusPoint(at(10, 36), PortState.AVAILABLE)), DAY
    )
    assert result.basis_minutes == 1_440
    assert result.outage_minutes == 36
    assert result.uptime_pct == pytest.approx((1_440 - 36) / 1_440 * 100)


# ---- causes ------------------------------------------------------------------------------------------------
def test_causes_in_priority_order():
    history = PortHistory(
        T0,
        statuses=[
            StatusPoint(T0, PortState.AVAILABLE),
            StatusPoint(at(1), PortState.FAULTED),
            StatusPoint(at(3), PortState.UNAVAILABLE),
            StatusPoint(at(4), PortState.AVAILABLE),
        ],
        connectivity=[Connectivity(T0, True), Connectivity(at(2), False), Connectivity(at(2, 30), True)],
    )
    assert [(o.start, o.end, o.cause) for o in outages(history, DAY)] == [
        (at(1), at(2), "faulted"),
        (at(2), at(2, 30), "offline"),
        (at(2, 30), at(3), "faulted"),
        (at(3), at(4), "unavailable"),
    ]


def test_station_wide_status_applies_to_every_port():
    history = online_port(
        StatusPoint(at(5), PortState.FAULTED, station_wide=True),
        StatusPoint(at(6), PortState.AVAILABLE, station_wide=True),
    )
    assert [(o.start, o.end, o.cause) for o in outages(history, DAY)] == [(at(5), at(6), "faulted")]


def test_operator_ordered_unavailable_is_not_an_outage():
    history = online_port(
        StatusPoint(at(8), PortState.UNAVAILABLE),
        StatusPoint(at(9), PortState.AVAILABLE),
        StatusPoint(at(12), PortState.UNAVAILABLE),
        StatusPoint(at(13), PortState.AVAILABLE),
        availability=[Availability(at(7, 59), False), Availability(at(9), True)],
    )
    assert [(o.start, o.end, o.cause) for o in outages(history, DAY)] == [(at(12), at(13), "unavailable")]


def test_never_connected_is_offline_and_before_service_is_not_measured():
    history = PortHistory(at(12))
    result = uptime(history, DAY)
    assert result.basis_minutes == 720
    assert result.outage_minutes == 720
    assert result.uptime_pct == 0.0
    assert uptime(PortHistory(at(12)), Period(at(0), at(6))).uptime_pct is None


def test_failed_attempts_mean_unable_to_deliver():
    attempts = [
        Attempt(at(1), at(1, 5), 0.0),  # one failure is a driver's problem, not the port's
        Attempt(at(2), at(3), 5_000.0),
        Attempt(at(10), at(10, 2), 0.0),
        Attempt(at(11), at(11, 2), 0.5),
        Attempt(at(14), at(15), 7_000.0),
    ]
    history = online_port(attempts=attempts)
    assert [(o.start, o.end, o.cause) for o in outages(history, DAY)] == [(at(10), at(14), "unable_to_deliver")]
    strict = ExclusionPolicy(failed_attempts=1)
    assert [(o.start, o.end) for o in outages(history, DAY, policy=strict)] == [(at(1), at(2)), (at(10), at(14))]


def test_clipping_to_the_period():
    history = online_port(
        StatusPoint(datetime(2025, 2, 28, 23, tzinfo=UTC), PortState.FAULTED),
        StatusPoint(at(1), PortState.AVAILABLE),
        StatusPoint(at(23, 30), PortState.FAULTED),
    )
    assert [(o.start, o.end) for o in outages(history, DAY)] == [(at(0), at(1)), (at(23, 30), DAY.end)]
    assert uptime(history, DAY).outage_minutes == 90


# ---- exclusions --------------------------------------------------------------------------------------------
def test_exclusion_at_exact_minute_boundaries():
    history = online_port(StatusPoint(at(10), PortState.FAULTED), StatusPoint(at(11), PortState.AVAILABLE))
    window = ExclusionWindow(at(10), at(10, 30), "utility_outage", id=7)
    records = outages(history, DAY, [window])
    assert [(o.start, o.end, o.excluded, o.exclusion_cause, o.exclusion_id) for o in records] == [
        (at(10), at(10, 30), True, "utility_outage", 7),
        (at(10, 30), at(11), False, None, None),
    ]
    # A window that ends exactly where the outage starts excludes nothing (half-open intervals).
    before = ExclusionWindow(at(9), at(10), "utility_outage")
    after = ExclusionWindow(at(11), at(12), "utility_outage")
    assert uptime(history, DAY, [before, after]).excluded_minutes == 0
    # One second more on each side covers exactly one second each.
    result = uptime(
        history,
        DAY,
        [ExclusionWindow(at(9), at(10, 0, 1), "vandalism"), ExclusionWindow(at(10, 59, 59), at(12), "vandalism")],
    )
    assert result.excluded_minutes == pytest.approx(2 / 60)
    assert result.outage_minutes == 60


def test_maintenance_must_be_declared_before_it_starts():
    history = online_port(StatusPoint(at(10), PortState.UNAVAILABLE), StatusPoint(at(12), PortState.AVAILABLE))
    on_time = ExclusionWindow(at(10), at(12), "scheduled_maintenance", declared_at=at(10))
    late = ExclusionWindow(at(10), at(12), "scheduled_maintenance", declared_at=at(10, 0, 1))
    undeclared = ExclusionWindow(at(10), at(12), "scheduled_maintenance")
    assert uptime(history, DAY, [on_time]).excluded_minutes == 120
    assert uptime(history, DAY, [late]).excluded_minutes == 0
    assert uptime(history, DAY, [undeclared]).excluded_minutes == 0
    notice = ExclusionPolicy(maintenance_notice_s=3600)
    assert uptime(history, DAY, [on_time], notice).excluded_minutes == 0
    early = ExclusionWindow(at(10), at(12), "scheduled_maintenance", declared_at=at(9))
    assert uptime(history, DAY, [early], notice).excluded_minutes == 120
    # Other causes may be declared afterwards.
    assert (
        uptime(history, DAY, [ExclusionWindow(at(10), at(11), "natural_disaster", declared_at=at(20))]).excluded_minutes
        == 60
    )


def test_policy_decides_which_causes_may_be_excluded():
    history = online_port(StatusPoint(at(10), PortState.FAULTED), StatusPoint(at(11), PortState.AVAILABLE))
    window = ExclusionWindow(at(10), at(11), "vehicle_fault")
    assert uptime(history, DAY, [window]).excluded_minutes == 60
    no_vehicle = ExclusionPolicy(causes=frozenset({"utility_outage"}))
    assert uptime(history, DAY, [window], no_vehicle).excluded_minutes == 0
    assert uptime(history, DAY, [ExclusionWindow(at(10), at(11), "made_up")]).excluded_minutes == 0


def test_exclusions_never_count_up_time():
    history = online_port()
    result = uptime(history, DAY, [ExclusionWindow(at(0), at(23), "outside_operating_hours")])
    assert (result.outage_minutes, result.excluded_minutes, result.uptime_pct) == (0, 0, 100.0)


# ---- monthly recomputation ---------------------------------------------------------------------------------
def test_trailing_twelve_months():
    period = trailing_twelve_months(datetime(2026, 2, 1, tzinfo=UTC))
    assert (period.start, period.end) == (datetime(2025, 2, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(ValueError):
        trailing_twelve_months(datetime(2026, 2, 2, tzinfo=UTC))
    # A leap year still uses the regulation's constant.
    leap = trailing_twelve_months(datetime(2024, 4, 1, tzinfo=UTC))
    assert period_minutes(leap) == 525_600


def test_monthly_recomputation_drops_old_outages():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    outage = datetime(2024, 3, 10, tzinfo=UTC)
    history = PortHistory(
        start,
        statuses=[
            StatusPoint(start, PortState.AVAILABLE),
            StatusPoint(outage, PortState.FAULTED),
            StatusPoint(outage + timedelta(minutes=5_256), PortState.AVAILABLE),
        ],
        connectivity=[Connectivity(start, True)],
    )
    first = monthly_uptime(history, datetime(2025, 1, 1, tzinfo=UTC))
    assert first.outage_minutes == 5_256
    assert first.uptime_pct == pytest.approx(99.0)
    assert monthly_uptime(history, datetime(2025, 3, 1, tzinfo=UTC)).outage_minutes == 5_256
    # Once the window has moved past March 2024 the outage no longer counts.
    assert monthly_uptime(history, datetime(2025, 4, 1, tzinfo=UTC)).uptime_pct == 100.0


def test_monthly_window_clips_an_outage_across_its_start():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    history = PortHistory(
        start,
        statuses=[
            StatusPoint(start, PortState.AVAILABLE),
            StatusPoint(datetime(2024, 3, 31, 23, tzinfo=UTC), PortState.FAULTED),
            StatusPoint(datetime(2024, 4, 1, 1, tzinfo=UTC), PortState.AVAILABLE),
        ],
        connectivity=[Connectivity(start, True)],
    )
    assert monthly_uptime(history, datetime(2025, 4, 1, tzinfo=UTC)).outage_minutes == 60
    assert monthly_uptime(history, datetime(2025, 3, 1, tzinfo=UTC)).outage_minutes == 120
