"""The running cost of a 2.0.1 session is kept per live transaction and fed with each TransactionEvent (issue 19,
the hot path): every answer equals the session priced again from all its stored samples at that instant, through
charging/parking changes and after the kept costs are lost (a restart), and a tariff version set mid-session is
picked up."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ocpp.v201 import call as call201
from sqlalchemy import select

from csms.api.routes.tariffs import EXAMPLE
from csms.services import cdrs, tariffs
from csms.services.config import CsmsConfig
from csms.store import models
from tests.csms.test_cdrs import _event, _set_up
from tests.csms.test_ocpp_chargepoint import charger

PARKING = copy.deepcopy(EXAMPLE) | {"id": "PARKING"}
PARKING["elements"].append(
    {"price_components": [{"type": "PARKING_TIME", "price": "6.00", "vat": "20", "step_size": 60}]}
)


def _repriced(session_factory, at: datetime) -> Decimal:
    with session_factory() as db:
        (tx,) = db.scalars(select(models.Transaction)).all()
        priced = cdrs.price(db, tx, at, CsmsConfig(), final=False)
        assert priced is not None
        total = priced.result.total_cost
        return total.incl_vat if total.incl_vat is not None else total.excl_vat


async def test_every_running_cost_equals_the_session_priced_again_from_its_stored_samples(
    session_factory, gateway, monkeypatch
):
    rebuilds: list[datetime] = []
    rebuild = cdrs._rebuilt

    def counted(db, tx, tariff, stop, config):  # type: ignore[no-untyped-def]
        rebuilds.append(stop)
        return rebuild(db, tx, tariff, stop, config)

    monkeypatch.setattr(cdrs, "_rebuilt", counted)
    _set_up(session_factory, "cp-kept", "2.0.1", tariff=PARKING)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    states = ["Charging", "Charging", "SuspendedEV", "SuspendedEV", "Charging", "EVConnected", "Charging", "Charging"]
    async with charger(gateway, "cp-kept", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"))
        token, evse = {"id_token": "DRIVER", "type": "ISO14443"}, {"id": 1, "connector_id": 1}
        await cp.call(_event("Started", 0, start, 0, "Authorized", id_token=token, evse=evse))
        wh, compared = 0.0, 0
        for seq in range(1, 25):
            at = start + timedelta(minutes=7 * seq, seconds=seq % 5)
            state = states[seq % len(states)]
            wh += 0.0 if state != "Charging" else 1_234.5
            if seq == 12:  # the kept costs are lost (as in a restart): the next report rebuilds from the store
                gateway.host.processor.live.clear()
            if seq == 18:  # the operator changes the tariff: a new version prices from now on
                with session_factory() as db:
                    cheaper = copy.deepcopy(PARKING)
                    cheaper["elements"][1]["price_components"][0]["price"] = "0.20"
                    tariffs.put(db, "PARKING", cheaper, at - timedelta(minutes=3))
                    db.commit()
            trigger = "MeterValuePeriodic" if seq % 3 else "ChargingStateChanged"
            answer = await cp.call(_event("Updated", seq, at, wh, trigger, info={"charging_state": state}))
            # the tariff is looked up again within cdrs.TARIFF_RECHECK of the session: compare once it is
            if not 18 <= seq < 18 + cdrs.TARIFF_RECHECK // timedelta(minutes=7) + 1:
                assert Decimal(str(answer.total_cost)) == _repriced(session_factory, at), seq
                compared += 1
        assert compared >= 20
    # built at the start, after the loss, after the tariff change: the other 21 reports fed the kept cost
    assert len(rebuilds) == 3, rebuilds
    assert gateway.host.processor.live.cost("cp-kept", 1) is not None  # fed, not rebuilt, by the end
