"""Offline behaviour, retries, smart charging and determinism of the charger, paired with the CSMS core."""

from __future__ import annotations

import pytest

from csms.ocpp.convert import format_time, from_posix, parse_time
from simulator.station import Registration
from tests.simulator.helpers import T0, StationPair
from tests.simulator.test_station_pairing import VERSIONS, ended, make, meter_times, started, stop_reason


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def test_offline_queue_replays_in_order_without_loss_or_duplicates(tmp_path, version):
    pair = make(
        tmp_path,
        version,
        config={"MeterValueSampleInterval" if version == "1.6" else "SampledDataCtrlr.TxUpdatedInterval": "30"},
    )
    pair.network_up = False
    pair.drop_link()
    pair.meter.energy[1] = 100.0
    pair.charger.plug_in(1, None, pair.now)
    pair.charger.present_token(1, "TOKEN-OK", pair.now)  # unknown offline: refused
    assert not pair.charger.is_energizing(1)
    pair.charger.config.set(pair.charger.config.name_of("allow_offline_unknown"), "true")
    pair.charger.present_token(1, "TOKEN-OK", pair.now)
    assert pair.charger.is_energizing(1)
    for k in range(1, 7):
        pair.meter.energy[1] = 100.0 + 100 * k
        pair.run(30)
    pair.charger.unplug(1, pair.now)
    queued = [(m.action, m.payload.get("eventType")) for m in pair.charger.queue]
    assert len(queued) == 8  # start, 6 samples, stop
    sent_before = len(pair.sent)
    pair.network_up = True
    pair.run(300)
    replay = [
        s
        for s in pair.sent[sent_before:]
        if s.action in ("StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent")
    ]
    assert [(s.action, s.payload.get("eventType")) for s in replay] == queued
    [row] = pair.transactions()
    assert row.status == "completed"
    assert row.energy_wh == pytest.approx(600.0)
    if version == "1.6":
        # The stop and the samples waited for the real transactionId.
        assert {s.payload["transactionId"] for s in replay[1:]} == {row.id}
    else:
        assert [s.payload["seqNo"] for s in replay] == list(range(8))
        assert all(s.payload["offline"] for s in replay)
        assert row.offline_events == 8
    assert len(pair.charger.queue) == 0
    assert pair.errors_to_charger() == []


def test_queue_capacity_drops_oldest_meter_values_never_start_or_stop(tmp_path, version):
    pair = make(
        tmp_path,
        version,
        queue_capacity=4,
        config={"MeterValueSampleInterval" if version == "1.6" else "SampledDataCtrlr.TxUpdatedInterval": "10"},
    )
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.network_up = False
    pair.drop_link()
    pair.run(100)  # 10 samples into a queue of 4
    pair.charger.unplug(1, pair.now)
    assert len(pair.charger.queue) == 4
    kinds = [m.droppable for m in pair.charger.queue]
    assert kinds == [True, True, True, False]
    assert len(pair.charger.queue.dropped) == 7
    pair.network_up = True
    pair.run(200)
    assert pair.transactions()[0].status == "completed"


def test_stop_waits_for_the_start_answer_when_both_were_queued_16(tmp_path):
    pair = make(tmp_path, "1.6")
    pair.network_up = False
    pair.drop_link()
    pair.charger.config.set("AllowOfflineTxForUnknownId", "true")
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(5)
    pair.charger.unplug(1, pair.now)
    [_start, stop] = list(pair.charger.queue)
    assert "transactionId" not in stop.payload  # placeholder until the CSMS names it
    pair.network_up = True
    pair.run(200)
    [row] = pair.transactions()
    assert pair.calls("StopTransaction")[0].payload["transactionId"] == row.id


def test_reconnect_back_off_within_jitter_and_deterministic(tmp_path, version):
    def attempts(seed: int, path) -> list[float]:
        path.mkdir()
        pair = make(path, version, seed=seed)
        pair.network_up = False
        pair.drop_link()
        pair.run(2000)
        return [t - T0 for t in pair.connect_attempts[1:]]  # [0] is the first connection at T0

    first = attempts(1, tmp_path / "a")
    again = attempts(1, tmp_path / "b")
    other = attempts(2, tmp_path / "c")
    assert first == again
    assert first != other
    # base 10 s, doubling 5 times, ±5 s of jitter
    delays = [b - a for a, b in zip([0.0, *first], first, strict=False)]
    for n, delay in enumerate(delays):
        nominal = 10 * 2 ** min(n, 5)
        assert nominal - 5 <= delay <= nominal + 5, (n, delay)
    assert len(delays) >= 7


