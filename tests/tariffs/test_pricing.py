"""The tariff engine: a hand-computed session, OCPI step_size rules, DST, tariff changes, meter faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from csms.tariffs.model import Dimension
from csms.tariffs.parse import parse_tariff
from csms.tariffs.pricing import RunningCost, price_session
from csms.tariffs.timeline import MeterSample, SessionTimeline, State, StateChange

T0 = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)

# The issue's example: 0.30/kWh + 2.00 per hour after a 60-minute grace + 1.00 flat, VAT 20 %.
EXAMPLE: dict[str, Any] = {
    "id": "example",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.30", "vat": 20, "step_size": 1},
                {"type": "FLAT", "price": "1.00", "vat": 20, "step_size": 0},
            ]
        },
        {
            "price_components": [{"type": "TIME", "price": "2.00", "vat": 20, "step_size": 60}],
            "restrictions": {"min_duration": 3600},
        },
    ],
}


def linear_session(minutes: int, kwh: int, zone: str = "Europe/Amsterdam", start: datetime = T0) -> SessionTimeline:
    samples = tuple(
        MeterSample(start + timedelta(minutes=m), Decimal(kwh * 1000 * m // minutes)) for m in range(0, minutes + 1, 5)
    )
    return SessionTimeline(start, start + timedelta(minutes=minutes), zone, samples)


def test_the_issue_example_by_hand() -> None:
    # 150 min, 22 kWh: 22 x 0.30 = 6.60; 90 min after the grace x 2.00/h = 3.00; flat 1.00 -> 10.60, +20 % = 12.72
    cdr = price_session([parse_tariff(EXAMPLE)], linear_session(150, 22))
    assert cdr.total_cost.excl_vat == Decimal("10.60")
    assert cdr.total_cost.incl_vat == Decimal("12.72")
    assert cdr.total_energy == Decimal("22")
    assert cdr.total_time == Decimal("2.5")
    energy, time = cdr.cost(Dimension.ENERGY), cdr.cost(Dimension.TIME)
    assert energy is not None and energy.excl_vat == Decimal("6.60")
    assert time is not None and time.volume == Decimal("1.5") and time.incl_vat == Decimal("3.60")
    # one period before the grace ends (ENERGY+FLAT), one after it (ENERGY+TIME)
    assert [p.start_date_time for p in cdr.charging_periods] == [T0, T0 + timedelta(hours=1)]
    assert dict(cdr.charging_periods[0].dimensions)[Dimension.FLAT] == 1
    assert dict(cdr.charging_periods[1].dimensions)[Dimension.TIME] == Decimal("1.5")
    assert cdr.review_reasons == ()


def test_a_session_inside_the_grace_pays_energy_and_flat_only() -> None:
    cdr = price_session([parse_tariff(EXAMPLE)], linear_session(45, 10))
    assert cdr.total_cost.excl_vat == Decimal("4.00")
    assert cdr.cost(Dimension.TIME) is None


def test_step_size_rounds_the_dimension_total_at_the_last_price() -> None:
    # 61 minutes of TIME in 15-minute steps: billed 75 minutes; the night price (the last one used) bills the rest
    tariff = parse_tariff(
        {
            "id": "tou",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [{"type": "TIME", "price": "6.00", "step_size": 900}],
                    "restrictions": {"start_time": "08:00", "end_time": "08:30"},
                },
                {"price_components": [{"type": "TIME", "price": "1.20", "step_size": 900}]},
            ],
        }
    )
    start = datetime(2026, 6, 10, 6, 0, tzinfo=UTC)  # 08:00 in Amsterdam (CEST)
    cdr = price_session([tariff], linear_session(61, 0, start=start))
    # 30 min x 6.00/h = 3.00; 31 min x 1.20/h = 0.62; 14 more minutes at 1.20/h = 0.28 -> 3.90
    assert cdr.total_cost.excl_vat == Decimal("3.90")
    time = cdr.cost(Dimension.TIME)
    assert time is not None and time.billed_volume == Decimal("1.25")


def test_night_rate_across_a_dst_night() -> None:
    # Amsterdam springs forward on 2026-03-29 at 02:00 local: a 23:00-07:00 night price, a session 22:00-08:00 local
    night = {
        "price_components": [{"type": "ENERGY", "price": "0.10", "step_size": 1}],
        "restrictions": {"start_time": "23:00", "end_time": "07:00"},
    }
    day = {"price_components": [{"type": "ENERGY", "price": "0.40", "step_size": 1}]}
    tariff = parse_tariff({"id": "night", "currency": "EUR", "elements": [night, day]})
    start = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 CET
    stop = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST: 9 real hours, 1 kWh per hour
    samples = tuple(MeterSample(start + timedelta(hours=h), Decimal(1000 * h)) for h in range(10))
    cdr = price_session([tariff], SessionTimeline(start, stop, "Europe/Amsterdam", samples))
    # day 22:00-23:00 (1 h), night 23:00-07:00 CEST (7 real hours), day 07:00-08:00 (1 h)
    assert cdr.total_cost.excl_vat == Decimal("0.40") * 2 + Decimal("0.10") * 7


def test_a_tariff_change_mid_session_splits_the_period() -> None:
    old = dict(EXAMPLE, id="v1")
    new = {
        "id": "v2",
        "currency": "EUR",
        "start_date_time": (T0 + timedelta(minutes=30)).isoformat(),
        "elements": [{"price_components": [{"type": "ENERGY", "price": "0.50", "vat": 20, "step_size": 1}]}],
    }
    cdr = price_session([parse_tariff(old), parse_tariff(new)], linear_session(60, 12))
    # 6 kWh x 0.30 + flat 1.00 under v1, 6 kWh x 0.50 under v2
    assert cdr.total_cost.excl_vat == Decimal("5.80")
    assert [p.tariff_id for p in cdr.charging_periods] == ["v1", "v2"]


def test_parking_time_is_priced_apart_from_charging() -> None:
    tariff = parse_tariff(
        {
            "id": "idle",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "ENERGY", "price": "0.30", "step_size": 1},
                        {"type": "PARKING_TIME", "price": "6.00", "step_size": 60},
                    ]
                }
            ],
        }
    )
    timeline = linear_session(60, 10)
    parked = SessionTimeline(
        timeline.start,
        timeline.stop + timedelta(minutes=20),
        timeline.time_zone,
        timeline.samples,
        (StateChange(timeline.stop, State.PARKING),),
    )
    cdr = price_session([tariff], parked)
    assert cdr.total_cost.excl_vat == Decimal("3.00") + Decimal("2.00")
    assert cdr.total_parking_time == Decimal("0.333333")


def test_a_meter_running_backwards_is_flagged_and_never_negative() -> None:
    samples = (
        MeterSample(T0, Decimal(5000)),
        MeterSample(T0 + timedelta(minutes=10), Decimal(8000)),
        MeterSample(T0 + timedelta(minutes=20), Decimal(100)),  # replaced meter, or a fault
        MeterSample(T0 + timedelta(minutes=30), Decimal(9000)),
    )
    cdr = price_session([parse_tariff(EXAMPLE)], SessionTimeline(T0, T0 + timedelta(minutes=30), "UTC", samples))
    assert cdr.total_cost.excl_vat == Decimal("1.00") + Decimal("0.30") * 4  # 3 kWh, then 1 kWh above 8000 Wh
    assert any("backwards" in reason for reason in cdr.review_reasons)


def test_a_meter_that_stops_mid_session_is_flagged() -> None:
    samples = (MeterSample(T0, Decimal(0)), MeterSample(T0 + timedelta(minutes=10), Decimal(2000)))
    cdr = price_session([parse_tariff(EXAMPLE)], SessionTimeline(T0, T0 + timedelta(minutes=50), "UTC", samples))
    assert cdr.total_cost.excl_vat == Decimal("1.60")
    assert any("meter stopped" in reason for reason in cdr.review_reasons)


def test_an_absurd_jump_is_not_priced() -> None:
    samples = (MeterSample(T0, Decimal(0)), MeterSample(T0 + timedelta(minutes=1), Decimal(10_000_000)))
    cdr = price_session([parse_tariff(EXAMPLE)], SessionTimeline(T0, T0 + timedelta(minutes=1), "UTC", samples))
    assert cdr.total_cost.excl_vat == Decimal("1.00")
    assert any("jumped" in reason for reason in cdr.review_reasons)


def test_min_and_max_price_bound_the_total() -> None:
    capped = parse_tariff(dict(EXAMPLE, max_price={"excl_vat": "5.00", "incl_vat": "6.00"}))
    assert price_session([capped], linear_session(150, 22)).total_cost.incl_vat == Decimal("6.00")
    floor = parse_tariff(dict(EXAMPLE, min_price={"excl_vat": "2.50", "incl_vat": "3.00"}))
    assert price_session([floor], linear_session(5, 1)).total_cost.excl_vat == Decimal("2.50")


def test_running_cost_sample_by_sample_ends_at_the_final_figure() -> None:
    timeline = linear_session(150, 22)
    running = RunningCost([parse_tariff(EXAMPLE)], timeline.start, timeline.time_zone)
    seen = []
    for sample in timeline.samples:
        running.add_sample(sample)
        seen.append(running.estimate(sample.at).total_cost.excl_vat)
    assert seen == sorted(seen)  # never goes down while charging
    final = running.finish(timeline.stop)
    assert final == price_session([parse_tariff(EXAMPLE)], timeline)
    assert final.total_cost.excl_vat == Decimal("10.60")


def test_a_dst_jump_inside_a_sample_interval_loses_no_energy() -> None:
    # Los Angeles springs forward at 10:00 UTC on 2026-03-08; the jump splits the interval 09:59-10:08
    tariff = parse_tariff(
        {
            "id": "e",
            "currency": "KWD",
            "elements": [{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]}],
        }
    )
    start = datetime(2026, 3, 8, 9, 59, tzinfo=UTC)
    samples = (MeterSample(start, Decimal(0)), MeterSample(start + timedelta(minutes=9), Decimal(63)))
    cdr = price_session([tariff], SessionTimeline(start, samples[-1].at, "America/Los_Angeles", samples))
    assert cdr.total_energy == Decimal("0.063")
    assert cdr.total_cost.excl_vat == Decimal("0.063")
