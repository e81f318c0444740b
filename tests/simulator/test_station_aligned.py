"""Clock-aligned meter values of the charger firmware (OCPP 1.6 ClockAlignedDataInterval/MeterValuesAlignedData,
2.0.1 AlignedDataCtrlr), paired with the real CSMS core. T0 is 22:00:00 UTC, itself an aligned instant."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from csms.store.models import MeterSample
from tests.simulator.helpers import T0, StationPair
from tests.simulator.test_station_pairing import VERSIONS

REGISTER = "Energy.Active.Import.Register"


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def keys(version: str, interval: int, measurands: str | None = None, idle: bool | None = None) -> dict[str, str]:
    if version == "1.6":
        config = {"ClockAlignedDataInterval": str(interval)}
        if measurands is not None:
            config["MeterValuesAlignedData"] = measurands
        return config
    config = {"AlignedDataCtrlr.Interval": str(interval)}
    if measurands is not None:
        config["AlignedDataCtrlr.Measurands"] = measurands
    if idle is not None:
        config["AlignedDataCtrlr.SendDuringIdle"] = "true" if idle else "false"
    return config


def make(tmp_path, version: str, **config: Any) -> StationPair:
    pair = StationPair(tmp_path, version, config=keys(version, **config))
    pair.start()
    return pair


def aligned(pair: StationPair, *, in_transaction: bool | None = None) -> list[tuple[float, dict[str, Any]]]:
    """(offset from T0, meterValue) of every clock-aligned reading the charger sent; ``in_transaction``: only
    those of a transaction (True) or of an idle connector (False)."""
    out = []
    for sent in pair.sent:
        p = sent.payload
        if sent.action == "MeterValues":
            tx = "transactionId" in p if pair.version == "1.6" else False
        elif sent.action == "TransactionEvent" and p.get("triggerReason") == "MeterValueClock":
            tx = True
        else:
            continue
        for mv in p.get("meterValue", []):
            if all(sv["context"] == "Sample.Clock" for sv in mv["sampledValue"]) and (
                in_transaction is None or tx == in_transaction
            ):
                out.append((sent.at - T0, mv))
    return out


def set_aligned_interval(pair: StationPair, seconds: int) -> str:
    if pair.version == "1.6":
        answer = pair.csms_call("ChangeConfiguration", {"key": "ClockAlignedDataInterval", "value": str(seconds)})
        return answer.payload["status"]
    item = {"attributeValue": str(seconds), "component": {"name": "AlignedDataCtrlr"}, "variable": {"name": "Interval"}}
    answer = pair.csms_call("SetVariables", {"setVariableData": [item]})
    return answer.payload["setVariableResult"][0]["attributeStatus"]


def test_a_transaction_sends_the_aligned_measurands_at_each_aligned_instant(tmp_path, version):
    pair = make(tmp_path, version, interval=900, measurands=f"{REGISTER},Power.Active.Import")
    pair.run(10)
    pair.meter.energy[1], pair.meter.power[1] = 1000.0, 7400.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.advance_to(T0 + 899)
    pair.meter.energy[1] = 2800.0
    pair.advance_to(T0 + 1799)
    pair.meter.energy[1] = 4600.0
    pair.advance_to(T0 + 2000)
    sent = aligned(pair, in_transaction=True)
    assert [at for at, _ in sent] == [900, 1800]
    # read at the aligned instant, dated by it, with the configured measurands only
    assert [mv["timestamp"] for _, mv in sent] == ["2026-01-15T22:15:00.000Z", "2026-01-15T22:30:00.000Z"]
    assert [[sv["measurand"] for sv in mv["sampledValue"]] for _, mv in sent] == [[REGISTER, "Power.Active.Import"]] * 2
    assert [float(mv["sampledValue"][0]["value"]) for _, mv in sent] == [2800.0, 4600.0]
    if version == "2.0.1":
        clock = [e for e in pair.tx_events() if e["triggerReason"] == "MeterValueClock"]
        assert [e["eventType"] for e in clock] == ["Updated", "Updated"]
    # the CSMS keeps them as the transaction's register readings
    [row] = pair.transactions()
    with pair.db() as db:
        clock_wh = db.scalars(
            select(MeterSample.value).where(
                MeterSample.transaction_id == row.id,
                MeterSample.context == "Sample.Clock",
                MeterSample.measurand == REGISTER,
            )
        ).all()
    assert clock_wh == [2800.0, 4600.0]
    assert row.energy_wh == pytest.approx(3600.0)
    assert pair.errors_to_charger() == []
    assert pair.charger.counters.internal_errors == []


def test_no_aligned_values_when_the_interval_is_zero(tmp_path, version):
    pair = make(tmp_path, version, interval=0, idle=True if version == "2.0.1" else None)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(4000)
    assert aligned(pair) == []


def test_an_idle_connector_reports_in_1_6_and_in_2_0_1_only_when_send_during_idle(tmp_path, version):
    pair = make(tmp_path, version, interval=900)
    pair.meter.energy[1] = 500.0
    pair.run(2000)
    idle = aligned(pair, in_transaction=False)
    if version == "1.6":
        assert [at for at, _ in idle] == [900, 1800]
        assert [s.payload["connectorId"] for s in pair.calls("MeterValues")] == [1, 1]
    else:
        assert idle == []
        pair.csms_call(
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "true",
                        "component": {"name": "AlignedDataCtrlr"},
                        "variable": {"name": "SendDuringIdle"},
                    }
                ]
            },
        )
        pair.run(1000)
        assert [at for at, _ in aligned(pair, in_transaction=False)] == [2700]
        assert pair.calls("MeterValues")[0].payload["evseId"] == 1
    assert pair.errors_to_charger() == []


def test_changing_the_interval_re_arms_at_the_next_aligned_instant(tmp_path, version):
    pair = make(tmp_path, version, interval=0)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.run(100)
    assert set_aligned_interval(pair, 600) == "Accepted"
    pair.run(1200)  # changed at 100: aligned from midnight, at 600 and 1200 (not 100 + 600)
    assert [at for at, _ in aligned(pair, in_transaction=True)] == [600, 1200]
    assert set_aligned_interval(pair, 0) == "Accepted"
    pair.run(2000)
    assert [at for at, _ in aligned(pair, in_transaction=True)] == [600, 1200]
