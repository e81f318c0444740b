"""Vendor profiles (simulator/station/vendors.py): each quirk as the twin's firmware sends it, paired with the
real CSMS core, and what the CSMS keeps of it: the energy the twin really delivered, whatever the wire said."""

from __future__ import annotations

import pytest

from simulator.station.vendors import PROFILES, profile_named
from tests.simulator.helpers import T0, StationPair
from tests.simulator.test_station_pairing import ended, make, started

REGISTER = "Energy.Active.Import.Register"


def charge(pair: StationPair, *, start_wh: float = 5_000.0, step_wh: float = 250.0, samples: int = 4) -> float:
    """A session on connector 1 from ``start_wh``: ``samples`` meter samples a minute apart, then the car
    leaves 30 s after the last one. Returns the energy the twin delivered [Wh]."""
    pair.meter.energy[1] = start_wh
    pair.meter.power[1] = 7_400.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(1)
    for k in range(1, samples + 1):
        pair.meter.energy[1] = start_wh + step_wh * k
        pair.run(60)
    pair.meter.energy[1] += step_wh / 2  # charged after the last sample
    pair.run(30)
    pair.charger.unplug(1, pair.now)
    pair.run(60)
    return pair.meter.energy[1] - start_wh


def sampled(pair: StationPair) -> list[dict]:
    return [sv for s in pair.calls("MeterValues") for mv in s.payload["meterValue"] for sv in mv["sampledValue"]]


def test_every_profile_is_named_after_itself_and_the_spec_profile_changes_nothing(tmp_path):
    assert all(name == p.name for name, p in PROFILES.items())
    assert len(PROFILES) - 1 >= 5  # five families besides the spec
    with pytest.raises(KeyError, match="known: abb-terra-ac"):
        profile_named("tesla")
    plain, spec = make(tmp_path / "a", "1.6"), make(tmp_path / "b", "1.6", vendor=PROFILES["spec"])
    charge(plain), charge(spec)
    assert [s.message.payload for s in plain.sent] == [s.message.payload for s in spec.sent]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_status_before_boot_is_refused_and_the_statuses_after_boot_count(tmp_path, version):
    pair = make(tmp_path, version, vendor=PROFILES["everest"])
    first = [s.action for s in pair.sent[:3]]
    assert first[0] == "StatusNotification" and "BootNotification" in first
    assert [e.code for e in pair.errors_to_charger()] == ["SecurityError"] * (2 if version == "1.6" else 1)
    assert pair.charger.registered
    assert pair.statuses().count("Available") == 2  # before the boot (refused), and after it
    assert charge(pair) == pytest.approx(pair.transactions()[0].energy_wh)


def test_alfen_sends_kwh_without_a_measurand_and_extra_measurands_and_the_energy_is_kept(tmp_path):
    pair = make(tmp_path, "1.6", vendor=PROFILES["alfen-eve"])
    delivered = charge(pair)
    registers = [sv for sv in sampled(pair) if "measurand" not in sv]
    assert registers and {sv["unit"] for sv in registers} == {"kWh"}
    assert registers[0]["value"] == "5.250"
    assert {"Temperature", "Frequency"} <= {sv.get("measurand") for sv in sampled(pair)}
    [row] = pair.transactions()
    assert row.energy_wh == pytest.approx(delivered) == 1_125.0
    assert pair.errors_to_charger() == []


def test_openevse_sends_meter_stop_0_and_the_closing_reading_after_the_stop_and_no_energy_is_lost(tmp_path):
    pair = make(tmp_path, "1.6", vendor=PROFILES["openevse"])
    delivered = charge(pair)
    assert started(pair)[0].payload["meterStart"] == 0  # the register starts again with each transaction
    stop = ended(pair)[0]
    assert stop.payload["meterStop"] == 0
    closing = [s for s in pair.calls("MeterValues") if s.at >= stop.at]
    [value] = closing[0].payload["meterValue"][0]["sampledValue"]
    assert value["context"] == "Transaction.End" and float(value["value"]) == pytest.approx(delivered)
    assert pair.sent.index(closing[0]) > pair.sent.index(stop)
    [row] = pair.transactions()
    assert (row.status, row.energy_wh) == ("completed", pytest.approx(delivered))


