"""The twin's charger shows the prices and costs the CSMS sends (real frames, schema-checked both ways, the real
CSMS session and services): 2.0.1 personalMessage and totalCost in its answers and CostUpdated; 1.6 the California
Pricing DataTransfers, only while it declares CustomDisplayCostAndPrice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from csms.api.routes.tariffs import EXAMPLE
from csms.ocpp import commands
from csms.ocpp.outgoing import SessionCost, VariableRef
from csms.services import tariffs
from csms.store import models
from tests.simulator.helpers import STATION, T0, StationPair


def _tariff(pair: StationPair) -> None:
    when = datetime.fromtimestamp(T0, UTC) - timedelta(days=1)
    with pair.db() as db:
        tariffs.put(db, "STANDARD", EXAMPLE, when)
        tariffs.assign(db, "STANDARD", now=when, station_id=STATION)
        db.commit()


def test_a_201_display_shows_the_tariff_the_running_and_the_final_cost(tmp_path):
    pair = StationPair(tmp_path, "2.0.1", config={"SampledDataCtrlr.TxUpdatedInterval": "600"})
    _tariff(pair)
    pair.start()
    pair.meter.energy[1] = 0.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    (tx_id,) = pair.charger.running_transaction_ids()
    costs = pair.charger.costs
    assert costs.price_text is not None and "0.30 EUR/kWh" in costs.price_text  # personalMessage at the start
    assert costs.session(tx_id).running == 0  # nothing has happened yet
    for minute in range(10, 61, 10):  # 11 kWh an hour
        pair.meter.energy[1] = 11_000 * minute / 60
        pair.run(600)
    assert costs.session(tx_id).running == Decimal("5.16")  # 1.00 + 11 x 0.30 = 4.30 excl.
    cost = SessionCost(0, tx_id, Decimal("5.55"), datetime.fromtimestamp(pair.now, UTC), 11_000)
    action, payload = commands.running_cost("2.0.1", cost)
    assert pair.csms_call(action, payload).payload == {}
    assert costs.session(tx_id).running == Decimal("5.55")
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert costs.session(tx_id).final == Decimal("5.16")  # the CDR's total, in the answer to Ended
    with pair.db() as db:
        (row,) = db.scalars(select(models.Cdr)).all()
        assert row.total_cost_incl_vat == "5.16" and row.body["session_id"] == str(row.transaction_id)


def test_a_16_display_takes_california_pricing_only_while_it_declares_it(tmp_path):
    pair = StationPair(tmp_path, "1.6")
    pair.start()
    pair.meter.energy[1] = 0.0
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    (tx_id,) = pair.charger.running_transaction_ids()
    at = datetime.fromtimestamp(pair.now, UTC)
    sent = [
        commands.user_price("1.6", "TOKEN-OK", "0.30 EUR/kWh"),
        commands.running_cost("1.6", SessionCost(int(tx_id), tx_id, Decimal("2.40"), at, 4000, prices={})),
        commands.final_cost("1.6", int(tx_id), Decimal("3.60"), "Total 3.60 EUR", f"CDR-{tx_id}"),
    ]
    for action, payload in sent:
        assert pair.csms_call(action, payload).payload == {"status": "Accepted"}
    costs = pair.charger.costs
    shown = costs.session(tx_id)
    assert (costs.price_text, shown.running, shown.final, shown.final_text) == (
        "0.30 EUR/kWh",
        Decimal("2.40"),
        Decimal("3.60"),
        "Total 3.60 EUR",
    )
    pair.charger.config.set("CustomDisplayCostAndPrice", "false", force=True)
    action, payload = sent[0]
    assert pair.csms_call(action, payload).payload == {"status": "Rejected"}
    # The key the CSMS reads to decide: the charger reports it in GetConfiguration.
    (action, payload), *_ = commands.get_configuration("1.6", [VariableRef("CustomDisplayCostAndPrice")])
    answer = pair.csms_call(action, payload).payload
    assert answer["configurationKey"] == [{"key": "CustomDisplayCostAndPrice", "readonly": True, "value": "false"}]
