"""The charger relays an ISO 15118 EV (2.0.1 K15–K18), paired with the real CSMS core: its needs, the schedule
it will follow after each TxProfile (capped at what it takes) and its renegotiation when it is full."""

from __future__ import annotations

from csms.ocpp.convert import format_time, from_posix
from simulator.station.iso15118 import EvNeeds
from tests.simulator.helpers import T0, StationPair

EV = EvNeeds(energy_wh=30_000.0, departure=T0 + 4 * 3600, max_power_w=16 * 3 * 230.0, dc=False)


def tx_profile(tx_id: str, limit_a: float, pid: int = 7) -> dict:
    schedule = {
        "id": pid,
        "chargingRateUnit": "A",
        "startSchedule": format_time(from_posix(T0 + 60)),
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_a}],
    }
    profile = {
        "id": pid,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "transactionId": tx_id,
        "chargingSchedule": [schedule],
    }
    return {"evseId": 1, "chargingProfile": profile}


def test_the_ev_tells_its_needs_follows_each_tx_profile_and_renegotiates_when_full(tmp_path):
    pair = StationPair(tmp_path, "2.0.1")
    pair.start()
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    assert pair.charger.ev_charging_needs(1, EV, pair.now)
    pair.run(5)
    [needs] = [s.payload for s in pair.calls("NotifyEVChargingNeeds")]
    ac = needs["chargingNeeds"]["acChargingParameters"]
    assert (ac["energyAmount"], ac["evMaxCurrent"]) == (30_000, 16)
    assert needs["chargingNeeds"]["departureTime"] == format_time(from_posix(T0 + 4 * 3600))
    tx_id = pair.charger.transactions[1].transaction_id

    # More than the EV takes: its schedule is the profile capped at 16 A, which the CSMS accepts.
    assert pair.csms_call("SetChargingProfile", tx_profile(tx_id, 32.0)).payload == {"status": "Accepted"}
    pair.run(1)
    [sent] = pair.calls("NotifyEVChargingSchedule")
    schedule = sent.payload
    assert schedule["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.0}]
    assert schedule["timeBase"] == format_time(from_posix(T0 + 60))
    [answer] = [r.payload for r in pair.received if r.message.unique_id == sent.message.unique_id]
    assert answer == {"status": "Accepted"}

    # A lower profile (the site's plan changed): the EV follows it.
    pair.csms_call("SetChargingProfile", tx_profile(tx_id, 10.0))
    pair.run(1)
    assert (
        pair.calls("NotifyEVChargingSchedule")[-1].payload["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        == 10.0
    )

    # Full: the EV renegotiates, needing nothing more.
    pair.charger.ev_suspended(1, True, pair.now)
    pair.run(1)
    last = pair.calls("NotifyEVChargingNeeds")[-1].payload
    assert last["chargingNeeds"]["acChargingParameters"]["energyAmount"] == 0


def test_a_1_6_charger_does_not_relay_the_needs(tmp_path):
    pair = StationPair(tmp_path, "1.6")
    pair.start()
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    assert not pair.charger.ev_charging_needs(1, EV, pair.now)
    pair.run(5)
    assert pair.calls("NotifyEVChargingNeeds") == []
