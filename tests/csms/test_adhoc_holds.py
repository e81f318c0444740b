"""Card holds that no session used are released (issue 19, ad-hoc payment): a driver pays at the terminal and
never plugs in; the CSMS voids the hold after ``adhoc_hold_ttl_s`` and the session token pays for nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v201 import call as call201
from sqlalchemy import select

from csms.api.routes.tariffs import EXAMPLE
from csms.core.plugins.payments import HoldRelease
from csms.gateway.server import Gateway
from csms.services import stations, tariffs
from csms.services.config import CsmsConfig
from csms.services.payments import SandboxCardProcessor
from csms.store import models
from tests.csms.test_ocpp_chargepoint import charger

PROCESSOR = SandboxCardProcessor()


@pytest.fixture
async def paying_gateway(session_factory) -> AsyncIterator[Gateway]:
    config = CsmsConfig(call_timeout_s=5.0, card_processor=PROCESSOR, adhoc_hold_ttl_s=0.5)
    gw = Gateway(session_factory, config)
    gw.add_plugin(HoldRelease(sweep_every_s=0.2))
    await gw.start("127.0.0.1", 0)
    yield gw
    await gw.stop()


async def test_a_hold_no_session_used_is_voided_and_its_token_refused(session_factory, paying_gateway):
    now = datetime.now(UTC)
    with session_factory() as db:
        stations.provision(db, "cp-hold", ocpp_version="2.0.1", password=None, now=now)
        tariffs.put(db, "STANDARD", EXAMPLE, now - timedelta(days=1))
        tariffs.set_station_default(db, "cp-hold", "STANDARD", now)
        db.commit()
    card = {"id_token": "PT-hold-1", "type": "Local",
            "additional_info": [{"additional_id_token": "card_visa_7777", "type": "PaymentCard"}]}  # fmt: skip
    async with charger(paying_gateway, "cp-hold", "2.0.1") as cp:
        await cp.call(call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"))
        held = await cp.call(call201.Authorize(id_token=card))
        assert held.id_token_info["status"] == "Accepted"
        with session_factory() as db:
            (hold,) = db.scalars(select(models.PaymentHold)).all()
            assert hold.status == "held" and hold.amount_minor == 5000  # the default 50.00 EUR
        for _ in range(100):  # the driver never plugs in
            with session_factory() as db:
                (hold,) = db.scalars(select(models.PaymentHold)).all()
            if hold.status != "held":
                break
            await asyncio.sleep(0.1)
        assert hold.status == "released" and hold.captured_minor == 0
        assert PROCESSOR.holds[hold.authorisation].voided  # the processor gave the money back
        again = await cp.call(call201.Authorize(id_token=card))
        assert again.id_token_info["status"] == "Invalid"  # the released card's token pays for nothing
