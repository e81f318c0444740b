"""Demand response against a real OpenADR 2.0b VTN (openleadr's server on loopback): the CSMS's VEN registers,
receives an event, answers optIn (or optOut when a vehicle's departure is at risk and the rule allows it), lowers
the site's limit from the event's start so two real chargers (the ``ocpp`` package's ChargePoint) are told less
within one planning cycle, gives it back at the end, and reports the planned power back to the VTN."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from datetime import UTC, datetime, timedelta

import pytest

from csms.runtime.openadr import Step, Ven, steps
from tests.csms.test_loadmgmt_gateway import connect, managed, plug_and_start, session_factory, settle, total_kw

__all__ = ["managed", "session_factory"]  # fixtures used by name

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_signals_become_limit_steps():
    t0 = datetime(2026, 12, 4, 18, tzinfo=UTC)
    event = {
        "active_period": {"dtstart": t0, "duration": timedelta(hours=1)},
        "event_signals": [
            {"signal_name": "SIMPLE", "signal_type": "level",
             "intervals": [{"duration": timedelta(minutes=30), "signal_payload": 2},
                           {"duration": timedelta(minutes=30), "signal_payload": 1}]},
        ],
    }  # fmt: skip
    assert steps(event, 100.0) == [
        Step(t0.timestamp(), t0.timestamp() + 1800, 50.0),
        Step(t0.timestamp() + 1800, t0.timestamp() + 3600, 75.0),
    ]
    dispatch = {"active_period": {"dtstart": t0, "duration": timedelta(hours=1)},
                "event_signals": [{"signal_name": "LOAD_DISPATCH", "signal_type": "delta",
                                   "intervals": [{"duration": timedelta(hours=1), "signal_payload": 40}]}]}  # fmt: skip
    assert steps(dispatch, 100.0)[0].limit_kw == 60.0
    bad = {"active_period": {"dtstart": t0}, "event_signals": [{"signal_name": "ELECTRICITY_PRICE", "intervals": [{}]}]}
    with pytest.raises(ValueError, match="ELECTRICITY_PRICE"):
        steps(bad, 100.0)


@contextlib.asynccontextmanager
async def vtn(responses: list[str], reports: list[float]):
    from openleadr import OpenADRServer

    port = free_port()
    server = OpenADRServer(vtn_id="test-vtn", http_host="127.0.0.1", http_port=port,
                           requested_poll_freq=timedelta(seconds=1), verify_message_signatures=False)  # fmt: skip
    registered: dict[str, str] = {}

    async def on_create_party_registration(info):
        registered[info["ven_name"]] = "ven-1"
        return "ven-1", "reg-1"

    async def on_register_report(
        ven_id, resource_id, measurement, unit, scale, min_sampling_interval, max_sampling_interval
    ):
        async def received(data):
            reports.extend(value for _, value in data)

        return received, min_sampling_interval

    server.add_handler("on_create_party_registration", on_create_party_registration)
    server.add_handler("on_register_report", on_register_report)
    await server.run()
    try:
        yield server, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", registered
    finally:
        await server.stop()


async def until(predicate, timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_event_lowers_the_site_limit_for_its_duration_and_the_ven_reports_back(gateway, managed):
    responses: list[str] = []
    reports: list[float] = []
    async with (
        vtn(responses, reports) as (server, url, registered),
        connect(gateway, "lm-a") as a,
        connect(gateway, "lm-b") as b,
    ):
        await plug_and_start(a, "TAG-A")
        await plug_and_start(b, "TAG-B")
        await settle(a, b)
        before = total_kw(a.tx_limit(), b.tx_limit())
        assert before > 20.0  # 30 kW shared by the two cars
        ven = Ven(managed, vtn_url=url, ven_name="csms-test", sites=["garage"])
        runner = asyncio.create_task(ven.start())
        try:
            await until(lambda: "csms-test" in registered, 20, "the VEN to register")
            start = datetime.now(UTC) + timedelta(seconds=2)
            server.add_event(
                ven_id="ven-1", signal_name="LOAD_DISPATCH", signal_type="setpoint",
                intervals=[{"dtstart": start, "duration": timedelta(seconds=6), "signal_payload": 11.0}],
                callback=lambda ven_id, event_id, opt_type: responses.append(opt_type),
            )  # fmt: skip
            await until(lambda: responses == ["optIn"], 20, "the VEN's optIn")
            await until(lambda: total_kw(a.tx_limit(), b.tx_limit()) <= 11.0 + 1e-6, 10, "the chargers told less")
            await until(lambda: total_kw(a.tx_limit(), b.tx_limit()) > 20.0, 15, "the limit given back at the end")
            await until(lambda: len(reports) > 0, 20, "a telemetry report")
        finally:
            await ven.stop()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner


async def test_the_ven_opts_out_when_a_departure_is_at_risk_and_the_rule_allows(gateway, managed):
    responses: list[str] = []
    asked: list[tuple[str, float]] = []

    async def at_risk(site_id: str, start: float, end: float, limit_kw: float) -> bool:
        asked.append((site_id, limit_kw))
        return True

    async with vtn(responses, []) as (server, url, registered):
        ven = Ven(managed, vtn_url=url, ven_name="csms-test", sites=["garage"], opt_out="when_departure_at_risk",
                  at_risk=at_risk)  # fmt: skip
        runner = asyncio.create_task(ven.start())
        try:
            await until(lambda: "csms-test" in registered, 20, "the VEN to register")
            server.add_event(
                ven_id="ven-1", signal_name="SIMPLE", signal_type="level",
                intervals=[{"dtstart": datetime.now(UTC) + timedelta(seconds=2), "duration": timedelta(minutes=5),
                            "signal_payload": 3}],
                callback=lambda ven_id, event_id, opt_type: responses.append(opt_type),
            )  # fmt: skip
            await until(lambda: responses == ["optOut"], 20, "the VEN's optOut")
            assert asked == [("garage", 7.5)]  # level 3: a quarter of the site's 30 kW
            assert managed.curtailments("garage") == []  # nothing lowered
        finally:
            await ven.stop()
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