def test_openevse_closing_reading_waits_in_the_queue_while_the_link_is_down(tmp_path):
    pair = make(tmp_path, "1.6", vendor=PROFILES["openevse"])
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(5)
    pair.network_up = False
    pair.drop_link()
    pair.meter.energy[1] = 3_000.0
    pair.charger.unplug(1, pair.now)
    pair.run(30)
    pair.network_up = True
    pair.run(600)
    [row] = pair.transactions()
    assert (row.status, row.energy_wh) == ("completed", pytest.approx(3_000.0))


def test_project_ev_reports_power_per_phase_and_the_start_register_beside_each_sample(tmp_path):
    pair = make(tmp_path, "1.6", vendor=PROFILES["project-ev"])
    pair.meter.energy[1], pair.meter.power[1] = 5_000.0, 7_400.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(1)
    pair.meter.energy[1] = 5_400.0
    pair.run(60)
    [first] = pair.calls("MeterValues")[0].payload["meterValue"]
    registers = [sv for sv in first["sampledValue"] if sv["measurand"] == REGISTER]
    assert [(sv["context"], sv["value"]) for sv in registers] == [
        ("Sample.Periodic", "5400.00"),
        ("Transaction.Begin", "5000.00"),  # after the periodic value, with its timestamp
    ]
    assert pair.transactions()[0].last_meter_wh == 5_400.0  # the live register is the periodic one
    power = [sv for sv in first["sampledValue"] if sv["measurand"] == "Power.Active.Import"]
    assert [(sv["phase"], sv["value"]) for sv in power] == [("L1", "2466.67"), ("L2", "2466.67"), ("L3", "2466.67")]
    pair.charger.unplug(1, pair.now)
    pair.run(10)
    assert pair.transactions()[0].energy_wh == pytest.approx(400.0)


def test_abb_heartbeats_jitter_deterministically_within_ten_percent(tmp_path):
    def beats(path) -> list[float]:
        pair = make(path, "1.6", vendor=PROFILES["abb-terra-ac"], seed=11)
        pair.run(3_000)
        return pair.times("Heartbeat")

    times = beats(tmp_path / "a")
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert len(gaps) >= 8
    assert all(270 <= g <= 330 for g in gaps) and len(set(gaps)) > 1
    assert times == beats(tmp_path / "b")  # the charger's seeded rng: the same run twice


def test_abb_samples_only_the_register_and_currents(tmp_path):
    pair = make(tmp_path, "1.6", vendor=PROFILES["abb-terra-ac"])
    delivered = charge(pair)
    assert {sv["measurand"] for sv in sampled(pair)} == {REGISTER, "Current.Import"}
    assert pair.transactions()[0].energy_wh == pytest.approx(delivered)


def test_everest_keeps_the_csms_url_in_a_vendor_key_the_csms_reads_and_writes(tmp_path):
    pair = make(tmp_path, "1.6", vendor=PROFILES["everest"])
    got = pair.csms_call("GetConfiguration", {"key": ["CentralSystemURI"]})
    assert got.payload == {"configurationKey": [{"key": "CentralSystemURI", "readonly": False, "value": ""}]}
    url = "wss://csms.example.com/ocpp"
    assert pair.csms_call("ChangeConfiguration", {"key": "CentralSystemURI", "value": url}).payload == {
        "status": "RebootRequired"
    }
    assert (
        pair.csms_call("GetConfiguration", {"key": ["CentralSystemURI"]}).payload["configurationKey"][0]["value"] == url
    )
    assert pair.now == T0  # answered at once


def test_a_201_ended_event_without_a_register_leaves_the_energy_of_the_last_sample(tmp_path):
    # Spec-legal (TxEndedMeasurands empty) and common; what was charged after the last sample is not reported
    # anywhere, so the CSMS can only take the newest register reading (docs/hardware.md, "not recoverable").
    pair = make(tmp_path, "2.0.1", config={"SampledDataCtrlr.TxEndedMeasurands": ""})
    delivered = charge(pair)
    assert "meterValue" not in ended(pair)[0].payload
    [row] = pair.transactions()
    assert row.energy_wh == pytest.approx(delivered - 125.0)  # the half step after the last sample is unknown