def test_back_off_resets_after_a_successful_connection(tmp_path, version):
    pair = make(tmp_path, version)
    pair.network_up = False
    pair.drop_link()
    pair.run(100)
    pair.network_up = True
    pair.run(200)
    assert pair.session is not None
    pair.drop_link()
    before = len(pair.connect_attempts)
    pair.run(16)
    assert len(pair.connect_attempts) == before + 1  # first back-off again: 10 ± 5 s
    assert pair.charger.registration is Registration.ACCEPTED
    assert pair.times("BootNotification") == [0]  # no reboot, no boot


def test_message_ids_and_transaction_ids_are_deterministic_per_seed(tmp_path, version):
    def run(path) -> list[str]:
        path.mkdir()
        pair = make(path, version, seed=11)
        pair.charger.plug_in(1, "TOKEN-OK", pair.now)
        pair.run(200)
        pair.charger.unplug(1, pair.now)
        pair.settle()
        return [repr(s.message) for s in pair.sent]

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_transaction_message_retried_after_callerror(tmp_path, version):
    """The CSMS answers the first start with a CALLERROR: retried after RetryInterval, then accepted."""
    interval = "TransactionMessageRetryInterval" if version == "1.6" else "OCPPCommCtrlr.MessageAttemptInterval"
    pair = make(tmp_path, version, config={interval: "20"})
    session = pair.session
    assert session is not None
    original = session.receive_frame
    failed: list[str] = []

    def flaky(frame, now):  # swallow the first transaction message and answer it with an InternalError
        text = frame if isinstance(frame, str) else frame.decode()
        if not failed and ("StartTransaction" in text or "TransactionEvent" in text):
            failed.append(text)
            unique_id = text.split('"')[1]
            session.rpc.push_frames([f'[4,"{unique_id}","InternalError","down",{{}}]'])
            return
        original(frame, now)

    session.receive_frame = flaky  # type: ignore[method-assign]
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(30)
    times = [s.at - T0 for s in started(pair)]
    assert times == [0, 20]
    assert len(pair.transactions()) == 1


def test_transaction_message_dropped_after_the_attempts(tmp_path, version):
    attempts = "TransactionMessageAttempts" if version == "1.6" else "OCPPCommCtrlr.MessageAttempts"
    interval = "TransactionMessageRetryInterval" if version == "1.6" else "OCPPCommCtrlr.MessageAttemptInterval"
    pair = make(tmp_path, version, config={attempts: "2", interval: "10"}, call_timeout_s=5.0)
    session = pair.session
    assert session is not None
    original = session.receive_frame

    def deaf(frame, now):  # a CSMS that never answers transaction messages
        text = frame if isinstance(frame, str) else frame.decode()
        if "StartTransaction" not in text and "TransactionEvent" not in text:
            original(frame, now)

    session.receive_frame = deaf  # type: ignore[method-assign]
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(100)
    # sent at 0, timed out at 5, retried at 5 + 10, timed out at 20: dropped
    assert [s.at - T0 for s in started(pair)] == [0, 15]
    assert len(pair.charger.queue.dropped) >= 1


def test_stop_transaction_on_invalid_id(tmp_path, version):
    """Offline start with an unknown token; the CSMS says Invalid on replay: stopped DeAuthorized."""
    pair = make(tmp_path, version)
    pair.network_up = False
    pair.drop_link()
    pair.charger.config.set(pair.charger.config.name_of("allow_offline_unknown"), "true")
    pair.charger.plug_in(1, "TOKEN-NEW", pair.now)
    assert pair.charger.is_energizing(1)
    pair.network_up = True
    pair.run(60)
    [stop] = ended(pair)
    assert stop_reason(pair, stop) == "DeAuthorized"
    assert not pair.charger.is_energizing(1)


def test_suspended_evse_instead_of_stop_when_configured(tmp_path):
    pair = make(tmp_path, "1.6", config={"StopTransactionOnInvalidId": "false"})
    pair.network_up = False
    pair.drop_link()
    pair.charger.config.set("AllowOfflineTxForUnknownId", "true")
    pair.charger.plug_in(1, "TOKEN-NEW", pair.now)
    pair.network_up = True
    pair.run(60)
    assert ended(pair) == []
    assert pair.charger.status(1) == "SuspendedEVSE"
    assert not pair.charger.is_energizing(1)


