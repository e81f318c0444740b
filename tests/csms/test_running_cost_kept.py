"""The running cost of a 2.0.1 session is kept per live transaction and fed with each TransactionEvent (issue 19,
the hot path): every answer equals the session priced again from all its stored samples at that instant, through
charging/parking changes and after the kept costs are lost (a restart), and a tariff version set mid-session is
picked up."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy import select

from csms.api.routes.tariffs import EXAMPLE
from csms.services import cdrs, tariffs
from csms.services.config import CsmsConfig
from csms.store import models
from tests.csms.test_cdrs import _event, _iso, _set_up
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


def _time_of_use(start: datetime) -> dict[str, Any]:
    """PARKING (an idle fee) with a dearer energy price in a local window the session crosses both ways."""
    tariff = copy.deepcopy(PARKING) | {"id": "TOU"}
    window = {
        "start_time": (start + timedelta(minutes=100)).strftime("%H:%M"),  # the CSMS's tariff time zone is UTC
        "end_time": (start + timedelta(minutes=150)).strftime("%H:%M"),
    }
    dearer = {"price_components": [{"type": "ENERGY", "price": "0.55", "vat": "20", "step_size": 1}]}
    tariff["elements"].insert(0, dearer | {"restrictions": window})
    return tariff


async def test_the_display_cost_of_a_16_session_fed_at_each_update_equals_it_priced_again(
    session_factory, gateway, monkeypatch
):
    """The display's periodic updates (csms.core.plugins.costs) keep each session's cost and feed it only what was
    stored since: every update shows what pricing the session again from all its samples shows, through a time-of-use
    window, parking (the idle fee), an offline backlog replayed out of order, a new tariff version and a restart."""
    builds: list[datetime] = []
    build = cdrs._built

    def counted(db, tx, tariff, stop, config):  # type: ignore[no-untyped-def]
        builds.append(stop)
        return build(db, tx, tariff, stop, config)

    monkeypatch.setattr(cdrs, "_built", counted)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4)
    _set_up(session_factory, "cp16-shown", "1.6", tariff=_time_of_use(start))
    config, kept = CsmsConfig(), {}
    statuses = {8: "SuspendedEV", 12: "Charging", 21: "SuspendedEVSE", 24: "Charging", 30: "SuspendedEV"}
    shown: list[tuple[Decimal, bool]] = []
    async with charger(gateway, "cp16-shown", "1.6") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        started = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="DRIVER", meter_start=1_000, timestamp=_iso(start))
        )
        tx_id, wh = started.transaction_id, 1_000.0
        for seq in range(1, 34):
            at = start + timedelta(minutes=7 * seq, seconds=seq % 4)
            if seq in statuses:
                status = call16.StatusNotification(
                    connector_id=1, error_code="NoError", status=statuses[seq], timestamp=_iso(at)
                )
                await cp.call(status)
            charging = statuses.get(max((s for s in statuses if s <= seq), default=0), "Charging") == "Charging"
            wh += 1_150.5 if charging else 0.0
            readings = [(at, wh)]
            if seq == 16:  # an offline backlog: a sample between two read already, across the window's start
                readings.insert(0, (at - timedelta(minutes=10), wh - 2_200))
            for stamp, value in readings:
                sampled = [
                    {"value": str(value), "measurand": "Energy.Active.Import.Register"},
                    {"value": "16", "measurand": "Current.Import", "phase": "L1"},
                ]
                await cp.call(
                    call16.MeterValues(
                        connector_id=1,
                        transaction_id=tx_id,
                        meter_value=[{"timestamp": _iso(stamp), "sampled_value": sampled}],
                    )
                )
            if seq == 20:  # the operator changes the tariff: a new version prices from now on
                with session_factory() as db:
                    cheaper = _time_of_use(start)
                    cheaper["elements"][1]["price_components"][0]["price"] = "0.20"
                    tariffs.put(db, "TOU", cheaper, at - timedelta(minutes=3))
                    db.commit()
            if seq == 26:  # the kept costs are lost (a restart): the next update prices from the store
                kept.clear()
            update = at + timedelta(minutes=2)  # the updates run on their own clock, between samples
            with session_factory() as db:
                cost = cdrs.session_cost(db, tx_id, update, config, kept)
            assert cost is not None
            assert cost.total == _repriced(session_factory, update), seq
            shown.append((cost.total, cost.charging))
            assert tx_id in kept
    # built at the first update, after the backlog, after the tariff change and after the restart: the other 29
    # updates were fed with the samples and states stored since the one before
    assert len(builds) == 4, builds
    assert [charging for _, charging in shown].count(False) == 11  # the parked updates say so on the display
    totals = [total for total, _ in shown]
    assert totals == sorted(totals) and totals[-1] > totals[0]
