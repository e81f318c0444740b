"""A site's utility tariff: stored with the site, read into the load manager's Tariff in the site's zone (its
daylight-saving rules), and refused with the field named when it is wrong."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from csms.services import sites, stations
from csms.services.errors import Invalid
from csms.services.load_memory import read_setup

NY = ZoneInfo("America/New_York")
TOU = {
    "tz": "America/New_York",
    "currency": "USD",
    "periods": [{"from": "00:00", "price": 0.11}, {"from": "14:00", "price": 0.42}, {"from": "20:00", "price": 0.11}],
    "demand_charge_per_kw": 18.5,
}


def test_the_load_manager_plans_with_the_sites_tariff_in_its_local_time(session_factory, now):
    with session_factory() as db:
        stations.provision(db, "cp1", ocpp_version="1.6", password=None, now=now)
        wiring = [{"station_id": "cp1", "evse_id": 1, "node": "grid"}]
        grid = [{"id": "grid", "limit_kw": 100}]
        sites.create(db, "depot", now=now, strategy="deadline", utility_tariff=TOU, nodes=grid, evses=wiring)
        db.commit()
        tariff = read_setup(db, "depot").tariff
    assert tariff is not None and tariff.demand_charge_per_kw == 18.5
    winter_peak = datetime(2026, 1, 15, 15, 0, tzinfo=NY).timestamp()
    summer_peak = datetime(2026, 7, 15, 15, 0, tzinfo=NY).timestamp()
    night = datetime(2026, 7, 15, 21, 30, tzinfo=NY).timestamp()
    assert tariff.price_at(winter_peak) == tariff.price_at(summer_peak) == 0.42  # 15:00 local, winter and summer
    assert tariff.price_at(night) == 0.11


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tz": "Mars/Base"}, "utility_tariff.tz"),
        ({"periods": [{"from": "25:00", "price": 0.1}]}, "utility_tariff.periods[0].from"),
        ({"periods": [{"from": "00:00", "price": -1}]}, "utility_tariff.periods[0].price"),
        ({"periods": [{"from": "12:00", "price": 0.1}, {"from": "06:00", "price": 0.2}]}, "utility_tariff.periods"),
        ({"demand_charge_per_kw": "lots"}, "utility_tariff.demand_charge_per_kw"),
    ],
)
def test_a_wrong_tariff_is_refused_naming_the_field(session_factory, now, change, field):
    with session_factory() as db, pytest.raises(Invalid, match=field.replace("[", r"\[").replace("]", r"\]")):
        sites.create(db, "bad", now=now, utility_tariff={**TOU, **change}, nodes=[{"id": "grid", "limit_kw": 10}])
