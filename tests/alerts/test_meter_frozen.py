"""The meter_frozen rule: a register that stands still while energy flows is alerted after N readings and a
duration (reading timestamps), and cleared when it moves or the transaction ends; the cases an operator would
hate as false alarms (full vehicle, power-only meters, uneven intervals, replays) never alert."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from csms.alerts import (
    AlertEngine,
    AlertRules,
    MeterRead,
    RaiseAlert,
    ResolveAlert,
    StatusChanged,
    TransactionClosed,
)
from csms.alerts.engine import METER_FROZEN
from csms.alerts.feed import meter_reads
from csms.domain import events as ev
from csms.ocpp.v16 import adapter as v16
from csms.ocpp.v201 import adapter as v201

T = 1_000_000.0
RULES = AlertRules(meter_frozen_after_s=300, meter_frozen_readings=3, meter_frozen_min_power_w=1000)


def read(at: float, energy: float | None, power: float | None = 7000.0, **kw) -> MeterRead:
    return MeterRead("cp-1", kw.pop("evse_id", 1), kw.pop("tx", "tx-1"), at, energy, power, **kw)


def feed(engine: AlertEngine, reads: list[MeterRead], latency: float = 1.0) -> list:
    return [effect for r in reads for effect in engine.feed(r, r.at + latency)]


def frozen(engine: AlertEngine) -> bool:
    return (METER_FROZEN, "cp-1", 1) in engine.open


def test_register_standing_still_while_power_flows_raises_after_n_readings_and_duration_then_clears():
    engine = AlertEngine(RULES)
    # Moving until T + 120, then stuck at 1200 Wh with 7 kW flowing, a reading a minute.
    moving = [read(T + 60 * k, 1000.0 + 100 * k) for k in range(3)]
    assert feed(engine, moving) == []
    stuck = [read(T + 120 + 60 * k, 1200.0) for k in range(1, 5)]  # 4 stalled readings spanning 240 s
    assert feed(engine, stuck) == []
    raised = engine.feed(read(T + 420, 1200.0), T + 421)  # the 5th spans 300 s
    assert raised == [
        RaiseAlert(
            METER_FROZEN,
            "cp-1",
            1,
            "warning",
            T + 421,
            {
                "transaction_id": "tx-1",
                "register_wh": 1200.0,
                "since": T + 120,
                "stalled_readings": 5,
                "power_w": 7000.0,
                "current_a": None,
            },
        )
    ]
    assert engine.feed(read(T + 480, 1200.0), T + 481) == []  # one open alert per port
    assert engine.feed(read(T + 540, 1300.0), T + 541) == [ResolveAlert(METER_FROZEN, "cp-1", 1, T + 541)]


def test_n_readings_alone_or_duration_alone_is_not_enough():
    # Frequent readings: 25 stalled in 250 s (< 300 s).
    engine = AlertEngine(RULES)
    assert feed(engine, [read(T + 10 * k, 500.0) for k in range(26)]) == []
    # Sparse readings: two stalled readings spanning an hour (< 3 readings).
    engine = AlertEngine(RULES)
    assert feed(engine, [read(T, 500.0), read(T + 1800, 500.0), read(T + 3600, 500.0)]) == []
    assert feed(engine, [read(T + 5400, 500.0)])[0].rule == METER_FROZEN


def test_full_vehicle_drawing_almost_nothing_never_alerts_even_while_status_says_charging():
    engine = AlertEngine(RULES)
    engine.feed(StatusChanged("cp-1", 1, ev.PortState.CHARGING), T)
    reads = [read(T + 60 * k, 64_000.0, power=40.0, charging_state="Charging") for k in range(120)]
    assert feed(engine, reads) == []


def test_meter_reporting_power_without_a_register_never_alerts():
    engine = AlertEngine(RULES)
    begin = read(T, 1000.0, power=None)  # only the transaction's start register
    assert feed(engine, [begin] + [read(T + 60 * k, None) for k in range(1, 120)]) == []


def test_a_pause_restarts_the_count():
    engine = AlertEngine(RULES)
    reads = [read(T + 60 * k, 800.0, power=0.0 if k == 4 else 7000.0) for k in range(9)]
    assert feed(engine, reads) == []  # 4 stalled, a pause, 4 stalled: the longest stall spans 240 s
    assert feed(engine, [read(T + 540, 800.0)])[0].details["since"] == T + 240


def test_without_power_the_current_or_the_charging_state_is_the_evidence():
    def run(**kw) -> bool:
        engine = AlertEngine(RULES)
        status = kw.pop("status", None)
        if status:
            engine.feed(StatusChanged("cp-1", 1, ev.port_state(status)), T)
        feed(engine, [read(T + 60 * k, 2000.0, power=None, **kw) for k in range(7)])
        return frozen(engine)

    assert run(current_a=16.0) and not run(current_a=0.4)
    assert run(charging_state="Charging") and not run(charging_state="SuspendedEV")
    assert run(status="Charging") and not run(status="SuspendedEV")
    assert not run()  # no power, no current, no state: no evidence that energy flows


def test_the_2_0_1_charging_state_is_remembered_between_readings():
    engine = AlertEngine(RULES)
    engine.feed(read(T, None, power=None, charging_state="Charging"), T)
    feed(engine, [read(T + 60 * k, 2000.0, power=None) for k in range(1, 8)])
    assert frozen(engine)
    engine.feed(read(T + 500, None, power=None, charging_state="EVConnected"), T + 500)
    engine.feed(read(T + 560, 2000.0, power=None), T + 560)
    assert frozen(engine)  # no new evidence of a frozen meter, but nothing cleared it either


def test_transaction_end_resolves_and_the_next_transaction_starts_from_scratch():
    engine = AlertEngine(RULES)
    feed(engine, [read(T + 60 * k, 900.0) for k in range(7)])
    assert frozen(engine)
    assert engine.feed(TransactionClosed("cp-1", None, "tx-1"), T + 500) == [
        ResolveAlert(METER_FROZEN, "cp-1", 1, T + 500)
    ]
    # The same stuck register in the next transaction needs N readings and the duration again.
    assert feed(engine, [read(T + 600 + 60 * k, 900.0, tx="tx-2") for k in range(5)]) == []
    assert feed(engine, [read(T + 900, 900.0, tx="tx-2")])[0].details["transaction_id"] == "tx-2"
    # A new transaction on the port also resolves the previous one's alert (its end may come later).
    assert engine.feed(read(T + 960, 900.0, tx="tx-3"), T + 961) == [ResolveAlert(METER_FROZEN, "cp-1", 1, T + 961)]
    assert engine.feed(TransactionClosed("cp-1", 1, "tx-2"), T + 970) == []


def test_after_a_restart_the_restored_alert_stays_open_until_the_register_moves():
    engine = AlertEngine(RULES)
    engine.restore([(METER_FROZEN, "cp-1", 1)])
    assert feed(engine, [read(T + 60 * k, 900.0) for k in range(8)]) == []  # still frozen: not raised twice
    assert engine.feed(read(T + 480, 950.0), T + 481) == [ResolveAlert(METER_FROZEN, "cp-1", 1, T + 481)]


def test_replayed_and_duplicate_readings_do_not_count():
    engine = AlertEngine(RULES)
    feed(engine, [read(T, 700.0), read(T + 60, 700.0)])
    duplicates = [read(T + 60, 700.0)] * 10 + [read(T + 30, 700.0)]
    assert feed(engine, duplicates) == [] and engine._ports["cp-1", 1].register.stalled == 1


def test_updates_without_evse_use_the_port_the_transaction_was_read_on():
    engine = AlertEngine(RULES)
    engine.feed(read(T, 100.0, evse_id=2), T)
    feed(engine, [read(T + 60 * k, 100.0, evse_id=None) for k in range(1, 7)])
    assert (METER_FROZEN, "cp-1", 2) in engine.open
    # Unknown transaction and no EVSE: ignored, not guessed.
    assert feed(engine, [read(T + 60 * k, 5.0, evse_id=None, tx="tx-9") for k in range(10)]) == []


def test_disabled_rule_never_raises():
    engine = AlertEngine(AlertRules(enabled=frozenset(), meter_frozen_after_s=60))
    assert feed(engine, [read(T + 60 * k, 100.0) for k in range(20)]) == []


intervals = st.lists(st.floats(min_value=1.0, max_value=900.0), min_size=1, max_size=60)


@given(intervals, st.lists(st.floats(min_value=0.0, max_value=350_000.0), min_size=60, max_size=60))
def test_a_register_that_moves_at_every_reading_never_alerts(gaps, powers):
    engine, at, energy = AlertEngine(RULES), T, 0.0
    for gap, power in zip(gaps, powers, strict=False):
        at, energy = at + gap, energy + 0.5
        assert engine.feed(read(at, energy, power=power), at) == []


@given(intervals, st.lists(st.floats(min_value=0.0, max_value=999.0), min_size=60, max_size=60))
def test_power_below_the_threshold_never_alerts_whatever_the_register(gaps, powers):
    engine, at = AlertEngine(RULES), T
    for gap, power in zip(gaps, powers, strict=False):
        at += gap
        assert engine.feed(read(at, 42.0, power=power), at) == []


@given(intervals)
def test_a_stuck_register_with_power_alerts_once_at_the_first_reading_meeting_both_thresholds(gaps):
    engine, at, ats, raised = AlertEngine(RULES), T, [], []
    engine.feed(read(at, 42.0), at)
    for n, gap in enumerate(gaps, start=1):
        at += gap
        ats.append(at)
        raised += [(n, at, e) for e in engine.feed(read(at, 42.0), at)]
    expected = next(
        (
            n
            for n, at in enumerate(ats, start=1)
            if n >= RULES.meter_frozen_readings and at - T >= RULES.meter_frozen_after_s
        ),
        None,
    )
    assert [n for n, _, _ in raised] == ([] if expected is None else [expected])
    assert all(isinstance(e, RaiseAlert) and e.details["since"] == T for _, _, e in raised)


# ---- from OCPP payloads to readings ----------------------------------------------------------------------
def _ts(seconds: float) -> str:
    return datetime.fromtimestamp(T + seconds, UTC).isoformat().replace("+00:00", "Z")


def test_1_6_meter_values_with_kwh_and_per_phase_power_become_one_reading_per_timestamp():
    payload = {
        "connectorId": 2,
        "transactionId": 17,
        "meterValue": [
            {
                "timestamp": _ts(t),
                "sampledValue": [
                    {"value": "12.345", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                    *(
                        {"value": "2.4", "measurand": "Power.Active.Import", "unit": "kW", "phase": p}
                        for p in ("L1", "L2", "L3")
                    ),
                    *(
                        {"value": v, "measurand": "Current.Import", "unit": "A", "phase": p}
                        for v, p in (("9", "L1"), ("11", "L2"))
                    ),
                    {"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"},
                ],
            }
            for t in (60, 0)
        ],
    }
    reads = meter_reads("cp-1", v16.to_event("MeterValues", payload), ev.Acknowledged())
    assert [(r.evse_id, r.transaction_id, r.at) for r in reads] == [(2, "17", T), (2, "17", T + 60)]
    assert (reads[0].energy_wh, round(reads[0].power_w, 6), reads[0].current_a) == (12345.0, 7200.0, 11.0)
    no_tx = dict(payload)
    del no_tx["transactionId"]
    assert meter_reads("cp-1", v16.to_event("MeterValues", no_tx), ev.Acknowledged()) == []


def test_1_6_start_transaction_reads_meter_start_under_the_id_the_csms_assigned():
    start = v16.to_event("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 1500, "timestamp": _ts(0)})
    [reading] = meter_reads("cp-1", start, ev.TransactionAck(42, None))
    assert (reading.transaction_id, reading.energy_wh, reading.at) == ("42", 1500.0, T)


def test_2_0_1_charging_state_change_without_values_is_a_reading_of_state_only():
    payload = {
        "eventType": "Updated",
        "timestamp": _ts(30),
        "triggerReason": "ChargingStateChanged",
        "seqNo": 3,
        "transactionInfo": {"transactionId": "abc", "chargingState": "SuspendedEV"},
    }
    [reading] = meter_reads("cp-1", v201.to_event("TransactionEvent", payload), ev.Acknowledged())
    assert (reading.evse_id, reading.transaction_id, reading.energy_wh, reading.charging_state) == (
        None,
        "abc",
        None,
        "SuspendedEV",
    )
