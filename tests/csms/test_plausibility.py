"""Implausible meter values and timestamps are flagged (a station event saying what and why), not stored as
truth: they move no energy register, make no sample row, and a status dated far ahead cannot freeze a port.
SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from csms.domain import plausibility
from csms.domain.events import ENERGY_REGISTER, Sample
from csms.store import models
from tests.csms.helpers import T0, StationPair, ts

NOW = datetime.fromtimestamp(T0, UTC)


def register(at: float, wh: float) -> dict[str, Any]:
    return {"timestamp": ts(at), "sampledValue": [{"value": repr(wh), "measurand": ENERGY_REGISTER, "unit": "Wh"}]}


def start(pair: StationPair) -> int:
    payload = {"connectorId": 1, "idTag": "ANY", "meterStart": 1000, "timestamp": ts(10)}
    return int(pair.ok("StartTransaction", payload)["transactionId"])


def flags(pair: StationPair) -> list[dict[str, Any]]:
    return [row.data for row in pair.rows(models.StationEvent, kind="implausible_values")]


def test_huge_and_negative_registers_are_flagged_not_counted(session_factory):
    pair = StationPair(session_factory, "1.6")
    tx_id = start(pair)
    for at, wh in ((60, 1.7e308), (70, -1.7e308), (80, -5.0), (90, 2500.0)):
        assert (
            pair.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [register(at, wh)]}) == {}
        )
    pair.ok("StopTransaction", {"transactionId": tx_id, "meterStop": -1, "timestamp": ts(100), "reason": "Local"})
    (tx,) = pair.rows(models.Transaction, id=tx_id)
    assert (tx.meter_start_wh, tx.last_meter_wh, tx.meter_stop_wh, tx.energy_wh) == (1000, 2500, 2500, 1500)
    assert math.isfinite(tx.energy_wh)
    assert [s.value for s in pair.rows(models.MeterSample, transaction_id=tx_id)] == [2500.0]
    flagged = flags(pair)
    assert len(flagged) == 4
    values = [v for f in flagged for v in f["values"]]
    assert sorted(v["value"] for v in values) == sorted([1.7e308, -1.7e308, -5.0, -1.0])
    assert all(v["reason"] for v in values)


def test_a_status_dated_far_ahead_does_not_freeze_the_port(session_factory):
    pair = StationPair(session_factory, "1.6")
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": "2999-01-01T00:00:00Z"}
    pair.ok("StatusNotification", status)
    pair.ok("StatusNotification", {**status, "status": "Available", "timestamp": ts(60)})
    (port,) = pair.rows(models.Connector, connector_id=1)
    assert port.status == "Available" and port.status_at == NOW + timedelta(seconds=60)
    (flag,) = flags(pair)
    assert flag["values"][0]["timestamp"].startswith("2999-01-01")
    # A clock a little fast is not flagged.
    pair.ok("StatusNotification", {**status, "status": "Preparing", "timestamp": ts(120 + 60)})
    assert len(flags(pair)) == 1


def test_the_limits():
    def sample(value: float, measurand: str = ENERGY_REGISTER, ahead: timedelta = timedelta(0)) -> Sample:
        return Sample(NOW + ahead, measurand, value, "Wh")

    assert plausibility.sample_problem(sample(123456.0), NOW) is None
    assert plausibility.sample_problem(sample(plausibility.MAX_REGISTER_WH), NOW) is None
    for bad in (sample(math.inf), sample(math.nan), sample(-0.5), sample(plausibility.MAX_REGISTER_WH * 2)):
        assert plausibility.sample_problem(bad, NOW)
    assert plausibility.sample_problem(sample(-7000.0, "Power.Active.Import"), NOW) is None  # exporting
    assert plausibility.sample_problem(sample(20e6, "Power.Active.Import"), NOW) is None  # a depot's grid meter
    assert plausibility.sample_problem(sample(2e9, "Power.Active.Import"), NOW)
    assert plausibility.sample_problem(sample(1e300, "Voltage"), NOW)
    assert plausibility.sample_problem(sample(1.0, ahead=plausibility.MAX_CLOCK_AHEAD), NOW) is None
    assert plausibility.sample_problem(sample(1.0, ahead=plausibility.MAX_CLOCK_AHEAD * 2), NOW)


@given(
    st.lists(
        st.builds(
            lambda value, measurand, ahead_s: Sample(NOW + timedelta(seconds=ahead_s), measurand, value, "Wh"),
            st.one_of(st.floats(), st.sampled_from([plausibility.MAX_REGISTER_WH, -1e9, 1e9, -1e6, 1e6])),
            st.sampled_from([ENERGY_REGISTER, "Power.Active.Import", "Current.Import", "Voltage"]),
            st.sampled_from([-3600, 0, 599, 600, 601, 7200]),
        ),
        max_size=6,
    )
)
def test_the_one_pass_check_says_what_the_sample_by_sample_one_says(samples):
    assert plausibility.all_plausible(samples, NOW) == all(plausibility.sample_problem(s, NOW) is None for s in samples)