# ---- smart charging ---------------------------------------------------------------------------------------
def tx_profile(pair: StationPair, limit_a: float, *, start: float | None = None) -> dict:
    tx = pair.charger.transactions[1]
    schedule: dict = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_a}]}
    if pair.version == "1.6":
        return {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 5,
                "transactionId": tx.transaction_id,
                "stackLevel": 1,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": schedule,
            },
        }
    return {
        "evseId": 1,
        "chargingProfile": {
            "id": 5,
            "transactionId": tx.transaction_id,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": 1, **schedule}],
        },
    }


def default_profile(pair: StationPair, periods: list[tuple[int, float]]) -> dict:
    schedule = {
        "chargingRateUnit": "W",
        "startSchedule": format_time(from_posix(pair.now)),
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    }
    if pair.version == "1.6":
        return {
            "connectorId": 0,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": schedule,
            },
        }
    return {
        "evseId": 0,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, **schedule}],
        },
    }


def test_set_charging_profile_limits_power_and_stacks(tmp_path, version):
    pair = make(tmp_path, version)
    assert pair.charger.limit_w(1, pair.now) is None
    assert (
        pair.csms_call("SetChargingProfile", default_profile(pair, [(0, 7000.0), (600, 0.0)])).payload["status"]
        == "Accepted"
    )
    assert pair.charger.limit_w(1, pair.now) == pytest.approx(7000.0)
    assert pair.charger.next_limit_change(1, pair.now) == pytest.approx(pair.now + 600)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    assert pair.csms_call("SetChargingProfile", tx_profile(pair, 16.0)).payload["status"] == "Accepted"
    assert pair.charger.limit_w(1, pair.now) == pytest.approx(16 * 230 * 3)  # the TxProfile wins
    key = "connectorId" if version == "1.6" else "evseId"
    composite = pair.csms_call("GetCompositeSchedule", {key: 1, "duration": 300, "chargingRateUnit": "A"}).payload
    assert composite["status"] == "Accepted"
    clear = {"id": 5} if version == "1.6" else {"chargingProfileId": 5}
    assert pair.csms_call("ClearChargingProfile", clear).payload["status"] == "Accepted"
    assert pair.charger.limit_w(1, pair.now) == pytest.approx(7000.0)
    pair.run(601)  # the default profile's 0 W period suspends the EVSE
    assert pair.charger.status(1) == ("SuspendedEVSE" if version == "1.6" else "Occupied")
    assert not pair.charger.is_energizing(1)
    if version == "2.0.1":
        assert pair.tx_events()[-1]["transactionInfo"]["chargingState"] == "SuspendedEVSE"
    assert pair.charger.counters.internal_errors == []


def test_tx_profile_without_a_transaction_is_rejected(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    payload = tx_profile(pair, 10.0)
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert pair.csms_call("SetChargingProfile", payload).payload["status"] == "Rejected"


def test_meter_values_keep_running_while_offline(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(61)
    pair.network_up = False
    pair.drop_link()
    pair.run(120)
    pair.network_up = True
    pair.run(200)
    sent_at = meter_times(pair)
    assert sent_at[0] == 60 and sent_at[1] > 180  # the offline ones arrive late...
    action = "MeterValues" if version == "1.6" else "TransactionEvent"
    stamped = [
        parse_time(s.payload["meterValue"][0]["timestamp"]).timestamp() - T0
        for s in pair.calls(action)
        if "meterValue" in s.payload and s.payload.get("triggerReason", "MeterValuePeriodic") == "MeterValuePeriodic"
    ]
    assert stamped[:5] == [60, 120, 180, 240, 300]  # ...stamped with their own time, in order


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_acknowledgements_are_credited_to_the_transaction(tmp_path, version):
    """What real-time runs against any CSMS report: which start/stop got a CALLRESULT, and the last register."""
    pair = make(tmp_path, version)
    pair.network_up = False
    pair.drop_link()
    pair.charger.config.set(pair.charger.config.name_of("allow_offline_unknown"), "true")
    pair.meter.energy[1] = 100.0
    pair.charger.plug_in(1, None, pair.now)
    pair.charger.present_token(1, "TOKEN-OK", pair.now)
    pair.meter.energy[1] = 450.4
    pair.run(60)
    pair.charger.unplug(1, pair.now)  # it ended before the CSMS heard of it
    [tx] = pair.charger.history
    assert (tx.start_acknowledged, tx.end_acknowledged, tx.acknowledged_wh) == (False, False, None)
    pair.network_up = True
    pair.run(300)
    [row] = pair.transactions()
    assert tx.start_acknowledged and tx.end_acknowledged and tx.acknowledged_wh == 450.4
    # 1.6: the CSMS's id reaches the history even though the transaction was over when it arrived
    assert str(tx.transaction_id) == row.charger_tx_id
