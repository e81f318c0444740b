"""The CSMS asks for clock-aligned meter values where a tariff changes price at a time of day (the
AlignedMetering plugin), in virtual time: a booted station with such a tariff is set to the interval that reads
on every boundary, takes it, and its sessions carry Sample.Clock readings; a station with a flat tariff is left
alone. small-mixed prices in UTC."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from csms.ocpp.convert import from_posix
from csms.services import configuration, tariffs
from csms.store.models import MeterSample
from simulator.report import build
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario

SMALL = Path(__file__).parent / "data" / "small-mixed.yaml"
#: Cheaper from 19:30 to 07:00: the boundaries' gcd with the day is 30 minutes.
NIGHT = {
    "id": "NIGHT",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.20", "step_size": 1}],
            "restrictions": {"start_time": "19:30", "end_time": "07:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": "0.40", "step_size": 1}]},
    ],
}
FLAT = {
    "id": "FLAT",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]}],
}
KEY = {"1.6": "ClockAlignedDataInterval", "2.0.1": "AlignedDataCtrlr.Interval"}


def test_stations_with_a_time_of_day_tariff_are_set_to_read_on_its_boundaries():
    run = VirtualRun(load_scenario(SMALL), scenario_file=str(SMALL))
    when = from_posix(run.epoch) - timedelta(days=1)
    night = {"ac-1", "dc-1"}
    with run.csms.session_factory() as db:
        tariffs.put(db, "NIGHT", NIGHT, when)
        tariffs.put(db, "FLAT", FLAT, when)
        for station_id in run.fleet.chargers:
            tariffs.assign(db, "NIGHT" if station_id in night else "FLAT", now=when, station_id=station_id)
        db.commit()
    report = build(run.run())
    assert report["passed"], report["checks"]

    for station_id, charger in run.fleet.chargers.items():
        expected = "1800" if station_id in night else "0"
        assert charger.config.value(KEY[charger.version]) == expected, station_id
    with run.csms.session_factory() as db:
        for station_id in night:
            stored = [r.value for r in configuration.listed(db, station_id) if r.variable in ("Interval", KEY["1.6"])]
            assert stored == ["1800"], station_id
        clock = set(db.scalars(select(MeterSample.station_id).where(MeterSample.context == "Sample.Clock")))
    assert clock == night
    assert report["billing"]["cost_mismatches"] == 0
