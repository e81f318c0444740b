"""Meter samples are read one way (csms/domain/meter.py), whatever the consumer; the version adapters hand them
over in base units, and map each connector status onto a version-neutral port state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain import events as ev
from csms.domain import meter
from csms.ocpp.errors import OcppError
from csms.ocpp.v16 import adapter as v16
from csms.ocpp.v201 import adapter as v201

T = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
REGISTER, POWER, CURRENT = ev.ENERGY_REGISTER, meter.POWER, meter.CURRENT


def sample(measurand: str, value: float, **kw) -> ev.Sample:
    return ev.Sample(kw.pop("at", T), measurand, value, **kw)


def one(*samples: ev.Sample) -> meter.Reading:
    [reading] = meter.readings(samples)
    return reading


# ---- location --------------------------------------------------------------------------------------------
def test_outlet_and_a_missing_location_are_the_power_path():
    assert one(sample(POWER, 7000.0, location="Outlet")).power_w == 7000.0
    assert one(sample(POWER, 7000.0)).power_w == 7000.0  # the spec's default location


def test_the_inlet_counts_when_the_outlet_says_nothing():
    assert one(sample(POWER, 7400.0, location="Inlet")).power_w == 7400.0


def test_the_outlet_wins_over_the_inlet_in_any_order():
    for order in (1, -1):
        pair = [sample(POWER, 7400.0, location="Inlet"), sample(POWER, 7000.0, location="Outlet")][::order]
        assert one(*pair).power_w == 7000.0


@pytest.mark.parametrize("location", ["EV", "Body", "Cable"])
def test_samples_off_the_power_path_are_left_out(location):
    assert meter.readings([sample(REGISTER, 5.0, location=location)]) == []
    mixed = one(sample(REGISTER, 900.0), sample(REGISTER, 5.0, location=location))
    assert mixed.energy_wh == 900.0


# ---- phases ------------------------------------------------------------------------------------------------
def test_the_overall_value_wins_over_the_lines():
    lines = [sample(POWER, 2000.0, phase=p) for p in ("L1", "L2", "L3")]
    assert one(*lines, sample(POWER, 6600.0)).power_w == 6600.0
    assert one(sample(POWER, 6600.0), *lines).power_w == 6600.0


def test_without_an_overall_value_the_lines_reported_are_summed():
    assert one(*(sample(POWER, 2000.0, phase=p) for p in ("L1", "L2", "L3"))).power_w == 6000.0
    assert one(sample(POWER, 3680.0, phase="L1")).power_w == 3680.0  # a single-phase meter
    registers = [sample(REGISTER, 100.0, phase=p) for p in ("L1-N", "L2-N", "L3-N")]
    assert one(*registers).energy_wh == 300.0


def test_neutral_and_line_to_line_values_are_no_line():
    reading = one(
        sample(POWER, 2000.0, phase="L1"),
        sample(POWER, 999.0, phase="N"),
        sample(POWER, 999.0, phase="L1-L2"),
        sample(CURRENT, 16.0, phase="L1"),
        sample(CURRENT, 40.0, phase="N"),
        sample(CURRENT, 40.0, phase="L2-L3"),
    )
    assert (reading.power_w, reading.currents_a, reading.port_current_a) == (2000.0, (16.0, None, None), 16.0)


def test_line_to_neutral_is_the_same_line():
    assert one(sample(CURRENT, 10.0, phase="L2"), sample(CURRENT, 12.0, phase="L2-N")).currents_a == (None, 12.0, None)


def test_currents_per_line_and_without_phase_are_kept_apart():
    ac = one(*(sample(CURRENT, i, phase=p) for i, p in ((15.9, "L1"), (16.1, "L2"), (0.2, "L3"))))
    assert (ac.currents_a, ac.current_a, ac.port_current_a) == ((15.9, 16.1, 0.2), None, 16.1)
    dc = one(sample(CURRENT, 180.0))
    assert (dc.currents_a, dc.current_a, dc.port_current_a) == ((None, None, None), 180.0, 180.0)


# ---- units and timestamps ----------------------------------------------------------------------------------
def test_a_value_in_another_unit_than_the_base_one_is_left_out():
    assert meter.readings([sample(REGISTER, 12.0, unit="varh"), sample(POWER, 7.0, unit="kW")]) == []
    reading = one(sample(REGISTER, 12_000.0, unit="Wh"), sample(POWER, 7000.0, unit="W"), sample(CURRENT, 9, unit="A"))
    assert (reading.energy_wh, reading.power_w, reading.currents_a[0] or reading.current_a) == (12_000.0, 7000.0, 9)


def test_one_reading_per_timestamp_oldest_first():
    later = T + timedelta(seconds=60)
    found = meter.readings(
        [sample(REGISTER, 2000.0, at=later), sample(REGISTER, 1000.0), sample(POWER, 5000.0, at=later)]
    )
    assert [(r.at, r.energy_wh, r.power_w) for r in found] == [(T, 1000.0, None), (later, 2000.0, 5000.0)]


def test_the_last_of_the_same_value_counts():
    assert one(sample(REGISTER, 1000.0), sample(REGISTER, 1001.0)).energy_wh == 1001.0


def test_latest_takes_the_newest_value_of_each_quantity():
    later = T + timedelta(seconds=60)
    reading = meter.latest(
        [
            sample(REGISTER, 1000.0),
            sample(POWER, 7000.0),
            sample(CURRENT, 10.0, phase="L1"),
            sample(REGISTER, 1100.0, at=later),
        ]
    )
    assert reading == meter.Reading(later, 1100.0, 7000.0, (10.0, None, None), None)
    assert meter.latest([sample("SoC", 55.0, location="EV")]) is None


def test_grid_readings_are_draws_only():
    later, last = T + timedelta(seconds=60), T + timedelta(seconds=120)
    found = meter.grid_readings(
        [
            sample(POWER, 12_000.0),
            sample(POWER, -3000.0, at=later),  # the site exports: its currents are no draw either
            sample(CURRENT, 20.0, phase="L1", at=later),
            sample(REGISTER, 5e6, at=last),  # no power, no current
        ]
    )
    assert [(r.at, r.power_w) for r in found] == [(T, 12_000.0)]


# ---- the adapters: base units --------------------------------------------------------------------------------
def _mv16(*sampled: dict) -> list[dict]:
    return [{"timestamp": "2026-01-15T22:00:00Z", "sampledValue": list(sampled)}]


def _mv201(*sampled: dict) -> list[dict]:
    return [{"timestamp": "2026-01-15T22:00:00Z", "sampledValue": list(sampled)}]


def test_1_6_samples_arrive_in_wh_w_and_a():
    samples = v16.samples(
        _mv16(
            {"value": "12.345", "measurand": REGISTER, "unit": "kWh"},
            {"value": "7.2", "measurand": POWER, "unit": "kW"},
            {"value": "16", "measurand": CURRENT, "unit": "A", "phase": "L1"},
            {"value": "4000"},  # the default measurand: the register, in Wh
        )
    )
    assert [(s.measurand, s.value, s.unit, s.location) for s in samples] == [
        (REGISTER, 12_345.0, "Wh", "Outlet"),
        (POWER, 7200.0, "W", "Outlet"),
        (CURRENT, 16.0, "A", "Outlet"),
        (REGISTER, 4000.0, "Wh", "Outlet"),
    ]
    assert meter.readings(samples)[0] == meter.Reading(T, 4000.0, 7200.0, (16.0, None, None), None)


def test_2_0_1_samples_arrive_in_wh_w_and_a_with_the_multiplier_applied():
    samples = v201.samples(
        _mv201(
            {"value": 12.345, "measurand": REGISTER, "unitOfMeasure": {"unit": "kWh"}},
            {"value": 72, "measurand": POWER, "unitOfMeasure": {"unit": "W", "multiplier": 2}},
            {"value": 7.2, "measurand": POWER, "unitOfMeasure": {"unit": "kW"}, "location": "Inlet"},
            {"value": 160, "measurand": CURRENT, "unitOfMeasure": {"unit": "A", "multiplier": -1}, "phase": "L2"},
        )
    )
    assert [(s.measurand, round(s.value, 9), s.unit) for s in samples] == [
        (REGISTER, 12_345.0, "Wh"),
        (POWER, 7200.0, "W"),
        (POWER, 7200.0, "W"),
        (CURRENT, 16.0, "A"),
    ]
    reading = one(*samples)
    assert (round(reading.energy_wh, 9), reading.power_w, reading.currents_a) == (12_345.0, 7200.0, (None, 16.0, None))


def test_a_kilo_value_out_of_the_float_range_is_a_property_constraint_violation():
    with pytest.raises(OcppError):
        v16.samples(_mv16({"value": "1e306", "measurand": REGISTER, "unit": "kWh"}))
    with pytest.raises(OcppError):
        v201.samples(_mv201({"value": 1e306, "measurand": REGISTER, "unitOfMeasure": {"unit": "kWh"}}))


# ---- the adapters: port states and charging needs -------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Available", ev.PortState.AVAILABLE),
        ("Preparing", ev.PortState.OCCUPIED),
        ("Charging", ev.PortState.CHARGING),
        ("SuspendedEV", ev.PortState.OCCUPIED),
        ("SuspendedEVSE", ev.PortState.OCCUPIED),
        ("Finishing", ev.PortState.FINISHING),
        ("Reserved", ev.PortState.RESERVED),
        ("Unavailable", ev.PortState.UNAVAILABLE),
        ("Faulted", ev.PortState.FAULTED),
    ],
)
def test_1_6_statuses_map_onto_port_states(status, state):
    report = v16.to_event("StatusNotification", {"connectorId": 2, "errorCode": "NoError", "status": status})
    assert (report.evse_id, report.status, report.state) == (2, status, state)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Available", ev.PortState.AVAILABLE),
        ("Occupied", ev.PortState.OCCUPIED),
        ("Reserved", ev.PortState.RESERVED),
        ("Unavailable", ev.PortState.UNAVAILABLE),
        ("Faulted", ev.PortState.FAULTED),
    ],
)
def test_2_0_1_statuses_map_onto_port_states(status, state):
    payload = {"timestamp": "2026-01-15T22:00:00Z", "connectorStatus": status, "evseId": 1, "connectorId": 1}
    report = v201.to_event("StatusNotification", payload)
    assert (report.status, report.state) == (status, state)


def test_plugged_means_a_vehicle_with_a_session_not_over():
    assert {s for s in ev.PortState if s.plugged} == {ev.PortState.OCCUPIED, ev.PortState.CHARGING}
    with pytest.raises(ValueError, match="connector status"):
        ev.port_state("Plugged")


def test_2_0_1_charging_needs_are_a_typed_event():
    payload = {
        "evseId": 2,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_three_phase",
            "departureTime": "2026-01-16T05:30:00Z",
            "acChargingParameters": {
                "energyAmount": 42_000,
                "evMinCurrent": 6,
                "evMaxCurrent": 32,
                "evMaxVoltage": 400,
            },
        },
    }
    report = v201.to_event("NotifyEVChargingNeeds", payload)
    departure = datetime(2026, 1, 16, 5, 30, tzinfo=UTC)
    assert report == ev.ChargingNeedsReported(2, 42_000.0, departure, payload, ev_max_current_a=32.0)
    bare = v201.to_event("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "DC"}})
    assert (bare.energy_needed_wh, bare.departure) == (None, None)


@pytest.mark.parametrize(
    ("stop_wh", "newest_wh", "end"),
    [
        (5000.0, 4800.0, 5000.0),  # the stop value is read after the last sample: it is the end
        (0.0, 4800.0, 4800.0),  # firmware that did not know the register sends 0 ...
        (-1.0, 4800.0, 4800.0),  # ... or -1
        (4800.0, 5000.0, 5000.0),  # the closing reading came after the stop (Transaction.End)
        (None, 4800.0, 4800.0),  # 2.0.1: an Ended event without a register
        (5000.0, None, 5000.0),
        (None, None, None),
    ],
)
def test_a_transactions_end_is_the_larger_of_its_stop_value_and_its_newest_reading(stop_wh, newest_wh, end):
    assert meter.end_register(stop_wh, newest_wh) == end


def test_a_transaction_begin_value_repeated_beside_a_periodic_one_does_not_replace_it():
    # Project EV (evcc-io/evcc#15768): every periodic MeterValues also carries the register at the start
    # (context Transaction.Begin) at the same timestamp, after the periodic value.
    periodic = sample(REGISTER, 646.0, context="Sample.Periodic")
    begin = sample(REGISTER, 0.0, context="Transaction.Begin")
    assert one(periodic, begin).energy_wh == 646.0
    assert one(begin, periodic).energy_wh == 646.0
    assert one(begin).energy_wh == 0.0  # alone it is the reading of its time


_SAMPLES = st.builds(
    ev.Sample,
    st.sampled_from([T, T + timedelta(seconds=1), T - timedelta(minutes=5)]),
    st.sampled_from([REGISTER, POWER, CURRENT, "Voltage"]),
    st.floats(allow_nan=False, min_value=-1e6, max_value=1e6),
    st.sampled_from([None, "Wh", "W", "A", "varh"]),
    st.sampled_from([None, "L1", "L2", "L3", "L1-N", "N", "L1-L2"]),
    st.sampled_from([None, "Outlet", "Inlet", "EV"]),
    st.sampled_from([None, "Sample.Periodic", meter.BEGIN]),
)


@given(st.lists(_SAMPLES, max_size=12))
def test_the_register_of_each_reading_is_what_the_readings_say(samples):
    expected = [(r.at, r.energy_wh) for r in meter.readings(tuple(samples)) if r.energy_wh is not None]
    assert meter.registers(samples) == expected
