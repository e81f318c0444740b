"""The firmware's ``smart_charging`` behaviour (compliant / reject / ignore), both versions, over real frames;
and the CSMS's leased profiles as the firmware applies them while the link is down."""

from __future__ import annotations

import pytest

from csms.loadmgmt.profiles import ProfileSpec, Purpose, charging_profile
from csms.ocpp import commands
from simulator.station.smart_charging import Firmware
from tests.simulator.test_station_offline import default_profile, tx_profile
from tests.simulator.test_station_pairing import VERSIONS, make

FULL_W = 22_000.0


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def charging(tmp_path, version, firmware: str):
    pair = make(tmp_path, version, smart_charging=firmware)
    pair.meter.power[1] = FULL_W
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    assert pair.charger.transactions[1] is not None
    return pair


def test_compliant_firmware_obeys_the_profile(tmp_path, version):
    pair = charging(tmp_path, version, "compliant")
    assert pair.csms_call("SetChargingProfile", tx_profile(pair, 10.0)).payload["status"] == "Accepted"
    assert pair.charger.limit_w(1, pair.now) == pytest.approx(10 * 230 * 3)


def test_reject_firmware_answers_rejected_and_stores_nothing(tmp_path, version):
    pair = charging(tmp_path, version, "reject")
    for payload in (tx_profile(pair, 10.0), default_profile(pair, [(0, 4000.0)])):
        answer = pair.csms_call("SetChargingProfile", payload).payload
        assert answer["status"] == "Rejected"
        if version == "2.0.1":
            assert answer["statusInfo"]["reasonCode"] == "NotSupported"
    assert pair.charger.profiles.profiles == ()
    assert pair.charger.limit_w(1, pair.now) is None
    assert pair.charger.is_energizing(1)
    assert pair.charger.counters.internal_errors == []


def test_ignore_firmware_accepts_but_keeps_drawing_its_rating(tmp_path, version):
    pair = charging(tmp_path, version, "ignore")
    assert pair.csms_call("SetChargingProfile", tx_profile(pair, 0.0)).payload["status"] == "Accepted"
    assert len(pair.charger.profiles.profiles) == 1  # stored, and reported if asked …
    assert pair.charger.limit_w(1, pair.now) is None  # … but the power electronics never hear of it
    assert pair.charger.is_energizing(1)  # a 0 A profile does not even suspend it
    assert pair.charger.status(1) == "Charging" if version == "1.6" else pair.charger.status(1) == "Occupied"


def test_unknown_firmware_behaviour_is_refused():
    with pytest.raises(ValueError):
        Firmware("sometimes")


def test_a_leased_csms_profile_falls_back_by_itself_while_the_link_is_down(tmp_path, version):
    """What the CSMS plans for an offline station (its fallback once the lease is over) is what the charger
    does: the profile's second period, with no CSMS to renew it."""
    pair = charging(tmp_path, version, "compliant")
    tx = pair.charger.transactions[1]
    spec = ProfileSpec("CP1", 1, Purpose.TX, 24.0, "A", 3, str(tx.transaction_id), fallback=6.0, lease_s=600.0)
    _, payload = commands.set_charging_profile(version, charging_profile(spec, pair.now))
    assert pair.csms_call("SetChargingProfile", payload).payload["status"] == "Accepted"
    sent = pair.now
    pair.network_up = False
    pair.drop_link()
    pair.run(300)
    assert pair.charger.limit_w(1, pair.now) == pytest.approx(24 * 230 * 3)
    pair.run(sent + 600 - pair.now)
    assert pair.charger.limit_w(1, pair.now) == pytest.approx(6 * 230 * 3)
    assert pair.charger.is_energizing(1)
