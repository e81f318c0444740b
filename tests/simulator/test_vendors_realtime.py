"""Vendor quirks of the twin's own firmware over a real WebSocket on loopback against the gateway: an EVerest
charger reports its statuses before it boots (refused, then accepted), an OpenEVSE charger sends meterStop 0
and the closing reading after the stop; the CSMS keeps the energy the twin delivered."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from csms.gateway.server import Gateway
from csms.ocpp import framing
from csms.services import authorization, stations
from csms.services.config import CsmsConfig
from csms.store import migrate, models
from csms.store.database import make_engine, make_session_factory
from simulator.links.websocket import WebSocketLink
from simulator.station.charger import Charger, Registration
from simulator.station.vendors import PROFILES
from tests.simulator.helpers import T0, FakeMeter
from tests.simulator.test_realtime import FastClock, _dt, wait_for

PASSWORD = "vendor-password-01"


@pytest.fixture
async def served(sqlite_url: str) -> Any:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as db:
        stations.provision(db, "ever-ws", ocpp_version="1.6", password=PASSWORD, now=_dt(T0))
        authorization.create(db, "TOKEN-OK", _dt(T0))
        db.commit()
    gw = Gateway(factory, CsmsConfig())
    await gw.start("127.0.0.1", 0)
    try:
        yield gw, factory
    finally:
        await gw.stop()
        engine.dispose()


@pytest.mark.timeout(30)
async def test_quirky_twin_charger_over_a_real_socket_loses_nothing(served: Any) -> None:
    gateway, factory = served
    # EVerest's status before boot, with OpenEVSE's unknown meterStop and its closing reading after the stop
    everest = PROFILES["everest"]
    profile = replace(everest, quirks=replace(everest.quirks, unknown_meter_stop=0))
    meter = FakeMeter()
    charger = Charger("ever-ws", "1.6", meter=meter, rng=random.Random(5), vendor=profile)
    answers: list[Any] = []
    receive = charger.receive_frame

    def record(frame: str, now: float) -> None:
        answers.append(framing.decode(frame))
        receive(frame, now)

    charger.receive_frame = record  # type: ignore[method-assign]
    clock = FastClock(20.0)
    link = WebSocketLink(charger, clock, f"ws://127.0.0.1:{gateway.port}/ocpp", password=PASSWORD)
    link.start()
    try:
        await wait_for(lambda: charger.registration is Registration.ACCEPTED, timeout=10)
        assert isinstance(answers[0], framing.CallError) and answers[0].code == "SecurityError"
        meter.energy[1] = 1_000.0
        charger.plug_in(1, "TOKEN-OK", clock.now())
        link.poke()
        await wait_for(lambda: bool(charger.transactions) and charger.transactions[1].transaction_id, timeout=10)
        meter.energy[1] = 4_321.0
        charger.unplug(1, clock.now())
        link.poke()
        await wait_for(lambda: len(charger.queue) == 0 and not charger.transaction_message_in_flight, timeout=10)
    finally:
        await link.stop()
    with factory() as db:
        [row] = db.scalars(select(models.Transaction)).all()
        assert (row.status, row.meter_stop_wh, row.energy_wh) == ("completed", 0.0, 3_321.0)
